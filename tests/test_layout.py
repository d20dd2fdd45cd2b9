"""The C extensions' exported struct layouts (csrc/_kernels.h) against the Python ctypes declarations
(rnnkit.kernels.layout): the built libraries agree with today's declarations, and a declaration with a
field moved, retyped, missing or extra, or a different layer-norm epsilon, is reported by name."""

from __future__ import annotations

import ctypes
import ctypes.util
import importlib.machinery
from pathlib import Path

import pytest

from rnnkit.cells import LAYER_NORM_EPS
from rnnkit.kernels import layout
from rnnkit.kernels.layout import Layout, check, declared, difference, exported


def declarations() -> dict[str, dict[str, type[ctypes.Structure]]]:
    """The ctypes declaration of every struct each extension takes, by C struct name (kernels/_abi.py)."""
    from rnnkit.kernels import _abi

    return {"_cells": _abi.CELLS_STRUCTS, "_generate": _abi.GENERATE_STRUCTS}


def built(stem: str) -> ctypes.CDLL:
    """The built extension rnnkit/kernels/<stem>*.so, loaded afresh; skips the test where it was not built."""
    here = Path(layout.__file__).parent
    for suffix in importlib.machinery.EXTENSION_SUFFIXES:
        path = here / f"{stem}{suffix}"
        if path.exists():
            return ctypes.CDLL(str(path))
    pytest.skip(f"rnnkit.kernels.{stem} is not built here")


def structure(fields: list[tuple]) -> type[ctypes.Structure]:
    """A ctypes struct declared with ``fields``: the deliberately wrong declarations below."""
    return type("Wrong", (ctypes.Structure,), {"_fields_": fields})


@pytest.mark.parametrize("stem", ["_cells", "_generate"])
def test_built_libraries_agree_with_the_declarations(stem):
    lib, structs = built(stem), declarations()[stem]
    assert check(lib, structs, LAYER_NORM_EPS) is None
    c = exported(lib)
    assert set(c) == set(structs)  # every struct the extension takes is exported, and declared
    for name, struct in structs.items():
        assert c[name] == declared(struct)


@pytest.mark.skipif(ctypes.sizeof(ctypes.c_void_p) != 8, reason="offsets worked out for 64-bit pointers")
def test_exported_offsets_are_the_compilers():
    """Offsets worked out by hand from the x86-64 / LP64 rules, not from ctypes: padding after an odd
    number of int32s, a float between pointers."""
    cells, generate = exported(built("_cells")), exported(built("_generate"))
    rnn = cells["rk_rnn_forward"]  # int32 B, H, threads, t, relu; then 11 pointers
    assert rnn.fields["relu"] == (16, 4)
    assert rnn.fields["gx"] == (24, 8)  # 4 bytes of padding before the first pointer
    assert rnn.size == 24 + 11 * 8
    layer = generate["rk_layer"]  # int32 x3, 11 pointers, float zoneout, 2 pointers, int32 output_size
    assert layer.fields["w_ih"] == (16, 8)
    assert layer.fields["zoneout"] == (16 + 11 * 8, 4)
    assert layer.fields["peephole"] == (112, 8)
    assert layer.fields["output_size"] == (128, 4)
    assert layer.size == 136
    assert list(cells["rk_steps"].fields)[:6] == ["T", "B", "R", "K", "threads", "add"]


def test_a_moved_field_is_named_with_both_offsets():
    lib, structs = built("_cells"), declarations()["_cells"]
    fields = list(structs["rk_lstm_forward"]._fields_)
    i, j = [name for name, _ in fields].index("gx"), [name for name, _ in fields].index("gh")
    fields[i], fields[j] = fields[j], fields[i]  # gh declared before gx
    problem = check(lib, {**structs, "rk_lstm_forward": structure(fields)}, LAYER_NORM_EPS)
    assert problem is not None
    assert "rk_lstm_forward.gh is at offset 24 in C but 16 in Python" in problem
    assert problem.startswith(Path(lib._name).name)


def test_a_retyped_field_is_named_with_both_sizes():
    lib, structs = built("_generate"), declarations()["_generate"]
    fields = [(name, ctypes.c_double if name == "zoneout" else kind) for name, kind in structs["rk_layer"]._fields_]
    problem = check(lib, {"rk_layer": structure(fields)}, LAYER_NORM_EPS)
    assert problem is not None and "rk_layer.zoneout (offset 104) is 4 bytes in C but 8 in Python" in problem


def test_a_missing_and_an_extra_field_are_named():
    lib, structs = built("_cells"), declarations()["_cells"]
    fields = list(structs["rk_rnn_backward"]._fields_)
    missing = check(lib, {"rk_rnn_backward": structure(fields[:-1])}, LAYER_NORM_EPS)
    assert missing is not None and "rk_rnn_backward.acc" in missing and "missing from the Python" in missing
    extra = check(lib, {"rk_rnn_backward": structure(fields + [("spare", ctypes.c_void_p)])}, LAYER_NORM_EPS)
    assert extra is not None and "rk_rnn_backward.spare" in extra and "not a field of the C struct" in extra
    unknown = check(lib, {"rk_nothing": structs["rk_steps"]}, LAYER_NORM_EPS)
    assert unknown is not None and "rk_nothing is not among the structs it exports" in unknown


def test_a_different_total_size_is_reported():
    c = Layout(16, {"a": (0, 4), "p": (8, 8)})
    assert difference("s", c, Layout(16, {"a": (0, 4), "p": (8, 8)})) is None
    assert difference("s", c, Layout(24, {"a": (0, 4), "p": (8, 8)})) == "s is 16 bytes in C but 24 in Python"


def test_a_different_epsilon_is_caught():
    for stem in ["_cells", "_generate"]:
        lib, structs = built(stem), declarations()[stem]
        problem = check(lib, structs, LAYER_NORM_EPS * 10)
        assert problem is not None and "layer-norm epsilon is 1e-05 in C but 0.0001 in Python" in problem
        assert check(lib, structs, float(ctypes.c_float(LAYER_NORM_EPS).value)) is None  # the float32 value


def test_a_library_built_before_the_export_is_refused():
    """Any library without rk_layouts stands in for one built from the sources before this check (libm)."""
    name = ctypes.util.find_library("m")
    if name is None:
        pytest.skip("no libm to load")
    problem = check(ctypes.CDLL(name), declarations()["_generate"], LAYER_NORM_EPS)
    assert problem is not None and "exports no struct layouts (rk_layouts)" in problem and "rebuild" in problem
