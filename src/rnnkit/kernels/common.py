"""What the fused recurrences share: TorchScript for the step loops, state mixing, per-gate layer norm.

The step loops are written in the subset of Python that TorchScript compiles. :func:`compiled` returns
the scripted loop (when the plan of :mod:`rnnkit.kernels.dispatch` asks for TorchScript), which runs each
step's few tensor ops without going back to the Python interpreter
(rough A/B on 2 shared CPU cores, T=100, H=64, B=1, forward+backward: LSTM 4.5 ms scripted against
6.4 ms in Python, LayerNorm-LSTM 16 against 35 ms; the gap closes as the sizes grow and the arithmetic
dominates), or the Python function itself when TorchScript is unavailable or switched off with
``RNNKIT_JIT=0``. Both give the same numbers; tests run both.

Mixing: padded steps keep the state (``torch.where``, exact) and zoneout keeps each unit with its mask
(``torch.lerp``, as the cells do). Its gradient splits the carried state's gradient ``dS`` into the
part that reaches the freshly computed state, ``dS * U`` with ``U = (1 - m) * valid``, and the part
that passes straight to the previous state, ``dS - dS * U``.
"""

from __future__ import annotations

import threading
import warnings
from collections import OrderedDict
from collections.abc import Callable

import torch
from torch import Tensor

from rnnkit.cells import LAYER_NORM_EPS

_compiled: dict[Callable, Callable] = {}


def compiled(fn: Callable, enabled: bool = True) -> Callable:
    """``torch.jit.script(fn)``, made once; ``fn`` itself when not ``enabled`` (the plan's ``jit``) or when
    TorchScript cannot compile it.

    The scripted function runs in TorchScript's plain interpreter (``optimized_execution(False)``): the
    loops gain nothing from graph optimisation on CPU, and the profiling executor would re-specialise
    the graph whenever shapes, strides or requires-grad flags change (seconds per call under gradcheck).
    """
    if not enabled:
        return fn
    if fn not in _compiled:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # torch.jit is deprecated in favour of torch.compile
                scripted = torch.jit.script(fn)
        except Exception:  # noqa: BLE001 - any failure falls back to the same code in Python
            _compiled[fn] = fn
        else:

            def run(*args):
                with torch.jit.optimized_execution(False):
                    return scripted(*args)

            run.__wrapped__ = scripted
            _compiled[fn] = run
    return _compiled[fn]


class Scratch:
    """Buffers that never leave one forward or one backward, recycled from call to call on the CPU.

    A fresh CPU tensor pays a page fault for every 4 KiB page it first writes: about 2.5 us a page on
    the KVM guests these benchmarks ran on, 0.6 ms per MiB, as much as the arithmetic at the sizes RNNs
    train at. Buffers taken inside ``with Scratch() as scratch:`` go back to a per-thread pool when the
    block ends and are handed out again for the next request of the same shape and dtype. The pool
    keeps the buffers of the last ``KEYS`` shapes only. CUDA's caching allocator does this already.
    """

    KEYS = 8
    _local = threading.local()

    def __enter__(self) -> Scratch:
        self.taken: list[tuple[tuple, Tensor]] = []
        return self

    def empty(self, shape: tuple[int, ...], like: Tensor) -> Tensor:
        if like.device.type != "cpu":
            return like.new_empty(shape)
        key = (tuple(shape), like.dtype)
        pool = self._pool()
        free = pool.get(key)
        buffer = free.pop() if free else like.new_empty(shape)
        self.taken.append((key, buffer))
        return buffer

    def keeper(self, like: Tensor, keep: bool) -> Callable[[tuple[int, ...]], Tensor]:
        """``new(shape)`` like ``like``: a tensor of its own when ``keep`` (what a backward will read, kept
        past this block), else a buffer of this scratch."""
        return (lambda shape: like.new_empty(shape)) if keep else (lambda shape: self.empty(shape, like))

    def __exit__(self, *exc) -> None:
        pool = self._pool()
        for key, buffer in self.taken:
            pool.setdefault(key, []).append(buffer)
            pool.move_to_end(key)
        while len(pool) > self.KEYS:
            pool.popitem(last=False)
        self.taken = []

    @classmethod
    def _pool(cls) -> OrderedDict:
        if not hasattr(cls._local, "pool"):
            cls._local.pool = OrderedDict()
        return cls._local.pool


# -- pieces of the step loops (TorchScript) -----------------------------------------------------------


def mix_state(new: Tensor, old: Tensor, zone: Tensor | None, valid: Tensor | None, out: Tensor) -> None:
    """out = where(valid, lerp(new, old, zone), old): zoneout, then padded steps keep the old state."""
    if zone is not None:
        if valid is not None:
            torch.where(valid, torch.lerp(new, old, zone), old, out=out)
        else:
            torch.lerp(new, old, zone, out=out)
    elif valid is not None:
        torch.where(valid, new, old, out=out)
    else:
        out.copy_(new)


def split_grad(d: Tensor, keep: Tensor | None) -> tuple[Tensor, Tensor | None]:
    """Gradient of a mixed state -> (gradient of the new state, gradient passed to the old one)."""
    if keep is None:
        return d, None
    d_new = d * keep
    return d_new, d - d_new


