"""Backpropagation through time: full, truncated, and gradient clipping.

Full BPTT is autograd through the unrolled step loop: ``loss.backward()`` on the output of a whole
sequence. Truncated BPTT (Williams & Peng 1990; as char-rnn and Zaremba et al. 2014 train) cuts a long
sequence into consecutive windows of k steps, carries the final state of one window into the next so
the forward pass still sees the whole history, and detaches it so gradients flow back at most k steps::

    state = None
    for x, y in zip(windows(inputs, k), windows(targets, k)):
        state = detach_state(state)
        out, state = rnn(x, state)
        loss_fn(out, y).backward()
        clip_gradients(rnn.parameters(), max_norm=5.0)
        optimizer.step(); optimizer.zero_grad()
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import torch
from torch import Tensor

StateLike = Tensor | tuple[Tensor, ...] | None


def detach_state(state: StateLike) -> StateLike:
    """Cut the graph behind a recurrent state (a tensor, a tuple of tensors, or None), keeping its values."""
    if state is None:
        return None
    if isinstance(state, tuple):
        return tuple(detach_state(s) for s in state)
    return state.detach()


def windows(x: Tensor, size: int, dim: int = 0) -> Iterator[Tensor]:
    """Consecutive windows of ``size`` steps along ``dim``; the last one may be shorter."""
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise ValueError(f"window size must be an integer >= 1, got {size!r}")
    yield from torch.split(x, size, dim=dim)


def clip_gradients(
    parameters: Iterable[torch.nn.Parameter],
    *,
    max_norm: float | None = None,
    max_value: float | None = None,
) -> float:
    """Clip gradients in place and return their global L2 norm *before* clipping.

    ``max_norm``: rescale all gradients together so that ||g|| <= max_norm (Pascanu et al. 2013).
    ``max_value``: clamp each gradient entry to [-max_value, max_value] (Mikolov's clipping).
    Both may be given; the norm is applied first. A non-finite norm is returned as is, so the caller
    can skip the step.
    """
    for name, value in (("max_norm", max_norm), ("max_value", max_value)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0):
            raise ValueError(f"{name} must be a positive number or None, got {value!r}")
    params = [p for p in parameters if p.grad is not None]
    if not params:
        return 0.0
    if max_norm is not None:
        norm = torch.nn.utils.clip_grad_norm_(params, max_norm)
    else:
        norm = torch.nn.utils.get_total_norm([p.grad for p in params])
    if max_value is not None:
        torch.nn.utils.clip_grad_value_(params, max_value)
    return float(norm)
