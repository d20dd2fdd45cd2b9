"""Weights from Keras: one LSTM or GRU layer's ``layer.get_weights()`` as torch-named tensors.

Keras keeps a recurrent layer as ``kernel`` (I, k·H), ``recurrent_kernel`` (H, k·H) and a bias, gates side by side
along the last axis; torch (and rnnkit) keep ``weight_ih_l0`` (k·H, I), ``weight_hh_l0`` (k·H, H), ``bias_ih_l0`` and
``bias_hh_l0``, gates stacked along the first axis. So each matrix is transposed and the gates reordered::

    LSTM  Keras i, f, c, o  ->  torch i, f, g, o   (the same order; c is torch's g)
    GRU   Keras z, r, h     ->  torch r, z, n

Keras' equations (recurrent activation sigmoid, its default since TF 2) and what they become:

    LSTM  i = σ(x W_i + h U_i + b_i), f = σ(x W_f + h U_f + b_f), c~ = tanh(x W_c + h U_c + b_c),
          o = σ(x W_o + h U_o + b_o), c' = f c + i c~, h' = o tanh(c')
          -> torch's LSTM with bias_ih = b and bias_hh = 0.
    GRU, reset_after=True (the TF 2 default; bias (2, 3H) = [input bias; recurrent bias])
          z = σ(x W_z + b_z + h U_z + r_z), r = σ(x W_r + b_r + h U_r + r_r),
          h~ = tanh(x W_h + b_h + r ⊙ (h U_h + r_h)), h' = z h + (1 - z) h~
          -> torch's GRU (rnnkit's reset="after") with bias_ih = b, bias_hh = the recurrent bias.
    GRU, reset_after=False (Cho et al. 2014; bias (3H,))
          z = σ(x W_z + h U_z + b_z), r = σ(x W_r + h U_r + b_r), h~ = tanh(x W_h + (r ⊙ h) U_h + b_h)
          -> rnnkit.GRU(..., reset="before") with bias_ih = b and bias_hh = 0. torch.nn.GRU computes the other
             form, so these weights loaded there give a different function.

A layer built with ``use_bias=False`` has no bias array; the result then has no bias keys (load it into a layer
with ``bias=False``). Keras' ``Bidirectional`` wrapper lists the forward layer's arrays, then the backward layer's;
the backward ones become torch's ``_reverse`` parameters. A stack of Keras layers converts one layer at a time,
with ``layer=k`` naming layer k's parameters (``weight_ih_l{k}``...).

This module is a leaf: numpy and torch only.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor

GATES = {"lstm": 4, "gru": 3}


def from_keras_weights(
    kind: str,
    weights: Sequence[np.ndarray],
    *,
    reset_after: bool = True,
    bidirectional: bool = False,
    layer: int = 0,
) -> dict[str, Tensor]:
    """Keras ``get_weights()`` of one LSTM or GRU layer -> torch-named tensors for ``load_state_dict``.

    ``kind``: ``"lstm"`` or ``"gru"``. ``weights``: ``[kernel (I, k·H), recurrent_kernel (H, k·H), bias]`` with
    k = 4 (LSTM) or 3 (GRU), the bias omitted for ``use_bias=False``; twice that (forward, then backward) with
    ``bidirectional=True``. ``reset_after`` is the Keras GRU's option of that name: True takes a bias of shape
    (2, 3H), False one of shape (3H,) for ``rnnkit.GRU(reset="before")``. ``layer``: the index k in the names.

    Returns ``{"weight_ih_l{k}": (k·H, I), "weight_hh_l{k}": (k·H, H), "bias_ih_l{k}": (k·H,),
    "bias_hh_l{k}": (k·H,)}`` (plus the ``_reverse`` ones), in torch's order and the arrays' dtype.
    """
    if kind not in GATES:
        raise ValueError(f"kind must be 'lstm' or 'gru', got {kind!r}")
    if isinstance(layer, bool) or not isinstance(layer, int) or layer < 0:
        raise ValueError(f"layer must be an integer >= 0, got {layer!r}")
    if isinstance(weights, np.ndarray) or not isinstance(weights, Sequence):
        raise ValueError(f"weights must be the list layer.get_weights() returns, got {type(weights).__name__}")
    directions = 2 if bidirectional else 1
    if len(weights) not in (2 * directions, 3 * directions):
        per = "forward then backward, " if bidirectional else ""
        raise ValueError(
            f"a Keras {kind.upper()}{' in Bidirectional' if bidirectional else ''} has {3 * directions} arrays "
            f"({per}kernel, recurrent_kernel, bias; {2 * directions} without a bias), got {len(weights)}"
        )
    per_direction = len(weights) // directions
    result: dict[str, Tensor] = {}
    for direction in range(directions):
        arrays = weights[direction * per_direction : (direction + 1) * per_direction]
        suffix = f"_l{layer}" + ("_reverse" if direction else "")
        where = ("backward " if direction else "forward ") if bidirectional else ""
        for name, value in _convert_one(kind, arrays, reset_after, where).items():
            result[name + suffix] = value
    if bidirectional:
        forward, backward = (
            {k: v.shape for k, v in result.items() if k.endswith("_reverse") == rev} for rev in (False, True)
        )
        if list(forward.values()) != list(backward.values()):
            raise ValueError(
                f"the forward and backward layers must have the same shapes, got {tuple(forward.values())} "
                f"and {tuple(backward.values())}"
            )
    return result


def _convert_one(kind: str, arrays: Sequence[np.ndarray], reset_after: bool, where: str) -> dict[str, Tensor]:
    """One direction: (kernel, recurrent_kernel[, bias]) -> weight_ih, weight_hh[, bias_ih, bias_hh]."""
    k = GATES[kind]
    kernel, recurrent = (np.asarray(a) for a in arrays[:2])
    if recurrent.ndim != 2 or recurrent.shape[1] != k * recurrent.shape[0] or recurrent.shape[0] == 0:
        raise ValueError(
            f"the {where}recurrent_kernel must have shape (H, {k}·H) for a Keras {kind.upper()}, "
            f"got {recurrent.shape}"
        )
    H = recurrent.shape[0]
    if kernel.ndim != 2 or kernel.shape[1] != k * H:
        raise ValueError(f"the {where}kernel must have shape (input_size, {k * H}), got {kernel.shape}")
    order = _torch_gate_order(kind, H)
    out = {
        "weight_ih": _tensor(kernel[:, order].T),  # (k·H, I)
        "weight_hh": _tensor(recurrent[:, order].T),  # (k·H, H)
    }
    if len(arrays) == 2:
        return out
    bias = np.asarray(arrays[2])
    if kind == "gru" and reset_after:
        if bias.shape != (2, k * H):
            hint = "; for a bias of shape (3H,) pass reset_after=False" if bias.shape == (k * H,) else ""
            raise ValueError(f"the {where}bias must have shape (2, {k * H}) with reset_after=True, got {bias.shape}"
                             f"{hint}")  # fmt: skip
        input_bias, recurrent_bias = bias[0], bias[1]
    else:
        if bias.shape != (k * H,):
            hint = "; for a bias of shape (2, 3H) pass reset_after=True" if kind == "gru" and bias.ndim == 2 else ""
            option = " with reset_after=False" if kind == "gru" else ""
            raise ValueError(f"the {where}bias must have shape ({k * H},){option}, got {bias.shape}{hint}")
        # One bias: torch adds b_ih and b_hh everywhere Keras adds b (for reset_after=False b_hn would sit inside
        # r ⊙ (...), which Keras' form does not have), so it all goes into b_ih.
        input_bias, recurrent_bias = bias, np.zeros_like(bias)
    out["bias_ih"] = _tensor(input_bias[order])
    out["bias_hh"] = _tensor(recurrent_bias[order])
    return out


def _torch_gate_order(kind: str, H: int) -> np.ndarray:
    """Indices into Keras' gate axis that give torch's gate order: i,f,c,o -> i,f,g,o; z,r,h -> r,z,n."""
    if kind == "lstm":
        return np.arange(4 * H)
    z, r, h = (np.arange(g * H, (g + 1) * H) for g in range(3))
    return np.concatenate([r, z, h])


def _tensor(a: np.ndarray) -> Tensor:
    if not np.issubdtype(a.dtype, np.floating):
        raise ValueError(f"Keras weights must be floating-point arrays, got dtype {a.dtype}")
    return torch.from_numpy(np.ascontiguousarray(a).copy())
