"""The LSTM recurrence with each step's element-wise work in C (``_lstm.c``): float32 on the CPU.

:class:`rnnkit.kernels.lstm.LSTMRecurrence` hands its forward and backward here when its plan says so
(:mod:`rnnkit.kernels.dispatch`).
The loops are those of ``lstm.py`` (one product ``W_hh h`` per step, the weight gradients as GEMMs over
all steps), but the rest of a step, ~25 tensor operations with layer norm and zoneout, is one C call that
passes over each row once while it is in cache (see ``_lstm.c`` for the equations). Over 16 steps or more
the per-step products run on packed weights in C too, and the whole loop is one C call
(:func:`rnnkit.kernels._ext.forward_steps`). On 2 CPU cores this is what brings the LayerNorm-LSTM near
torch.nn.LSTM's time (benchmarks/speed.py).

What is saved for the backward differs from ``lstm.py``: the layer norms' normalised values (written
over their inputs) and 1/std, not the raw inputs; the backward's factors A, K, F as there.

Covers layer norm (with the cell norm), peepholes, recurrent dropout, zoneout and lengths; the
projection, float64 and CUDA go through ``lstm.py``. ``RNNKIT_C_CELLS=0`` turns the C steps off.
"""

from __future__ import annotations

import torch
from torch import Tensor

from rnnkit.kernels._abi import LSTMBackward, LSTMForward
from rnnkit.kernels._ext import (
    backward_inputs,
    backward_steps,
    forward_inputs,
    forward_steps,
    full_mask,
    ptr,
    weight_grads,
)
from rnnkit.kernels.common import Scratch, mixing_coefficients


def forward(ctx, x, h0, c0, W_ih, W_hh, bias, ln_ih, ln_hh, peephole, ln_cell_w, ln_cell_b, rec_mask, zh, zc,
            valid, needs_grad) -> tuple[Tensor, Tensor]:  # fmt: skip
    """The forward of LSTMRecurrence (same arguments, without the projection): (hs[1:], c_T)."""
    T, B, H = *x.shape[:2], W_hh.shape[1]  # steps, batch, hidden units
    layer_norm = ln_ih is not None
    with Scratch() as scratch:  # what only the backward needs, when there is no backward
        GX, hs, zh_full, valid_rows, bias, keep = forward_inputs(ctx, scratch, needs_grad, x, h0, W_ih, bias,
                                                                 layer_norm, zh, valid)  # fmt: skip
        zc_full = full_mask(zc, (T, B, H))
        gh = keep(GX.shape) if layer_norm else None  # W_hh h per step, normalised in place for the backward
        # the peepholes' gradient needs c before and after each step (and before mixing, when there is mixing)
        keep_c = needs_grad and peephole is not None
        mixed = zh_full is not None or zc_full is not None or valid_rows is not None
        cs = GX.new_empty(T + 1, B, H) if keep_c else scratch.empty((T + 1, B, H), GX)
        cs[0] = c0
        c_new = GX.new_empty(T, B, H) if keep_c and mixed else None
        # A is written over W_ih x + b + W_hh h row by row (each row read before it is written); with layer
        # norm GX keeps the normalised W_ih x for the backward
        A = keep((T, B, 4 * H)) if layer_norm else GX
        K, F = keep((T, B, H)), keep((T, B, H))
        rstd_x = keep((T, B, 4)) if layer_norm else None
        rstd_h = keep((T, B, 4)) if layer_norm else None
        y_c = keep((T, B, H)) if ln_cell_w is not None else None
        rstd_c = keep((T, B)) if ln_cell_w is not None else None
        args = LSTMForward(
            B, H, torch.get_num_threads(), 0, ptr(GX), ptr(gh), ptr(ln_ih), ptr(ln_hh),
            ptr(bias) if layer_norm else None, ptr(ln_cell_w), ptr(ln_cell_b), ptr(rstd_x), ptr(rstd_h),
            ptr(y_c), ptr(rstd_c), ptr(hs), ptr(cs), ptr(zh_full), ptr(zc_full), ptr(valid_rows), ptr(A),
            ptr(K), ptr(F), ptr(peephole), ptr(c_new),
        )  # fmt: skip
        products = gh if layer_norm else GX  # without layer norm W_hh h is added to W_ih x + b
        forward_steps("lstm", args, hs, W_hh, products, rec_mask, scratch, not layer_norm, ctx.plan.c_products)
        c_T = cs[T].clone()
    if needs_grad:
        y_x = GX if layer_norm else None
        c_before, c_after = (cs[:-1], c_new if c_new is not None else cs[1:]) if keep_c else (None, None)
        ctx.save_for_backward(x, W_ih, W_hh, hs, A, K, F, y_x, gh, rstd_x, rstd_h, y_c, rstd_c, bias, ln_ih, ln_hh,
                              ln_cell_w, rec_mask, zh, zc, valid, peephole, c_before, c_after)  # fmt: skip
    return hs[1:], c_T


