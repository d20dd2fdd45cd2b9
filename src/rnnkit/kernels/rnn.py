"""The vanilla RNN recurrence as one autograd Function with hand-written BPTT.

Per step, as :class:`rnnkit.cells.RNNCell`: ``h_t = sigma(GX_t + [LN] W_hh h_in)`` (GX from one GEMM
before the loop, biases folded in), then zoneout and the lengths mix h_t with h_{t-1}. Backward:
``d_pre = dh * sigma'`` with the derivative saved by the forward (``1 - h^2`` for tanh, ``h > 0`` for
relu), ``dh_{t-1} = d_pre W_hh``, and ``dW_hh = sum_t d_pre_t^T h_{t-1}`` as one GEMM.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

from rnnkit.kernels import crnn
from rnnkit.kernels.common import (
    Scratch,
    compiled,
    gate_norm_step,
    input_grads,
    input_side,
    matmul_steps,
    mix_state,
    mixing_coefficients,
    norm_grad_step,
    project_inputs,
    save_lists,
    saved_lists,
    split_grad,
)


def rnn_forward_loop(
    GX: Tensor,  # (T, B, H) W_ih x + b_ih + b_hh, or the raw W_ih x with layer norm
    W_hh: Tensor,  # (H, H)
    bias: Tensor | None,  # (H,) b_ih + b_hh with layer norm only
    hs: Tensor,  # (T + 1, B, H) carried h; hs[0] = h_0
    hnew: Tensor | None,  # (T, B, H) h before mixing (when there is mixing)
    relu: bool,
    ln_ih: Tensor | None,
    ln_hh: Tensor | None,
    gh_raw: Tensor | None,  # (T, B, H)
    rec_mask: Tensor | None,
    zh: Tensor | None,
    valid: Tensor | None,
) -> tuple[list[Tensor], list[Tensor], list[Tensor], list[Tensor]]:
    T = GX.shape[0]
    W_t = W_hh.t()
    ys_x: list[Tensor] = []
    stats_x: list[Tensor] = []
    ys_h: list[Tensor] = []
    stats_h: list[Tensor] = []
    GX_t = GX.unbind(0)
    hs_t = hs.unbind(0)  # per-step views made once: indexing inside the loop would cost an op each time
    for t in range(T):
        h_prev = hs_t[t]
        h_in = h_prev if rec_mask is None else h_prev * rec_mask
        h = hs_t[t + 1] if hnew is None else hnew[t]
        if ln_ih is not None and ln_hh is not None and gh_raw is not None:
            input_side(GX[t], ln_ih, bias, 1, ys_x, stats_x, h)
            torch.mm(h_in, W_t, out=gh_raw[t])
            y = gate_norm_step(gh_raw[t], 1, stats_h)
            ys_h.append(y)
            h.addcmul_(y, ln_hh)
        else:
            torch.addmm(GX_t[t], h_in, W_t, out=h)
        if relu:
            h.relu_()
        else:
            h.tanh_()
        if hnew is not None:
            mix_state(h, h_prev, None if zh is None else zh[t], None if valid is None else valid[t], hs_t[t + 1])
    return ys_x, stats_x, ys_h, stats_h


def rnn_backward_loop(
    d_hs: Tensor,  # (T, B, H)
    W_hh: Tensor,
    C: Tensor,  # (T, B, H) derivative of the nonlinearity
    D: Tensor,  # (T, B, H) out: gradient of the pre-activations
    GX: Tensor,
    ln_ih: Tensor | None,
    ln_hh: Tensor | None,
    gh_raw: Tensor | None,
    ys_x: list[Tensor],
    stats_x: list[Tensor],
    ys_h: list[Tensor],
    stats_h: list[Tensor],
    acc: Tensor | None,  # (3, B, H) out: sums over steps for ln_ih, ln_hh and the bias
    dGX: Tensor | None,  # (T, B, H) out: gradient of the raw W_ih x (layer norm only)
    DU: Tensor | None,  # (T, B, H) out: gradient of the raw W_hh h (layer norm only)
    rec_mask: Tensor | None,
    U: Tensor | None,
) -> Tensor:
    T = C.shape[0]
    zero = torch.zeros_like(d_hs[0])
    dh = d_hs[T - 1]
    d_hs_t, C_t, D_t = d_hs.unbind(0), C.unbind(0), D.unbind(0)
    for t in range(T - 1, -1, -1):
        dh_new, carry = split_grad(dh, None if U is None else U[t])
        d = D_t[t]
        torch.mul(dh_new, C_t[t], out=d)
        du = d
        if ln_ih is not None and ln_hh is not None and gh_raw is not None:
            if acc is not None and dGX is not None and DU is not None:
                norm_grad_step(d, ln_ih, GX[t], ys_x[t], stats_x[2 * t], stats_x[2 * t + 1], 1, acc[0], dGX[t])
                norm_grad_step(d, ln_hh, gh_raw[t], ys_h[t], stats_h[2 * t], stats_h[2 * t + 1], 1, acc[1], DU[t])
                acc[2].add_(d)
                du = DU[t]
        base = d_hs_t[t - 1] if t > 0 else zero
        if rec_mask is not None:
            dh = torch.addcmul(base, torch.mm(du, W_hh), rec_mask)
        else:
            dh = torch.addmm(base, du, W_hh)
        if carry is not None:
            dh.add_(carry)
    return dh


class RNNRecurrence(torch.autograd.Function):
    """``hs = RNNRecurrence.apply(x, h0, W_ih, W_hh, bias, ln_ih, ln_hh, rec_mask, zh, valid, relu, needs_grad, plan)``:
    the carried h for every step (T, B, H). Arguments as for the LSTM; options None when off."""

    @staticmethod
    def forward(ctx, x, h0, W_ih, W_hh, bias, ln_ih, ln_hh, rec_mask, zh, valid, relu, needs_grad, plan):
        ctx.plan = plan
        if plan.c_steps:  # the same loops with each step's element-wise work in C
            return crnn.forward(ctx, x, h0, W_ih, W_hh, bias, ln_ih, ln_hh, rec_mask, zh, valid, relu, needs_grad)
        GX = project_inputs(x, W_ih, None if ln_ih is not None else bias)
        T, B, H = GX.shape
        hs = GX.new_empty(T + 1, B, H)
        hs[0] = h0
        mixed = zh is not None or valid is not None
        hnew = torch.empty_like(GX) if mixed else None
        gh_raw = torch.empty_like(GX) if ln_hh is not None else None
        loop = compiled(rnn_forward_loop, plan.jit)
        lists = loop(GX, W_hh, bias, hs, hnew, relu, ln_ih, ln_hh, gh_raw, rec_mask, zh, valid)
        if needs_grad:
            h = hs[1:] if hnew is None else hnew
            if relu:
                C = (h > 0).to(h.dtype)
            elif hnew is not None:
                C = hnew.mul_(hnew).neg_().add_(1.0)  # 1 - h^2, in h's own buffer
            else:
                C = torch.addcmul(torch.ones_like(h), h, h, value=-1)
            fixed = [x, GX if ln_ih is not None else None, W_ih, W_hh, hs, C, bias, ln_ih, ln_hh, gh_raw, rec_mask,
                     zh, valid]  # fmt: skip
            save_lists(ctx, fixed, *lists)
        return hs[1:]

    @staticmethod
    @once_differentiable
    def backward(ctx, d_hs):
        if ctx.plan.c_steps:
            return crnn.backward(ctx, d_hs)
        fixed, ys_x, stats_x, ys_h, stats_h = saved_lists(ctx)
        x, GX, W_ih, W_hh, hs, C, bias, ln_ih, ln_hh, gh_raw, rec_mask, zh, valid = fixed
        T, B, H = C.shape
        layer_norm = ln_ih is not None
        with Scratch() as scratch:  # D, dGX and DU never leave this backward
            D = scratch.empty(C.shape, C)
            acc = C.new_zeros(3, B, H) if layer_norm else None
            dGX = scratch.empty(C.shape, C) if layer_norm else None
            DU = scratch.empty(C.shape, C) if layer_norm else None
            U = mixing_coefficients(zh, valid, C.dtype)
            dh0 = compiled(rnn_backward_loop, ctx.plan.jit)(
                d_hs.contiguous(), W_hh, C, D, GX if layer_norm else C, ln_ih, ln_hh, gh_raw, ys_x, stats_x, ys_h,
                stats_h, acc, dGX, DU, rec_mask, U,
            )  # fmt: skip
            h_in = hs[:-1] if rec_mask is None else hs[:-1] * rec_mask
            d_W = matmul_steps(D if DU is None else DU, h_in)
            d_ln_ih = d_ln_hh = None
            if layer_norm:
                d_ln_ih, d_ln_hh, d_bias = acc.sum(1).unbind(0)
            else:
                dGX, d_bias = D, D.sum((0, 1))
            dx, d_W_ih = input_grads(dGX, x, W_ih, ctx.needs_input_grad[0])
        d_bias = d_bias if bias is not None else None
        return dx, dh0, d_W_ih, d_W, d_bias, d_ln_ih, d_ln_hh, None, None, None, None, None, None
