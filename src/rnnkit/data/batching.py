"""Minibatches over a dataset of examples: shuffled per epoch from a seed, resumable, padded.

The order of epoch e is a permutation drawn from a generator seeded with (seed, e), so a resumed run
sees the same batches as an uninterrupted one: it skips the ``start`` batches already done.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor


def epoch_order(num_examples: int, seed: int, epoch: int, shuffle: bool = True) -> Tensor:
    """The example order of one epoch: a permutation that depends only on (seed, epoch)."""
    if not shuffle:
        return torch.arange(num_examples)
    generator = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    return torch.randperm(num_examples, generator=generator)


class EpochBatches:
    """The batches of example indices of one epoch, from batch ``start`` on; ``len`` is how many remain."""

    def __init__(self, num_examples: int, batch_size: int, seed: int, epoch: int, start: int = 0,
                 shuffle: bool = True) -> None:  # fmt: skip
        if batch_size < 1:
            raise ValueError(f"batch size must be >= 1, got {batch_size}")
        self.order = epoch_order(num_examples, seed, epoch, shuffle)
        self.batch_size, self.start = batch_size, start
        self.total = (num_examples + batch_size - 1) // batch_size

    def __len__(self) -> int:
        return max(0, self.total - self.start)

    def __iter__(self):
        for k in range(self.start, self.total):
            yield self.order[k * self.batch_size : (k + 1) * self.batch_size]


def pad_sequences(sequences: Sequence[Sequence[int]], pad: int = 0) -> tuple[Tensor, Tensor]:
    """Right-pad id sequences into (B, T_max) int64 with their lengths (B,)."""
    lengths = torch.tensor([len(s) for s in sequences], dtype=torch.long)
    batch = torch.full((len(sequences), int(lengths.max()) if len(sequences) else 0), pad, dtype=torch.long)
    for i, s in enumerate(sequences):
        batch[i, : len(s)] = torch.as_tensor(list(s), dtype=torch.long)
    return batch, lengths
