"""Sampling text, Viterbi tags and greedy translations from rnnkit's ONNX graphs, with numpy + onnxruntime.

The rules are rnnkit's, rewritten in numpy (this module must not import torch, nor anything under
``rnnkit``, whose ``__init__`` imports torch):

- :func:`sample_logits` is ``rnnkit.decoding.sample_logits``: ``softmax(logits / T)`` restricted to the
  top-k tokens and to the smallest set whose probability reaches top_p, then the exponential race
  ``argmax(p / q)`` with q ~ Exp(1) per token, which is a draw from p. Temperature 0 is argmax.
- The Exp(1) draws come from :func:`exponential_draws`: numpy's ``Generator(PCG64(seed))``,
  ``standard_exponential(shape, dtype=float32)``, one (N, V) array per step, prime first. PyTorch draws
  its own from a ``torch.Generator`` (mt19937), so for the same seed the two streams differ, and random
  samples differ from ``rnnkit sample``'s; greedy ones (temperature 0) are the same. Fed the same draws
  (``generate(..., draws=...)``), the sampler picks the same tokens as ``rnnkit.generate``, up to logits
  that onnxruntime and PyTorch round differently (1e-6 or less), which can flip a near-tie.
- :class:`Vocabulary` encodes a prime and decodes tokens as ``rnnkit.data.tokenizers`` do for the
  ``vocab.json`` of a language-model run (characters, or words with ``<unk>`` and ``<eos>``).
- :func:`viterbi` is ``rnnkit.crf.CRF.viterbi`` for the emissions of an exported tagger, with the CRF
  scores the export stores in the graph's metadata (``rnnkit.crf``).
- :func:`greedy_decode` is ``rnnkit.decoding.greedy_decode`` over an exported encoder and decoder step.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import numpy as np

Draws = Callable[[tuple[int, ...]], np.ndarray]
WORD_PATTERNS = {"whitespace": None, "punct": re.compile(r"\w+|[^\w\s]")}  # rnnkit.data.tokenizers'


# -- the vocabulary of vocab.json ---------------------------------------------------------------------


class Vocabulary:
    """A language-model run's ``vocab.json``: ``{"level": "char" | "word", "tokens": [...], ...}``."""

    def __init__(self, data: dict) -> None:
        if not isinstance(data, dict) or data.get("level") not in ("char", "word"):
            raise ValueError('vocab.json must be {"level": "char" | "word", "tokens": [...]} (an lm run\'s)')
        tokens = data.get("tokens")
        if not isinstance(tokens, list) or not all(isinstance(t, str) for t in tokens):
            raise ValueError("vocab.json: tokens must be a list of strings")
        self.level, self.tokens = data["level"], tokens
        self.index = {t: i for i, t in enumerate(tokens)}
        self.split = data.get("split", "whitespace")
        self.lowercase = bool(data.get("lowercase", False))
        if self.level == "word":
            if self.split not in WORD_PATTERNS or "<unk>" not in self.index or "<eos>" not in self.index:
                raise ValueError("vocab.json: a word vocabulary needs <unk>, <eos> and split whitespace or punct")
            self.unk, self.eos = self.index["<unk>"], self.index["<eos>"]

    @classmethod
    def load(cls, path: str | os.PathLike) -> Vocabulary:
        try:
            return cls(json.loads(Path(path).read_text(encoding="utf-8")))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
            raise ValueError(f"cannot read the vocabulary {os.fspath(path)!r}: {error}") from None

    def __len__(self) -> int:
        return len(self.tokens)

    def words(self, line: str) -> list[str]:
        if self.lowercase:
            line = line.lower()
        pattern = WORD_PATTERNS[self.split]
        return line.split() if pattern is None else pattern.findall(line)

    def encode_prime(self, prime: str | None) -> list[int]:
        """The prime's ids as ``rnnkit sample`` makes them: an unknown character is an error, an unknown word
        is ``<unk>``; without a prime, a line end starts (``<eos>``, or the ``\\n`` character or id 0)."""
        if not prime:
            return [self.eos] if self.level == "word" else [self.index.get("\n", 0)]
        if self.level == "word":
            return [self.index.get(w, self.unk) for w in self.words(prime)] or [self.eos]
        for c in prime:
            if c not in self.index:
                raise ValueError(f"--prime: character {c!r} (U+{ord(c):04X}) is not in the model's vocabulary")
        return [self.index[c] for c in prime]

    def decode(self, ids: Sequence[int]) -> str:
        if self.level == "char":
            return "".join(self.tokens[i] for i in ids)
        text = "".join("\n" if i == self.eos else self.tokens[i] + " " for i in ids)
        return text.replace(" \n", "\n")


