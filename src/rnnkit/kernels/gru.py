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

from rnnkit.kernels import cgru
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


def gru_after_forward_loop(
    GX: Tensor,  # (T, B, 3H) W_ih x + b_ih, or the raw W_ih x with layer norm
    W_hh: Tensor,  # (3H, H)
    b_ih: Tensor | None,  # (3H,) with layer norm only (else inside GX)
    b_hh: Tensor | None,  # (3H,)
    hs: Tensor,  # (T + 1, B, H) carried h; hs[0] = h_0
    G: Tensor,  # (T, B, 4H) r, z, n and gh_n
    ln_ih: Tensor | None,
    ln_hh: Tensor | None,
    gh_raw: Tensor | None,  # (T, B, 3H) raw W_hh h_in (layer norm only)
    rec_mask: Tensor | None,
    zh: Tensor | None,
    valid: Tensor | None,
) -> tuple[list[Tensor], list[Tensor], list[Tensor], list[Tensor]]:
    T, B, H = GX.shape[0], GX.shape[1], hs.shape[2]
    W_t = W_hh.t()
    ys_x: list[Tensor] = []
    stats_x: list[Tensor] = []
    ys_h: list[Tensor] = []
    stats_h: list[Tensor] = []
    gh = GX.new_empty(B, 3 * H)
    gx_scratch = GX.new_empty(B, 3 * H)
    h_scratch = torch.empty_like(hs[0])
    mixed = zh is not None or valid is not None
    # per-step views made once: indexing inside the loop would cost an op each time
    hs_t, GX_t = hs.unbind(0), GX.unbind(0)
    rz_t, r_t, z_t = G[:, :, : 2 * H].unbind(0), G[:, :, :H].unbind(0), G[:, :, H : 2 * H].unbind(0)
    n_t, ghn_t = G[:, :, 2 * H : 3 * H].unbind(0), G[:, :, 3 * H :].unbind(0)
    gh_rz, gh_n = gh[:, : 2 * H], gh[:, 2 * H :]
    for t in range(T):
        h_prev = hs_t[t]
        h_in = h_prev if rec_mask is None else h_prev * rec_mask
        gx_rz, gx_n = input_side(GX_t[t], ln_ih, b_ih, 3, ys_x, stats_x, gx_scratch).split([2 * H, H], 1)
        if ln_hh is not None and gh_raw is not None:
            torch.mm(h_in, W_t, out=gh_raw[t])
            y = gate_norm_step(gh_raw[t], 3, stats_h)
            ys_h.append(y)
            if b_hh is not None:
                torch.addcmul(b_hh, y, ln_hh, out=gh)
            else:
                torch.mul(y, ln_hh, out=gh)
        elif b_hh is not None:
            torch.addmm(b_hh, h_in, W_t, out=gh)
        else:
            torch.mm(h_in, W_t, out=gh)
        rz, n = rz_t[t], n_t[t]
        torch.add(gx_rz, gh_rz, out=rz)
        rz.sigmoid_()
        torch.addcmul(gx_n, r_t[t], gh_n, out=n)
        n.tanh_()
        ghn_t[t].copy_(gh_n)
        h_new = h_scratch if mixed else hs_t[t + 1]
        torch.addcmul(n, z_t[t], h_prev - n, out=h_new)
        if mixed:
            mix_state(h_new, h_prev, None if zh is None else zh[t], None if valid is None else valid[t], hs_t[t + 1])
    return ys_x, stats_x, ys_h, stats_h


