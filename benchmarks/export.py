"""Generation speed of an exported language model in onnxruntime, against rnnkit.generate and torch.nn per token.

    python benchmarks/export.py [--run RUN] [--tokens 2000] [--repeats 5] [--threads N]
    python benchmarks/export.py --quick     # tiny model, few tokens: the script end to end, writes nothing

Three ways to sample the same model at batch 1 and 16, each drawing every token with the rule of
``rnnkit.decoding.sample_logits`` (temperature 1):

- ``onnxruntime``: ``rnnkit export`` of the run, sampled by ``rnnkit_onnx.generate`` (numpy + onnxruntime, the
  one-step graph called once per token, Exp(1) draws from numpy);
- ``rnnkit.generate``: rnnkit's own generation (its stepper, or its C loop on the CPU);
- ``torch.nn per token``: the model as ``torch.nn.LSTM/GRU/RNN`` (``Recurrent.to_torch``) with the embedding and
  head modules, called once per token as a user of torch.nn would write it; only for cells torch.nn computes.

Without ``--run``, a character model of rnnkit's default shape (2 x 512 LSTM, embedding 64, 65 tokens) with
random weights is built: speed does not depend on what the weights learned. Each figure is tokens per second
(batch x tokens / seconds), the median of ``--repeats`` runs after a warm-up, with onnxruntime and torch both
held to ``--threads`` threads. Before timing, greedy tokens of the three are checked to agree. Results go to
``benchmarks/results/export-TAG.{json,md}``; run it alone on a quiet machine.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

import rnnkit
import rnnkit_onnx
from common import RESULTS, machine, machine_markdown, write_results
from rnnkit.apps.export import export_run
from rnnkit.decoding import sample_logits
from rnnkit.layers import RecurrentConfig
from rnnkit.models import LanguageModel, LanguageModelConfig, load_model, save_model

BATCHES = (1, 16)
PRIME = [1, 2, 3, 4]


def default_run(folder: Path, quick: bool) -> Path:
    """A run directory holding an untrained character LM of rnnkit's default shape (tiny with --quick)."""
    hidden, layers, vocab = (32, 1, 20) if quick else (512, 2, 65)
    rnn = RecurrentConfig("lstm", 64, hidden, layers, batch_first=True)
    model = LanguageModel(LanguageModelConfig(vocab, 64, rnn))
    tokens = [chr(33 + i) for i in range(vocab)]
    save_model(folder / "run", model, config={"task": "lm"}, vocab={"level": "char", "tokens": tokens})
    return folder / "run"


def torch_nn_generate(model, torch_rnn, n_tokens: int, batch: int, temperature: float, seed: int) -> torch.Tensor:
    """Per-token calls of torch.nn modules: embedding -> torch.nn recurrent layer -> head, then the draw."""
    generator = torch.Generator().manual_seed(seed)
    embedding, head = model.embedding, model.head
    tokens = []
    with torch.no_grad():
        out, state = torch_rnn(embedding(torch.tensor(PRIME).expand(batch, -1)))
        logits = head(out[:, -1])
        for i in range(n_tokens):
            token = sample_logits(logits, temperature, generator=generator)
            tokens.append(token)
            if i + 1 < n_tokens:
                out, state = torch_rnn(embedding(token.unsqueeze(1)), state)
                logits = head(out[:, -1])
    return torch.stack(tokens, dim=1)


def samplers(model, exported, torch_rnn, temperature: float) -> dict:
    """name -> f(n_tokens, batch, seed) returning the tokens (batch, n_tokens) as numpy."""
    ways = {
        "onnxruntime": lambda n, b, s: np.stack(list(rnnkit_onnx.generate(
            exported, n, prime=PRIME, temperature=temperature, num_samples=b, seed=s)), axis=1),  # fmt: skip
        "rnnkit.generate": lambda n, b, s: rnnkit.generate(
            model.embedding, model.rnn, model.head, n, prime=PRIME, temperature=temperature, num_samples=b, seed=s
        ).numpy(),  # fmt: skip
    }
    if torch_rnn is not None:
        ways["torch.nn per token"] = lambda n, b, s: torch_nn_generate(model, torch_rnn, n, b, temperature, s).numpy()
    return ways


