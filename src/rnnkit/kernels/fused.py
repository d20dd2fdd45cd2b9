"""The fused backend's cell runner: one cell over a whole sequence through a fused recurrence.

:func:`fused_cell` has the signature of :func:`rnnkit.stack.run_cell` (the reference step loop) plus the
plan of :mod:`rnnkit.kernels.dispatch`, and computes the same function: the layer's stacking, directions,
dropout and skip connections stay as they are, and only the time loop of each cell changes. Each
recurrence (``lstm.py``, ``gru.py``, ``rnn.py``) computes the input projection ``W_ih x`` for all steps as
one GEMM, then one GEMM and an element-wise update per step, and has a hand-written backward.
"""

from __future__ import annotations

import torch
from torch import Tensor

from rnnkit.cells import CellSpec, CellWeights, State
from rnnkit.kernels.dispatch import Plan
from rnnkit.kernels.gru import GRURecurrence
from rnnkit.kernels.lstm import LSTMRecurrence
from rnnkit.kernels.rnn import RNNRecurrence

Masks = tuple[Tensor | None, tuple[Tensor, ...] | None]


def fused_cell(spec: CellSpec, w: CellWeights, x: Tensor, state: State, valid: Tensor | None, masks: Masks,
               training: bool, plan: Plan) -> tuple[Tensor, State]:  # fmt: skip
    """Run the cell ``spec`` with weights ``w`` over x (T, B, I) from ``state``: (outputs (T, B, H_out), final state).

    ``valid`` (T, B) marks real steps (padded ones keep the state and give zero outputs); ``masks`` is
    the layer's (recurrent-dropout mask (B, H_out), zoneout masks (T, B, n) per state tensor).
    """
    if torch.is_autocast_enabled(x.device.type):
        # The recurrences compute in the weights' dtype: under autocast their products would come back in
        # half precision, which neither the hand-written backward nor the C loops take.
        dtype = w.weight_ih.dtype
        with torch.autocast(x.device.type, enabled=False):
            state = tuple(s.to(dtype) for s in state) if isinstance(state, tuple) else state.to(dtype)
            return fused_cell(spec, w, x.to(dtype), state, valid, masks, training, plan)
    T = x.shape[0]
    plan = plan.for_cell(spec.proj_size)
    recurrent_mask, zoneout = _masks(spec, x, masks, training)
    valid3 = None if valid is None else valid.unsqueeze(-1)  # (T, B, 1)
    needs_grad = torch.is_grad_enabled() and (
        x.requires_grad or any(p is not None and p.requires_grad for p in w)
        or any(s.requires_grad for s in (state if isinstance(state, tuple) else (state,)))
    )  # fmt: skip
    b_x, b_h = spec.folded_biases(w)
    ln_ih, ln_hh = w.ln_ih_weight, w.ln_hh_weight
    if spec.kind == "lstm":
        h0, c0 = state
        zh, zc = zoneout if zoneout is not None else (None, None)
        hs, c_last = LSTMRecurrence.apply(
            x, h0, c0, w.weight_ih, w.weight_hh, b_x, ln_ih, ln_hh, w.weight_ch, w.ln_cell_weight, w.ln_cell_bias,
            w.weight_hr, recurrent_mask, zh, zc, valid3, needs_grad, plan,
        )  # fmt: skip
        final: State = (hs[T - 1], c_last)
    elif spec.kind == "gru":
        zh = zoneout[0] if zoneout is not None else None
        hs = GRURecurrence.apply(
            x, state, w.weight_ih, w.weight_hh, b_x, b_h, ln_ih, ln_hh, recurrent_mask, zh, valid3,
            spec.reset == "before", needs_grad, plan,
        )  # fmt: skip
        final = hs[T - 1]
    else:
        zh = zoneout[0] if zoneout is not None else None
        hs = RNNRecurrence.apply(
            x, state, w.weight_ih, w.weight_hh, b_x, ln_ih, ln_hh, recurrent_mask, zh, valid3,
            spec.nonlinearity == "relu", needs_grad, plan,
        )  # fmt: skip
        final = hs[T - 1]
    out = hs if valid3 is None else hs.masked_fill(~valid3, 0.0)
    return out, final


def _masks(spec: CellSpec, x: Tensor, masks: Masks, training: bool) -> tuple[Tensor | None, tuple[Tensor, ...] | None]:
    """The layer's masks; when it passed none, the cell's own behaviour (draw in training, expect in eval)."""
    recurrent, zoneout = masks
    T, B = x.shape[0], x.shape[1]
    if recurrent is None and training and spec.recurrent_dropout > 0:
        recurrent = spec.recurrent_mask(B, x)
    if zoneout is None and spec.zoneout > 0:
        if training:
            zoneout = spec.zoneout_masks(T, B, x)
        else:  # the expectation: every unit keeps p of its old value
            p = x.new_full((1, 1, 1), spec.zoneout).expand(T, 1, 1)
            zoneout = (p,) * len(spec.state_sizes)
    return recurrent, zoneout
