"""Language-model data: a corpus encoded once to a compact id array, cut into parallel streams.

Truncated BPTT over B parallel streams (Zaremba et al. 2014; char-rnn): the N tokens are cut into B
rows of N // B consecutive tokens; window k holds columns [k·T, (k+1)·T] of every row, so row b of
window k+1 continues row b of window k and the recurrent state can be carried from one to the next.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from rnnkit.data.text import iter_lines, iter_text
from rnnkit.data.tokenizers import CharTokenizer, Tokenizer, WordTokenizer
from rnnkit.errors import DataError


@dataclass(frozen=True)
class CorpusConfig:
    """Where a language model's text comes from and how it becomes tokens: the options of :func:`load_corpus`,
    which ``rnnkit train lm`` (:class:`rnnkit.tasks.lm.LMDataConfig`) and ``rnnkit baseline`` share."""

    data: str | None = None  # a file or a folder of .txt files (for an lm run, None is the built-in corpus)
    valid: str | None = None
    valid_fraction: float = 0.1
    level: str = "char"
    vocab_size: int = 10000
    word_split: str = "whitespace"
    lowercase: bool = False


@dataclass
class Corpus:
    """A tokenizer with the training and validation ids it encoded."""

    tokenizer: Tokenizer
    train: np.ndarray
    valid: np.ndarray


def encode_file(path: str | os.PathLike, tokenizer: Tokenizer) -> np.ndarray:
    """Encode a file or folder with ``tokenizer``, streaming it (unknown characters raise DataError)."""
    if isinstance(tokenizer, CharTokenizer):
        return tokenizer.encode_chunks(iter_text(path), where=str(path))
    return tokenizer.encode_lines(iter_lines(path))


def load_corpus(
    path: str | os.PathLike,
    level: str = "char",
    *,
    valid_path: str | os.PathLike | None = None,
    valid_fraction: float = 0.1,
    vocab_size: int | None = 10000,
    word_split: str = "whitespace",
    lowercase: bool = False,
) -> Corpus:
    """Build a tokenizer from the training text and encode train and validation ids.

    Without ``valid_path`` the last ``valid_fraction`` of the tokens is held out. At character level
    the vocabulary covers the validation text too (so it can be scored); at word level it is built
    from the training text alone, capped at ``vocab_size`` words with ``<unk>`` for the rest.
    """
    if level not in ("char", "word"):
        raise DataError(f"level must be 'char' or 'word', got {level!r}")
    if valid_path is None and not 0.0 < valid_fraction < 1.0:
        raise DataError(f"valid fraction must lie strictly between 0 and 1, got {valid_fraction}")
    if level == "char":

        def chunks():
            yield from iter_text(path)
            if valid_path is not None:
                yield from iter_text(valid_path)

        tokenizer: Tokenizer = CharTokenizer.build(chunks())
    else:
        tokenizer = WordTokenizer.build(iter_lines(path), max_size=vocab_size, split=word_split, lowercase=lowercase)
    ids = encode_file(path, tokenizer)
    if valid_path is not None:
        return Corpus(tokenizer, ids, encode_file(valid_path, tokenizer))
    cut = int(len(ids) * (1.0 - valid_fraction))
    return Corpus(tokenizer, ids[:cut], ids[cut:])


class TokenStreams:
    """``ids`` (N,) as ``batch_size`` parallel streams, served in windows of ``seq_len`` steps.

    ``window(k)`` gives inputs and next-token targets, each (B, T) int64 (T = seq_len, or fewer in the
    last window). The ids stay in their compact dtype until a window is taken.
    """

    def __init__(self, ids: np.ndarray, batch_size: int, seq_len: int, name: str = "corpus") -> None:
        if batch_size < 1 or seq_len < 1:
            raise DataError(f"batch size and sequence length must be >= 1, got {batch_size} and {seq_len}")
        per_row = len(ids) // batch_size
        if per_row < seq_len + 1:
            need = batch_size * (seq_len + 1)
            raise DataError(
                f"{name} has {len(ids)} tokens, fewer than one window needs ({batch_size} streams x "
                f"{seq_len + 1} = {need}); use a longer text or smaller --batch-size / --seq-len"
            )
        self.rows = ids[: per_row * batch_size].reshape(batch_size, per_row)
        self.batch_size, self.seq_len = batch_size, seq_len
        self.num_windows = math.ceil((per_row - 1) / seq_len)

    def __len__(self) -> int:
        return self.num_windows

    @property
    def num_targets(self) -> int:
        return self.batch_size * (self.rows.shape[1] - 1)

    def window(self, k: int) -> tuple[Tensor, Tensor]:
        start = k * self.seq_len
        stop = min(start + self.seq_len, self.rows.shape[1] - 1)
        block = torch.from_numpy(self.rows[:, start : stop + 1].astype(np.int64))  # (B, T + 1)
        return block[:, :-1], block[:, 1:]
