"""The GRU recurrence with each step's element-wise work in C (``_gru.c``): float32 on the CPU.

:class:`rnnkit.kernels.gru.GRURecurrence` hands its forward and backward here when
its plan says so (:mod:`rnnkit.kernels.dispatch`): the loops of ``gru.py`` (the products ``W_hh h`` per step,
the weight gradients as GEMMs over all steps) with the rest of a step in C (see ``_gru.c``), as
:mod:`rnnkit.kernels.clstm` does for the LSTM. reset="after" takes one C call per step; reset="before"
two, around the step's second product ``W_hn (r * h)``. Over 16 steps or more the whole loop of either is
one C call, its products too (:class:`rnnkit.kernels._ext.StepProduct`).

Covers both reset forms, layer norm, recurrent dropout, zoneout and lengths; float64 and CUDA go
through ``gru.py``. ``RNNKIT_C_CELLS=0`` turns the C steps off.
"""

from __future__ import annotations

import ctypes

import torch
from torch import Tensor

from rnnkit.kernels import _ext
from rnnkit.kernels._abi import GRUBackward, GRUBeforeBackward, GRUBeforeForward, GRUForward
from rnnkit.kernels._ext import (
    StepProduct,
    backward_inputs,
    backward_steps,
    forward_inputs,
    forward_steps,
    ptr,
    weight_grads,
)
from rnnkit.kernels.common import Scratch, input_grads, matmul_steps


def forward(ctx, x, h0, W_ih, W_hh, b_ih, b_hh, ln_ih, ln_hh, rec_mask, zh, valid, before, needs_grad) -> Tensor:
    """The forward of GRURecurrence (same arguments): hs[1:]."""
    ctx.before = before
    if before:
        return _before_forward(ctx, x, h0, W_ih, W_hh, b_ih, ln_ih, ln_hh, rec_mask, zh, valid, needs_grad)
    T, B, H = *x.shape[:2], W_hh.shape[1]  # steps, batch, hidden units
    layer_norm = ln_ih is not None
    ctx.has_b_hh = b_hh is not None
    with Scratch() as scratch:  # what only the backward needs, when there is no backward
        GX, hs, zh_full, valid_rows, b_ih, keep = forward_inputs(ctx, scratch, needs_grad, x, h0, W_ih, b_ih,
                                                                 layer_norm, zh, valid)  # fmt: skip
        b_hh = b_hh if b_hh is not None else GX.new_zeros(3 * H)  # the step adds b_hh in any case
        gh = keep((T, B, 3 * H)) if layer_norm else scratch.empty((T, B, 3 * H), GX)  # LN: normalised W_hh h
        C, Z = keep((T, B, 4 * H)), keep((T, B, H))
        rstd_x = keep((T, B, 3)) if layer_norm else None
        rstd_h = keep((T, B, 3)) if layer_norm else None
        args = GRUForward(
            B, H, torch.get_num_threads(), 0, ptr(GX), ptr(gh), ptr(ln_ih), ptr(ln_hh),
            ptr(b_ih) if layer_norm else None, ptr(b_hh),
            ptr(rstd_x), ptr(rstd_h), ptr(hs), ptr(zh_full), ptr(valid_rows), ptr(C), ptr(Z),
        )  # fmt: skip
        forward_steps("gru", args, hs, W_hh, gh, rec_mask, scratch, False, ctx.plan.c_products)
    if needs_grad:
        y_x, y_h = (GX, gh) if layer_norm else (None, None)
        ctx.save_for_backward(x, W_ih, W_hh, hs, C, Z, y_x, y_h, rstd_x, rstd_h, ln_ih, ln_hh, rec_mask, zh, valid)
    return hs[1:]


