"""What task modules share besides their options (those are in :mod:`rnnkit.tasks.options`)."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sized
from typing import Any


class Batches:
    """One epoch's training batches, from where it starts or resumes: ``make(key)`` for each of ``keys``
    in order, made when iterated; ``len`` is how many remain (the trainer counts its steps by it).

    ``keys`` is any sized iterable: the index batches of a :class:`rnnkit.data.buckets.LengthBuckets`
    or :class:`rnnkit.data.batching.EpochBatches`, or a ``range`` of window or batch numbers.
    """

    def __init__(self, keys: Sized, make: Callable[[Any], Any]) -> None:
        self.keys, self.make = keys, make

    def __len__(self) -> int:
        return len(self.keys)

    def __iter__(self) -> Iterator:
        return map(self.make, self.keys)