def gru_after_backward_loop(
    d_hs: Tensor,  # (T, B, H)
    W_hh: Tensor,
    C: Tensor,  # (T, B, 4H) factors for (d_r, d_z, d_n^h, d_n^x)
    Z: Tensor,  # (T, B, H) update gate
    D: Tensor,  # (T, B, 4H) out
    GX: Tensor,
    ln_ih: Tensor | None,
    ln_hh: Tensor | None,
    gh_raw: Tensor | None,
    ys_x: list[Tensor],
    stats_x: list[Tensor],
    ys_h: list[Tensor],
    stats_h: list[Tensor],
    acc: Tensor | None,  # (4, B, 3H) out: sums over steps for ln_ih, ln_hh, b_ih, b_hh
    dGX: Tensor | None,  # (T, B, 3H) out: gradient of the raw W_ih x (layer norm only)
    DU: Tensor | None,  # (T, B, 3H) out: gradient of the raw W_hh h (layer norm only)
    rec_mask: Tensor | None,
    U: Tensor | None,
) -> Tensor:
    T, B, H = C.shape[0], C.shape[1], Z.shape[2]
    zero = torch.zeros_like(d_hs[0])
    dh = d_hs[T - 1]
    d_hs_t, Z_t, D_t = d_hs.unbind(0), Z.unbind(0), D.unbind(0)
    C4, D4 = C.view(T, B, 4, H).unbind(0), D.view(T, B, 4, H).unbind(0)
    for t in range(T - 1, -1, -1):
        dh_new, carry = split_grad(dh, None if U is None else U[t])
        d = D_t[t]
        torch.mul(C4[t], dh_new.unsqueeze(1), out=D4[t])
        du = d[:, : 3 * H]
        if ln_ih is not None and ln_hh is not None and gh_raw is not None:
            if acc is not None and dGX is not None and DU is not None:
                dx = torch.cat([d[:, : 2 * H], d[:, 3 * H :]], 1)
                norm_grad_step(dx, ln_ih, GX[t], ys_x[t], stats_x[2 * t], stats_x[2 * t + 1], 3, acc[0], dGX[t])
                acc[2].add_(dx)
                norm_grad_step(du, ln_hh, gh_raw[t], ys_h[t], stats_h[2 * t], stats_h[2 * t + 1], 3, acc[1], DU[t])
                acc[3].add_(du)
                du = DU[t]
        base = d_hs_t[t - 1] if t > 0 else zero
        dh = torch.addcmul(base, dh_new, Z_t[t])
        if rec_mask is not None:
            dh.addcmul_(torch.mm(du, W_hh), rec_mask)
        else:
            dh.addmm_(du, W_hh)
        if carry is not None:
            dh.add_(carry)
    return dh


def gru_before_forward_loop(
    GX: Tensor,  # (T, B, 3H) W_ih x + b_ih + b_hh, or the raw W_ih x with layer norm
    W_hh: Tensor,  # (3H, H)
    bias: Tensor | None,  # (3H,) b_ih + b_hh with layer norm only
    hs: Tensor,  # (T + 1, B, H)
    G: Tensor,  # (T, B, 3H) r, z, n
    RH: Tensor,  # (T, B, H) r * h_in
    ln_ih: Tensor | None,
    ln_hh: Tensor | None,
    gh_rz: Tensor | None,  # (T, B, 2H) raw W_hrz h_in
    gh_n: Tensor | None,  # (T, B, H) raw W_hn (r * h_in)
    rec_mask: Tensor | None,
    zh: Tensor | None,
    valid: Tensor | None,
) -> tuple[list[Tensor], list[Tensor], list[Tensor], list[Tensor], list[Tensor], list[Tensor]]:
    T, H = GX.shape[0], hs.shape[2]
    W_rz_t, W_n_t = W_hh[: 2 * H].t(), W_hh[2 * H :].t()
    ys_x: list[Tensor] = []
    stats_x: list[Tensor] = []
    ys_rz: list[Tensor] = []
    stats_rz: list[Tensor] = []
    ys_n: list[Tensor] = []
    stats_n: list[Tensor] = []
    h_scratch = torch.empty_like(hs[0])
    mixed = zh is not None or valid is not None
    hs_t, G_t, RH_t = hs.unbind(0), G.unbind(0), RH.unbind(0)
    rz_t, r_t, z_t, n_t = (G[:, :, : 2 * H].unbind(0), G[:, :, :H].unbind(0), G[:, :, H : 2 * H].unbind(0),
                           G[:, :, 2 * H :].unbind(0))  # fmt: skip
    GX_rz, GX_n = GX[:, :, : 2 * H].unbind(0), GX[:, :, 2 * H :].unbind(0)
    layer_norm = ln_ih is not None and ln_hh is not None and gh_rz is not None and gh_n is not None
    for t in range(T):
        h_prev = hs_t[t]
        h_in = h_prev if rec_mask is None else h_prev * rec_mask
        rz, n, rh = rz_t[t], n_t[t], RH_t[t]
        if ln_ih is not None and ln_hh is not None and gh_rz is not None:
            input_side(GX[t], ln_ih, bias, 3, ys_x, stats_x, G_t[t])
            torch.mm(h_in, W_rz_t, out=gh_rz[t])
            y = gate_norm_step(gh_rz[t], 2, stats_rz)
            ys_rz.append(y)
            rz.addcmul_(y, ln_hh[: 2 * H])
        else:
            torch.addmm(GX_rz[t], h_in, W_rz_t, out=rz)
        rz.sigmoid_()
        torch.mul(r_t[t], h_in, out=rh)
        if layer_norm and ln_hh is not None and gh_n is not None:
            torch.mm(rh, W_n_t, out=gh_n[t])
            y = gate_norm_step(gh_n[t], 1, stats_n)
            ys_n.append(y)
            n.addcmul_(y, ln_hh[2 * H :])
        else:
            torch.addmm(GX_n[t], rh, W_n_t, out=n)
        n.tanh_()
        h_new = h_scratch if mixed else hs_t[t + 1]
        torch.addcmul(n, z_t[t], h_prev - n, out=h_new)
        if mixed:
            mix_state(h_new, h_prev, None if zh is None else zh[t], None if valid is None else valid[t], hs_t[t + 1])
    return ys_x, stats_x, ys_rz, stats_rz, ys_n, stats_n


