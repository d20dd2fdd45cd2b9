"""The GRU recurrence, both reset forms, as one autograd Function with hand-written BPTT.

Input: ``GX`` (T, B, 3H), the input side of the pre-activations for every step (layer norm and the
biases folded in; for ``reset="after"`` the recurrent bias ``b_hh`` stays inside the loop because
``b_hn`` is multiplied by r). Per step, as :class:`rnnkit.cells.GRUCell`::

    after:  gh = [LN] W_hh h_in + b_hh;  r, z = sigma(GX_rz + gh_rz);  n = tanh(GX_n + r * gh_n)
    before: r, z = sigma(GX_rz + [LN] W_hrz h_in);  n = tanh(GX_n + [LN] W_hn (r * h_in))
    h_t = n + z * (h_{t-1} - n),   h_in = h_{t-1} * recurrent-dropout mask,  then zoneout / lengths

Backward, with dh the gradient of the new h: every pre-activation gradient is dh times a factor the
forward saved, so a step is one broadcast product and one GEMM ("before" needs a second GEMM since n
reads W_hn (r * h))::

    after:  (d_r, d_z, d_n^h, d_n^x) = dh * ((1-z)(1-n^2) gh_n r(1-r), (h_{t-1} - n) z(1-z),
                                             (1-z)(1-n^2) r, (1-z)(1-n^2))
            dh_{t-1} = dh z + (d_r, d_z, d_n^h) W_hh
    before: (d_z, d_n) = dh * ((h_{t-1} - n) z(1-z), (1-z)(1-n^2));  d(rh) = d_n W_hn
            d_r = d(rh) h_in r(1-r);  dh_{t-1} = dh z + d(rh) r + (d_r, d_z) W_hrz
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


def gru_after_forward_loop(
    GX: Tensor,  # (T, B, 3H)
    W_hh: Tensor,  # (3H, H)
    b_hh: Tensor | None,  # (3H,)
    hs: Tensor,  # (T + 1, B, H) carried h; hs[0] = h_0
    G: Tensor,  # (T, B, 4H) r, z, n and gh_n
    ln_gain: Tensor | None,
    gh_raw: Tensor | None,  # (T, B, 3H)
    rec_mask: Tensor | None,
    zh: Tensor | None,
    valid: Tensor | None,
) -> list[Tensor]:
    T, B, H = GX.shape[0], GX.shape[1], hs.shape[2]
    W_t = W_hh.t()
    stats: list[Tensor] = []
    gh = GX.new_empty(B, 3 * H)
    h_scratch = torch.empty_like(hs[0])
    mixed = zh is not None or valid is not None
    for t in range(T):
        h_prev = hs[t]
        h_in = h_prev if rec_mask is None else h_prev * rec_mask
        if ln_gain is not None and gh_raw is not None:
            torch.mm(h_in, W_t, out=gh_raw[t])
            y = gate_norm_step(gh_raw[t], 3, stats)
            if b_hh is not None:
                torch.addcmul(b_hh, y, ln_gain, out=gh)
            else:
                torch.mul(y, ln_gain, out=gh)
        elif b_hh is not None:
            torch.addmm(b_hh, h_in, W_t, out=gh)
        else:
            torch.mm(h_in, W_t, out=gh)
        g = G[t]
        rz = g[:, : 2 * H]
        torch.add(GX[t, :, : 2 * H], gh[:, : 2 * H], out=rz)
        rz.sigmoid_()
        r, z, n = g[:, :H], g[:, H : 2 * H], g[:, 2 * H : 3 * H]
        torch.addcmul(GX[t, :, 2 * H :], r, gh[:, 2 * H :], out=n)
        n.tanh_()
        g[:, 3 * H :].copy_(gh[:, 2 * H :])
        h_new = h_scratch if mixed else hs[t + 1]
        torch.addcmul(n, z, h_prev - n, out=h_new)
        if mixed:
            mix_state(h_new, h_prev, None if zh is None else zh[t], None if valid is None else valid[t], hs[t + 1])
    return stats


def gru_after_backward_loop(
    d_hs: Tensor,  # (T, B, H)
    W_hh: Tensor,
    C: Tensor,  # (T, B, 4H) factors for (d_r, d_z, d_n^h, d_n^x)
    Z: Tensor,  # (T, B, H) update gate
    D: Tensor,  # (T, B, 4H) out
    ln_gain: Tensor | None,
    gh_raw: Tensor | None,
    stats: Tensor | None,  # (T, 2, B, 3, 1)
    DU: Tensor | None,  # (T, B, 3H) out: gradient of the raw W_hh h (layer norm only)
    rec_mask: Tensor | None,
    U: Tensor | None,
) -> Tensor:
    T, B, H = C.shape[0], C.shape[1], Z.shape[2]
    zero = torch.zeros_like(d_hs[0])
    dh = d_hs[T - 1]
    for t in range(T - 1, -1, -1):
        dh_new, carry = split_grad(dh, None if U is None else U[t])
        d = D[t]
        torch.mul(C[t].view(B, 4, H), dh_new.unsqueeze(1), out=d.view(B, 4, H))
        du = d[:, : 3 * H]
        if ln_gain is not None and gh_raw is not None and stats is not None and DU is not None:
            du = DU[t]
            du.copy_(gate_norm_grad(d[:, : 3 * H] * ln_gain, gh_raw[t], 3, stats[t, 0], stats[t, 1]))
        base = d_hs[t - 1] if t > 0 else zero
        dh = torch.addcmul(base, dh_new, Z[t])
        if rec_mask is not None:
            dh.addcmul_(torch.mm(du, W_hh), rec_mask)
        else:
            dh.addmm_(du, W_hh)
        if carry is not None:
            dh.add_(carry)
    return dh


def gru_before_forward_loop(
    GX: Tensor,  # (T, B, 3H)
    W_hh: Tensor,  # (3H, H)
    hs: Tensor,  # (T + 1, B, H)
    G: Tensor,  # (T, B, 3H) r, z, n
    RH: Tensor,  # (T, B, H) r * h_in
    ln_gain: Tensor | None,
    gh_rz: Tensor | None,  # (T, B, 2H) raw W_hrz h_in
    gh_n: Tensor | None,  # (T, B, H) raw W_hn (r * h_in)
    rec_mask: Tensor | None,
    zh: Tensor | None,
    valid: Tensor | None,
) -> tuple[list[Tensor], list[Tensor]]:
    T, H = GX.shape[0], hs.shape[2]
    W_rz_t, W_n_t = W_hh[: 2 * H].t(), W_hh[2 * H :].t()
    stats_rz: list[Tensor] = []
    stats_n: list[Tensor] = []
    h_scratch = torch.empty_like(hs[0])
    mixed = zh is not None or valid is not None
    for t in range(T):
        h_prev = hs[t]
        h_in = h_prev if rec_mask is None else h_prev * rec_mask
        g = G[t]
        rz = g[:, : 2 * H]
        if ln_gain is not None and gh_rz is not None and gh_n is not None:
            torch.mm(h_in, W_rz_t, out=gh_rz[t])
            torch.addcmul(GX[t, :, : 2 * H], gate_norm_step(gh_rz[t], 2, stats_rz), ln_gain[: 2 * H], out=rz)
        else:
            torch.addmm(GX[t, :, : 2 * H], h_in, W_rz_t, out=rz)
        rz.sigmoid_()
        r, z, n = g[:, :H], g[:, H : 2 * H], g[:, 2 * H :]
        torch.mul(r, h_in, out=RH[t])
        if ln_gain is not None and gh_rz is not None and gh_n is not None:
            torch.mm(RH[t], W_n_t, out=gh_n[t])
            torch.addcmul(GX[t, :, 2 * H :], gate_norm_step(gh_n[t], 1, stats_n), ln_gain[2 * H :], out=n)
        else:
            torch.addmm(GX[t, :, 2 * H :], RH[t], W_n_t, out=n)
        n.tanh_()
        h_new = h_scratch if mixed else hs[t + 1]
        torch.addcmul(n, z, h_prev - n, out=h_new)
        if mixed:
            mix_state(h_new, h_prev, None if zh is None else zh[t], None if valid is None else valid[t], hs[t + 1])
    return stats_rz, stats_n


def gru_before_backward_loop(
    d_hs: Tensor,  # (T, B, H)
    W_hh: Tensor,
    C: Tensor,  # (T, B, 3H) factors h_in r(1-r), (h_prev - n) z(1-z), (1-z)(1-n^2)
    Z: Tensor,  # (T, B, H) update gate
    R: Tensor,  # (T, B, H) reset gate
    D: Tensor,  # (T, B, 3H) out: gradient of the pre-activations
    ln_gain: Tensor | None,
    gh_rz: Tensor | None,
    gh_n: Tensor | None,
    stats_rz: Tensor | None,
    stats_n: Tensor | None,
    DU_rz: Tensor | None,  # (T, B, 2H) out (layer norm only)
    DU_n: Tensor | None,  # (T, B, H) out (layer norm only)
    rec_mask: Tensor | None,
    U: Tensor | None,
) -> Tensor:
    T, B, H = C.shape[0], C.shape[1], Z.shape[2]
    W_rz, W_n = W_hh[: 2 * H], W_hh[2 * H :]
    zero = torch.zeros_like(d_hs[0])
    dh = d_hs[T - 1]
    for t in range(T - 1, -1, -1):
        dh_new, carry = split_grad(dh, None if U is None else U[t])
        d = D[t]
        torch.mul(C[t, :, H:].view(B, 2, H), dh_new.unsqueeze(1), out=d[:, H:].view(B, 2, H))
        du_n = d[:, 2 * H :]
        du_rz = d[:, : 2 * H]
        layer_norm = ln_gain is not None and gh_rz is not None and gh_n is not None
        if layer_norm and ln_gain is not None and gh_n is not None and stats_n is not None and DU_n is not None:
            du_n = DU_n[t]
            du_n.copy_(gate_norm_grad(d[:, 2 * H :] * ln_gain[2 * H :], gh_n[t], 1, stats_n[t, 0], stats_n[t, 1]))
        d_rh = torch.mm(du_n, W_n)
        torch.mul(d_rh, C[t, :, :H], out=d[:, :H])
        if layer_norm and ln_gain is not None and gh_rz is not None and stats_rz is not None and DU_rz is not None:
            du_rz = DU_rz[t]
            du_rz.copy_(gate_norm_grad(d[:, : 2 * H] * ln_gain[: 2 * H], gh_rz[t], 2, stats_rz[t, 0], stats_rz[t, 1]))
        d_hin = torch.addmm(d_rh * R[t], du_rz, W_rz)
        base = d_hs[t - 1] if t > 0 else zero
        dh = torch.addcmul(base, dh_new, Z[t])
        if rec_mask is not None:
            dh.addcmul_(d_hin, rec_mask)
        else:
            dh.add_(d_hin)
        if carry is not None:
            dh.add_(carry)
    return dh


class GRURecurrence(torch.autograd.Function):
    """``hs = GRURecurrence.apply(GX, h0, W_hh, b_hh, ln_gain, rec_mask, zh, valid, before, needs_grad)``:
    the carried h for every step (T, B, H). ``b_hh`` only for reset="after" (None otherwise or without
    bias); options None when off; masks as in :class:`rnnkit.kernels.lstm.LSTMRecurrence`."""

    @staticmethod
    def forward(ctx, GX, h0, W_hh, b_hh, ln_gain, rec_mask, zh, valid, before, needs_grad):
        T, B, G3 = GX.shape
        H = G3 // 3
        hs = GX.new_empty(T + 1, B, H)
        hs[0] = h0
        h_in = None
        ctx.before = before
        if before:
            G, RH = torch.empty_like(GX), GX.new_empty(T, B, H)
            gh_rz = GX.new_empty(T, B, 2 * H) if ln_gain is not None else None
            gh_n = GX.new_empty(T, B, H) if ln_gain is not None else None
            stats_rz, stats_n = compiled(gru_before_forward_loop)(
                GX, W_hh, hs, G, RH, ln_gain, gh_rz, gh_n, rec_mask, zh, valid
            )
            if needs_grad:
                h_in = hs[:-1] if rec_mask is None else hs[:-1] * rec_mask
                r, z, n = G.chunk(3, dim=-1)
                Z, R = z.clone(), r.clone()
                _update_factors(z, n, hs[:-1], Z)
                r.addcmul_(r, r, value=-1).mul_(h_in)  # h_in r (1 - r)
                stats = [stack_stats(s) if s else None for s in (stats_rz, stats_n)]
                ctx.save_for_backward(W_hh, hs, G, Z, R, RH, ln_gain, gh_rz, gh_n, *stats, rec_mask, zh, valid)
        else:
            G = GX.new_empty(T, B, 4 * H)
            gh_raw = torch.empty_like(GX) if ln_gain is not None else None
            stats = compiled(gru_after_forward_loop)(GX, W_hh, b_hh, hs, G, ln_gain, gh_raw, rec_mask, zh, valid)
            if needs_grad:
                r, z, n, ghn = G.chunk(4, dim=-1)
                Z = z.clone()
                _update_factors(z, n, hs[:-1], Z)
                tmp = torch.addcmul(r, r, r, value=-1)  # r (1 - r)
                tmp.mul_(ghn).mul_(n)  # d_r factor
                ghn.copy_(n)  # d_n^x factor (1 - z)(1 - n^2)
                n.mul_(r)  # d_n^h factor
                r.copy_(tmp)
                ctx.save_for_backward(W_hh, hs, G, Z, b_hh, ln_gain, gh_raw, stack_stats(stats) if stats else None,
                                      rec_mask, zh, valid)  # fmt: skip
        return hs[1:]

    @staticmethod
    @once_differentiable
    def backward(ctx, d_hs):
        d_hs = d_hs.contiguous()
        if ctx.before:
            W_hh, hs, C, Z, R, RH, ln_gain, gh_rz, gh_n, stats_rz, stats_n, rec_mask, zh, valid = ctx.saved_tensors
            T, B, H = Z.shape
            D = torch.empty_like(C)
            DU_rz = C.new_empty(T, B, 2 * H) if ln_gain is not None else None
            DU_n = C.new_empty(T, B, H) if ln_gain is not None else None
            U = mixing_coefficients(zh, valid, C.dtype)
            dh0 = compiled(gru_before_backward_loop)(
                d_hs, W_hh, C, Z, R, D, ln_gain, gh_rz, gh_n, stats_rz, stats_n, DU_rz, DU_n, rec_mask, U
            )
            h_in = hs[:-1] if rec_mask is None else hs[:-1] * rec_mask
            D_rz = D[..., : 2 * H] if DU_rz is None else DU_rz
            D_n = D[..., 2 * H :] if DU_n is None else DU_n
            d_W = torch.cat([matmul_steps(D_rz, h_in), matmul_steps(D_n, RH)])
            d_gain = None
            if ln_gain is not None:
                d_gain = torch.cat([
                    (D[..., : 2 * H].reshape(T, B, 2, H) * normalized(gh_rz, stats_rz, 2)).sum((0, 1)).flatten(),
                    (D[..., 2 * H :].reshape(T, B, 1, H) * normalized(gh_n, stats_n, 1)).sum((0, 1)).flatten(),
                ])  # fmt: skip
            return D, dh0, d_W, None, d_gain, None, None, None, None, None
        W_hh, hs, C, Z, b_hh, ln_gain, gh_raw, stats, rec_mask, zh, valid = ctx.saved_tensors
        T, B, H = Z.shape
        D = torch.empty_like(C)
        DU = C.new_empty(T, B, 3 * H) if ln_gain is not None else None
        U = mixing_coefficients(zh, valid, C.dtype)
        dh0 = compiled(gru_after_backward_loop)(d_hs, W_hh, C, Z, D, ln_gain, gh_raw, stats, DU, rec_mask, U)
        h_in = hs[:-1] if rec_mask is None else hs[:-1] * rec_mask
        D_h = D[..., : 3 * H]  # gradient of gh = [LN] W_hh h_in + b_hh
        d_W = matmul_steps(D_h if DU is None else DU, h_in)
        d_b = D_h.sum((0, 1)) if b_hh is not None else None
        d_gain = None
        if ln_gain is not None:
            d_gain = (D_h.reshape(T, B, 3, H) * normalized(gh_raw, stats, 3)).sum((0, 1)).flatten()
        d_GX = torch.cat([D[..., : 2 * H], D[..., 3 * H :]], dim=-1)
        return d_GX, dh0, d_W, d_b, d_gain, None, None, None, None, None


def _update_factors(z: Tensor, n: Tensor, h_prev: Tensor, Z: Tensor) -> None:
    """In place: z <- (h_prev - n) z (1 - z), n <- (1 - z)(1 - n^2), with Z a copy of the gate z."""
    diff = h_prev - n
    z.addcmul_(z, z, value=-1).mul_(diff)
    n.mul_(n).neg_().add_(1.0)
    n.addcmul_(n, Z, value=-1)