# -- sessions -------------------------------------------------------------------------------------------


def session(path: str | os.PathLike, threads: int | None = None):
    """An onnxruntime CPU session of ``path`` (``threads``: intra-op threads; None: onnxruntime's default)."""
    try:
        import onnxruntime
    except ImportError:
        raise ValueError("running exported models needs onnxruntime: pip install onnxruntime") from None
    if not Path(path).is_file():
        raise ValueError(f"{os.fspath(path)!r} does not exist")
    options = onnxruntime.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
    try:
        return onnxruntime.InferenceSession(os.fspath(path), options, providers=["CPUExecutionProvider"])
    except Exception as error:  # onnxruntime's own exception types (a truncated or foreign file)
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ValueError(f"{os.fspath(path)!r} is not a model onnxruntime can load: {reason}") from None


def metadata(sess) -> dict:
    """The ``rnnkit.*`` metadata of a session's model, JSON values decoded."""
    out = {}
    for key, value in sess.get_modelmeta().custom_metadata_map.items():
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
    return out


def require_task(path: str | os.PathLike, meta: dict, task: str, what: str) -> None:
    """ValueError unless the graph at ``path`` was exported from a ``task`` run (its ``rnnkit.task``): one line
    that says what it is instead (a forecaster, say, which this package does not run) and what was wanted."""
    found = meta.get("rnnkit.task")
    if found != task:
        kind = f"an exported {found} model" if isinstance(found, str) else "not a graph of rnnkit export"
        raise ValueError(f"{os.fspath(path)!r} is {kind}, not {what}")


def step_session(path: str | os.PathLike, meta: dict, threads: int | None = None):
    """The step graph that the main graph at ``path`` names (``rnnkit.step_graph``, in the same folder)."""
    name = meta.get("rnnkit.step_graph")
    if not name:
        raise ValueError(f"{os.fspath(path)!r} names no step graph: export the run again with rnnkit export")
    return session(Path(path).with_name(name), threads)


class LanguageModel:
    """An exported language model: the sequence graph primes, the step graph generates.

    ``prime(ids (N, T))`` runs the prime from zero states and returns the logits after its last token
    (N, V); ``step(tokens (N,))`` feeds one token per row and returns the next logits (N, V).
    """

    def __init__(self, path: str | os.PathLike, threads: int | None = None) -> None:
        self.sequence = session(path, threads)
        self.meta = metadata(self.sequence)
        require_task(path, self.meta, "lm", "a language model (rnnkit export of an lm run)")
        self.stepper = step_session(path, self.meta, threads)
        self.vocab_size = int(self.meta["rnnkit.vocab_size"])
        self.state_inputs = [i for i in self.meta["rnnkit.inputs"] if i != "tokens"]
        self.state_shapes = [tuple(s) for s in self.meta["rnnkit.state_shapes"]]
        self.state: list[np.ndarray] = []

    def _run(self, sess, tokens: np.ndarray) -> np.ndarray:
        feeds = {"tokens": tokens.astype(np.int64), **dict(zip(self.state_inputs, self.state))}
        logits, *self.state = sess.run(None, feeds)
        return logits

    def prime(self, ids: np.ndarray) -> np.ndarray:
        N = ids.shape[0]
        self.state = [np.zeros((s[0], N, s[1]), dtype=np.float32) for s in self.state_shapes]
        return self._run(self.sequence, ids)[:, -1]

    def step(self, tokens: np.ndarray) -> np.ndarray:
        return self._run(self.stepper, tokens)


# -- sampling -------------------------------------------------------------------------------------------


def exponential_draws(seed: int | None) -> Draws:
    """The sampler's Exp(1) draws: numpy ``Generator(PCG64(seed))`` (fresh entropy for None), float32."""
    rng = np.random.Generator(np.random.PCG64(seed))
    return lambda shape: rng.standard_exponential(shape, dtype=np.float32)


def softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def check_sampling(temperature: float, top_k: int | None, top_p: float | None) -> None:
    """ValueError naming a bad sampling option (``rnnkit.decoding`` calls this one too: it imports no torch)."""
    if isinstance(temperature, bool) or not isinstance(temperature, (int, float)) or temperature < 0:
        raise ValueError(f"temperature must be a number >= 0 (0 = greedy), got {temperature!r}")
    if top_k is not None and (isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1):
        raise ValueError(f"top_k must be an integer >= 1, got {top_k!r}")
    if top_p is not None and (isinstance(top_p, bool) or not isinstance(top_p, (int, float)) or not 0 < top_p <= 1):
        raise ValueError(f"top_p must be in (0, 1], got {top_p!r}")


