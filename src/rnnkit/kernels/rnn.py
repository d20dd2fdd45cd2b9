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

from rnnkit.kernels.common import (
    compiled,
    gate_norm_grad,
    gate_norm_step,
    matmul_steps,
    mix_state,
    mixing_coefficients,
    normalized,
    split_grad,
    stack_stats,
)


def rnn_forward_loop(
    GX: Tensor,  # (T, B, H)
    W_hh: Tensor,  # (H, H)
    hs: Tensor,  # (T + 1, B, H) carried h; hs[0] = h_0
    hnew: Tensor | None,  # (T, B, H) h before mixing (when there is mixing)
    relu: bool,
    ln_gain: Tensor | None,
    gh_raw: Tensor | None,  # (T, B, H)
    rec_mask: Tensor | None,
    zh: Tensor | None,
    valid: Tensor | None,
) -> list[Tensor]:
    T = GX.shape[0]
    W_t = W_hh.t()
    stats: list[Tensor] = []
    for t in range(T):
        h_prev = hs[t]
        h_in = h_prev if rec_mask is None else h_prev * rec_mask
        h = hs[t + 1] if hnew is None else hnew[t]
        if ln_gain is not None and gh_raw is not None:
            torch.mm(h_in, W_t, out=gh_raw[t])
            torch.addcmul(GX[t], gate_norm_step(gh_raw[t], 1, stats), ln_gain, out=h)
        else:
            torch.addmm(GX[t], h_in, W_t, out=h)
        if relu:
            h.relu_()
        else:
            h.tanh_()
        if hnew is not None:
            mix_state(h, h_prev, None if zh is None else zh[t], None if valid is None else valid[t], hs[t + 1])
    return stats


def rnn_backward_loop(
    d_hs: Tensor,  # (T, B, H)
    W_hh: Tensor,
    C: Tensor,  # (T, B, H) derivative of the nonlinearity
    D: Tensor,  # (T, B, H) out: gradient of the pre-activations
    ln_gain: Tensor | None,
    gh_raw: Tensor | None,
    stats: Tensor | None,
    DU: Tensor | None,  # (T, B, H) out: gradient of the raw W_hh h (layer norm only)
    rec_mask: Tensor | None,
    U: Tensor | None,
) -> Tensor:
    T = C.shape[0]
    zero = torch.zeros_like(d_hs[0])
    dh = d_hs[T - 1]
    for t in range(T - 1, -1, -1):
        dh_new, carry = split_grad(dh, None if U is None else U[t])
        d = D[t]
        torch.mul(dh_new, C[t], out=d)
        du = d
        if ln_gain is not None and gh_raw is not None and stats is not None and DU is not None:
            du = DU[t]
            du.copy_(gate_norm_grad(d * ln_gain, gh_raw[t], 1, stats[t, 0], stats[t, 1]))
        base = d_hs[t - 1] if t > 0 else zero
        if rec_mask is not None:
            dh = torch.addcmul(base, torch.mm(du, W_hh), rec_mask)
        else:
            dh = torch.addmm(base, du, W_hh)
        if carry is not None:
            dh.add_(carry)
    return dh


class RNNRecurrence(torch.autograd.Function):
    """``hs = RNNRecurrence.apply(GX, h0, W_hh, ln_gain, rec_mask, zh, valid, relu, needs_grad)``: the
    carried h for every step (T, B, H); options None when off, masks as for the LSTM."""

    @staticmethod
    def forward(ctx, GX, h0, W_hh, ln_gain, rec_mask, zh, valid, relu, needs_grad):
        T, B, H = GX.shape
        hs = GX.new_empty(T + 1, B, H)
        hs[0] = h0
        mixed = zh is not None or valid is not None
        hnew = torch.empty_like(GX) if mixed else None
        gh_raw = torch.empty_like(GX) if ln_gain is not None else None
        stats = compiled(rnn_forward_loop)(GX, W_hh, hs, hnew, relu, ln_gain, gh_raw, rec_mask, zh, valid)
        if needs_grad:
            h = hs[1:] if hnew is None else hnew
            if relu:
                C = (h > 0).to(h.dtype)
            elif hnew is not None:
                C = hnew.mul_(hnew).neg_().add_(1.0)  # 1 - h^2, in h's own buffer
            else:
                C = torch.addcmul(torch.ones_like(h), h, h, value=-1)
            ctx.save_for_backward(W_hh, hs, C, ln_gain, gh_raw, stack_stats(stats) if stats else None,
                                  rec_mask, zh, valid)  # fmt: skip
        return hs[1:]

    @staticmethod
    @once_differentiable
    def backward(ctx, d_hs):
        W_hh, hs, C, ln_gain, gh_raw, stats, rec_mask, zh, valid = ctx.saved_tensors
        D = torch.empty_like(C)
        DU = torch.empty_like(C) if ln_gain is not None else None
        U = mixing_coefficients(zh, valid, C.dtype)
        dh0 = compiled(rnn_backward_loop)(d_hs.contiguous(), W_hh, C, D, ln_gain, gh_raw, stats, DU, rec_mask, U)
        h_in = hs[:-1] if rec_mask is None else hs[:-1] * rec_mask
        d_W = matmul_steps(D if DU is None else DU, h_in)
        d_gain = None
        if ln_gain is not None:
            d_gain = (D.unsqueeze(2) * normalized(gh_raw, stats, 1)).sum((0, 1)).flatten()
        return D, dh0, d_W, d_gain, None, None, None, None, None