def gru_before_backward_loop(
    d_hs: Tensor,  # (T, B, H)
    W_hh: Tensor,
    C: Tensor,  # (T, B, 3H) factors h_in r(1-r), (h_prev - n) z(1-z), (1-z)(1-n^2)
    Z: Tensor,  # (T, B, H) update gate
    R: Tensor,  # (T, B, H) reset gate
    D: Tensor,  # (T, B, 3H) out: gradient of the pre-activations
    GX: Tensor,
    ln_ih: Tensor | None,
    ln_hh: Tensor | None,
    gh_rz: Tensor | None,
    gh_n: Tensor | None,
    ys_x: list[Tensor],
    stats_x: list[Tensor],
    ys_rz: list[Tensor],
    stats_rz: list[Tensor],
    ys_n: list[Tensor],
    stats_n: list[Tensor],
    acc: Tensor | None,  # (3, B, 3H) out: sums over steps for ln_ih, ln_hh and the bias
    dGX: Tensor | None,  # (T, B, 3H) out (layer norm only)
    DU_rz: Tensor | None,  # (T, B, 2H) out (layer norm only)
    DU_n: Tensor | None,  # (T, B, H) out (layer norm only)
    rec_mask: Tensor | None,
    U: Tensor | None,
) -> Tensor:
    T, B, H = C.shape[0], C.shape[1], Z.shape[2]
    W_rz, W_n = W_hh[: 2 * H], W_hh[2 * H :]
    zero = torch.zeros_like(d_hs[0])
    dh = d_hs[T - 1]
    d_hs_t, Z_t, R_t, D_t = d_hs.unbind(0), Z.unbind(0), R.unbind(0), D.unbind(0)
    C_zn, D_zn = C[:, :, H:].view(T, B, 2, H).unbind(0), D[:, :, H:].view(T, B, 2, H).unbind(0)
    C_r, D_r, D_rz, D_n = (
        C[:, :, :H].unbind(0),
        D[:, :, :H].unbind(0),
        D[:, :, : 2 * H].unbind(0),
        D[:, :, 2 * H :].unbind(0),
    )
    for t in range(T - 1, -1, -1):
        dh_new, carry = split_grad(dh, None if U is None else U[t])
        torch.mul(C_zn[t], dh_new.unsqueeze(1), out=D_zn[t])
        du_n, du_rz = D_n[t], D_rz[t]
        if ln_hh is not None and gh_n is not None and acc is not None and DU_n is not None:
            norm_grad_step(
                D_n[t], ln_hh[2 * H :], gh_n[t], ys_n[t], stats_n[2 * t], stats_n[2 * t + 1], 1,
                acc[1, :, 2 * H :], DU_n[t],
            )  # fmt: skip
            du_n = DU_n[t]
        d_rh = torch.mm(du_n, W_n)
        torch.mul(d_rh, C_r[t], out=D_r[t])
        if ln_hh is not None and gh_rz is not None and acc is not None and DU_rz is not None:
            norm_grad_step(
                D_rz[t], ln_hh[: 2 * H], gh_rz[t], ys_rz[t], stats_rz[2 * t], stats_rz[2 * t + 1], 2,
                acc[1, :, : 2 * H], DU_rz[t],
            )  # fmt: skip
            du_rz = DU_rz[t]
        if ln_ih is not None and acc is not None and dGX is not None:
            d = D_t[t]
            norm_grad_step(d, ln_ih, GX[t], ys_x[t], stats_x[2 * t], stats_x[2 * t + 1], 3, acc[0], dGX[t])
            acc[2].add_(d)
        d_hin = torch.addmm(d_rh * R_t[t], du_rz, W_rz)
        base = d_hs_t[t - 1] if t > 0 else zero
        dh = torch.addcmul(base, dh_new, Z_t[t])
        if rec_mask is not None:
            dh.addcmul_(d_hin, rec_mask)
        else:
            dh.add_(d_hin)
        if carry is not None:
            dh.add_(carry)
    return dh