def backward(ctx, d_hs: Tensor, d_cT: Tensor) -> tuple:
    """The backward of LSTMRecurrence for a forward that ran in :func:`forward`."""
    (x, W_ih, W_hh, hs, A, K, F, y_x, y_h, rstd_x, rstd_h, y_c, rstd_c, bias, ln_ih, ln_hh, ln_cell_w, rec_mask, zh,
     zc, valid, peephole, c_before, c_after) = ctx.saved_tensors  # fmt: skip
    T, B, H = K.shape
    layer_norm = ln_ih is not None
    d_hs, dh, uh = backward_inputs(d_hs, zh, valid)
    dc = d_cT.contiguous().clone()
    uc = full_mask(mixing_coefficients(zc, valid, A.dtype), (T, B, H))
    acc = torch.zeros(14 * H, dtype=torch.float64) if layer_norm else None
    with Scratch() as scratch:  # dG, dGX and DU never leave this backward
        dG = scratch.empty(A.shape, A)
        dGX = scratch.empty(A.shape, A) if layer_norm else dG
        DU = scratch.empty(A.shape, A) if layer_norm else dG
        base, work = scratch.empty((B, H), A), scratch.empty((B, H), A)
        args = LSTMBackward(
            B, H, torch.get_num_threads(), 0, ptr(dh), ptr(dc), ptr(base), ptr(work), ptr(d_hs), ptr(uh),
            ptr(uc), ptr(A), ptr(K), ptr(F), ptr(y_x if layer_norm else None), ptr(y_h), ptr(rstd_x),
            ptr(rstd_h), ptr(ln_ih), ptr(ln_hh), ptr(y_c), ptr(rstd_c), ptr(ln_cell_w), ptr(dG),
            ptr(dGX) if layer_norm else None, ptr(DU) if layer_norm else None, ptr(acc), ptr(peephole),
        )  # fmt: skip
        backward_steps("lstm", args, DU, W_hh, base, dh, rec_mask, scratch, ctx.plan.c_products)
        d_W_hh, dx, d_W_ih = weight_grads(ctx, x, W_ih, hs, rec_mask, DU, dGX)
        d_bias = dG.sum((0, 1)) if not layer_norm else None
        d_peephole = None
        if peephole is not None:  # p_i, p_f read c_{t-1}; p_o reads c' (before mixing)
            dG4 = dG.view(T, B, 4, H)
            d_peephole = torch.cat([(dG4[:, :, :2] * c_before.unsqueeze(2)).sum((0, 1)).reshape(-1),
                                    (dG4[:, :, 3] * c_after).sum((0, 1))])  # fmt: skip
    d_ln_ih = d_ln_hh = d_ln_cell_w = d_ln_cell_b = None
    if layer_norm:
        sums = acc.to(A.dtype)
        d_ln_ih, d_ln_hh, d_bias = sums[: 4 * H], sums[4 * H : 8 * H], sums[8 * H : 12 * H]
        if ln_cell_w is not None:
            d_ln_cell_w, d_ln_cell_b = sums[12 * H : 13 * H], sums[13 * H :]
    return (dx, dh, dc, d_W_ih, d_W_hh, d_bias if ctx.has_bias else None, d_ln_ih, d_ln_hh, d_peephole, d_ln_cell_w,
            d_ln_cell_b, None, None, None, None, None, None, None)  # fmt: skip
