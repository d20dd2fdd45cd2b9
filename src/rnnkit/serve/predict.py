"""What the classify, tag, seq2seq and next-token routes compute, on a loaded run.

These are the middle of the tasks' ``predict_run`` (which load the model for every call, as a command
does) on a model loaded once, and give the page what a terminal does not need: character offsets of
the tagged words, the attention weights of each decoded step, the filtered next-token distribution.
The tests check each against ``rnnkit predict`` on the same run. Every function here is synchronous
and runs in a worker thread; user mistakes raise :class:`~rnnkit.serve.limits.RequestError`.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from rnnkit.data.labelled import encode_text
from rnnkit.errors import DataError
from rnnkit.serve.limits import RequestError, unknown_characters
from rnnkit.serve.runs import CorporaSet, Runs, ServedRun

# -- classify -------------------------------------------------------------------------------------


def classify(run: ServedRun, texts: list[str]) -> dict:
    """p(label | text) for each text, as ``rnnkit predict RUN --text`` computes it."""
    from rnnkit.tasks.classify import predict_probabilities

    tokenizer, labels = run.vocab
    sequences = [encode_text(tokenizer, t, line_ends=run.data.folder) for t in texts]
    for i, s in enumerate(sequences):
        if len(s) == 0:
            raise RequestError(f"text {i + 1} has no token the model knows", field="text")
    probs = predict_probabilities(run.model, sequences, 64, "cpu")
    predictions = []
    for text, p in zip(texts, probs.tolist()):
        best = max(range(len(labels)), key=p.__getitem__)
        predictions.append({"text": text, "label": labels[best], "probabilities": dict(zip(labels, p))})
    return {"run": run.name, "labels": labels, "predictions": predictions}


# -- tag ------------------------------------------------------------------------------------------


def _offsets(line: str, words: list[str]) -> list[tuple[int, int]]:
    """(start, end) character offsets of each word of ``split_words(line)``, found left to right."""
    spans, cursor = [], 0
    for word in words:
        start = line.find(word, cursor)
        spans.append((start, start + len(word)))
        cursor = start + len(word)
    return spans


def tag(run: ServedRun, text: str) -> dict:
    """Tags and entities of each non-blank line of ``text``, as ``rnnkit predict RUN --file`` gives them,
    with the character offsets of words and entities in the request's text."""
    from rnnkit.data.conll import Sentence, split_words
    from rnnkit.metrics import entities
    from rnnkit.tasks.tag import tag_sentences

    vocab = run.vocab
    lines, sentences, starts = [], [], []
    position = 0
    for line in text.split("\n"):
        words = split_words(line)
        if words:
            lines.append(line)
            starts.append(position)
            sentences.append(Sentence(words, ["O"] * len(words)))
        position += len(line) + 1
    if not sentences:
        raise RequestError("text has no words to tag", field="text")
    encoded = vocab.encode(sentences, run.data.max_word_length, with_tags=False)
    decoded, _ = tag_sentences(run.model, encoded, 64, "cpu")
    out = []
    for line, start, s, path in zip(lines, starts, sentences, decoded):
        tags = [vocab.tags[i] for i in path]
        spans = [(start + a, start + b) for a, b in _offsets(line, s.words)]
        found = [{"type": kind, "start": a, "end": b + 1, "text": " ".join(s.words[a : b + 1]),
                  "char_start": spans[a][0], "char_end": spans[b][1]} for kind, a, b in entities(tags)]  # fmt: skip
        out.append({"tokens": s.words, "tags": tags, "offsets": spans, "entities": found})
    return {"run": run.name, "sentences": out, "types": run.info["types"]}


# -- seq2seq --------------------------------------------------------------------------------------


def _attention_of(model, source: Tensor, lengths: Tensor, output: list[int], finished: bool) -> list[list[float]]:
    """The attention weights (steps, S) of each decoder step that wrote ``output`` (and ``end`` if
    finished): the output is fed back step by step and the attention module's weights are recorded."""
    # Seq2Seq.step computes the weights but returns only the logits; a forward hook on its attention
    # module reads them without changing the model (rnnkit.models.seq2seq has no hook that returns them).
    weights: list[Tensor] = []
    handle = model.attention.register_forward_hook(lambda module, args, result: weights.append(result[1]))
    try:
        memory, carry = model.start(source, lengths)
        previous = torch.tensor([model.go_id])
        for token in [*output, model.end_id] if finished else output:
            _, carry = model.step(previous, carry, memory)
            previous = torch.tensor([token])
    finally:
        handle.remove()
    return [w[0].tolist() for w in weights]


