"""The one place that decides how a recurrence runs: every backend choice, threshold and switch.

A layer's ``backend`` is one of

- ``"torch"``: torch's own multi-layer kernels (``torch._VF.lstm`` ...; cuDNN on a GPU). They compute
  the plain cells only: no layer norm, peepholes, recurrent dropout, zoneout, skip connections or
  reset="before" (:attr:`rnnkit.layers.RecurrentConfig.is_plain`).
- ``"fused"``: rnnkit's recurrences with hand-written backpropagation through time
  (:mod:`rnnkit.kernels.fused`), every cell and option.
- ``"reference"``: the step loop over the cells' equations (:mod:`rnnkit.cells`), the definition of
  correct that every other backend is tested against.
- ``"auto"``, resolved by :func:`layer_plan`: the fastest of these that computes exactly the model.

Inside the fused backend a :class:`Plan` says where each part of a recurrence runs: each step's
element-wise work in C (``c_steps``), the per-step products ``W_hh h`` in C too so that the whole loop
is one C call (``c_products``), and otherwise the PyTorch step loops, through TorchScript (``jit``) or
plain Python. The autograd Functions execute the plan; they decide nothing.

Environment switches (:data:`SWITCHES`), each "0" to turn a path off: ``RNNKIT_C_CELLS`` (the C training
loops; auto then leaves plain cells to torch), ``RNNKIT_JIT`` (TorchScript for the PyTorch step loops),
``RNNKIT_C_GENERATION`` (the C generation loop), ``RNNKIT_CUDA_GRAPHS`` (CUDA graphs for generation).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace

import torch
from torch import Tensor

from rnnkit.kernels import _ext

SWITCHES = {
    "RNNKIT_C_CELLS": "the fused backend's C training loops (kernels/csrc/_lstm.c, _gru.c, _rnn.c, _pack.c)",
    "RNNKIT_JIT": "TorchScript for the fused backend's PyTorch step loops",
    "RNNKIT_C_GENERATION": "the C generation loop (kernels/csrc/_generate.c)",
    "RNNKIT_CUDA_GRAPHS": "CUDA graphs for generation on a GPU",
}

BACKENDS = ("torch", "fused", "reference")
CHOICES = ("auto", *BACKENDS)
ALIASES = {"native": "torch"}  # the name run directories written before wave 2 store

# Packing W costs about what the C product saves over torch.mm in 10-20 steps (H 64-512): shorter loops,
# such as a decoder fed one step at a time, keep torch.mm per step.
C_PRODUCT_MIN_STEPS = 16


def switched_on(variable: str) -> bool:
    """False when the environment sets ``variable`` (one of :data:`SWITCHES`) to 0."""
    return os.environ.get(variable, "1") != "0"


@dataclass(frozen=True)
class Plan:
    """How one forward of a layer runs: its backend and, for the fused backend, where each part of a
    recurrence runs (see the module doc)."""

    backend: str
    c_steps: bool = False
    c_products: bool = False
    jit: bool = False

    def for_cell(self, proj_size: int) -> Plan:
        """This plan for one cell: the C loops have no LSTM projection, whose recurrence stays in PyTorch."""
        if proj_size and self.c_steps:
            return replace(self, c_steps=False, c_products=False)
        return self


def c_cells_available() -> bool:
    """Whether the C training loops were built, agree with their declarations, and are switched on."""
    return _ext.cells_lib is not None and switched_on("RNNKIT_C_CELLS")


def c_steps_apply(x: Tensor, W_hh: Tensor) -> bool:
    """Whether a recurrence over ``x`` with ``W_hh`` can run its steps in C: float32 on the CPU."""
    return c_cells_available() and x.device.type == "cpu" and x.dtype == torch.float32 and W_hh.dtype == torch.float32


def fused_plan(W_hh: Tensor, steps: int) -> Plan:
    """The fused backend's plan for a sequence of ``steps`` steps through weights like ``W_hh`` (the fused
    recurrences compute in the weights' dtype, whatever autocast gives their input)."""
    in_c = c_steps_apply(W_hh, W_hh)
    return Plan("fused", c_steps=in_c, c_products=in_c and steps >= C_PRODUCT_MIN_STEPS,
                jit=switched_on("RNNKIT_JIT"))  # fmt: skip


def auto_backend(config, W_hh: Tensor, steps: int, input: Tensor | None = None) -> str:
    """What ``"auto"`` means for a layer of ``config`` over ``steps`` steps: "fused" for what torch's kernels do
    not compute and "torch" for plain cells, with one exception. The plain GRU and vanilla RNN in float32 on
    the CPU, over 16 steps or more and outside autocast, take the fused backend, whose C loops run
    forward+backward in 0.1-0.9x the time of torch's CPU kernels (``rnnkit bench``, 2 cores, H 64-1024,
    B 1-64). torch's CPU LSTM kernel is on a par with them (0.8-1.2x in training, slower in inference at
    small sizes), so the LSTM stays with torch.

    Like every fused path, that one differentiates once and has no ``setup_context``: under a ``torch.func``
    transform (the weights or ``input`` wrapped by grad, vmap, jvp) auto stays with torch, but double
    backward (``create_graph=True``) needs ``backend="torch"`` (or ``RNNKIT_C_CELLS=0``, which sends auto
    there)."""
    if not config.is_plain:
        return "fused"
    if (
        config.cell != "lstm"
        and steps >= C_PRODUCT_MIN_STEPS
        and c_steps_apply(W_hh, W_hh)
        and not torch.is_autocast_enabled("cpu")  # torch's kernels compute in autocast's dtype
        and not any(_under_functorch(t) for t in (W_hh, input) if t is not None)
    ):
        return "fused"
    return "torch"


def layer_plan(config, W_hh: Tensor, steps: int, input: Tensor | None = None) -> Plan:
    """The plan for one forward of a layer of ``config`` (a RecurrentConfig) over ``steps`` steps."""
    backend = config.backend if config.backend != "auto" else auto_backend(config, W_hh, steps, input)
    if backend == "fused":
        return fused_plan(W_hh, steps)
    return Plan(backend)


def c_pack_applies(W: Tensor) -> bool:
    """Whether ``W`` is packed for the C products by C (``rk_pack``) rather than by torch's copy."""
    return c_cells_available() and W.dtype == torch.float32 and W.device.type == "cpu" and W.is_contiguous()


def c_generation_applies(tensors: list[Tensor], top_p: float | None) -> bool:
    """Whether generation runs in the C loop: built and switched on, every tensor float32 on the CPU, and no
    nucleus sampling (which the C loop does not draw)."""
    if _ext.generate_lib is None or not switched_on("RNNKIT_C_GENERATION") or top_p is not None:
        return False
    return all(t.device.type == "cpu" and t.dtype == torch.float32 for t in tensors)


def cuda_graphs_apply(tokens: Tensor) -> bool:
    """Whether the generation stepper captures its step as a CUDA graph."""
    return tokens.is_cuda and switched_on("RNNKIT_CUDA_GRAPHS")


def _under_functorch(t: Tensor) -> bool:
    """Whether a torch.func transform (grad, vmap, jvp) wraps ``t``."""
    return torch._C._functorch.is_functorch_wrapped_tensor(t)
