"""Run rnnkit's exported ONNX models with numpy and onnxruntime only: no PyTorch, no rnnkit.

``rnnkit export RUN --onnx OUT.onnx`` writes the graphs; this package reads them where PyTorch is not
installed (a Raspberry Pi, a server without GPU wheels). It is a package of its own, beside ``rnnkit``,
because importing anything under ``rnnkit`` first runs ``rnnkit/__init__.py``, which imports torch::

    python -m rnnkit_onnx OUT.onnx --vocab RUN/vocab.json --length 200 --temperature 0.8 --seed 1

:mod:`rnnkit_onnx.sampler` holds the language-model sampler (the rule of ``rnnkit.decoding.sample_logits``),
the vocabulary of ``vocab.json``, Viterbi decoding for exported taggers and greedy decoding for exported
encoder-decoders.
"""

from rnnkit_onnx.sampler import (
    LanguageModel,
    Vocabulary,
    exponential_draws,
    generate,
    greedy_decode,
    sample_logits,
    sample_text,
    viterbi,
)

__all__ = [
    "LanguageModel",
    "Vocabulary",
    "exponential_draws",
    "generate",
    "greedy_decode",
    "sample_logits",
    "sample_text",
    "viterbi",
]