def gate_norm_step(gh: Tensor, num_gates: int, stats: list[Tensor], eps: float = LAYER_NORM_EPS) -> Tensor:
    """Normalise each gate block of gh (B, k*H); the mean and 1/std (B, k, 1) are appended to stats. (``eps``
    is an argument because TorchScript reads no float globals; its default is the cells' constant.)"""
    B = gh.shape[0]
    H = gh.shape[1] // num_gates
    y, mean, rstd = torch.native_layer_norm(gh.view(B, num_gates, H), [H], None, None, eps)
    stats.append(mean)
    stats.append(rstd)
    return y.view(B, num_gates * H)


def gate_norm_grad(dy: Tensor, gh: Tensor, num_gates: int, mean: Tensor, rstd: Tensor) -> Tensor:
    """Gradient through :func:`gate_norm_step` (without the gain): dy, gh (B, k*H) -> (B, k*H)."""
    B = gh.shape[0]
    H = gh.shape[1] // num_gates
    shape = [B, num_gates, H]
    grads = torch.ops.aten.native_layer_norm_backward(
        dy.reshape(shape), gh.view(shape), [H], mean, rstd, None, None, [True, False, False]
    )
    return grads[0].view(B, num_gates * H)


def input_side(
    gx: Tensor, ln_ih: Tensor | None, bias: Tensor | None, num_gates: int, ys: list[Tensor], stats: list[Tensor],
    out: Tensor,
) -> Tensor:  # fmt: skip
    """A step's input side: ``gx`` as given (biases folded in), or ``LN(gx) * ln_ih + bias`` written to out.

    With layer norm the loop normalises the raw ``W_ih x`` of the step it is on, while it is in cache,
    instead of the whole (T, B, k*H) tensor before the loop: fewer passes over memory, which bound the
    time on CPU. The normalised values go to ``ys`` and their statistics to ``stats`` for the backward.
    """
    if ln_ih is None:
        return gx
    y = gate_norm_step(gx, num_gates, stats)
    ys.append(y)
    if bias is not None:
        torch.addcmul(bias, y, ln_ih, out=out)
    else:
        torch.mul(y, ln_ih, out=out)
    return out


def norm_grad_step(
    d: Tensor, gain: Tensor, raw: Tensor, y: Tensor, mean: Tensor, rstd: Tensor, num_gates: int, acc_gain: Tensor,
    out: Tensor,
) -> None:  # fmt: skip
    """Backward of ``LN(raw) * gain`` at one step: accumulate the gain's gradient, write raw's into out."""
    acc_gain.addcmul_(d, y)
    out.copy_(gate_norm_grad(d * gain, raw, num_gates, mean, rstd))


# -- vectorised helpers (plain Python, a few ops per call) ---------------------------------------------


def mixing_coefficients(zone: Tensor | None, valid: Tensor | None, dtype: torch.dtype) -> Tensor | None:
    """U = (1 - zone) * valid, broadcastable to (T, B, n): the share of a mixed state's gradient that is new."""
    keep = None if zone is None else 1.0 - zone
    if valid is not None:
        keep = valid.to(dtype) if keep is None else keep * valid
    return keep


def save_lists(ctx, tensors: list, *lists: list[Tensor]) -> None:
    """``ctx.save_for_backward`` for fixed tensors followed by lists of per-step tensors."""
    ctx.save_for_backward(*tensors, *[t for items in lists for t in items])
    ctx.list_sizes = [len(tensors), *(len(items) for items in lists)]


def saved_lists(ctx) -> list:
    """Undo :func:`save_lists`: [fixed tensors (tuple), list, list, ...]."""
    saved, parts, start = ctx.saved_tensors, [], 0
    for size in ctx.list_sizes:
        parts.append(list(saved[start : start + size]))
        start += size
    parts[0] = tuple(parts[0])
    return parts


def project_inputs(x: Tensor, W_ih: Tensor, bias: Tensor | None) -> Tensor:
    """``W_ih x_t (+ bias)`` for every step in one GEMM: x (T, B, I) -> (T, B, k*H)."""
    T, B, I = x.shape
    x2 = x.reshape(T * B, I)
    out = torch.mm(x2, W_ih.t()) if bias is None else torch.addmm(bias, x2, W_ih.t())
    return out.view(T, B, -1)


def input_grads(dGX: Tensor, x: Tensor, W_ih: Tensor, needs_dx: bool) -> tuple[Tensor | None, Tensor]:
    """Backward of :func:`project_inputs`: (dx (T, B, I) or None, dW_ih), each one GEMM over all steps."""
    dx = (dGX.reshape(-1, dGX.shape[-1]) @ W_ih).view(x.shape) if needs_dx else None
    return dx, matmul_steps(dGX, x)


def matmul_steps(a: Tensor, b: Tensor) -> Tensor:
    """sum_t a[t]^T b[t] as one GEMM: a (T, B, M), b (T, B, N) -> (M, N)."""
    return a.reshape(-1, a.shape[-1]).t() @ b.reshape(-1, b.shape[-1])