def sample_logits(logits: np.ndarray, temperature: float = 1.0, top_k: int | None = None, top_p: float | None = None,
                  race: np.ndarray | None = None) -> np.ndarray:  # fmt: skip
    """One token per row of ``logits`` (N, V): ``argmax(p / race)`` with ``race`` (N, V) Exp(1) draws and p
    the tempered softmax cut to the top-k and top-p tokens; argmax of the logits at temperature 0."""
    if temperature == 0:
        return logits.argmax(axis=-1)
    logits = logits.astype(np.float32)
    if temperature != 1.0:
        logits = logits / np.float32(temperature)
    V = logits.shape[-1]
    if top_k is not None and top_k < V:
        kth = np.partition(logits, V - top_k, axis=-1)[..., V - top_k : V - top_k + 1]  # the k-th largest
        logits = np.where(logits < kth, -np.inf, logits)
    if top_p is not None and top_p < 1.0:
        order = np.argsort(-logits, axis=-1, kind="stable")
        ranked = np.take_along_axis(logits, order, axis=-1)
        p = softmax(ranked)
        drop = np.cumsum(p, axis=-1) - p >= top_p  # keep tokens until the mass reaches top_p
        ranked = np.where(drop, -np.inf, ranked)
        logits = np.empty_like(logits)
        np.put_along_axis(logits, order, ranked, axis=-1)
    probs = softmax(logits).astype(np.float32)
    with np.errstate(divide="ignore", invalid="ignore"):  # a float32 Exp(1) draw can be 0: that token wins, as in torch
        return (probs / race).argmax(axis=-1)


def generate(model: LanguageModel, n_tokens: int, *, prime: Sequence[int] | None = None, temperature: float = 1.0,
             top_k: int | None = None, top_p: float | None = None, num_samples: int = 1, seed: int | None = None,
             draws: Draws | None = None) -> Iterator[np.ndarray]:  # fmt: skip
    """Yield ``n_tokens`` sampled tokens after ``prime``, one (num_samples,) array per step, as
    ``rnnkit.decoding.iter_generate`` does. ``draws(shape)`` gives the Exp(1) draws of each step
    (default :func:`exponential_draws` of ``seed``); greedy sampling draws none."""
    if isinstance(n_tokens, bool) or not isinstance(n_tokens, int) or n_tokens < 1:
        raise ValueError(f"n_tokens must be an integer >= 1, got {n_tokens!r}")
    if isinstance(num_samples, bool) or not isinstance(num_samples, int) or num_samples < 1:
        raise ValueError(f"num_samples must be an integer >= 1, got {num_samples!r}")
    check_sampling(temperature, top_k, top_p)
    ids = np.asarray([0] if prime is None or len(prime) == 0 else list(prime), dtype=np.int64)
    bad = (ids < 0) | (ids >= model.vocab_size)
    if bad.any():
        raise ValueError(f"prime token id {int(ids[bad][0])} is outside the vocabulary of {model.vocab_size} tokens")
    draws = draws or exponential_draws(seed)
    logits = model.prime(np.broadcast_to(ids, (num_samples, len(ids))))
    for i in range(n_tokens):
        race = None if temperature == 0 else draws(logits.shape)
        token = sample_logits(logits, temperature, top_k, top_p, race)
        yield token
        if i + 1 < n_tokens:
            logits = model.step(token)


def sample_text(model: LanguageModel, vocab: Vocabulary, *, length: int, prime: str | None = None,
                temperature: float = 1.0, top_k: int | None = None, top_p: float | None = None, num_samples: int = 1,
                seed: int | None = None) -> Iterator[str]:  # fmt: skip
    """Decoded text as ``rnnkit sample`` streams it: piece by piece for one sample, else whole samples."""
    if len(vocab) != model.vocab_size:
        raise ValueError(f"the vocabulary has {len(vocab)} tokens but the model {model.vocab_size}: not its vocab.json")
    steps = generate(model, length, prime=vocab.encode_prime(prime), temperature=temperature, top_k=top_k, top_p=top_p,
                     num_samples=num_samples, seed=seed)  # fmt: skip
    if num_samples == 1:
        for token in steps:
            yield vocab.decode([int(token[0])])
        return
    for row in np.stack(list(steps), axis=1).tolist():
        yield vocab.decode(row)


# -- taggers and encoder-decoders -----------------------------------------------------------------------


