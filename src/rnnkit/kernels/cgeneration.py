"""The generation loop in C (``_generate.c``) on the CPU.

At batch 1 a generated token costs a few matrix-vector products; from Python (even through the
:class:`~rnnkit.kernels.generation.Stepper`) each of the step's ~15 tensor operations costs more in
dispatch than in arithmetic. :class:`CLoop` hands whole runs of tokens to ``rk_generate``, which does
the embedding lookup, the cell steps, the head and the draw in one C loop.

It covers what torch.nn.LSTM/GRU/RNN compute (projections too) and rnnkit's cells with every option
(layer norm, peepholes, projections, zoneout in eval mode, the GRU's reset="before" form, skip
connections): float32 on the CPU, one direction, an ``nn.Embedding`` in and an ``nn.Linear`` out,
sampling with a temperature and top-k (or greedy). The draw is the exponential race of
:func:`rnnkit.decoding.sample_logits` fed with the same generator, so the tokens are the PyTorch path's.
Nucleus (top-p) sampling, other modules, and a machine where the extension was not built go through the
Stepper. ``RNNKIT_C_GENERATION=0`` turns it off.

The extension is compiled by setuptools when the package is installed (``setup.py``; optional: a
failed build leaves only the Stepper) and loaded with ctypes (:mod:`rnnkit.kernels.native`).
"""

from __future__ import annotations

import ctypes

import torch
from torch import Tensor, nn

from rnnkit.kernels.native import load_library, pack, ptr, switched_on

KINDS = {"lstm": 0, "gru": 1, "rnn_tanh": 2, "rnn_relu": 3}
GATES = {"lstm": 4, "gru": 3, "rnn": 1}
CHUNK = 32  # tokens per C call: the Exp(1) draws of a chunk are made at once, (CHUNK, N, V) ...
RACE_FLOATS = 1 << 22  # ... in at most 16 MiB: fewer tokens per call for large vocabularies and batches


class _Layer(ctypes.Structure):
    _fields_ = [
        ("kind", ctypes.c_int32),
        ("input_size", ctypes.c_int32),
        ("hidden_size", ctypes.c_int32),
        ("w_ih", ctypes.c_void_p),
        ("w_hh", ctypes.c_void_p),
        ("b_ih", ctypes.c_void_p),
        ("b_hh", ctypes.c_void_p),
        ("h", ctypes.c_void_p),
        ("c", ctypes.c_void_p),
        ("w_hn", ctypes.c_void_p),
        ("ln_ih", ctypes.c_void_p),
        ("ln_hh", ctypes.c_void_p),
        ("ln_c_w", ctypes.c_void_p),
        ("ln_c_b", ctypes.c_void_p),
        ("zoneout", ctypes.c_float),
        ("peephole", ctypes.c_void_p),
        ("w_hr", ctypes.c_void_p),
        ("output_size", ctypes.c_int32),
    ]


_LIB = load_library("_generate")
if _LIB is not None:
    _LIB.rk_generate.restype = ctypes.c_int


def available() -> bool:
    """Whether the C loop was built and is switched on."""
    return _LIB is not None and switched_on("RNNKIT_C_GENERATION")


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
        self.layers = (_Layer * len(structs))(*structs)
        N, V = self.state[0][0].shape[0], head_w.shape[0]
        self.N, self.V = N, V
        self.chunk = max(1, min(CHUNK, RACE_FLOATS // (N * V)))  # tokens per call to run()
        self.skip = int(stepper.skip)

    def _layer(self, cell, state: tuple[Tensor, ...]) -> _Layer:
        """One layer's struct: weights packed in panels, the GRU's W_hn apart in the reset="before" form."""
        H = cell.W_hh.shape[0] // GATES[cell.kind]
        kind = "rnn_relu" if cell.relu else "rnn_tanh" if cell.kind == "rnn" else cell.kind
        W_hh, W_hn, b_ih, b_hh = cell.W_hh, None, cell.b_ih, cell.b_hh
        if cell.before:  # r applies to h before its product: two products, and b_hn joins the x side
            W_hh, W_hn = cell.W_hh[: 2 * H], cell.W_hh[2 * H :]
            b_ih, b_hh = (None if b_ih is None else b_ih + b_hh), None
        peephole = cell.peephole
        if kind == "lstm" and peephole is None:  # the C loop always adds the peephole terms: zeros here
            peephole = cell.W_hh.new_zeros(3 * H)
        tensors = [pack(cell.W_ih), pack(W_hh), _float32(b_ih), _float32(b_hh), None if W_hn is None else pack(W_hn)]
        tensors += [_float32(t) for t in (cell.ln_ih, cell.ln_hh, cell.ln_cell_w, cell.ln_cell_b, peephole)]
        tensors.append(None if cell.W_hr is None else pack(cell.W_hr))
        self.keep += tensors
        W_ih, W_hh, b_ih, b_hh, W_hn, ln_ih, ln_hh, ln_c_w, ln_c_b, peephole, W_hr = (ptr(t) for t in tensors)
        I, P = cell.W_ih.shape[1], cell.W_hh.shape[1]  # P: the size of h (H without a projection)
        h, c = state[0], state[1] if kind == "lstm" else None
        return _Layer(KINDS[kind], I, H, W_ih, W_hh, b_ih, b_hh, ptr(h), ptr(c), W_hn, ln_ih, ln_hh, ln_c_w, ln_c_b,
                      cell.zoneout, peephole, W_hr, P)  # fmt: skip

    @staticmethod
    def make(stepper, temperature: float, top_k: int | None, top_p: float | None) -> CLoop | None:
        """A C loop for this stepper and sampling, or None where it does not apply (see the module doc)."""
        if not available() or top_p is not None:
            return None
        emb, head = stepper.embedding, stepper.head
        if type(emb) is not nn.Embedding or emb.max_norm is not None or type(head) is not nn.Linear:
            return None
        sizes = [cell.W_hh.shape[1] for cell in stepper.cells]  # each layer's h
        if head.in_features != (sum(sizes) if stepper.skip else sizes[-1]):
            return None
        tensors = [emb.weight, head.weight] + [t for s in stepper.state for t in s]
        for cell in stepper.cells:
            tensors += [cell.W_ih, cell.W_hh]
        if any(t.device.type != "cpu" or t.dtype != torch.float32 for t in tensors):
            return None
        return CLoop(stepper, emb.weight, head.weight, head.bias, temperature, top_k)

    def run(self, tokens: Tensor, n_steps: int, generator: torch.Generator) -> Tensor:
        """Feed ``tokens`` (N,) and generate ``n_steps`` more: (n_steps, N). The state moves on."""
        current = tokens.to(torch.int64).contiguous().clone()
        out = torch.empty(n_steps, self.N, dtype=torch.int64)
        race = None
        if self.temperature > 0:  # the draws sample_logits would make, step after step, in one call
            race = torch.empty(n_steps, self.N, self.V).exponential_(1.0, generator=generator)
        status = _LIB.rk_generate(
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