class GRURecurrence(torch.autograd.Function):
    """``hs = GRURecurrence.apply(x, h0, W_ih, W_hh, b_ih, b_hh, ln_ih, ln_hh, rec_mask, zh, valid, before,
    needs_grad, plan)``: the carried h for every step (T, B, H).

    ``b_ih`` is the bias that adds outside the loop's products: b_ih, or for reset="before" b_ih + b_hh;
    ``b_hh`` is passed for reset="after" only. ``ln_ih``, ``ln_hh``: layer-norm gains. Options are None
    when off; masks as in :class:`rnnkit.kernels.lstm.LSTMRecurrence`.
    """

    @staticmethod
    def forward(ctx, x, h0, W_ih, W_hh, b_ih, b_hh, ln_ih, ln_hh, rec_mask, zh, valid, before, needs_grad, plan):
        ctx.plan = plan
        if plan.c_steps:  # the same loops with each step's element-wise work in C
            return cgru.forward(ctx, x, h0, W_ih, W_hh, b_ih, b_hh, ln_ih, ln_hh, rec_mask, zh, valid, before,
                                needs_grad)  # fmt: skip
        GX = project_inputs(x, W_ih, None if ln_ih is not None else b_ih)
        T, B, G3 = GX.shape
        H = G3 // 3
        hs = GX.new_empty(T + 1, B, H)
        hs[0] = h0
        ctx.before = before
        layer_norm = ln_ih is not None
        if before:
            G, RH = torch.empty_like(GX), GX.new_empty(T, B, H)
            gh_rz = GX.new_empty(T, B, 2 * H) if layer_norm else None
            gh_n = GX.new_empty(T, B, H) if layer_norm else None
            lists = compiled(gru_before_forward_loop, plan.jit)(
                GX, W_hh, b_ih, hs, G, RH, ln_ih, ln_hh, gh_rz, gh_n, rec_mask, zh, valid
            )
            if needs_grad:
                h_in = hs[:-1] if rec_mask is None else hs[:-1] * rec_mask
                r, z, n = G.chunk(3, dim=-1)
                Z, R = z.clone(), r.clone()
                _update_factors(z, n, hs[:-1], Z)
                r.addcmul_(r, r, value=-1).mul_(h_in)  # h_in r (1 - r)
                fixed = [x, GX if layer_norm else None, W_ih, W_hh, hs, G, Z, R, RH, b_ih, ln_ih, ln_hh, gh_rz,
                         gh_n, rec_mask, zh, valid]  # fmt: skip
                save_lists(ctx, fixed, *lists)
        else:
            G = GX.new_empty(T, B, 4 * H)
            gh_raw = torch.empty_like(GX) if layer_norm else None
            lists = compiled(gru_after_forward_loop, plan.jit)(
                GX, W_hh, b_ih, b_hh, hs, G, ln_ih, ln_hh, gh_raw, rec_mask, zh, valid
            )
            if needs_grad:
                r, z, n, ghn = G.chunk(4, dim=-1)
                Z = z.clone()
                _update_factors(z, n, hs[:-1], Z)
                tmp = torch.addcmul(r, r, r, value=-1)  # r (1 - r)
                tmp.mul_(ghn).mul_(n)  # d_r factor
                ghn.copy_(n)  # d_n^x factor (1 - z)(1 - n^2)
                n.mul_(r)  # d_n^h factor
                r.copy_(tmp)
                fixed = [x, GX if layer_norm else None, W_ih, W_hh, hs, G, Z, b_ih, b_hh, ln_ih, ln_hh, gh_raw,
                         rec_mask, zh, valid]  # fmt: skip
                save_lists(ctx, fixed, *lists)
        return hs[1:]

    @staticmethod
    @once_differentiable
    def backward(ctx, d_hs):
        if ctx.plan.c_steps:
            return cgru.backward(ctx, d_hs)
        with Scratch() as scratch:  # D, dGX and DU never leave the backward
            return _gru_backward(ctx, d_hs.contiguous(), scratch)


