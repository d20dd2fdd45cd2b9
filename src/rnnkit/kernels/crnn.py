"""The vanilla RNN recurrence with each step's element-wise work in C (``_rnn.c``): float32 on the CPU.

:class:`rnnkit.kernels.rnn.RNNRecurrence` hands its forward and backward here when :func:`applies`: the
loops of ``rnn.py`` (one GEMM per step by torch, the weight gradients as GEMMs over all steps) with the
rest of a step in one C call, as :mod:`rnnkit.kernels.clstm` does for the LSTM. Covers tanh and relu,
layer norm, recurrent dropout, zoneout and lengths; ``RNNKIT_C_CELLS=0`` turns the C steps off.
"""

from __future__ import annotations

import ctypes

import torch
from torch import Tensor

from rnnkit.kernels.common import Scratch, input_grads, matmul_steps, mixing_coefficients, project_inputs
from rnnkit.kernels.native import full_mask, load_library, ptr, struct_fields, switched_on


class _Forward(ctypes.Structure):  # rk_rnn_forward in _rnn.c
    _fields_ = struct_fields("B H threads t relu", "gx gh ln_ih ln_hh bias rstd_x rstd_h hs zh valid C")


class _Backward(ctypes.Structure):  # rk_rnn_backward
    _fields_ = struct_fields("B H threads t", "dh base d_hs u C y_x y_h rstd_x rstd_h ln_ih ln_hh D dGX DU acc")


_LIB = load_library("_rnn")


def available() -> bool:
    """Whether the C steps were built and are switched on."""
    return _LIB is not None and switched_on("RNNKIT_C_CELLS")


def applies(x: Tensor, W_hh: Tensor) -> bool:
    """Whether this recurrence runs its steps in C (see the module doc)."""
    return available() and x.device.type == "cpu" and x.dtype == torch.float32 and W_hh.dtype == torch.float32


def forward(ctx, x, h0, W_ih, W_hh, bias, ln_ih, ln_hh, rec_mask, zh, valid, relu, needs_grad) -> Tensor:
    """The forward of RNNRecurrence (same arguments): hs[1:]."""
    T, B = x.shape[:2]
    H = W_hh.shape[1]
    layer_norm = ln_ih is not None
    GX = project_inputs(x, W_ih, None if layer_norm else bias)  # layer norm: the normalised W_ih x on return
    gh = torch.empty_like(GX) if layer_norm else None  # the normalised W_hh h on return
    ctx.has_bias = bias is not None
    if layer_norm and bias is None:
        bias = GX.new_zeros(H)
    hs = GX.new_empty(T + 1, B, H)
    hs[0] = h0
    zh_full = full_mask(zh, (T, B, H))
    valid_rows = None if valid is None else valid.reshape(T, B).contiguous()  # bool: one byte, 0 or 1
    with Scratch() as scratch:
        keep = (lambda shape: GX.new_empty(shape)) if needs_grad else (lambda shape: scratch.empty(shape, GX))
        C = keep((T, B, H))
        rstd_x, rstd_h = (keep((T, B)), keep((T, B))) if layer_norm else (None, None)
        args = _Forward(
            B, H, torch.get_num_threads(), 0, int(relu), ptr(GX), ptr(gh), ptr(ln_ih), ptr(ln_hh),
            ptr(bias) if layer_norm else None, ptr(rstd_x), ptr(rstd_h), ptr(hs), ptr(zh_full), ptr(valid_rows), ptr(C),
        )  # fmt: skip
        step, ref = _LIB.rk_rnn_forward_step, ctypes.byref(args)
        W_t = W_hh.t()
        hs_t, gx_t = hs.unbind(0), GX.unbind(0)
        gh_t = gh.unbind(0) if gh is not None else None
        h_in = scratch.empty((B, H), GX) if rec_mask is not None else None
        for t in range(T):
            h = hs_t[t] if rec_mask is None else torch.mul(hs_t[t], rec_mask, out=h_in)
            if gh_t is not None:
                torch.mm(h, W_t, out=gh_t[t])
            else:
                gx_t[t].addmm_(h, W_t)
            args.t = t
            step(ref)
    if needs_grad:
        y_x, y_h = (GX, gh) if layer_norm else (None, None)
        ctx.save_for_backward(x, W_ih, W_hh, hs, C, y_x, y_h, rstd_x, rstd_h, ln_ih, ln_hh, rec_mask, zh, valid)
    return hs[1:]


def backward(ctx, d_hs: Tensor) -> tuple:
    """The backward of RNNRecurrence for a forward that ran in :func:`forward`."""
    x, W_ih, W_hh, hs, C, y_x, y_h, rstd_x, rstd_h, ln_ih, ln_hh, rec_mask, zh, valid = ctx.saved_tensors
    T, B, H = C.shape
    layer_norm = ln_ih is not None
    d_hs = d_hs.contiguous()
    dh = d_hs[T - 1].clone()  # the gradient of the carried h, step after step; at the end that of h_0
    u = full_mask(mixing_coefficients(zh, valid, C.dtype), (T, B, H))
    acc = torch.zeros(3 * H, dtype=torch.float64) if layer_norm else None
    with Scratch() as scratch:  # D, dGX and DU never leave this backward
        D = scratch.empty((T, B, H), C)
        dGX, DU = (scratch.empty((T, B, H), C), scratch.empty((T, B, H), C)) if layer_norm else (D, D)
        base = scratch.empty((B, H), C)
        args = _Backward(
            B, H, torch.get_num_threads(), 0, ptr(dh), ptr(base), ptr(d_hs), ptr(u), ptr(C), ptr(y_x), ptr(y_h),
            ptr(rstd_x), ptr(rstd_h), ptr(ln_ih), ptr(ln_hh), ptr(D), ptr(dGX) if layer_norm else None,
            ptr(DU) if layer_norm else None, ptr(acc),
        )  # fmt: skip
        step, ref = _LIB.rk_rnn_backward_step, ctypes.byref(args)
        DU_t = DU.unbind(0)
        masked = scratch.empty((B, H), C) if rec_mask is not None else None
        for t in range(T - 1, -1, -1):
            args.t = t
            step(ref)
            if rec_mask is None:
                torch.addmm(base, DU_t[t], W_hh, out=dh)
            else:
                torch.addcmul(base, torch.mm(DU_t[t], W_hh, out=masked), rec_mask, out=dh)
        h_in = hs[:-1] if rec_mask is None else hs[:-1] * rec_mask
        d_W_hh = matmul_steps(DU, h_in)
        dx, d_W_ih = input_grads(dGX, x, W_ih, ctx.needs_input_grad[0])
        d_ln_ih = d_ln_hh = None
        if layer_norm:
            d_ln_ih, d_ln_hh, d_bias = acc.to(C.dtype).split(H)
        else:
            d_bias = D.sum((0, 1))
    return (dx, dh, d_W_ih, d_W_hh, d_bias if ctx.has_bias else None, d_ln_ih, d_ln_hh, None, None, None, None,
            None)  # fmt: skip
