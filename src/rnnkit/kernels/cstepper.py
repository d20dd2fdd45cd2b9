"""The generation loop in C (``_generate.c``) on the CPU.

At batch 1 a generated token costs a few matrix-vector products; from Python (even through the
:class:`~rnnkit.kernels.stepper.Stepper`) each of the step's ~15 tensor operations costs more in
dispatch than in arithmetic. :class:`CLoop` hands whole runs of tokens to ``rk_generate``, which does
the embedding lookup, the cell steps, the head and the draw in one C loop.

It covers what torch.nn.LSTM/GRU/RNN compute (projections too) and rnnkit's cells with every option
(layer norm, peepholes, projections, zoneout in eval mode, the GRU's reset="before" form, skip
connections): float32 on the CPU, one direction, an ``nn.Embedding`` in and an ``nn.Linear`` out,
sampling with a temperature and top-k (or greedy). The draw is the exponential race of
:func:`rnnkit.decoding.sample_logits` fed with the same generator, so the tokens are the PyTorch path's.
Nucleus (top-p) sampling, other modules, and a machine where the extension was not built go through the
Stepper (:func:`rnnkit.kernels.dispatch.c_generation_applies` decides).

The extension is compiled by setuptools when the package is installed (``setup.py``; optional: a
failed build leaves only the Stepper) and loaded with ctypes (:mod:`rnnkit.kernels._ext`).
"""

from __future__ import annotations

import ctypes

import torch
from torch import Tensor, nn

from rnnkit.kernels import _ext, dispatch
from rnnkit.kernels._abi import Layer
from rnnkit.kernels._ext import pack, ptr

KINDS = {"lstm": 0, "gru": 1, "rnn_tanh": 2, "rnn_relu": 3}  # rk_layer.kind in _generate.c
CHUNK = 32  # tokens per C call: the Exp(1) draws of a chunk are made at once, (CHUNK, N, V) ...
RACE_FLOATS = 1 << 22  # ... in at most 16 MiB: fewer tokens per call for large vocabularies and batches


def _float32(t: Tensor | None) -> Tensor | None:
    return None if t is None else t.detach().to(torch.float32).contiguous()


class CLoop:
    """Runs of generated tokens from the stepper's primed state, in C. Use :meth:`make`."""

    def __init__(self, stepper, table: Tensor, head_w: Tensor, head_b: Tensor | None, temperature: float,
                 top_k: int | None = None):  # fmt: skip
        self.table, self.head_w, self.head_b = _float32(table), pack(head_w), _float32(head_b)
        self.temperature, self.top_k = float(temperature), top_k or 0
        # The state the C loop updates in place: the primed state, copied (it may view the rnn's output).
        self.state = [tuple(_float32(s).clone() for s in st) for st in stepper.state]
        self.keep: list[Tensor | None] = []  # the tensors the structs point into, kept alive
        structs = [self._layer(cell, state) for cell, state in zip(stepper.cells, self.state)]
        self.layers = (Layer * len(structs))(*structs)
        N, V = self.state[0][0].shape[0], head_w.shape[0]
        self.N, self.V = N, V
        self.chunk = max(1, min(CHUNK, RACE_FLOATS // (N * V)))  # tokens per call to run()
        self.skip = int(stepper.skip)

    def _layer(self, cell, state: tuple[Tensor, ...]) -> Layer:
        """One layer's struct: weights packed in panels, the GRU's W_hn apart in the reset="before" form."""
        spec, w = cell.spec, cell.weights
        H = spec.hidden_size
        kind = f"rnn_{spec.nonlinearity}" if spec.kind == "rnn" else spec.kind
        W_hh, W_hn = w.weight_hh, None
        b_ih, b_hh = spec.folded_biases(w)
        if spec.kind == "gru" and spec.reset == "before":  # r applies to h before its product: two products
            W_hh, W_hn = w.weight_hh[: 2 * H], w.weight_hh[2 * H :]
        peephole = w.weight_ch
        if kind == "lstm" and peephole is None:  # the C loop always adds the peephole terms: zeros here
            peephole = w.weight_hh.new_zeros(3 * H)
        tensors = [pack(w.weight_ih), pack(W_hh), _float32(b_ih), _float32(b_hh), None if W_hn is None else pack(W_hn)]
        tensors += [_float32(t) for t in (w.ln_ih_weight, w.ln_hh_weight, w.ln_cell_weight, w.ln_cell_bias, peephole)]
        tensors.append(None if w.weight_hr is None else pack(w.weight_hr))
        self.keep += tensors
        W_ih, W_hh, b_ih, b_hh, W_hn, ln_ih, ln_hh, ln_c_w, ln_c_b, peephole, W_hr = (ptr(t) for t in tensors)
        h, c = state[0], state[1] if kind == "lstm" else None
        return Layer(KINDS[kind], spec.input_size, H, W_ih, W_hh, b_ih, b_hh, ptr(h), ptr(c), W_hn, ln_ih, ln_hh,
                     ln_c_w, ln_c_b, spec.zoneout, peephole, W_hr, spec.output_size)  # fmt: skip

    @staticmethod
    def make(stepper, temperature: float, top_k: int | None, top_p: float | None) -> CLoop | None:
        """A C loop for this stepper and sampling, or None where it does not apply (see the module doc)."""
        emb, head = stepper.embedding, stepper.head
        if type(emb) is not nn.Embedding or emb.max_norm is not None or type(head) is not nn.Linear:
            return None
        sizes = [cell.spec.output_size for cell in stepper.cells]  # each layer's h
        if head.in_features != (sum(sizes) if stepper.skip else sizes[-1]):
            return None
        tensors = [emb.weight, head.weight] + [t for s in stepper.state for t in s]
        for cell in stepper.cells:
            tensors += [cell.weights.weight_ih, cell.weights.weight_hh]
        if not dispatch.c_generation_applies(tensors, top_p):
            return None
        return CLoop(stepper, emb.weight, head.weight, head.bias, temperature, top_k)

    def run(self, tokens: Tensor, n_steps: int, generator: torch.Generator) -> Tensor:
        """Feed ``tokens`` (N,) and generate ``n_steps`` more: (n_steps, N). The state moves on."""
        current = tokens.to(torch.int64).contiguous().clone()
        out = torch.empty(n_steps, self.N, dtype=torch.int64)
        race = None
        if self.temperature > 0:  # the draws sample_logits would make, step after step, in one call
            race = torch.empty(n_steps, self.N, self.V).exponential_(1.0, generator=generator)
        status = _ext.generate_lib.rk_generate(
            len(self.layers), self.layers, ctypes.c_void_p(self.table.data_ptr()), self.table.shape[0],
            self.table.shape[1], ctypes.c_void_p(self.head_w.data_ptr()), ctypes.c_void_p(ptr(self.head_b)),
            self.V, self.N, n_steps, ctypes.c_void_p(current.data_ptr()), ctypes.c_void_p(ptr(race)),
            ctypes.c_float(self.temperature), self.top_k, ctypes.c_void_p(out.data_ptr()), torch.get_num_threads(),
            self.skip,
        )  # fmt: skip
        if status == -2:
            raise MemoryError("no memory for the C generation loop's scratch buffers")
        if status != 0:
            raise ValueError(f"a token id is outside the embedding table of {self.table.shape[0]} rows")
        return out