def backward(ctx, d_hs: Tensor) -> tuple:
    """The backward of GRURecurrence for a forward that ran in :func:`forward`."""
    if ctx.before:
        return _before_backward(ctx, d_hs)
    x, W_ih, W_hh, hs, C, Z, y_x, y_h, rstd_x, rstd_h, ln_ih, ln_hh, rec_mask, zh, valid = ctx.saved_tensors
    T, B, H = Z.shape
    layer_norm = ln_ih is not None
    d_hs, dh, u = backward_inputs(d_hs, zh, valid)
    acc = torch.zeros(12 * H, dtype=torch.float64) if layer_norm else None
    with Scratch() as scratch:  # dGX and DU never leave this backward
        dGX, DU = scratch.empty((T, B, 3 * H), Z), scratch.empty((T, B, 3 * H), Z)
        base = scratch.empty((B, H), Z)
        dx_raw = scratch.empty((B, 3 * H), Z) if layer_norm else None
        du_raw = scratch.empty((B, 3 * H), Z) if layer_norm else None
        args = GRUBackward(
            B, H, torch.get_num_threads(), 0, ptr(dh), ptr(base), ptr(d_hs), ptr(u), ptr(C), ptr(Z), ptr(y_x),
            ptr(y_h), ptr(rstd_x), ptr(rstd_h), ptr(ln_ih), ptr(ln_hh), ptr(dx_raw), ptr(du_raw), ptr(dGX), ptr(DU),
            ptr(acc),
        )  # fmt: skip
        backward_steps("gru", args, DU, W_hh, base, dh, rec_mask, scratch, ctx.plan.c_products)
        d_W_hh, dx, d_W_ih = weight_grads(ctx, x, W_ih, hs, rec_mask, DU, dGX)
        d_ln_ih = d_ln_hh = None
        if layer_norm:
            d_ln_ih, d_ln_hh, d_b_ih, d_b_hh = acc.to(Z.dtype).split(3 * H)
        else:
            d_b_ih, d_b_hh = dGX.sum((0, 1)), DU.sum((0, 1))
    return (dx, dh, d_W_ih, d_W_hh, d_b_ih if ctx.has_bias else None, d_b_hh if ctx.has_b_hh else None, d_ln_ih,
            d_ln_hh, None, None, None, None, None, None)  # fmt: skip


def _before_forward(ctx, x, h0, W_ih, W_hh, bias, ln_ih, ln_hh, rec_mask, zh, valid, needs_grad) -> Tensor:
    """reset="before": ``bias`` is b_ih + b_hh (all of it adds outside r); two C calls per step."""
    T, B, H = *x.shape[:2], W_hh.shape[1]  # steps, batch, hidden units
    layer_norm = ln_ih is not None
    with Scratch() as scratch:
        GX, hs, zh_full, valid_rows, bias, keep = forward_inputs(ctx, scratch, needs_grad, x, h0, W_ih, bias,
                                                                 layer_norm, zh, valid)  # fmt: skip
        store = keep if layer_norm else (lambda shape: scratch.empty(shape, GX))  # normalised products: LN only
        gh_rz, gh_n = store((T, B, 2 * H)), store((T, B, H))
        RH, C, Z, R = keep((T, B, H)), keep((T, B, 3 * H)), keep((T, B, H)), keep((T, B, H))
        rstd_x, rstd_rz, rstd_n = (keep((T, B, 3)), keep((T, B, 2)), keep((T, B))) if layer_norm else (None,) * 3
        mask = None if rec_mask is None else rec_mask.to(GX.dtype).expand(B, H).contiguous()
        args = GRUBeforeForward(
            B, H, torch.get_num_threads(), 0, ptr(GX), ptr(gh_rz), ptr(gh_n), ptr(ln_ih), ptr(ln_hh),
            ptr(bias) if layer_norm else None, ptr(mask), ptr(rstd_x), ptr(rstd_rz), ptr(rstd_n), ptr(hs),
            ptr(zh_full), ptr(valid_rows), ptr(RH), ptr(C), ptr(Z), ptr(R),
        )  # fmt: skip
        ref = ctypes.byref(args)
        in_c = ctx.plan.c_products
        product_rz, product_n = StepProduct(W_hh[: 2 * H], in_c), StepProduct(W_hh[2 * H :], in_c)
        h_in = scratch.empty((B, H), GX) if mask is not None else None
        if product_rz.in_c:  # the whole loop in C, both products too
            rz, n = product_rz.loop(T, hs, gh_rz, mask=mask, scratch=h_in), product_n.loop(T, RH, gh_n)
            _ext.cells_lib.rk_gru_before_forward_steps(ctypes.byref(rz), ctypes.byref(n), ref)
        else:
            reset, update = _ext.cells_lib.rk_gru_before_reset, _ext.cells_lib.rk_gru_before_update
            hs_t, RH_t, rz_t, n_t = hs.unbind(0), RH.unbind(0), gh_rz.unbind(0), gh_n.unbind(0)
            for t in range(T):
                h = hs_t[t] if mask is None else torch.mul(hs_t[t], mask, out=h_in)
                product_rz(h, rz_t[t])
                args.t = t
                reset(ref)
                product_n(RH_t[t], n_t[t])
                update(ref)
    if needs_grad:
        y_x, y_rz, y_n = (GX, gh_rz, gh_n) if layer_norm else (None, None, None)
        ctx.save_for_backward(x, W_ih, W_hh, hs, RH, C, Z, R, y_x, y_rz, y_n, rstd_x, rstd_rz, rstd_n, ln_ih, ln_hh,
                              mask, zh, valid)  # fmt: skip
    return hs[1:]


