"""The C extensions that ``setup.py`` builds at install time: finding them, handing them tensors, and the
step loops of the training kernels around their per-step C calls.

The extensions have no Python API of their own; their functions are called through ctypes (which
releases the GIL for the call) with structs of sizes and data pointers.
"""

from __future__ import annotations

import ctypes
import importlib.machinery
import os
from pathlib import Path

import torch
from torch import Tensor


def load_library(stem: str) -> ctypes.CDLL | None:
    """The built extension ``rnnkit/kernels/<stem>*.so`` loaded with ctypes, or None where it was not built
    or cannot be loaded here (a missing system library): the caller then runs its PyTorch path."""
    here = Path(__file__).parent
    for suffix in importlib.machinery.EXTENSION_SUFFIXES:
        path = here / f"{stem}{suffix}"
        if path.exists():
            try:
                return ctypes.CDLL(str(path))
            except OSError:
                return None
    return None


def switched_on(variable: str) -> bool:
    """False when the environment sets ``variable`` to 0 (the switches that turn a C path off)."""
    return os.environ.get(variable, "1") != "0"


CELLS = load_library("_cells")  # the training steps: _lstm.c, _gru.c, _rnn.c


def cells_available() -> bool:
    """Whether the cells' C training steps were built and are switched on (``RNNKIT_C_CELLS``)."""
    return CELLS is not None and switched_on("RNNKIT_C_CELLS")


def c_steps_apply(x: Tensor, W_hh: Tensor) -> bool:
    """Whether a recurrence over ``x`` with ``W_hh`` runs its steps in C: float32 on the CPU, when available."""
    return cells_available() and x.device.type == "cpu" and x.dtype == torch.float32 and W_hh.dtype == torch.float32


def ptr(t: Tensor | None) -> int | None:
    """The address of a tensor's data for a C pointer; None (NULL) for a missing tensor. The C loops index
    rows themselves, so a strided view would be read wrongly: it is refused (a bug in the caller)."""
    if t is None:
        return None
    if not t.is_contiguous():
        raise RuntimeError(f"rnnkit: a C kernel was handed a non-contiguous tensor of shape {tuple(t.shape)}")
    return t.data_ptr()


def struct_fields(sizes: str, pointers: str) -> list[tuple[str, type]]:
    """ctypes ``_fields_`` for a struct of int32 sizes followed by pointers, named as in the C file."""
    return [(name, ctypes.c_int32) for name in sizes.split()] + [(name, ctypes.c_void_p) for name in pointers.split()]


def full_mask(mask: Tensor | None, shape: tuple[int, ...]) -> Tensor | None:
    """A float32 mask broadcastable to ``shape``, written out in full and contiguous for a C loop."""
    return None if mask is None else mask.to(torch.float32).expand(shape).contiguous()


def forward_steps(step, args: ctypes.Structure, hs: Tensor, W_hh: Tensor, products: Tensor, rec_mask: Tensor | None,
                  scratch, add: bool) -> None:  # fmt: skip
    """The forward's loop of a C training kernel: per step t, torch writes ``W_hh h_in`` into ``products[t]``
    (or adds it there when ``add``), with ``h_in = hs[t] * rec_mask``, then ``step`` runs with ``args.t = t``."""
    ref, W_t = ctypes.byref(args), W_hh.t()
    hs_t, out_t = hs.unbind(0), products.unbind(0)
    h_in = scratch.empty(hs.shape[1:], hs) if rec_mask is not None else None
    for t in range(products.shape[0]):
        h = hs_t[t] if rec_mask is None else torch.mul(hs_t[t], rec_mask, out=h_in)
        if add:
            out_t[t].addmm_(h, W_t)
        else:
            torch.mm(h, W_t, out=out_t[t])
        args.t = t
        step(ref)


def backward_steps(step, args: ctypes.Structure, DU: Tensor, W_hh: Tensor, base: Tensor, dh: Tensor,
                   rec_mask: Tensor | None, scratch) -> None:  # fmt: skip
    """The backward's loop: per step t from the last, ``step`` (which leaves ``DU[t]`` and ``base``), then torch
    writes ``dh = base + (DU[t] W_hh) * rec_mask``, the gradient of the carried h of step t-1."""
    ref, DU_t = ctypes.byref(args), DU.unbind(0)
    masked = scratch.empty(dh.shape, dh) if rec_mask is not None else None
    for t in range(DU.shape[0] - 1, -1, -1):
        args.t = t
        step(ref)
        if rec_mask is None:
            torch.addmm(base, DU_t[t], W_hh, out=dh)
        else:
            torch.addcmul(base, torch.mm(DU_t[t], W_hh, out=masked), rec_mask, out=dh)
