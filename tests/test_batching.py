"""Resumable shuffled batches and padding."""

import torch

from rnnkit.data.batching import EpochBatches, pad_sequences


def test_epoch_order_depends_only_on_seed_and_epoch_and_resumes():
    full = [b.tolist() for b in EpochBatches(10, 3, seed=1, epoch=2)]
    assert sorted(i for b in full for i in b) == list(range(10)) and len(full) == 4
    assert [b.tolist() for b in EpochBatches(10, 3, seed=1, epoch=2, start=2)] == full[2:]
    assert full != [b.tolist() for b in EpochBatches(10, 3, seed=1, epoch=3)]
    assert len(EpochBatches(10, 3, seed=1, epoch=2, start=1)) == 3
    assert [b.tolist() for b in EpochBatches(5, 2, seed=0, epoch=0, shuffle=False)] == [[0, 1], [2, 3], [4]]


def test_pad_sequences():
    batch, lengths = pad_sequences([[1, 2, 3], [4]], pad=9)
    assert batch.tolist() == [[1, 2, 3], [4, 9, 9]] and lengths.tolist() == [3, 1]
    assert batch.dtype == torch.long
