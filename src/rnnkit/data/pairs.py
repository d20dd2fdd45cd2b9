"""Sequence-to-sequence data as ids: a task's vocabulary, the fixed evaluation sets, batches, and files of
``input<TAB>target`` lines.

What :mod:`rnnkit.tasks.seq2seq` trains and scores on, apart from the model: the examples come from the
generators of :mod:`rnnkit.data.algorithmic` or from a file. In files and ``--input`` text, ``\\n``, ``\\t``
and ``\\\\`` stand for a newline, a tab and a backslash (:func:`escape`, :func:`unescape`).
"""

from __future__ import annotations

import random
import re

from torch import Tensor

from rnnkit.data.algorithmic import Example, Generator, derive_seed, draw
from rnnkit.data.batching import pad_sequences
from rnnkit.data.text import iter_lines
from rnnkit.errors import DataError

PAD, GO, END = "<pad>", "<go>", "<end>"


# -- vocabulary -----------------------------------------------------------------------------------


class Seq2SeqVocab:
    """Ids of the tokens of a task: ``<pad>`` 0, ``<go>`` 1, ``<end>`` 2, then the task's symbols.

    ``separator`` "" reads text character by character; " " reads whitespace-separated tokens (sort).
    """

    def __init__(self, symbols: list[str], separator: str) -> None:
        if separator not in ("", " "):
            raise DataError(f"vocab.json: separator must be '' or ' ', got {separator!r}")
        tokens = [PAD, GO, END, *symbols]
        if len(set(tokens)) != len(tokens) or not all(isinstance(t, str) and t for t in symbols):
            raise DataError("vocab.json: tokens must be distinct non-empty strings")
        self.tokens, self.separator = tokens, separator
        self.index = {t: i for i, t in enumerate(tokens)}
        self.pad, self.go, self.end = 0, 1, 2

    def __len__(self) -> int:
        return len(self.tokens)

    def encode(self, text: str, where: str = "input") -> list[int]:
        """Ids of ``text``; an unknown token raises DataError naming it and ``where``."""
        parts = text.split() if self.separator else list(text)
        ids = []
        for part in parts:
            i = self.index.get(part)
            if i is None or i < 3:
                kind = "token" if self.separator else "character"
                raise DataError(f"{where}: {kind} {part!r} is not in the model's vocabulary")
            ids.append(i)
        return ids

    def decode(self, ids) -> str:
        return self.separator.join(self.tokens[i] for i in ids if i >= 3)

    def to_json(self) -> dict:
        return {"level": "seq2seq", "separator": self.separator, "tokens": self.tokens[3:]}

    @classmethod
    def from_json(cls, data) -> Seq2SeqVocab:
        if not isinstance(data, dict) or data.get("level") != "seq2seq" or not isinstance(data.get("tokens"), list):
            raise DataError('vocab.json must be {"level": "seq2seq", "separator": ..., "tokens": [...]}')
        return cls(data["tokens"], data.get("separator", ""))

    @classmethod
    def for_generator(cls, generator: Generator) -> Seq2SeqVocab:
        return cls(generator.symbols(), generator.separator)


def escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n").replace("\t", "\\t")


def unescape(text: str) -> str:
    """``\\n``, ``\\t``, ``\\\\`` to a newline, a tab, a backslash; other characters unchanged."""
    return re.sub(r"\\([nt\\])", lambda m: {"n": "\n", "t": "\t", "\\": "\\"}[m.group(1)], text)


# -- examples and batches -------------------------------------------------------------------------


def fixed_set(generator: Generator, seed: int, split: str, n: int, difficulty=None) -> list[Example]:
    """The fixed ``split`` set of ``seed``: up to ``n`` distinct inputs at ``difficulty`` (default: the target)."""
    fixed = difficulty or generator.target_difficulty
    rng = random.Random(derive_seed(seed, split, *fixed))
    return draw(generator, rng, split, lambda _: fixed, n, unique=True)


def encode_examples(vocab: Seq2SeqVocab, examples: list[Example], where: str = "input"):
    """Pairs of id lists (source, target) for ``examples``; unknown tokens raise DataError."""
    return [(vocab.encode(e.input, where), vocab.encode(e.target, where)) for e in examples]


def make_batch(vocab: Seq2SeqVocab, pairs, device) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Padded ``source`` (B, S), ``source_lengths`` (B,), ``target_input`` = go y (B, T) and
    ``target_output`` = y end (B, T), padded with ``<pad>``."""
    source, lengths = pad_sequences([s for s, _ in pairs], vocab.pad)
    target_in, _ = pad_sequences([[vocab.go, *t] for _, t in pairs], vocab.pad)
    target_out, _ = pad_sequences([[*t, vocab.end] for _, t in pairs], vocab.pad)
    return source.to(device), lengths.to(device), target_in.to(device), target_out.to(device)


def read_pairs(path, vocab: Seq2SeqVocab) -> list[tuple[list[int], list[int]]]:
    """Lines ``input<TAB>target`` of ``path`` as id pairs; blank lines are skipped."""
    pairs = []
    for n, line in enumerate(iter_lines(path), 1):
        if not line.strip():
            continue
        fields = line.split("\t")
        if len(fields) != 2:
            raise DataError(f"{path}:{n}: expected input<TAB>target, got {len(fields)} tab-separated fields")
        source, target = (vocab.encode(unescape(f), f"{path}:{n}") for f in fields)
        if not source:
            raise DataError(f"{path}:{n}: the input is empty")
        pairs.append((source, target))
    if not pairs:
        raise DataError(f"{path} has no input<TAB>target lines")
    return pairs
