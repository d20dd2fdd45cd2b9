"""Checking the ctypes declarations of the C kernels' structs against the layouts the compiler made.

Python hands the C entry points structs it declares itself, as ``ctypes.Structure`` subclasses that
copy the C typedefs field by field. Nothing ties the two together at build time: a field added, moved
or retyped on one side only makes C read every later field at the wrong offset. So each extension
exports what its compiler made of every struct its functions take (``RK_LAYOUT`` and
``RK_EXPORT_LAYOUTS`` in ``csrc/_kernels.h``)::

    int rk_layouts(const rk_layout *const **out)   // *out = the table; returns its length
    rk_layout        {const char *name; size_t size, n_fields; const rk_layout_field *fields;}
    rk_layout_field  {const char *name; size_t offset, size;}
    const float rk_layer_norm_eps                  // RK_LAYER_NORM_EPS, the cells' layer-norm epsilon

and :func:`check` compares a library's table with the declarations: each struct's sizeof, each
field's offsetof and sizeof, the same fields on both sides, and the epsilon. The loader uses a library
only where they agree (otherwise it warns once and runs the PyTorch path).

A leaf module: the standard library only, so that the loader can import it before anything else.
"""

from __future__ import annotations

import ctypes
from dataclasses import dataclass
from pathlib import Path


class _Field(ctypes.Structure):  # rk_layout_field in csrc/_kernels.h: the one layout taken on trust
    _fields_ = [("name", ctypes.c_char_p), ("offset", ctypes.c_size_t), ("size", ctypes.c_size_t)]


class _Struct(ctypes.Structure):  # rk_layout in csrc/_kernels.h
    _fields_ = [
        ("name", ctypes.c_char_p),
        ("size", ctypes.c_size_t),
        ("n_fields", ctypes.c_size_t),
        ("fields", ctypes.POINTER(_Field)),
    ]


_TABLE = ctypes.POINTER(ctypes.POINTER(_Struct))  # const rk_layout *const *
# Built from the library's symbol, not through lib.rk_layouts, so that the caller's CDLL is left as it was.
_RK_LAYOUTS = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(_TABLE))


@dataclass(frozen=True)
class Layout:
    """One struct as laid out in memory: ``size`` (sizeof) and, in order, each field's (offset, size)."""

    size: int
    fields: dict[str, tuple[int, int]]


def exported(lib: ctypes.CDLL) -> dict[str, Layout]:
    """The layouts ``lib`` exports, by struct name. Raises AttributeError where it exports none (a
    library built before the C exported them)."""
    rk_layouts = _RK_LAYOUTS(("rk_layouts", lib))
    table = _TABLE()
    layouts = {}
    for i in range(rk_layouts(ctypes.byref(table))):
        struct = table[i].contents
        fields = {}
        for j in range(struct.n_fields):
            field = struct.fields[j]
            fields[field.name.decode()] = (field.offset, field.size)
        layouts[struct.name.decode()] = Layout(struct.size, fields)
    return layouts


def declared(struct: type[ctypes.Structure]) -> Layout:
    """The layout ctypes gives the declaration ``struct`` (its fields in declaration order)."""
    fields = {}
    for name, *_ in struct._fields_:
        field = getattr(struct, name)
        fields[name] = (field.offset, field.size)
    return Layout(ctypes.sizeof(struct), fields)


def difference(name: str, c: Layout, python: Layout) -> str | None:
    """None when the struct ``name`` has the same layout in C (``c``) and in its Python declaration,
    else one line naming the first field that differs and both offsets (or sizes)."""
    for field, (offset, size) in python.fields.items():
        if field not in c.fields:
            return f"{name}.{field} (offset {offset} in Python) is not a field of the C struct"
        c_offset, c_size = c.fields[field]
        if c_offset != offset:
            return f"{name}.{field} is at offset {c_offset} in C but {offset} in Python"
        if c_size != size:
            return f"{name}.{field} (offset {offset}) is {c_size} bytes in C but {size} in Python"
    for field, (c_offset, _) in c.fields.items():
        if field not in python.fields:
            return f"{name}.{field} (offset {c_offset} in C) is missing from the Python declaration"
    if c.size != python.size:
        return f"{name} is {c.size} bytes in C but {python.size} in Python"
    return None


def check(lib: ctypes.CDLL, structs: dict[str, type[ctypes.Structure]], eps: float) -> str | None:
    """None when ``lib`` was compiled with the layouts of ``structs`` (C struct name -> its ctypes
    declaration) and with the layer-norm epsilon ``eps`` (rnnkit.cells.LAYER_NORM_EPS); otherwise one
    line saying what differs, first the library's file name, for the caller's warning."""
    where = Path(getattr(lib, "_name", None) or "the C library").name
    try:
        layouts = exported(lib)
        c_eps = ctypes.c_float.in_dll(lib, "rk_layer_norm_eps").value
    except (AttributeError, ValueError):  # the symbol is missing (ValueError from in_dll)
        return f"{where}: exports no struct layouts (rk_layouts), so it was built before they were checked; rebuild it"
    for name, struct in structs.items():
        if name not in layouts:
            return f"{where}: {name} is not among the structs it exports ({', '.join(layouts) or 'none'})"
        problem = difference(name, layouts[name], declared(struct))
        if problem is not None:
            return f"{where}: {problem}"
    if c_eps != ctypes.c_float(eps).value:  # the C side holds it as a float: compare at that precision
        return f"{where}: the layer-norm epsilon is {c_eps:g} in C but {eps:g} in Python"
    return None