def viterbi(emissions: np.ndarray, lengths: Sequence[int], start: np.ndarray, transitions: np.ndarray,
            end: np.ndarray) -> list[list[int]]:  # fmt: skip
    r"""The best tag sequence of each row of ``emissions`` (B, T, K) within its length:
    :math:`\arg\max_y \pi_{y_1} + \sum_t P_{t, y_t} + \sum_{t>1} A_{y_{t-1}, y_t} + \omega_{y_n}`."""
    paths = []
    for row, n in zip(emissions, lengths):
        score = start + row[0]  # (K,)
        pointers = []
        for t in range(1, int(n)):
            candidates = score[:, None] + transitions  # (K, K): from i to j
            pointers.append(candidates.argmax(axis=0))
            score = candidates.max(axis=0) + row[t]
        last = int((score + end).argmax())
        path = [last]
        for previous in reversed(pointers):
            last = int(previous[last])
            path.append(last)
        paths.append(path[::-1])
    return paths


def crf_scores(meta: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """(start, transitions, end) of an exported tagger's CRF, from its metadata; None without a CRF."""
    crf = meta.get("rnnkit.crf")
    if crf is None:
        return None
    return tuple(np.asarray(crf[k], dtype=np.float32) for k in ("start", "transitions", "end"))


def greedy_decode(path: str | os.PathLike, source: np.ndarray, source_lengths: np.ndarray, *, max_length: int,
                  threads: int | None = None) -> tuple[list[list[int]], list[bool]]:  # fmt: skip
    """Greedy decoding of an exported encoder-decoder (``path``: the encoder; its step graph beside it): each
    row takes its most probable next token until ``end`` or ``max_length`` steps. Returns the tokens of
    each row (without ``end``) and whether it ended."""
    encoder = session(path, threads)
    meta = metadata(encoder)
    require_task(path, meta, "seq2seq", "an encoder-decoder (rnnkit export of a seq2seq run)")
    decoder = step_session(path, meta, threads)
    outputs = dict(zip(meta["rnnkit.outputs"], encoder.run(None, {
        "source": source.astype(np.int64), "source_lengths": source_lengths.astype(np.int64)})))  # fmt: skip
    step_inputs = metadata(decoder)["rnnkit.inputs"]
    carry = [name for name in step_inputs if name.endswith("0")]
    memory = {name: outputs[name] for name in step_inputs if name != "tokens" and name not in carry}
    state = {name: outputs[name[:-1]] for name in carry}
    B, end = source.shape[0], int(meta["rnnkit.end_id"])
    tokens = np.full(B, int(meta["rnnkit.go_id"]), dtype=np.int64)
    done = np.zeros(B, dtype=bool)
    steps = []
    for _ in range(max_length):
        logits, *new = decoder.run(None, {"tokens": tokens, **state, **memory})
        state = dict(zip(carry, new))
        tokens = logits.argmax(axis=-1)
        steps.append(tokens)
        done |= tokens == end
        if done.all():
            break
    rows = np.stack(steps, axis=1).tolist()
    cut = [row.index(end) if end in row else len(row) for row in rows]
    return [row[:n] for row, n in zip(rows, cut)], [n < len(row) for row, n in zip(rows, cut)]


def write_samples(pieces: Iterator[str], prime: str, *, num_samples: int, length: int, task: str, as_json: bool,
                  out) -> None:  # fmt: skip
    """Write what ``rnnkit sample`` (and ``python -m rnnkit_onnx``) print for the text ``pieces`` of
    :func:`sample_text`: with ``as_json`` one line ``{"task", "samples", "metrics": {"tokens", "tokens_per_s"}}``;
    else one sample streamed piece by piece, or several each under a ``--- sample i ---`` line. A bad option
    raises its ValueError before anything is written."""
    if as_json:
        started = time.perf_counter()
        texts = list(pieces)
        seconds = time.perf_counter() - started
        samples = ["".join(texts)] if num_samples == 1 else texts
        tokens = length * num_samples
        out.write(json.dumps({"task": task, "samples": [prime + s for s in samples],
                              "metrics": {"tokens": tokens, "tokens_per_s": tokens / seconds}}) + "\n")  # fmt: skip
        return
    first = next(pieces)  # errors in the options surface before anything is written
    if num_samples == 1:
        out.write(prime + first)
        for piece in pieces:
            out.write(piece)
            out.flush()
        out.write("\n")
    else:
        for i, text in enumerate([first, *pieces]):
            out.write(f"--- sample {i + 1} ---\n{prime}{text}\n")
