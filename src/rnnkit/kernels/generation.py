"""Token-by-token generation without per-step module overhead.

:func:`rnnkit.generate` feeds each sampled token back as the next input. Calling the modules for
every token pays their input checks, state reshaping and dispatch again and again (for torch.nn.LSTM
at H=256 that is ~10x the cost of the step's matrix-vector products). A :class:`Stepper` instead is
made once per generation:

- it reads the weights out of the embedding, the recurrent layer (rnnkit or torch.nn, any cell and
  option, one direction) and the head, with the biases that add already summed;
- it primes the state by running the prime through the modules themselves (one call, same numbers);
- then :meth:`Stepper.step` computes a token's logits as an embedding lookup, one fused cell step per
  layer and the head, in eval-mode semantics (no dropout, zoneout's expectation);
- on CUDA it captures that step once as a CUDA graph and replays it per token (``RNNKIT_CUDA_GRAPHS=0``
  turns this off), since at batch sizes of 1-16 a step is dozens of tiny kernels bound by launch cost.

:func:`make_stepper` returns None for a layer it cannot step (bidirectional, or an unknown module);
:mod:`rnnkit.decoding` then calls the modules per token as before.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rnnkit.cells import GRUCell, LSTMCell, RNNCell, as_tuple
from rnnkit.kernels.common import gate_norm_step

# -- one cell step, eval semantics -------------------------------------------------------


def lstm_step(
    x: Tensor,  # (N, I)
    h: Tensor,  # (N, P)
    c: Tensor,  # (N, H)
    W_ih: Tensor,
    W_hh: Tensor,
    bias: Tensor | None,  # b_ih + b_hh
    ln_ih: Tensor | None,
    ln_hh: Tensor | None,
    peephole: Tensor | None,
    ln_cell_w: Tensor | None,
    ln_cell_b: Tensor | None,
    W_hr: Tensor | None,
    zoneout: float,
) -> tuple[Tensor, Tensor]:
    H = c.shape[1]
    if ln_ih is not None and ln_hh is not None:
        stats: list[Tensor] = []
        g = gate_norm_step(torch.mm(x, W_ih.t()), 4, stats) * ln_ih
        if bias is not None:
            g.add_(bias)
        g.addcmul_(gate_norm_step(torch.mm(h, W_hh.t()), 4, stats), ln_hh)
    else:
        g = torch.mm(x, W_ih.t()) if bias is None else torch.addmm(bias, x, W_ih.t())
        g.addmm_(h, W_hh.t())
    if peephole is not None:
        g[:, : 2 * H].addcmul_(peephole[: 2 * H], c.repeat(1, 2))
    g[:, : 2 * H].sigmoid_()
    g[:, 2 * H : 3 * H].tanh_()
    c_new = torch.addcmul(g[:, H : 2 * H] * c, g[:, :H], g[:, 2 * H : 3 * H])
    o = g[:, 3 * H :]
    if peephole is not None:
        o.addcmul_(peephole[2 * H :], c_new)
    o.sigmoid_()
    c_out = c_new
    if ln_cell_w is not None:
        c_out = torch.layer_norm(c_new, [H], ln_cell_w, ln_cell_b, 1e-5)
    h_new = o * torch.tanh(c_out)
    if W_hr is not None:
        h_new = torch.mm(h_new, W_hr.t())
    if zoneout > 0.0:
        return torch.lerp(h_new, h, zoneout), torch.lerp(c_new, c, zoneout)
    return h_new, c_new


def gru_step(
    x: Tensor,
    h: Tensor,
    W_ih: Tensor,
    W_hh: Tensor,
    b_ih: Tensor | None,  # for reset="before": b_ih + b_hh
    b_hh: Tensor | None,  # reset="after" only
    ln_ih: Tensor | None,
    ln_hh: Tensor | None,
    before: bool,
    zoneout: float,
) -> Tensor:
    H = h.shape[1]
    stats: list[Tensor] = []
    if ln_ih is not None:
        gx = gate_norm_step(torch.mm(x, W_ih.t()), 3, stats) * ln_ih
        if b_ih is not None:
            gx.add_(b_ih)
    else:
        gx = torch.mm(x, W_ih.t()) if b_ih is None else torch.addmm(b_ih, x, W_ih.t())
    if before:
        gh_rz = torch.mm(h, W_hh[: 2 * H].t())
        if ln_hh is not None:
            gh_rz = gate_norm_step(gh_rz, 2, stats) * ln_hh[: 2 * H]
        rz = torch.sigmoid(gx[:, : 2 * H] + gh_rz)
        r, z = rz[:, :H], rz[:, H:]
        gh_n = torch.mm(r * h, W_hh[2 * H :].t())
        if ln_hh is not None:
            gh_n = gate_norm_step(gh_n, 1, stats) * ln_hh[2 * H :]
        n = torch.tanh(gx[:, 2 * H :] + gh_n)
    else:
        gh = torch.mm(h, W_hh.t())
        if ln_hh is not None:
            gh = gate_norm_step(gh, 3, stats) * ln_hh
        if b_hh is not None:
            gh.add_(b_hh)
        rz = torch.sigmoid(gx[:, : 2 * H] + gh[:, : 2 * H])
        r, z = rz[:, :H], rz[:, H:]
        n = torch.tanh(torch.addcmul(gx[:, 2 * H :], r, gh[:, 2 * H :]))
    h_new = torch.addcmul(n, z, h - n)
    return torch.lerp(h_new, h, zoneout) if zoneout > 0.0 else h_new


def rnn_step(
    x: Tensor,
    h: Tensor,
    W_ih: Tensor,
    W_hh: Tensor,
    bias: Tensor | None,  # b_ih + b_hh
    ln_ih: Tensor | None,
    ln_hh: Tensor | None,
    relu: bool,
    zoneout: float,
) -> Tensor:
    if ln_ih is not None and ln_hh is not None:
        stats: list[Tensor] = []
        pre = gate_norm_step(torch.mm(x, W_ih.t()), 1, stats) * ln_ih
        if bias is not None:
            pre.add_(bias)
        pre.addcmul_(gate_norm_step(torch.mm(h, W_hh.t()), 1, stats), ln_hh)
    else:
        pre = torch.mm(x, W_ih.t()) if bias is None else torch.addmm(bias, x, W_ih.t())
        pre.addmm_(h, W_hh.t())
    h_new = pre.relu_() if relu else pre.tanh_()
    return torch.lerp(h_new, h, zoneout) if zoneout > 0.0 else h_new


# -- weights of a layer, one entry per cell -----------------------------------------------------------


@dataclass
class CellStep:
    """One layer's cell in step form: which equations and the tensors they read.

    Plain cells (torch's own equations: no layer norm, peepholes, projection or zoneout) step through
    torch's fused cell functions (``lstm_cell``, ``gru_cell``, ``rnn_*_cell``: one call, the gate
    arithmetic in C++); the others through the step functions above.
    """

    kind: str  # "lstm", "gru" or "rnn"
    W_ih: Tensor
    W_hh: Tensor
    b_ih: Tensor | None = None
    b_hh: Tensor | None = None
    ln_ih: Tensor | None = None
    ln_hh: Tensor | None = None
    peephole: Tensor | None = None
    ln_cell_w: Tensor | None = None
    ln_cell_b: Tensor | None = None
    W_hr: Tensor | None = None
    before: bool = False  # GRU reset="before"
    relu: bool = False
    zoneout: float = 0.0

    def __post_init__(self) -> None:
        W_ih, W_hh, b_ih, b_hh, ln_ih, ln_hh, p = (
            self.W_ih, self.W_hh, self.b_ih, self.b_hh, self.ln_ih, self.ln_hh, self.zoneout
        )  # fmt: skip
        plain = ln_ih is None and self.peephole is None and self.W_hr is None and p == 0.0 and not self.before
        if plain:
            cell = {"lstm": torch._VF.lstm_cell, "gru": torch._VF.gru_cell}.get(self.kind)
            if cell is None:
                cell = torch._VF.rnn_relu_cell if self.relu else torch._VF.rnn_tanh_cell
            self.run = lambda x, s: as_tuple(cell(x, s if self.kind == "lstm" else s[0], W_ih, W_hh, b_ih, b_hh))
        elif self.kind == "lstm":
            bias = _summed(b_ih, b_hh)
            extra = (self.peephole, self.ln_cell_w, self.ln_cell_b, self.W_hr, p)
            self.run = lambda x, s: lstm_step(x, *s, W_ih, W_hh, bias, ln_ih, ln_hh, *extra)
        elif self.kind == "gru":
            b_x, b_h = (_summed(b_ih, b_hh), None) if self.before else (b_ih, b_hh)
            before = self.before
            self.run = lambda x, s: (gru_step(x, s[0], W_ih, W_hh, b_x, b_h, ln_ih, ln_hh, before, p),)
        else:
            bias, relu = _summed(b_ih, b_hh), self.relu
            self.run = lambda x, s: (rnn_step(x, s[0], W_ih, W_hh, bias, ln_ih, ln_hh, relu, p),)


def _summed(b_ih: Tensor | None, b_hh: Tensor | None) -> Tensor | None:
    """b_ih + b_hh, added once here instead of at every step (as the fused backend does)."""
    return None if b_ih is None else b_ih + b_hh


def cell_steps(rnn: nn.Module) -> tuple[list[CellStep], bool] | None:
    """The cells of ``rnn`` in step form and whether it has skip connections; None if it cannot be stepped."""
    from rnnkit.layers import Recurrent  # layers import kernels: a late import keeps one direction at load

    if isinstance(rnn, Recurrent):
        if rnn.config.bidirectional:
            return None
        return [_rnnkit_cell(cell) for cell in rnn.cells], rnn.config.skip_connections
    if isinstance(rnn, (nn.LSTM, nn.GRU, nn.RNN)) and type(rnn) in (nn.LSTM, nn.GRU, nn.RNN):
        if rnn.bidirectional:
            return None
        return [_torch_cell(rnn, layer) for layer in range(rnn.num_layers)], False
    return None


def _rnnkit_cell(cell) -> CellStep:
    ln = dict(ln_ih=cell.ln_ih_weight, ln_hh=cell.ln_hh_weight) if cell.layer_norm else {}
    common = dict(W_ih=cell.weight_ih, W_hh=cell.weight_hh, b_ih=cell.bias_ih, b_hh=cell.bias_hh,
                  zoneout=cell.zoneout, **ln)  # fmt: skip
    if isinstance(cell, LSTMCell):
        return CellStep(
            "lstm", peephole=cell.weight_ch if cell.peephole else None,
            ln_cell_w=cell.ln_cell_weight if cell.layer_norm else None,
            ln_cell_b=cell.ln_cell_bias if cell.layer_norm else None,
            W_hr=cell.weight_hr if cell.proj_size else None, **common,
        )  # fmt: skip
    if isinstance(cell, GRUCell):
        return CellStep("gru", before=cell.reset == "before", **common)
    if isinstance(cell, RNNCell):
        return CellStep("rnn", relu=cell.nonlinearity == "relu", **common)
    raise TypeError(f"no step for {type(cell).__name__}")


def _torch_cell(rnn: nn.RNNBase, layer: int) -> CellStep:
    def get(name: str) -> Tensor | None:
        return getattr(rnn, f"{name}_l{layer}", None)

    W = dict(W_ih=get("weight_ih"), W_hh=get("weight_hh"), b_ih=get("bias_ih"), b_hh=get("bias_hh"))
    if isinstance(rnn, nn.LSTM):
        return CellStep("lstm", W_hr=get("weight_hr") if rnn.proj_size else None, **W)
    if isinstance(rnn, nn.GRU):
        return CellStep("gru", **W)
    return CellStep("rnn", relu=rnn.nonlinearity == "relu", **W)


# -- the stepper --------------------------------------------------------------------------------------


class Stepper:
    """Logits of the next token from the current one: embedding -> fused cell steps -> head.

    Made by :func:`make_stepper`; :meth:`prime` runs the prime through the modules and sets the state,
    :meth:`step` advances one token for all N sequences at once.
    """

    def __init__(self, embedding: nn.Module, rnn: nn.Module, head: nn.Module, cells: list[CellStep], skip: bool):
        self.embedding, self.rnn, self.head = embedding, rnn, head
        self.cells, self.skip = cells, skip
        self.state: list[tuple[Tensor, ...]] = []
        self._graph: _CudaGraphStep | None = None
        if type(embedding) is nn.Embedding and embedding.max_norm is None:
            table = embedding.weight
            self._embed = lambda tokens: torch.embedding(table, tokens)  # (N, E); padding_idx acts on gradients only
        else:
            self._embed = lambda tokens: embedding(tokens.unsqueeze(1))[:, 0]
        if type(head) is nn.Linear:
            head_w, head_b = head.weight, head.bias
            self._head = lambda h: F.linear(h, head_w, head_b)
        else:
            self._head = head

    def prime(self, tokens: Tensor) -> Tensor:
        """Run the prime (N, T) through the modules; returns the logits after its last token (N, V)."""
        x = self.embedding(tokens)  # (N, T, E)
        batch_first = getattr(self.rnn, "batch_first", False)
        out, state = self.rnn(x if batch_first else x.transpose(0, 1), None)
        parts = as_tuple(state)  # each (L, N, *)
        self.state = [tuple(p[layer].contiguous() for p in parts) for layer in range(len(self.cells))]
        last = out[:, -1] if batch_first else out[-1]
        return self.head(last)

    def step(self, tokens: Tensor) -> Tensor:
        """Advance every sequence by one token (N,): logits (N, V)."""
        if tokens.is_cuda and cuda_graphs_enabled():
            if self._graph is None:
                self._graph = _CudaGraphStep(self, tokens)
            if self._graph.ok:
                return self._graph(tokens)
        logits, self.state = self._step(tokens, self.state)
        return logits

    def _step(self, tokens: Tensor, state: list[tuple[Tensor, ...]]) -> tuple[Tensor, list[tuple[Tensor, ...]]]:
        x = self._embed(tokens)  # (N, E)
        if not self.skip:
            new_state = []
            for cell, s in zip(self.cells, state):
                s = cell.run(x, s)
                new_state.append(s)
                x = s[0]
            return self._head(x), new_state
        inputs, outputs, new_state = x, [], []
        for cell, s in zip(self.cells, state):
            s = cell.run(inputs, s)
            new_state.append(s)
            outputs.append(s[0])
            inputs = torch.cat([x, s[0]], dim=-1)  # skip connections: the input feeds every layer
        return self._head(torch.cat(outputs, dim=-1)), new_state


def make_stepper(embedding: nn.Module, rnn: nn.Module, head: nn.Module) -> Stepper | None:
    """A :class:`Stepper` for these modules, or None when the recurrent layer cannot be stepped."""
    steps = cell_steps(rnn)
    return None if steps is None else Stepper(embedding, rnn, head, *steps)


def cuda_graphs_enabled() -> bool:
    return os.environ.get("RNNKIT_CUDA_GRAPHS", "1") != "0" and torch.cuda.is_available()


class _CudaGraphStep:
    """The stepper's step captured once as a CUDA graph: static token, state and logits buffers."""

    def __init__(self, stepper: Stepper, tokens: Tensor) -> None:
        self.stepper, self.ok = stepper, False
        self.tokens = tokens.clone()
        self.state = [tuple(t.clone() for t in s) for s in stepper.state]
        saved = [tuple(t.clone() for t in s) for s in self.state]
        try:
            side = torch.cuda.Stream()
            side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side):  # warm up outside the graph, as capture requires
                for _ in range(2):
                    self._run()
            torch.cuda.current_stream().wait_stream(side)
            for s, keep in zip(self.state, saved):
                for t, k in zip(s, keep):
                    t.copy_(k)
            self.graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(self.graph):
                self.logits = self._run()
            self.ok = True
        except RuntimeError:  # capture unsupported here (an op, a custom module): step without a graph
            stepper.state = saved
            torch.cuda.synchronize()

    def _run(self) -> Tensor:
        logits, new_state = self.stepper._step(self.tokens, self.state)
        for s, new in zip(self.state, new_state):
            for t, n in zip(s, new):
                t.copy_(n)
        return logits

    def __call__(self, tokens: Tensor) -> Tensor:
        self.tokens.copy_(tokens)
        self.graph.replay()
        self.stepper.state = self.state
        return self.logits
