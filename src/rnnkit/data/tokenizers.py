"""Tokenizers with their vocabularies: characters or words, to and from compact id arrays.

Both encode a text stream chunk by chunk into a numpy array whose dtype is the smallest that holds
the vocabulary (uint8, uint16 or int32), so a 100 MB corpus costs 100-200 MB of ids, not gigabytes of
Python integers. ``to_json()`` is what ``vocab.json`` stores; :func:`tokenizer_from_json` reads it back.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence

import numpy as np

from rnnkit.errors import DataError

UNK, EOS, PAD = "<unk>", "<eos>", "<pad>"
WORD_PATTERNS = {"whitespace": None, "punct": re.compile(r"\w+|[^\w\s]")}


def id_dtype(vocab_size: int) -> np.dtype:
    """The smallest integer dtype that holds ids below ``vocab_size``."""
    if vocab_size <= 1 << 8:
        return np.dtype(np.uint8)
    if vocab_size <= 1 << 16:
        return np.dtype(np.uint16)
    return np.dtype(np.int32)


class CharTokenizer:
    """One token per Unicode character (code point); the vocabulary is the sorted set of characters seen."""

    level = "char"

    def __init__(self, chars: Sequence[str]) -> None:
        if len(set(chars)) != len(chars) or any(len(c) != 1 for c in chars):
            raise DataError("a character vocabulary must list distinct single characters")
        self.tokens = list(chars)
        self.index = {c: i for i, c in enumerate(self.tokens)}
        codes = np.array([ord(c) for c in self.tokens], dtype=np.int64)
        self._order = np.argsort(codes)
        self._sorted_codes = codes[self._order]

    @classmethod
    def build(cls, chunks: Iterable[str]) -> CharTokenizer:
        seen: set[str] = set()
        for chunk in chunks:
            seen.update(chunk)
        return cls(sorted(seen))

    def __len__(self) -> int:
        return len(self.tokens)

    def encode(self, text: str, where: str = "text") -> np.ndarray:
        """Ids of the characters of ``text``; an unknown character raises DataError naming it."""
        codes = np.frombuffer(text.encode("utf-32-le"), dtype="<u4").astype(np.int64)
        pos = np.searchsorted(self._sorted_codes, codes).clip(max=len(self.tokens) - 1)
        unknown = self._sorted_codes[pos] != codes
        if unknown.any():
            i = int(np.argmax(unknown))
            c = text[i]
            raise DataError(f"{where}: character {c!r} (U+{ord(c):04X}) is not in the model's vocabulary")
        return self._order[pos].astype(id_dtype(len(self)))

    def encode_chunks(self, chunks: Iterable[str], where: str = "text") -> np.ndarray:
        parts = [self.encode(chunk, where) for chunk in chunks]
        return np.concatenate(parts) if parts else np.zeros(0, id_dtype(len(self)))

    def decode(self, ids: Iterable[int]) -> str:
        return "".join(self.tokens[i] for i in ids)

    def to_json(self) -> dict:
        return {"level": self.level, "tokens": self.tokens}


class WordTokenizer:
    """Words split on whitespace (or also at punctuation), a capped vocabulary with ``<unk>``, and
    ``<eos>`` at every line end (the Penn Treebank convention of Mikolov and Zaremba et al.)."""

    level = "word"

    def __init__(self, tokens: Sequence[str], split: str = "whitespace", lowercase: bool = False) -> None:
        if split not in WORD_PATTERNS:
            raise DataError(f"word split must be one of {sorted(WORD_PATTERNS)}, got {split!r}")
        if len(set(tokens)) != len(tokens) or UNK not in tokens or EOS not in tokens:
            raise DataError(f"a word vocabulary must list distinct words including {UNK} and {EOS}")
        self.tokens = list(tokens)
        self.index = {w: i for i, w in enumerate(self.tokens)}
        self.split, self.lowercase = split, lowercase
        self.unk, self.eos = self.index[UNK], self.index[EOS]

    def words(self, line: str) -> list[str]:
        if self.lowercase:
            line = line.lower()
        pattern = WORD_PATTERNS[self.split]
        return line.split() if pattern is None else pattern.findall(line)

    @classmethod
    def build(
        cls, lines: Iterable[str], max_size: int | None = 10000, split: str = "whitespace", lowercase: bool = False
    ) -> WordTokenizer:
        """The ``max_size`` most frequent words (ties: first seen first) plus ``<unk>`` and ``<eos>``."""
        probe = cls([UNK, EOS], split, lowercase)
        counts: Counter[str] = Counter()
        for line in lines:
            counts.update(probe.words(line))
        counts.pop(UNK, None)
        counts.pop(EOS, None)
        keep = max(0, max_size - 2) if max_size is not None else len(counts)
        return cls([EOS, UNK] + [w for w, _ in counts.most_common(keep)], split, lowercase)

    def __len__(self) -> int:
        return len(self.tokens)

    def encode_line(self, line: str, eos: bool = True) -> list[int]:
        get, unk = self.index.get, self.unk
        ids = [get(w, unk) for w in self.words(line)]
        if eos:
            ids.append(self.eos)
        return ids

    def encode(self, text: str, where: str = "text") -> np.ndarray:
        """Ids of ``text``; each complete line ends with ``<eos>``; unknown words become ``<unk>``."""
        lines = text.split("\n")
        ids = [i for line in lines[:-1] for i in self.encode_line(line)]
        ids += self.encode_line(lines[-1], eos=False)
        return np.array(ids, dtype=id_dtype(len(self)))

    def encode_lines(self, lines: Iterable[str], block: int = 10000) -> np.ndarray:
        parts, ids = [], []
        for n, line in enumerate(lines, 1):
            ids.extend(self.encode_line(line))
            if n % block == 0:
                parts.append(np.array(ids, dtype=id_dtype(len(self))))
                ids = []
        parts.append(np.array(ids, dtype=id_dtype(len(self))))
        return np.concatenate(parts)

    def decode(self, ids: Iterable[int]) -> str:
        out = []
        for i in ids:
            out.append("\n" if i == self.eos else self.tokens[i] + " ")
        return "".join(out).replace(" \n", "\n")

    def to_json(self) -> dict:
        return {"level": self.level, "tokens": self.tokens, "split": self.split, "lowercase": self.lowercase}


Tokenizer = CharTokenizer | WordTokenizer


def tokenizer_from_json(data) -> Tokenizer:
    """Rebuild a tokenizer from ``to_json()`` output (``vocab.json``)."""
    if not isinstance(data, dict) or data.get("level") not in ("char", "word"):
        raise DataError('vocab.json must be {"level": "char" | "word", "tokens": [...]}')
    tokens = data.get("tokens")
    if not isinstance(tokens, list) or not all(isinstance(t, str) for t in tokens):
        raise DataError("vocab.json: tokens must be a list of strings")
    if data["level"] == "char":
        return CharTokenizer(tokens)
    return WordTokenizer(tokens, split=data.get("split", "whitespace"), lowercase=bool(data.get("lowercase", False)))