def seq2seq(run: ServedRun, text: str) -> dict:
    """The decoded output of ``text`` (as ``rnnkit predict RUN --input`` decodes it: greedy or the run's
    beam) and, with attention, the weights of every output step over the input tokens."""
    from rnnkit.data.batching import pad_sequences
    from rnnkit.tasks.seq2seq import decode_batch

    vocab, data, model = run.vocab, run.data, run.model
    try:
        ids = vocab.encode(text, "input")
    except DataError as error:
        raise RequestError(str(error), field="input") from None
    if not ids:
        raise RequestError("input is empty", field="input")
    if data.max_input_tokens and len(ids) > data.max_input_tokens:
        unit = "tokens" if vocab.separator else "characters"
        raise RequestError(f"input has {len(ids)} {unit}; this model was trained on inputs of at most "
                           f"{data.max_input_tokens}", field="input")  # fmt: skip
    with torch.no_grad():
        source, lengths = pad_sequences([ids], vocab.pad)
        decoded = decode_batch(model, source, lengths, data.max_target_tokens + 1, data.beam)
        out, done = decoded.tokens[0], decoded.finished[0]
        attention = None if model.attention is None else _attention_of(model, source, lengths, out, done)
    return {
        "run": run.name,
        "input": text,
        "output": vocab.decode(out),
        "input_tokens": [vocab.tokens[i] for i in ids],
        "output_tokens": [vocab.tokens[i] for i in out] + (["<end>"] if done else []),
        "finished": done,
        "log_prob": float(decoded.scores[0]),
        "attention": attention,
    }


# -- the next token -------------------------------------------------------------------------------


def filtered_probabilities(logits: Tensor, temperature: float, top_k: int | None, top_p: float | None) -> Tensor:
    """The distribution :func:`rnnkit.decoding.sample_logits` draws from: softmax(logits / T) with the
    tokens outside the top k and outside the smallest set reaching top_p set to zero. ``logits`` (V,)."""
    # decoding.sample_logits builds this distribution inline and returns only the draw; the same steps here.
    logits = logits / temperature
    if top_k is not None and top_k < logits.shape[-1]:
        kth = torch.topk(logits, top_k).values[-1]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p is not None and top_p < 1.0:
        sorted_logits, order = torch.sort(logits, descending=True)
        p = sorted_logits.softmax(-1)
        drop = p.cumsum(-1) - p >= top_p
        logits = torch.empty_like(logits).scatter_(-1, order, sorted_logits.masked_fill(drop, float("-inf")))
    return logits.softmax(-1)


def prime_ids(run: ServedRun, prime: str | None, field: str = "prime") -> list[int]:
    """The ids :func:`rnnkit.tasks.lm.encode_prime` makes of ``prime``; characters outside a character
    model's vocabulary are a RequestError that lists them all."""
    from rnnkit.data.tokenizers import CharTokenizer
    from rnnkit.tasks.lm import encode_prime

    tokenizer = run.vocab
    if prime and isinstance(tokenizer, CharTokenizer):
        problem = unknown_characters(prime, tokenizer.index)
        if problem:
            raise RequestError(f"{field}: {problem}", field=field)
    return encode_prime(tokenizer, prime)


def next_tokens(run: ServedRun, text: str | None, *, temperature: float, top_k: int | None, top_p: float | None,
                count: int) -> dict:  # fmt: skip
    """The ``count`` most probable next tokens after ``text`` under the sampling options."""
    ids = prime_ids(run, text, "prime")
    model, tokenizer = run.model, run.vocab
    with torch.no_grad():
        logits, _ = model(torch.tensor([ids]))  # (1, T, V)
        probs = filtered_probabilities(logits[0, -1].float(), temperature, top_k, top_p)
    top = torch.topk(probs, min(count, probs.shape[0]))
    candidates = [{"id": int(i), "token": tokenizer.decode([int(i)]), "probability": float(p)}
                  for p, i in zip(top.values, top.indices) if p > 0]  # fmt: skip
    return {"run": run.name, "candidates": candidates}


# -- the 4-corpus system --------------------------------------------------------------------------


def corpora_passages(runs: Runs, corpora: CorporaSet, per_corpus: int, seed: int) -> dict:
    """``per_corpus`` new passages from each corpus's generator, each classified on its first
    ``window`` tokens as ``rnnkit corpora`` does; the run's saved report beside them."""
    from rnnkit.decoding import generate
    from rnnkit.tasks.classify import predict_probabilities

    classifier = runs.get(corpora.classifier)
    tokenizer, labels = classifier.vocab
    passages = []
    for c, (corpus, name) in enumerate(corpora.generators.items()):
        generator = runs.get(name)
        lm = generator.model
        start = [generator.vocab.index.get("\n", 0)]
        ids = generate(lm.embedding, lm.rnn, lm.head, corpora.window * 10, prime=start,
                       temperature=corpora.temperature, num_samples=per_corpus, seed=seed + c)  # fmt: skip
        passages += [{"corpus": corpus, "text": generator.vocab.decode(row)} for row in ids.tolist()]
    sequences = []
    for p in passages:
        ids = encode_text(tokenizer, p["text"], line_ends=True)[: corpora.window]
        p["text"] = tokenizer.decode(ids.tolist()).strip()  # what the classifier read
        sequences.append(ids if len(ids) else np.array([getattr(tokenizer, "unk", 0)]))
    probs = predict_probabilities(classifier.model, sequences, 64, "cpu")
    for p, row in zip(passages, probs.tolist()):
        p["assigned"] = labels[max(range(len(labels)), key=row.__getitem__)]
        p["probabilities"] = dict(zip(labels, row))
    own = sum(p["assigned"] == p["corpus"] for p in passages) / len(passages)
    return {"corpora": corpora.name, "labels": labels, "passages": passages, "own_corpus_share": own,
            "report": corpora.report}  # fmt: skip