def _before_backward(ctx, d_hs: Tensor) -> tuple:
    (x, W_ih, W_hh, hs, RH, C, Z, R, y_x, y_rz, y_n, rstd_x, rstd_rz, rstd_n, ln_ih, ln_hh, mask, zh,
     valid) = ctx.saved_tensors  # fmt: skip
    T, B, H = Z.shape
    layer_norm = ln_ih is not None
    d_hs, dh, u = backward_inputs(d_hs, zh, valid)
    acc = torch.zeros(9 * H, dtype=torch.float64) if layer_norm else None
    in_c = ctx.plan.c_products
    product_rz, product_n = StepProduct(W_hh[: 2 * H].t(), in_c), StepProduct(W_hh[2 * H :].t(), in_c)  # DU W
    with Scratch() as scratch:  # the gradients of the products never leave this backward
        dGX, DU_rz, DU_n = scratch.empty((T, B, 3 * H), Z), scratch.empty((T, B, 2 * H), Z), scratch.empty((T, B, H), Z)
        base, d_rh = scratch.empty((B, H), Z), scratch.empty((B, H), Z)
        D = scratch.empty((B, 3 * H), Z) if layer_norm else None
        args = GRUBeforeBackward(
            B, H, torch.get_num_threads(), 0, ptr(dh), ptr(base), ptr(d_rh), ptr(d_hs), ptr(u), ptr(mask), ptr(C),
            ptr(Z), ptr(R), ptr(y_x), ptr(y_rz), ptr(y_n), ptr(rstd_x), ptr(rstd_rz), ptr(rstd_n), ptr(ln_ih),
            ptr(ln_hh), ptr(D), ptr(dGX), ptr(DU_rz), ptr(DU_n), ptr(acc),
        )  # fmt: skip
        ref = ctypes.byref(args)
        masked = scratch.empty((B, H), Z) if mask is not None else None
        if product_rz.in_c:  # the whole loop in C, both products too
            rz = product_rz.loop(T, DU_rz, dh, mask=mask, scratch=masked, base=base)
            n = product_n.loop(T, DU_n, d_rh)
            _ext.cells_lib.rk_gru_before_backward_steps(ctypes.byref(rz), ctypes.byref(n), ref)
        else:
            gradient_n, gradient_r = _ext.cells_lib.rk_gru_before_gradient_n, _ext.cells_lib.rk_gru_before_gradient_r
            DU_rz_t, DU_n_t = DU_rz.unbind(0), DU_n.unbind(0)
            for t in range(T - 1, -1, -1):
                args.t = t
                gradient_n(ref)
                product_n(DU_n_t[t], d_rh)
                gradient_r(ref)
                if mask is None:
                    product_rz(DU_rz_t[t], dh, base)
                else:
                    torch.addcmul(base, product_rz(DU_rz_t[t], masked), mask, out=dh)
        h_in = hs[:-1] if mask is None else hs[:-1] * mask
        d_W_hh = torch.cat([matmul_steps(DU_rz, h_in), matmul_steps(DU_n, RH)])
        dx, d_W_ih = input_grads(dGX, x, W_ih, ctx.needs_input_grad[0])
        d_ln_ih = d_ln_hh = None
        if layer_norm:
            d_ln_ih, d_ln_hh, d_bias = acc.to(Z.dtype).split(3 * H)
        else:
            d_bias = dGX.sum((0, 1))
    return (dx, dh, d_W_ih, d_W_hh, d_bias if ctx.has_bias else None, None, d_ln_ih, d_ln_hh, None, None, None, None,
            None, None)  # fmt: skip
