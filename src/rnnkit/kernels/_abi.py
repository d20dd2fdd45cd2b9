"""The C kernels' structs, declared once as ctypes: what Python hands the C entry points.

Each declaration mirrors a struct of ``csrc/`` field by field (int32 sizes, then pointers, in the C
file's order). Every library exports the layout it was compiled with, and :mod:`rnnkit.kernels._ext`
checks these declarations against it when it loads the library: a library that disagrees is not used.
"""

from __future__ import annotations

import ctypes


def struct_fields(sizes: str, pointers: str) -> list[tuple[str, type]]:
    """ctypes ``_fields_`` for a struct of int32 sizes followed by pointers, named as in the C file."""
    return [(name, ctypes.c_int32) for name in sizes.split()] + [(name, ctypes.c_void_p) for name in pointers.split()]


# -- _cells: the training loops -------------------------------------------------------------------------


class Packing(ctypes.Structure):  # rk_packing in _pack.c
    _fields_ = struct_fields("R K threads", "W out")


class Steps(ctypes.Structure):  # rk_steps in _kernels.h
    _fields_ = struct_fields("T B R K threads add", "W mask scratch x y base")


class LSTMForward(ctypes.Structure):  # rk_lstm_forward in _lstm.c
    _fields_ = struct_fields(
        "B H threads t",
        "gx gh ln_ih ln_hh bias ln_c_w ln_c_b rstd_x rstd_h y_c rstd_c hs cs zh zc valid A K F peephole c_new",
    )


class LSTMBackward(ctypes.Structure):  # rk_lstm_backward
    _fields_ = struct_fields(
        "B H threads t",
        "dh dc base work d_hs uh uc A K F y_x y_h rstd_x rstd_h ln_ih ln_hh y_c rstd_c ln_c_w dG dGX DU acc peephole",
    )


class GRUForward(ctypes.Structure):  # rk_gru_forward in _gru.c
    _fields_ = struct_fields("B H threads t", "gx gh ln_ih ln_hh b_ih b_hh rstd_x rstd_h hs zh valid C Z")


class GRUBackward(ctypes.Structure):  # rk_gru_backward
    _fields_ = struct_fields("B H threads t", "dh base d_hs u C Z y_x y_h rstd_x rstd_h ln_ih ln_hh dx du dGX DU acc")


class GRUBeforeForward(ctypes.Structure):  # rk_gru_before_forward
    _fields_ = struct_fields(
        "B H threads t", "gx gh_rz gh_n ln_ih ln_hh bias rec_mask rstd_x rstd_rz rstd_n hs zh valid RH C Z R"
    )


class GRUBeforeBackward(ctypes.Structure):  # rk_gru_before_backward
    _fields_ = struct_fields(
        "B H threads t",
        "dh base d_rh d_hs u rec_mask C Z R y_x y_rz y_n rstd_x rstd_rz rstd_n ln_ih ln_hh D dGX DU_rz DU_n acc",
    )


class RNNForward(ctypes.Structure):  # rk_rnn_forward in _rnn.c
    _fields_ = struct_fields("B H threads t relu", "gx gh ln_ih ln_hh bias rstd_x rstd_h hs zh valid C")


class RNNBackward(ctypes.Structure):  # rk_rnn_backward
    _fields_ = struct_fields("B H threads t", "dh base d_hs u C y_x y_h rstd_x rstd_h ln_ih ln_hh D dGX DU acc")


CELLS_STRUCTS: dict[str, type[ctypes.Structure]] = {
    "rk_packing": Packing,
    "rk_steps": Steps,
    "rk_lstm_forward": LSTMForward,
    "rk_lstm_backward": LSTMBackward,
    "rk_gru_forward": GRUForward,
    "rk_gru_backward": GRUBackward,
    "rk_gru_before_forward": GRUBeforeForward,
    "rk_gru_before_backward": GRUBeforeBackward,
    "rk_rnn_forward": RNNForward,
    "rk_rnn_backward": RNNBackward,
}


# -- _generate: the generation loop ---------------------------------------------------------------------


class Layer(ctypes.Structure):  # rk_layer in _generate.c
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


GENERATE_STRUCTS: dict[str, type[ctypes.Structure]] = {"rk_layer": Layer}
