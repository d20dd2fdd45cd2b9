"""The LSTM recurrence as one autograd Function with hand-written backpropagation through time.

The forward computes the input side of the gate pre-activations for every step in one GEMM,
``GX = W_ih x + b_ih + b_hh`` (T, B, 4H), and turns that buffer into the gates in place. Per step it
does one GEMM, ``W_hh h_{t-1}``, and the element-wise update of :class:`rnnkit.cells.LSTMCell`::

    i, f, g, o = sigma(GX_t + W_hh (h_{t-1} * m) [+ peepholes on c])    (gate order of torch)
    c_t = f * c_{t-1} + i * g
    h_t = o * tanh([LN] c_t)   [then h_t = W_hr h_t with a projection]
    (h_t, c_t) mixed with (h_{t-1}, c_{t-1}) by zoneout and by the lengths

With layer norm, ``GX`` is the raw ``W_ih x`` and each step normalises its own slice while it is in
cache: ``LN(GX_t) g_ih + LN(W_hh h) g_hh + b``.

With the gates known, every derivative the backward needs is a product of saved factors, so the
forward turns its gate buffer into those factors at the end (vectorised over all steps)::

    dG_o = dh * A_o,   A_o = tanh(c) o (1 - o)
    dc  += dh * K,     K = o (1 - tanh(c)^2)
    dG_i, dG_f, dG_g = dc * (i (1 - i) g, f (1 - f) c_{t-1}, i (1 - g^2))
    dc_{t-1} = dc * f;   dh_{t-1} = dG W_hh

so the backward is one GEMM per step (``dG W_hh``) and a few element-wise ops, and the weight
gradient is one GEMM over all steps (``sum_t dG_t^T h_{t-1}``). Saved per step: 4H factors, K, f and
the output h (6H + H_out), plus what the options need (for layer norm the raw ``W_ih x`` and ``W_hh h``,
their normalised values and statistics; c for peepholes and the cell norm; ``o tanh(c)`` for the
projection). The gains' and biases' gradients are summed step by step in the backward loop.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

from rnnkit.cells import LAYER_NORM_EPS
from rnnkit.kernels import clstm
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


def lstm_forward_loop(
    GX: Tensor,  # (T, B, 4H) raw W_ih x (layer norm only)
    W_hh: Tensor,  # (4H, P)
    hs: Tensor,  # (T + 1, B, P) carried h; hs[0] = h_0
    cs: Tensor,  # (T + 1, B, H) carried c; cs[0] = c_0
    gates: Tensor,  # (T, B, 4H) in: W_ih x + biases (without layer norm); out: activated i, f, g, o
    tcs: Tensor,  # (T, B, H) tanh(c) as it enters h
    bias: Tensor | None,  # (4H,) b_ih + b_hh, added after the layer norms
    ln_ih: Tensor | None,  # (4H,) layer-norm gains; both or neither
    ln_hh: Tensor | None,
    gh_raw: Tensor | None,  # (T, B, 4H) W_hh h_in, kept for the layer-norm backward
    peephole: Tensor | None,  # (3H,)
    cnew: Tensor | None,  # (T or 1, B, H) c before mixing, when there is mixing
    ln_cell_w: Tensor | None,
    ln_cell_b: Tensor | None,
    W_hr: Tensor | None,  # (P, H)
    ms: Tensor | None,  # (T, B, H) o * tanh(c) before the projection
    rec_mask: Tensor | None,  # (B, P)
    zh: Tensor | None,  # (T, B or 1, P or 1)
    zc: Tensor | None,  # (T, B or 1, H or 1)
    valid: Tensor | None,  # (T, B, 1) bool
    eps: float = LAYER_NORM_EPS,  # an argument: TorchScript reads no float globals
) -> tuple[list[Tensor], list[Tensor], list[Tensor], list[Tensor], list[Tensor]]:
    T, B, H = GX.shape[0], GX.shape[1], cs.shape[2]
    W_t = W_hh.t()
    ys_x: list[Tensor] = []
    stats_x: list[Tensor] = []
    ys_h: list[Tensor] = []
    stats_h: list[Tensor] = []
    stats_c: list[Tensor] = []
    h_scratch = torch.empty_like(hs[0])
    # per-step views made once: indexing inside the loop would cost an op each time
    hs_t, cs_t, gates_t, tcs_t = hs.unbind(0), cs.unbind(0), gates.unbind(0), tcs.unbind(0)
    for t in range(T):
        h_prev, c_prev = hs_t[t], cs_t[t]
        h_in = h_prev if rec_mask is None else h_prev * rec_mask
        g = gates_t[t]
        if ln_ih is not None and ln_hh is not None and gh_raw is not None:
            input_side(GX[t], ln_ih, bias, 4, ys_x, stats_x, g)
            torch.mm(h_in, W_t, out=gh_raw[t])
            y = gate_norm_step(gh_raw[t], 4, stats_h)
            ys_h.append(y)
            g.addcmul_(y, ln_hh)
        else:
            g.addmm_(h_in, W_t)  # the gates' buffer holds the input side on entry
        i, f, gg, o = g.unsafe_chunk(4, 1)
        if peephole is not None:
            g[:, : 2 * H].view(B, 2, H).addcmul_(peephole[: 2 * H].view(2, H), c_prev.unsqueeze(1))
        g[:, : 2 * H].sigmoid_()
        gg.tanh_()
        c_new = cs_t[t + 1] if cnew is None else cnew[min(t, cnew.shape[0] - 1)]
        torch.mul(f, c_prev, out=c_new)
        c_new.addcmul_(i, gg)
        if peephole is not None:
            o.addcmul_(peephole[2 * H :], c_new)
        o.sigmoid_()
        c_out = c_new
        if ln_cell_w is not None:
            c_out, mean, rstd = torch.native_layer_norm(c_new, [H], ln_cell_w, ln_cell_b, eps)
            stats_c.append(mean)
            stats_c.append(rstd)
        tc = tcs_t[t]
        torch.tanh(c_out, out=tc)
        h_new = hs_t[t + 1] if cnew is None else h_scratch
        if W_hr is not None and ms is not None:
            torch.mul(o, tc, out=ms[t])
            torch.mm(ms[t], W_hr.t(), out=h_new)
        else:
            torch.mul(o, tc, out=h_new)
        if cnew is not None:
            v = None if valid is None else valid[t]
            mix_state(h_new, h_prev, None if zh is None else zh[t], v, hs_t[t + 1])
            mix_state(c_new, c_prev, None if zc is None else zc[t], v, cs_t[t + 1])
    return ys_x, stats_x, ys_h, stats_h, stats_c


def lstm_backward_loop(
    d_hs: Tensor,  # (T, B, P) gradient of every carried h
    dc: Tensor,  # (B, H) gradient of the final c (a copy: updated in place)
    W_hh: Tensor,
    A: Tensor,  # (T, B, 4H) factors (i (1-i) g, f (1-f) c_prev, i (1-g^2), tanh(c) o (1-o))
    K: Tensor,  # (T, B, H) o (1 - tanh(c)^2)
    Fg: Tensor,  # (T, B, H) forget gate
    dG: Tensor,  # (T, B, 4H) out: gradient of the gate pre-activations
    GX: Tensor,
    ln_ih: Tensor | None,
    ln_hh: Tensor | None,
    gh_raw: Tensor | None,
    ys_x: list[Tensor],
    stats_x: list[Tensor],
    ys_h: list[Tensor],
    stats_h: list[Tensor],
    acc: Tensor | None,  # (3, B, 4H) out: sums over steps for the gains' and the bias's gradients
    dGX: Tensor | None,  # (T, B, 4H) out: gradient of the raw W_ih x (layer norm only)
    DU: Tensor | None,  # (T, B, 4H) out: gradient of the raw W_hh h (layer norm only)
    peephole: Tensor | None,
    c_new: Tensor | None,  # (T, B, H) c before mixing (cell norm only)
    ln_cell_w: Tensor | None,
    ln_cell_b: Tensor | None,
    stats_c: list[Tensor],
    acc_cell: Tensor | None,  # (2, H) out: gradients of the cell norm's weight and bias
    W_hr: Tensor | None,
    DHN: Tensor | None,  # (T, B, P) out: gradient of the projected h (projection only)
    rec_mask: Tensor | None,
    Uh: Tensor | None,  # mixing coefficients, see common.mixing_coefficients
    Uc: Tensor | None,
) -> tuple[Tensor, Tensor]:
    T, B, H = A.shape[0], A.shape[1], K.shape[2]
    zero = torch.zeros_like(d_hs[0])
    dh = d_hs[T - 1].clone()
    # per-step views made once: indexing inside the loop would cost an op each time
    d_hs_t, K_t, F_t, dG_t = d_hs.unbind(0), K.unbind(0), Fg.unbind(0), dG.unbind(0)
    A_o, A_ifg = A[:, :, 3 * H :].unbind(0), A[:, :, : 3 * H].view(T, B, 3, H).unbind(0)
    dG_o, dG_ifg = dG[:, :, 3 * H :].unbind(0), dG[:, :, : 3 * H].view(T, B, 3, H).unbind(0)
    for t in range(T - 1, -1, -1):
        dh_new, carry_h = split_grad(dh, None if Uh is None else Uh[t])
        dc_new, carry_c = split_grad(dc, None if Uc is None else Uc[t])
        dm = dh_new
        if W_hr is not None and DHN is not None:
            DHN[t].copy_(dh_new)
            dm = torch.mm(dh_new, W_hr)
        d, d_o = dG_t[t], dG_o[t]
        torch.mul(dm, A_o[t], out=d_o)
        if ln_cell_w is not None and acc_cell is not None and c_new is not None:
            grads = torch.ops.aten.native_layer_norm_backward(
                dm * K_t[t], c_new[t], [H], stats_c[2 * t], stats_c[2 * t + 1], ln_cell_w, ln_cell_b,
                [True, True, True],
            )  # fmt: skip
            dc_new = dc_new + grads[0]
            acc_cell[0].add_(grads[1])
            acc_cell[1].add_(grads[2])
        else:
            dc_new = torch.addcmul(dc_new, dm, K_t[t])
        if peephole is not None:
            dc_new.addcmul_(d_o, peephole[2 * H :])
        torch.mul(A_ifg[t], dc_new.unsqueeze(1), out=dG_ifg[t])
        dc = dc_new * F_t[t]
        if peephole is not None:
            dc.addcmul_(d[:, :H], peephole[:H])
            dc.addcmul_(d[:, H : 2 * H], peephole[H : 2 * H])
        if carry_c is not None:
            dc.add_(carry_c)
        du = d
        if ln_ih is not None and ln_hh is not None and gh_raw is not None:
            if acc is not None and dGX is not None and DU is not None:
                norm_grad_step(d, ln_ih, GX[t], ys_x[t], stats_x[2 * t], stats_x[2 * t + 1], 4, acc[0], dGX[t])
                norm_grad_step(d, ln_hh, gh_raw[t], ys_h[t], stats_h[2 * t], stats_h[2 * t + 1], 4, acc[1], DU[t])
                acc[2].add_(d)
                du = DU[t]
        base = d_hs_t[t - 1] if t > 0 else zero
        if rec_mask is not None:
            dh = torch.addcmul(base, torch.mm(du, W_hh), rec_mask)
        else:
            dh = torch.addmm(base, du, W_hh)
        if carry_h is not None:
            dh.add_(carry_h)
    return dh, dc


class LSTMRecurrence(torch.autograd.Function):
    """``hs, c_T = LSTMRecurrence.apply(x, h0, c0, W_ih, W_hh, bias, ln_ih, ln_hh, peephole, ln_cell_w, ln_cell_b,
    W_hr, rec_mask, zh, zc, valid, needs_grad, plan)``: carried h for every step (T, B, P) and the final c (B, H).

    ``bias`` is b_ih + b_hh (or None); ``ln_ih``, ``ln_hh`` the layer-norm gains. Options are None when
    off. ``zh``/``zc``: zoneout masks (T, B, n) or the eval-mode probability as a (T, 1, 1) tensor;
    ``valid`` (T, B, 1) bool marks real (unpadded) steps. ``plan``: where the loops run
    (:class:`rnnkit.kernels.dispatch.Plan`).
    """

    @staticmethod
    def forward(ctx, x, h0, c0, W_ih, W_hh, bias, ln_ih, ln_hh, peephole, ln_cell_w, ln_cell_b, W_hr, rec_mask, zh,
                zc, valid, needs_grad, plan):  # fmt: skip
        ctx.plan = plan
        if plan.c_steps:  # the same loops with each step's element-wise work in C
            return clstm.forward(ctx, x, h0, c0, W_ih, W_hh, bias, ln_ih, ln_hh, peephole, ln_cell_w, ln_cell_b,
                                 rec_mask, zh, zc, valid, needs_grad)  # fmt: skip
        T, B = x.shape[:2]
        H, P = W_hh.shape[0] // 4, h0.shape[-1]
        layer_norm = ln_ih is not None
        GX = project_inputs(x, W_ih, None if layer_norm else bias)  # (T, B, 4H)
        gates = torch.empty_like(GX) if layer_norm else GX  # without layer norm the loop works in place
        mixed = zh is not None or zc is not None or valid is not None
        hs = GX.new_empty(T + 1, B, P)
        hs[0] = h0
        keep_cnew = needs_grad and (peephole is not None or ln_cell_w is not None)
        keep_cs = needs_grad and (peephole is not None or (ln_cell_w is not None and not mixed))
        with Scratch() as scratch:  # the c buffer (unless the backward needs it) and temporaries
            cs = GX.new_empty(T + 1, B, H) if keep_cs else scratch.empty((T + 1, B, H), GX)
            cs[0] = c0
            tcs = GX.new_empty(T, B, H)
            gh_raw = torch.empty_like(GX) if layer_norm else None
            cnew = (GX.new_empty(T, B, H) if keep_cnew else scratch.empty((1, B, H), GX)) if mixed else None
            ms = GX.new_empty(T, B, H) if W_hr is not None else None
            ys_x, stats_x, ys_h, stats_h, stats_c = compiled(lstm_forward_loop, plan.jit)(
                GX, W_hh, hs, cs, gates, tcs, bias, ln_ih, ln_hh, gh_raw, peephole, cnew, ln_cell_w, ln_cell_b, W_hr,
                ms, rec_mask, zh, zc, valid,
            )  # fmt: skip
            if needs_grad:
                A, K, Fg = _factors(gates, tcs, cs[:-1], scratch)
                c_after = cnew if cnew is not None else cs[1:]
                fixed = [
                    x, GX if layer_norm else None, W_ih, W_hh, hs, A, K, Fg, bias, ln_ih, ln_hh, gh_raw, peephole,
                    cs if peephole is not None else None,
                    c_after if (peephole is not None or ln_cell_w is not None) else None,
                    ln_cell_w, ln_cell_b, W_hr, ms, rec_mask, zh, zc, valid,
                ]  # fmt: skip
                save_lists(ctx, fixed, ys_x, stats_x, ys_h, stats_h, stats_c)
            return hs[1:], cs[T] if keep_cs else cs[T].clone()

    @staticmethod
    @once_differentiable
    def backward(ctx, d_hs, d_cT):
        if ctx.plan.c_steps:
            return clstm.backward(ctx, d_hs, d_cT)
        fixed, ys_x, stats_x, ys_h, stats_h, stats_c = saved_lists(ctx)
        (x, GX, W_ih, W_hh, hs, A, K, Fg, bias, ln_ih, ln_hh, gh_raw, peephole, cs, c_new, ln_cell_w, ln_cell_b, W_hr,
         ms, rec_mask, zh, zc, valid) = fixed  # fmt: skip
        T, B, H = K.shape
        layer_norm = ln_ih is not None
        with Scratch() as scratch:  # dG, dGX, DU and DHN never leave this backward
            dG = scratch.empty(A.shape, A)
            acc = A.new_zeros(3, B, 4 * H) if layer_norm else None
            dGX = scratch.empty(A.shape, A) if layer_norm else None
            DU = scratch.empty(A.shape, A) if layer_norm else None
            acc_cell = A.new_zeros(2, H) if ln_cell_w is not None else None
            DHN = scratch.empty(d_hs.shape, d_hs) if W_hr is not None else None
            Uh = mixing_coefficients(zh, valid, A.dtype)
            Uc = mixing_coefficients(zc, valid, A.dtype)
            dh0, dc0 = compiled(lstm_backward_loop, ctx.plan.jit)(
                d_hs.contiguous(), d_cT.clone(), W_hh, A, K, Fg, dG, GX if layer_norm else A, ln_ih, ln_hh, gh_raw,
                ys_x, stats_x, ys_h, stats_h, acc, dGX, DU, peephole, c_new, ln_cell_w, ln_cell_b, stats_c,
                acc_cell, W_hr, DHN, rec_mask, Uh, Uc,
            )  # fmt: skip
            return _lstm_weight_grads(
                ctx, x, W_ih, W_hh, hs, dG, dGX, DU, acc, acc_cell, DHN, bias, layer_norm, peephole, cs, c_new,
                ln_cell_w, W_hr, ms, rec_mask, dh0, dc0,
            )  # fmt: skip


def _lstm_weight_grads(ctx, x, W_ih, W_hh, hs, dG, dGX, DU, acc, acc_cell, DHN, bias, layer_norm, peephole, cs, c_new,
                       ln_cell_w, W_hr, ms, rec_mask, dh0, dc0):  # fmt: skip
    """The gradients that are sums over all steps, each one GEMM or reduction (end of the backward)."""
    H = dG.shape[-1] // 4
    h_in = hs[:-1] if rec_mask is None else hs[:-1] * rec_mask
    d_W_hh = matmul_steps(dG if DU is None else DU, h_in)
    d_ln_ih = d_ln_hh = d_peephole = d_ln_cell_w = d_ln_cell_b = d_W_hr = None
    if layer_norm:
        d_ln_ih, d_ln_hh, d_bias = acc.sum(1).unbind(0)
    else:
        dGX = dG
        d_bias = dG.sum((0, 1))
    dx, d_W_ih = input_grads(dGX, x, W_ih, ctx.needs_input_grad[0])
    if peephole is not None:
        c_prev = cs[:-1]
        d_peephole = torch.cat(
            [(dG[..., :H] * c_prev).sum((0, 1)), (dG[..., H : 2 * H] * c_prev).sum((0, 1)),
             (dG[..., 3 * H :] * c_new).sum((0, 1))]
        )  # fmt: skip
    if ln_cell_w is not None:
        d_ln_cell_w, d_ln_cell_b = acc_cell.unbind(0)
    if W_hr is not None:
        d_W_hr = matmul_steps(DHN, ms)
    return (dx, dh0, dc0, d_W_ih, d_W_hh, d_bias if bias is not None else None, d_ln_ih, d_ln_hh, d_peephole,
            d_ln_cell_w, d_ln_cell_b, d_W_hr, None, None, None, None, None, None)  # fmt: skip


def _factors(gates: Tensor, tcs: Tensor, c_prev: Tensor, scratch: Scratch) -> tuple[Tensor, Tensor, Tensor]:
    """Turn the activated gates into the backward's factors, in place where possible (see module doc).

    Returns A (T, B, 4H) in the gates' buffer, K (T, B, H), and the forget gate in the tanh(c) buffer.
    """
    i, f, g, o = gates.chunk(4, dim=-1)
    K = torch.mul(tcs, tcs)
    torch.addcmul(o, o, K, value=-1, out=K)  # o (1 - tanh(c)^2)
    o.addcmul_(o, o, value=-1).mul_(tcs)  # tanh(c) o (1 - o)
    Fg = tcs.copy_(f)
    f.addcmul_(f, f, value=-1).mul_(c_prev)  # f (1 - f) c_{t-1}
    ig = torch.mul(i, g, out=scratch.empty(i.shape, i))
    torch.addcmul(i, ig, g, value=-1, out=g)  # i (1 - g^2)
    torch.addcmul(ig, ig, i, value=-1, out=i)  # i g (1 - i)
    return gates, K, Fg
