"""The vanilla RNN recurrence with each step's element-wise work in C (``_rnn.c``): float32 on the CPU.

:class:`rnnkit.kernels.rnn.RNNRecurrence` hands its forward and backward here when
its plan says so (:mod:`rnnkit.kernels.dispatch`): the loops of ``rnn.py`` (one product ``W_hh h`` per step,
the weight gradients as GEMMs over all steps) with the rest of a step in one C call, and over 16 steps or
more the whole loop in one, as :mod:`rnnkit.kernels.clstm` does for the LSTM. Covers tanh and relu,
layer norm, recurrent dropout, zoneout and lengths; ``RNNKIT_C_CELLS=0`` turns the C steps off.
"""

from __future__ import annotations

import torch
from torch import Tensor

from rnnkit.kernels._abi import RNNBackward, RNNForward
from rnnkit.kernels._ext import backward_inputs, backward_steps, forward_inputs, forward_steps, ptr, weight_grads
from rnnkit.kernels.common import Scratch


def forward(ctx, x, h0, W_ih, W_hh, bias, ln_ih, ln_hh, rec_mask, zh, valid, relu, needs_grad) -> Tensor:
    """The forward of RNNRecurrence (same arguments): hs[1:]."""
    T, B, H = *x.shape[:2], W_hh.shape[1]  # steps, batch, hidden units
    layer_norm = ln_ih is not None
    with Scratch() as scratch:
        GX, hs, zh_full, valid_rows, bias, keep = forward_inputs(ctx, scratch, needs_grad, x, h0, W_ih, bias,
                                                                 layer_norm, zh, valid)  # fmt: skip
        gh = keep(GX.shape) if layer_norm else None  # W_hh h per step, normalised in place for the backward
        C = keep((T, B, H))
        rstd_x, rstd_h = (keep((T, B)), keep((T, B))) if layer_norm else (None, None)
        args = RNNForward(
            B, H, torch.get_num_threads(), 0, int(relu), ptr(GX), ptr(gh), ptr(ln_ih), ptr(ln_hh),
            ptr(bias) if layer_norm else None, ptr(rstd_x), ptr(rstd_h), ptr(hs), ptr(zh_full), ptr(valid_rows), ptr(C),
        )  # fmt: skip
        products = gh if layer_norm else GX  # without layer norm W_hh h is added to W_ih x + b
        forward_steps("rnn", args, hs, W_hh, products, rec_mask, scratch, not layer_norm, ctx.plan.c_products)
    if needs_grad:
        y_x, y_h = (GX, gh) if layer_norm else (None, None)
        ctx.save_for_backward(x, W_ih, W_hh, hs, C, y_x, y_h, rstd_x, rstd_h, ln_ih, ln_hh, rec_mask, zh, valid)
    return hs[1:]


def backward(ctx, d_hs: Tensor) -> tuple:
    """The backward of RNNRecurrence for a forward that ran in :func:`forward`."""
    x, W_ih, W_hh, hs, C, y_x, y_h, rstd_x, rstd_h, ln_ih, ln_hh, rec_mask, zh, valid = ctx.saved_tensors
    T, B, H = C.shape
    layer_norm = ln_ih is not None
    d_hs, dh, u = backward_inputs(d_hs, zh, valid)
    acc = torch.zeros(3 * H, dtype=torch.float64) if layer_norm else None
    with Scratch() as scratch:  # D, dGX and DU never leave this backward
        D = scratch.empty((T, B, H), C)
        dGX, DU = (scratch.empty((T, B, H), C), scratch.empty((T, B, H), C)) if layer_norm else (D, D)
        base = scratch.empty((B, H), C)
        args = RNNBackward(
            B, H, torch.get_num_threads(), 0, ptr(dh), ptr(base), ptr(d_hs), ptr(u), ptr(C), ptr(y_x), ptr(y_h),
            ptr(rstd_x), ptr(rstd_h), ptr(ln_ih), ptr(ln_hh), ptr(D), ptr(dGX) if layer_norm else None,
            ptr(DU) if layer_norm else None, ptr(acc),
        )  # fmt: skip
        backward_steps("rnn", args, DU, W_hh, base, dh, rec_mask, scratch, ctx.plan.c_products)
        d_W_hh, dx, d_W_ih = weight_grads(ctx, x, W_ih, hs, rec_mask, DU, dGX)
        d_ln_ih = d_ln_hh = None
        if layer_norm:
            d_ln_ih, d_ln_hh, d_bias = acc.to(C.dtype).split(H)
        else:
            d_bias = D.sum((0, 1))
    return (dx, dh, d_W_ih, d_W_hh, d_bias if ctx.has_bias else None, d_ln_ih, d_ln_hh, None, None, None, None,
            None, None)  # fmt: skip