def _gru_backward(ctx, d_hs: Tensor, scratch: Scratch) -> tuple:
    """GRURecurrence's backward: the loop of the reset form, then the gradients summed over all steps."""
    if ctx.before:
        fixed, ys_x, stats_x, ys_rz, stats_rz, ys_n, stats_n = saved_lists(ctx)
        x, GX, W_ih, W_hh, hs, C, Z, R, RH, bias, ln_ih, ln_hh, gh_rz, gh_n, rec_mask, zh, valid = fixed
        T, B, H = Z.shape
        layer_norm = ln_ih is not None
        D = scratch.empty(C.shape, C)
        acc = C.new_zeros(3, B, 3 * H) if layer_norm else None
        dGX = scratch.empty(C.shape, C) if layer_norm else None
        DU_rz = scratch.empty((T, B, 2 * H), C) if layer_norm else None
        DU_n = scratch.empty((T, B, H), C) if layer_norm else None
        U = mixing_coefficients(zh, valid, C.dtype)
        dh0 = compiled(gru_before_backward_loop, ctx.plan.jit)(
            d_hs, W_hh, C, Z, R, D, GX if layer_norm else C, ln_ih, ln_hh, gh_rz, gh_n, ys_x, stats_x, ys_rz,
            stats_rz, ys_n, stats_n, acc, dGX, DU_rz, DU_n, rec_mask, U,
        )  # fmt: skip
        h_in = hs[:-1] if rec_mask is None else hs[:-1] * rec_mask
        D_rz = D[..., : 2 * H] if DU_rz is None else DU_rz
        D_n = D[..., 2 * H :] if DU_n is None else DU_n
        d_W = torch.cat([matmul_steps(D_rz, h_in), matmul_steps(D_n, RH)])
        d_ln_ih = d_ln_hh = None
        if layer_norm:
            d_ln_ih, d_ln_hh, d_bias = acc.sum(1).unbind(0)
        else:
            dGX, d_bias = D, D.sum((0, 1))
        dx, d_W_ih = input_grads(dGX, x, W_ih, ctx.needs_input_grad[0])
        d_bias = d_bias if bias is not None else None
        return dx, dh0, d_W_ih, d_W, d_bias, None, d_ln_ih, d_ln_hh, None, None, None, None, None, None
    fixed, ys_x, stats_x, ys_h, stats_h = saved_lists(ctx)
    x, GX, W_ih, W_hh, hs, C, Z, b_ih, b_hh, ln_ih, ln_hh, gh_raw, rec_mask, zh, valid = fixed
    T, B, H = Z.shape
    layer_norm = ln_ih is not None
    D = scratch.empty(C.shape, C)
    acc = C.new_zeros(4, B, 3 * H) if layer_norm else None
    dGX = scratch.empty((T, B, 3 * H), C) if layer_norm else None
    DU = scratch.empty((T, B, 3 * H), C) if layer_norm else None
    U = mixing_coefficients(zh, valid, C.dtype)
    dh0 = compiled(gru_after_backward_loop, ctx.plan.jit)(
        d_hs, W_hh, C, Z, D, GX if layer_norm else C, ln_ih, ln_hh, gh_raw, ys_x, stats_x, ys_h, stats_h, acc,
        dGX, DU, rec_mask, U,
    )  # fmt: skip
    h_in = hs[:-1] if rec_mask is None else hs[:-1] * rec_mask
    D_h = D[..., : 3 * H]  # gradient of gh = [LN] W_hh h_in + b_hh
    d_W = matmul_steps(D_h if DU is None else DU, h_in)
    d_ln_ih = d_ln_hh = None
    if layer_norm:
        d_ln_ih, d_ln_hh, d_b_ih, d_b_hh = acc.sum(1).unbind(0)
    else:
        d_b_hh = D_h.sum((0, 1))
        dGX = torch.cat([D[..., : 2 * H], D[..., 3 * H :]], dim=-1, out=scratch.empty((T, B, 3 * H), C))
        d_b_ih = dGX.sum((0, 1))
    dx, d_W_ih = input_grads(dGX, x, W_ih, ctx.needs_input_grad[0])
    d_b_ih = d_b_ih if b_ih is not None else None
    d_b_hh = d_b_hh if b_hh is not None else None
    return dx, dh0, d_W_ih, d_W, d_b_ih, d_b_hh, d_ln_ih, d_ln_hh, None, None, None, None, None, None


def _update_factors(z: Tensor, n: Tensor, h_prev: Tensor, Z: Tensor) -> None:
    """In place: z <- (h_prev - n) z (1 - z), n <- (1 - z)(1 - n^2), with Z a copy of the gate z."""
    diff = h_prev - n
    z.addcmul_(z, z, value=-1).mul_(diff)
    n.mul_(n).neg_().add_(1.0)
    n.addcmul_(n, Z, value=-1)
