"""Token-by-token generation without per-step module overhead.

:func:`rnnkit.generate` feeds each sampled token back as the next input. Calling the modules for
every token pays their input checks, state reshaping and dispatch again and again (for torch.nn.LSTM
at H=256 that is ~10x the cost of the step's matrix-vector products). A :class:`Stepper` instead is
made once per generation:

- it reads the cells out of the recurrent layer (rnnkit or torch.nn, any cell and option, one direction)
  as :class:`rnnkit.cells.CellSpec` and :class:`rnnkit.cells.CellWeights`, once;
- it primes the state by running the prime through the modules themselves (one call, same numbers);
- then :meth:`Stepper.step` computes a token's logits as an embedding lookup, one step of each layer's
  cell equations (torch's fused cell function for a plain cell) and the head, in eval-mode semantics
  (no dropout, zoneout's expectation);
- on CUDA it captures that step once as a CUDA graph and replays it per token (where
  :func:`rnnkit.kernels.dispatch.cuda_graphs_apply`), since at batch sizes of 1-16 a step is dozens of
  tiny kernels bound by launch cost.

:func:`make_stepper` returns None for a layer it cannot step (bidirectional, or an unknown module);
:mod:`rnnkit.decoding` then calls the modules per token as before.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rnnkit.cells import CellSpec, CellWeights, as_tuple
from rnnkit.kernels import dispatch

# -- the cells of a layer, in step form --------------------------------------------------------------


@dataclass
class StepCell:
    """One layer's cell in step form: its spec and the tensors its equations read (:mod:`rnnkit.cells`).

    ``run(x, state)`` advances it one step in eval semantics (no dropout, zoneout's expectation). Plain
    cells (torch's own equations: no layer norm, peepholes, projection, zoneout or reset="before") step
    through torch's fused cell functions (``lstm_cell``, ``gru_cell``, ``rnn_*_cell``: one call, the gate
    arithmetic in C++); the others through the cells' equations, :meth:`rnnkit.cells.CellSpec.advance`.
    """

    spec: CellSpec
    weights: CellWeights

    def __post_init__(self) -> None:
        spec, w = self.spec, self.weights
        if spec.is_plain and not spec.proj_size:
            name = {"lstm": "lstm_cell", "gru": "gru_cell"}.get(spec.kind, f"rnn_{spec.nonlinearity}_cell")
            cell, lstm = getattr(torch._VF, name), spec.kind == "lstm"
            W = (w.weight_ih, w.weight_hh, w.bias_ih, w.bias_hh)
            self.run = lambda x, s: as_tuple(cell(x, s if lstm else s[0], *W))
        elif spec.kind == "lstm":
            self.run = lambda x, s: spec.advance(w, x, s)[1]
        else:
            self.run = lambda x, s: (spec.advance(w, x, s[0])[1],)


def step_cells(rnn: nn.Module) -> tuple[list[StepCell], bool] | None:
    """The cells of ``rnn`` in step form and whether it has skip connections; None if it cannot be stepped
    (bidirectional, or not an rnnkit or torch.nn recurrent layer)."""
    if callable(getattr(rnn, "cell_weights", None)):  # an rnnkit layer (kernels import no layer: imports run down)
        if rnn.config.bidirectional:
            return None
        return [StepCell(spec, rnn.cell_weights(i)) for i, spec in enumerate(rnn.specs)], rnn.config.skip_connections
    if type(rnn) in (nn.LSTM, nn.GRU, nn.RNN):
        if rnn.bidirectional:
            return None
        return [_torch_cell(rnn, layer) for layer in range(rnn.num_layers)], False
    return None


def _torch_cell(rnn: nn.RNNBase, layer: int) -> StepCell:
    """Layer ``layer`` of a torch.nn module as a cell of rnnkit's: the same equations, torch's weights."""
    kind = {nn.LSTM: "lstm", nn.GRU: "gru", nn.RNN: "rnn"}[type(rnn)]
    input_size = rnn.input_size if layer == 0 else (rnn.proj_size or rnn.hidden_size)
    spec = CellSpec(kind, input_size, rnn.hidden_size, rnn.bias, nonlinearity=getattr(rnn, "nonlinearity", "tanh"),
                    proj_size=getattr(rnn, "proj_size", 0))  # fmt: skip
    weights = CellWeights(**{stem: getattr(rnn, f"{stem}_l{layer}") for stem, _ in spec.parameter_shapes()})
    return StepCell(spec, weights)


# -- the stepper --------------------------------------------------------------------------------------


class Stepper:
    """Logits of the next token from the current one: embedding -> fused cell steps -> head.

    Made by :func:`make_stepper`; :meth:`prime` runs the prime through the modules and sets the state,
    :meth:`step` advances one token for all N sequences at once.
    """

    def __init__(self, embedding: nn.Module, rnn: nn.Module, head: nn.Module, cells: list[StepCell], skip: bool):
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
        if dispatch.cuda_graphs_apply(tokens):
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
    steps = step_cells(rnn)
    return None if steps is None else Stepper(embedding, rnn, head, *steps)


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
