"""Pretrained word vectors in the text formats GloVe and word2vec write, read into one numpy matrix.

A file holds one word per line followed by its D numbers, separated by spaces::

    the 0.418 0.24968 -0.41242 ...          (GloVe: no header)
    400000 100                               (word2vec text format, binary=False: a first line "COUNT DIM")
    the 0.418 0.24968 -0.41242 ...

D is read from the header, or from the first line (its fields less one). A word may itself contain spaces (a
few of GloVe 840B's do): the last D fields are the vector and the rest is the word. The first line of a word
seen twice wins. ``keep(word)`` chooses the words that are parsed at all, so that reading a vocabulary's
rows out of a file of millions costs a pass over its lines, not millions of float conversions.

Errors are :class:`DataError` lines naming the file and line: a line with the wrong number of values, a value
that is not a finite number, an empty or binary file (word2vec's binary format must be saved as text).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from rnnkit.data.text import iter_lines
from rnnkit.errors import DataError


@dataclass(frozen=True)
class WordVectors:
    """``words[i]`` has the vector ``vectors[i]``: (N, D) float32; ``dim`` is D even when N is 0."""

    words: tuple[str, ...]
    vectors: np.ndarray
    dim: int
    index: dict[str, int] = field(init=False, repr=False, compare=False)
    lower_index: dict[str, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.vectors.shape != (len(self.words), self.dim):
            raise DataError(f"word vectors: {len(self.words)} words but an array of shape {list(self.vectors.shape)}")
        index: dict[str, int] = {}
        lower: dict[str, int] = {}
        for i, w in enumerate(self.words):
            index.setdefault(w, i)
            lower.setdefault(w.lower(), i)
        object.__setattr__(self, "index", index)
        object.__setattr__(self, "lower_index", lower)

    def __len__(self) -> int:
        return len(self.words)

    def lookup(self, word: str) -> tuple[int | None, bool]:
        """(row of ``word``, False) for an exact match, else (row of a word equal to it lowercased, True),
        else (None, False)."""
        row = self.index.get(word)
        if row is not None:
            return row, False
        row = self.lower_index.get(word.lower())
        return (row, True) if row is not None else (None, False)


def read_word_vectors(path: str | os.PathLike, keep: Callable[[str], bool] | None = None) -> WordVectors:
    """Read a GloVe / word2vec text file; only the words for which ``keep(word)`` holds (all without it)."""
    where = os.fspath(path)
    words: list[str] = []
    rows: list[np.ndarray] = []
    dim = None
    try:
        for number, line in enumerate(iter_lines(path), 1):
            parts = line.split()
            if not parts:
                continue
            if dim is None:
                if len(parts) == 2 and all(p.isdigit() for p in parts):  # the word2vec header "COUNT DIM"
                    dim = int(parts[1])
                    if dim < 1:
                        raise DataError(f"{where}:{number}: the header gives vector size {dim}")
                    continue
                dim = len(parts) - 1
                if dim < 1:
                    raise DataError(f"{where}:{number}: expected a word and its vector, got {line[:60]!r}")
            if len(parts) < dim + 1:
                raise DataError(f"{where}:{number}: expected a word and {dim} numbers, got {len(parts)} fields")
            word = " ".join(parts[:-dim])
            if keep is not None and not keep(word):
                continue
            try:
                vector = np.array(parts[-dim:], dtype=np.float32)
            except ValueError:
                raise DataError(f"{where}:{number}: the vector of {word!r} has a value that is not a number") from None
            if not np.isfinite(vector).all():
                raise DataError(f"{where}:{number}: the vector of {word!r} has a value that is not finite")
            words.append(word)
            rows.append(vector)
    except DataError as error:
        message = str(error)
        if "binary" in message or "UTF-8" in message:
            message += "; --embeddings reads the text format (GloVe, or word2vec saved with binary=False)"
        raise DataError(message) from None
    if dim is None:
        raise DataError(f"{where} has no word vectors")
    vectors = np.stack(rows) if rows else np.zeros((0, dim), dtype=np.float32)
    return WordVectors(tuple(words), vectors, dim)

