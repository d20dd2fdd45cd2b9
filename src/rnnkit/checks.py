"""Checks of arguments and tensors shared by the cells, the layers and the models: one clear message each,
TypeError for a wrong type and ValueError for a wrong value, as torch.nn raises them."""

from __future__ import annotations

from torch import Tensor


class ShapeError(ValueError, RuntimeError):
    """A tensor of the wrong shape: a ValueError in rnnkit's style and a RuntimeError, the class torch.nn raises
    for it, so code written against either catches it."""


class TensorMismatchError(TypeError, ValueError):
    """A tensor of the wrong dtype or device: a TypeError in rnnkit's style and a ValueError, as torch.nn raises it."""


def check_size(name: str, n, minimum: int = 1) -> int:
    """``n`` if it is an int >= ``minimum``; TypeError for a non-int, ValueError naming the value otherwise."""
    if isinstance(n, bool) or not isinstance(n, int):
        raise TypeError(f"{name} should be of type int, got: {type(n).__name__}")
    if n < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {n!r}")
    return n


def check_probability(name: str, p, *, closed: bool = False) -> float:
    """``p`` as a float in [0, 1) ([0, 1] when ``closed``); ValueError naming the value otherwise."""
    high_ok = (lambda v: v <= 1.0) if closed else (lambda v: v < 1.0)
    if isinstance(p, bool) or not isinstance(p, (int, float)) or not (0.0 <= p and high_ok(p)):
        raise ValueError(f"{name} must be a probability in [0, 1{']' if closed else ')'}, got {p!r}")
    return float(p)


def check_bool(name: str, value) -> None:
    """TypeError for a non-bool flag, as torch.nn checks ``bias`` and ``batch_first``."""
    if not isinstance(value, bool):
        raise TypeError(f"{name} should be of type bool, got: {type(value).__name__}")


def check_tensor_matches(owner: str, label: str, t: Tensor, reference: Tensor) -> None:
    """Raise TypeError unless ``t`` has the dtype and device of ``reference`` (the parameters)."""
    if not t.is_floating_point():
        raise TensorMismatchError(f"{owner}: {label} must be a floating-point tensor, got dtype {t.dtype}")
    if t.dtype != reference.dtype:
        raise TensorMismatchError(
            f"{owner}: {label} has dtype {t.dtype} but the parameters are {reference.dtype}; "
            f"convert one with .to({reference.dtype})"
        )
    if t.device != reference.device:
        raise TensorMismatchError(
            f"{owner}: {label} is on {t.device} but the parameters are on {reference.device}; "
            f"move one with .to('{reference.device}')"
        )


def check_input(owner: str, input, dims: tuple[int, int], shapes: str, input_size: int, reference: Tensor,
                kinds: str = "a torch.Tensor") -> bool:  # fmt: skip
    """The input of a cell or a layer: ``kinds`` (a tensor), of ``dims`` = (unbatched, batched) dimensions with
    ``input_size`` features last (``shapes`` names the two in the error), with the dtype and device of
    ``reference`` (the parameters). Returns whether it is batched."""
    if not isinstance(input, Tensor):
        raise TypeError(f"{owner}: input must be {kinds}, got {type(input).__name__}")
    if input.dim() not in dims:
        raise ShapeError(f"{owner}: input must have shape {shapes}, got {tuple(input.shape)}")
    if input.shape[-1] != input_size:
        raise ShapeError(f"{owner}: input has {input.shape[-1]} features, expected input_size={input_size}")
    check_tensor_matches(owner, "input", input, reference)
    return input.dim() == dims[1]


def describe(x) -> str:
    if isinstance(x, Tensor):
        return f"a tensor of shape {tuple(x.shape)}"
    if isinstance(x, tuple):
        return f"a tuple of {len(x)}"
    return type(x).__name__
