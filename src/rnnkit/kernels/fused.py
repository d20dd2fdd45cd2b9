"""The fused backend's cell runner: one cell over a whole sequence through a fused recurrence.

:func:`fused_cell` has the signature of :func:`rnnkit.layers.run_cell` (the reference step loop) and
computes the same function: the layer's stacking, directions, dropout and skip connections stay as
they are, and only the time loop of each cell changes. Each recurrence (``lstm.py``, ``gru.py``, ``rnn.py``)
computes the input projection ``W_ih x`` for all steps as one GEMM, then one GEMM and an element-wise
update per step, and has a hand-written backward.
"""

from __future__ import annotations

import torch
from torch import Tensor

from rnnkit.cells import GRUCell, LSTMCell, RecurrentCell, RNNCell, State
from rnnkit.kernels.gru import GRURecurrence
from rnnkit.kernels.lstm import LSTMRecurrence
from rnnkit.kernels.rnn import RNNRecurrence

Masks = tuple[Tensor | None, tuple[Tensor, ...] | None]


def fused_cell(cell: RecurrentCell, x: Tensor, state: State, valid: Tensor | None, masks: Masks):
    """Run ``cell`` over x (T, B, I) from ``state``: (outputs (T, B, H_out), final state).

    ``valid`` (T, B) marks real steps (padded ones keep the state and give zero outputs); ``masks`` is
    the layer's (recurrent-dropout mask (B, H_out), zoneout masks (T, B, n) per state tensor).
    """
    if torch.is_autocast_enabled(x.device.type):
        # The recurrences compute in the weights' dtype: under autocast their products would come back in
        # half precision, which neither the hand-written backward nor the C loops take.
        dtype = cell.weight_ih.dtype
        with torch.autocast(x.device.type, enabled=False):
            state = tuple(s.to(dtype) for s in state) if isinstance(state, tuple) else state.to(dtype)
            return fused_cell(cell, x.to(dtype), state, valid, masks)
    T = x.shape[0]
    recurrent_mask, zoneout = _masks(cell, x, masks)
    valid3 = None if valid is None else valid.unsqueeze(-1)  # (T, B, 1)
    needs_grad = torch.is_grad_enabled() and (
        x.requires_grad or any(p.requires_grad for p in cell.parameters())
        or any(s.requires_grad for s in (state if isinstance(state, tuple) else (state,)))
    )  # fmt: skip
    gru_after = isinstance(cell, GRUCell) and cell.reset == "after"
    bias = cell.bias_ih
    if bias is not None and not gru_after:
        bias = bias + cell.bias_hh  # b_hh adds after the recurrent layer norm too, so it joins b_ih
    ln_ih, ln_hh = (cell.ln_ih_weight, cell.ln_hh_weight) if cell.layer_norm else (None, None)
    if isinstance(cell, LSTMCell):
        h0, c0 = state
        zh, zc = zoneout if zoneout is not None else (None, None)
        ln_cell = (cell.ln_cell_weight, cell.ln_cell_bias) if cell.layer_norm else (None, None)
        hs, c_last = LSTMRecurrence.apply(
            x, h0, c0, cell.weight_ih, cell.weight_hh, bias, ln_ih, ln_hh, cell.weight_ch if cell.peephole else None,
            *ln_cell, cell.weight_hr if cell.proj_size else None, recurrent_mask, zh, zc, valid3, needs_grad,
        )  # fmt: skip
        final: State = (hs[T - 1], c_last)
    elif isinstance(cell, GRUCell):
        zh = zoneout[0] if zoneout is not None else None
        b_hh = cell.bias_hh if gru_after else None
        hs = GRURecurrence.apply(
            x, state, cell.weight_ih, cell.weight_hh, bias, b_hh, ln_ih, ln_hh, recurrent_mask, zh, valid3,
            not gru_after, needs_grad,
        )  # fmt: skip
        final = hs[T - 1]
    elif isinstance(cell, RNNCell):
        zh = zoneout[0] if zoneout is not None else None
        hs = RNNRecurrence.apply(
            x, state, cell.weight_ih, cell.weight_hh, bias, ln_ih, ln_hh, recurrent_mask, zh, valid3,
            cell.nonlinearity == "relu", needs_grad,
        )  # fmt: skip
        final = hs[T - 1]
    else:
        raise TypeError(f"the fused backend has no kernel for {type(cell).__name__}")
    out = hs if valid3 is None else hs.masked_fill(~valid3, 0.0)
    return out, final


def _masks(cell: RecurrentCell, x: Tensor, masks: Masks) -> tuple[Tensor | None, tuple[Tensor, ...] | None]:
    """The layer's masks; when it passed none, the cell's own behaviour (draw in training, expect in eval)."""
    recurrent, zoneout = masks
    T, B = x.shape[0], x.shape[1]
    if recurrent is None and cell.training and cell.recurrent_dropout > 0:
        recurrent = cell.recurrent_mask(B, x)
    if zoneout is None and cell.zoneout > 0:
        if cell.training:
            zoneout = cell.zoneout_masks(T, B, x)
        else:  # the expectation: every unit keeps p of its old value
            p = x.new_full((1, 1, 1), cell.zoneout).expand(T, 1, 1)
            zoneout = (p,) * len(cell.state_sizes)
    return recurrent, zoneout