def measure(fn, n_tokens: int, batch: int, repeats: int) -> float:
    fn(min(n_tokens, 20), batch, 0)  # warm-up: sessions, caches, the C loop's buffers
    seconds = []
    for r in range(repeats):
        started = time.perf_counter()
        fn(n_tokens, batch, r)
        seconds.append(time.perf_counter() - started)
    return batch * n_tokens / statistics.median(seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", help="an lm run directory (default: an untrained model of the default shape)")
    parser.add_argument("--tokens", type=int, default=2000, help="tokens generated per sequence and timing")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads(), help="torch and onnxruntime threads")
    parser.add_argument("--quick", action="store_true", help="tiny model, few tokens, nothing written")
    args = parser.parse_args()
    if args.quick:
        args.tokens, args.repeats = 30, 1
    torch.set_num_threads(args.threads)
    scratch = Path(tempfile.mkdtemp(prefix="export-bench-"))
    run = Path(args.run) if args.run else default_run(scratch, args.quick)
    export = export_run(run, scratch / "lm.onnx")
    model = load_model(run, task="lm").eval()
    exported = rnnkit_onnx.LanguageModel(scratch / "lm.onnx", threads=args.threads)
    try:
        torch_rnn = model.rnn.to_torch().eval()
    except ValueError:  # options torch.nn does not compute: no torch.nn peer
        torch_rnn = None
    greedy = {name: fn(50, 4, 0) for name, fn in samplers(model, exported, torch_rnn, 0.0).items()}
    first = next(iter(greedy.values()))
    agree = {name: float((tokens == first).mean()) for name, tokens in greedy.items()}
    if min(agree.values()) < 1.0:
        print(f"note: greedy tokens differ between the samplers: {agree}", file=sys.stderr)
    rates = {}
    for batch in BATCHES:
        for name, fn in samplers(model, exported, torch_rnn, 1.0).items():
            rates[f"{name}, batch {batch}"] = measure(fn, args.tokens, batch, args.repeats)
            print(f"{name}, batch {batch}: {rates[f'{name}, batch {batch}']:,.0f} tokens/s", file=sys.stderr)
    info = {**machine("cpu"), "onnxruntime": __import__("onnxruntime").__version__, "threads": args.threads}
    c = model.config.rnn
    shape = f"{c.num_layers} x {c.hidden_size} {c.cell.upper()}, embedding {model.config.embedding_size}, " \
            f"vocabulary {model.config.vocab_size}"  # fmt: skip
    lines = ["# Generation: onnxruntime against rnnkit.generate and torch.nn per token\n",
             f"Command: `python benchmarks/export.py {' '.join(sys.argv[1:])}`. Model: {shape} "
             f"({'run ' + args.run if args.run else 'untrained weights'}); {args.tokens} tokens per sequence after a "
             f"{len(PRIME)}-token prime, temperature 1, median of {args.repeats}. Greedy tokens agree: {agree}.\n",
             "| sampler | batch 1 tokens/s | batch 16 tokens/s | batch 1 vs rnnkit.generate "
             "| batch 16 vs rnnkit.generate |",
             "|---|---|---|---|---|"]  # fmt: skip
    for name in samplers(model, exported, torch_rnn, 1.0):
        one, many = rates[f"{name}, batch 1"], rates[f"{name}, batch 16"]
        lines.append(f"| {name} | {one:,.0f} | {many:,.0f} | {one / rates['rnnkit.generate, batch 1']:.2f}x | "
                     f"{many / rates['rnnkit.generate, batch 16']:.2f}x |")  # fmt: skip
    lines.append(f"\nExported graphs checked in onnxruntime: max |difference| {export['max_abs_diff']}.")
    lines.append(f"\nMachine: {machine_markdown(info)}.")
    markdown = "\n".join(lines)
    print(markdown)
    if not args.quick:
        write_results("export", {"benchmark": "export", "machine": info, "model": shape, "tokens": args.tokens,
                                 "repeats": args.repeats, "tokens_per_s": rates, "greedy_agreement": agree,
                                 "max_abs_diff": export["max_abs_diff"]}, markdown, RESULTS)  # fmt: skip


if __name__ == "__main__":
    main()
