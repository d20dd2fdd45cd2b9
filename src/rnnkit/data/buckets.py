"""Batches of examples of similar length, shuffled per epoch from a seed, resumable.

Padding a batch to its longest example wastes the steps of the shorter ones; on a CPU that waste is
time. Within each pool of ``pool`` batches' worth of shuffled examples, examples are sorted by length
and cut into batches, and the batches are shuffled again, so each batch holds similar lengths while
the epoch stays random. The order depends only on (seed, epoch), so a resumed run skips the ``start``
batches already done and sees the same batches as an uninterrupted one.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from rnnkit.data.batching import epoch_order


class LengthBuckets:
    """The batches (index tensors) of one epoch from batch ``start`` on; ``len`` is how many remain."""

    def __init__(self, lengths: Sequence[int], batch_size: int, seed: int, epoch: int, start: int = 0, *,
                 shuffle: bool = True, pool: int = 50) -> None:  # fmt: skip
        if batch_size < 1:
            raise ValueError(f"batch size must be >= 1, got {batch_size}")
        lengths = torch.as_tensor(list(lengths), dtype=torch.long)
        order = epoch_order(len(lengths), seed, epoch, shuffle)
        batches: list[Tensor] = []
        span = batch_size * pool
        for begin in range(0, len(order), span):
            chunk = order[begin : begin + span]
            chunk = chunk[torch.argsort(lengths[chunk], stable=True)]
            batches += list(chunk.split(batch_size))
        if shuffle:
            generator = torch.Generator().manual_seed(seed * 1_000_003 + epoch + 7_919)
            batches = [batches[i] for i in torch.randperm(len(batches), generator=generator).tolist()]
        self.batches, self.start = batches, start

    def __len__(self) -> int:
        return max(0, len(self.batches) - self.start)

    def __iter__(self):
        yield from self.batches[self.start :]
