"""The C extensions that ``setup.py`` builds at install time: finding them and handing them tensors.

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


def ptr(t: Tensor | None) -> int | None:
    """The address of a tensor's data for a C pointer; None (NULL) for a missing tensor."""
    return None if t is None else t.data_ptr()


def struct_fields(sizes: str, pointers: str) -> list[tuple[str, type]]:
    """ctypes ``_fields_`` for a struct of int32 sizes followed by pointers, named as in the C file."""
    return [(name, ctypes.c_int32) for name in sizes.split()] + [(name, ctypes.c_void_p) for name in pointers.split()]


def full_mask(mask: Tensor | None, shape: tuple[int, ...]) -> Tensor | None:
    """A float32 mask broadcastable to ``shape``, written out in full and contiguous for a C loop."""
    return None if mask is None else mask.to(torch.float32).expand(shape).contiguous()
