"""Finding the C extensions that ``setup.py`` builds at install time (optional: None where absent).

The extensions have no Python API of their own; their functions are called through ctypes, which
releases the GIL for the call.
"""

from __future__ import annotations

import ctypes
import importlib.machinery
from pathlib import Path


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
