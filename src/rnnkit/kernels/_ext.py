"""rnnkit's own C extensions (built by ``setup.py`` from ``csrc/``): loading them, handing them tensors, and
the loops of the training kernels around their per-step C calls.

The extensions have no Python API of their own; their functions are called through ctypes (which
releases the GIL for the call) with the structs of :mod:`rnnkit.kernels._abi`. A library that is not
built, cannot be loaded here, or whose exported struct layouts disagree with those declarations is
not used (one warning says why) and every path runs in PyTorch instead. Whether a built library is
*used* for a given call is decided in :mod:`rnnkit.kernels.dispatch`.
"""

from __future__ import annotations

import ctypes
import importlib.machinery
import warnings
from pathlib import Path

import torch
from torch import Tensor

from rnnkit.cells import LAYER_NORM_EPS
from rnnkit.kernels import _abi, layout
from rnnkit.kernels.common import Scratch, input_grads, matmul_steps, mixing_coefficients, project_inputs


def load_library(stem: str, structs: dict[str, type[ctypes.Structure]]) -> ctypes.CDLL | None:
    """The built extension ``rnnkit/kernels/<stem>*.so`` loaded with ctypes, or None where it was not built, cannot
    be loaded here (a missing system library), or its struct layouts differ from ``structs``."""
    here = Path(__file__).parent
    for suffix in importlib.machinery.EXTENSION_SUFFIXES:
        path = here / f"{stem}{suffix}"
        if path.exists():
            try:
                library = ctypes.CDLL(str(path))
            except OSError:
                return None
            problem = _layout_problem(library, structs)
            if problem is not None:
                warnings.warn(f"rnnkit: not using {path.name} ({problem}); running the PyTorch path instead",
                              RuntimeWarning, stacklevel=2)  # fmt: skip
                return None
            return library
    return None


def _layout_problem(library: ctypes.CDLL, structs: dict[str, type[ctypes.Structure]]) -> str | None:
    """None when the library's exported layouts and layer-norm epsilon agree with ours, else what differs."""
    return layout.check(library, structs, LAYER_NORM_EPS)


cells_lib = load_library("_cells", _abi.CELLS_STRUCTS)  # the training loops: _lstm.c, _gru.c, _rnn.c, _pack.c
generate_lib = load_library("_generate", _abi.GENERATE_STRUCTS)  # the generation loop: _generate.c
if generate_lib is not None:
    generate_lib.rk_generate.restype = ctypes.c_int


def ptr(t: Tensor | None) -> int | None:
    """The address of a tensor's data for a C pointer; None (NULL) for a missing tensor. The C loops index
    rows themselves, so a strided view would be read wrongly: it is refused (a bug in the caller)."""
    if t is None:
        return None
    if not t.is_contiguous():
        raise RuntimeError(f"rnnkit: a C kernel was handed a non-contiguous tensor of shape {tuple(t.shape)}")
    return t.data_ptr()


PANEL = 24  # rows per panel: RK_PANEL in _kernels.h


def pack(W: Tensor) -> Tensor:
    """W (R, K) in the layout of the C products (``matvec_body`` in _kernels.h): panels of 24 rows stored
    column by column, (ceil(R/24), K, 24), the rows past R zero. Made once per generation or training loop;
    then every product reads its panels front to back. A row-major float32 W is packed in C (``rk_pack``,
    twice torch's speed at this transposing copy); otherwise torch copies W's columns, which for a
    transposed view (``W_hh.t()`` for the backward) are runs of 24 contiguous floats."""
    from rnnkit.kernels.dispatch import c_pack_applies

    R, K = W.shape
    full, rest = divmod(R, PANEL)
    if c_pack_applies(W):
        packed = W.new_empty(full + (rest > 0), K, PANEL)
        cells_lib.rk_pack(ctypes.byref(_abi.Packing(R, K, torch.get_num_threads(), ptr(W.detach()), ptr(packed))))
        return packed
    packed = W.new_zeros(full + (rest > 0), K, PANEL, dtype=torch.float32)
    columns = W.detach().t()  # (K, R)
    packed[:full].permute(1, 0, 2).copy_(columns[:, : full * PANEL].view(K, full, PANEL))
    if rest:
        packed[full, :, :rest] = columns[:, full * PANEL :]
    return packed


def full_mask(mask: Tensor | None, shape: tuple[int, ...]) -> Tensor | None:
    """A float32 mask broadcastable to ``shape``, written out in full and contiguous for a C loop."""
    return None if mask is None else mask.to(torch.float32).expand(shape).contiguous()


# -- where the C-step recurrences (clstm, cgru, crnn) start and end ------------------------------------


def forward_inputs(ctx, scratch: Scratch, needs_grad: bool, x: Tensor, h0: Tensor, W_ih: Tensor, bias: Tensor | None,
                   layer_norm: bool, zh: Tensor | None, valid: Tensor | None) -> tuple:  # fmt: skip
    """What a C-step forward starts from, inside its ``with Scratch() as scratch`` block: ``GX`` = W_ih x
    (+ bias without layer norm) (T, B, kH); the carried h ``hs`` (T + 1, B, H) with hs[0] = h0; the zoneout
    mask written out (T, B, H); ``valid`` as one byte per (step, row); the bias the C step adds after layer
    norm (zeros where the layer has none); and ``keep(shape)``, a buffer that outlives the block when the
    backward will read it (:meth:`Scratch.keeper`). ``ctx.has_bias`` records whether the layer has the
    bias, so that the backward returns its gradient or None."""
    T, B = x.shape[:2]
    H = h0.shape[-1]
    ctx.has_bias = bias is not None
    GX = project_inputs(x, W_ih, None if layer_norm else bias)  # layer norm: the normalised W_ih x on return
    if layer_norm and bias is None:
        bias = GX.new_zeros(GX.shape[-1])
    hs = GX.new_empty(T + 1, B, H)
    hs[0] = h0
    valid_rows = None if valid is None else valid.reshape(T, B).contiguous()  # bool: one byte, 0 or 1
    return GX, hs, full_mask(zh, (T, B, H)), valid_rows, bias, scratch.keeper(GX, needs_grad)


def backward_inputs(d_hs: Tensor, zh: Tensor | None, valid: Tensor | None) -> tuple[Tensor, Tensor, Tensor | None]:
    """What a C-step backward starts from: ``d_hs`` (T, B, H) contiguous; ``dh``, the gradient of the carried
    h, step after step (a copy of the last step's; at the end that of h_0); the mixing coefficients of h
    (:func:`rnnkit.kernels.common.mixing_coefficients`) written out (T, B, H)."""
    d_hs = d_hs.contiguous()
    return d_hs, d_hs[-1].clone(), full_mask(mixing_coefficients(zh, valid, d_hs.dtype), d_hs.shape)


def weight_grads(ctx, x: Tensor, W_ih: Tensor, hs: Tensor, rec_mask: Tensor | None, DU: Tensor,
                 dGX: Tensor) -> tuple[Tensor, Tensor | None, Tensor]:  # fmt: skip
    """(d_W_hh, dx, d_W_ih) from DU, the gradient of every step's ``W_hh h_in``, and dGX, that of ``W_ih x``:
    each one GEMM over all steps."""
    h_in = hs[:-1] if rec_mask is None else hs[:-1] * rec_mask
    dx, d_W_ih = input_grads(dGX, x, W_ih, ctx.needs_input_grad[0])
    return matmul_steps(DU, h_in), dx, d_W_ih


def check_float32(*tensors: Tensor) -> None:
    """The C loops read and write float32 through raw pointers: any other dtype (say, a buffer made under
    autocast) would corrupt memory, so it is refused (a bug in the caller)."""
    for t in tensors:
        if t.dtype != torch.float32:
            raise RuntimeError(f"rnnkit: a C training loop was handed a {t.dtype} tensor; it takes float32 only")


class StepProduct:
    """The product ``x W^T`` of every step of a loop, x (B, K) and W (R, K). With ``in_c`` (the plan's
    ``c_products``) W is packed once and the whole loop runs in C with it (:meth:`loop`): at the batch sizes
    of recurrent training (1-256 rows) torch.mm took 1.0-8x the time of the packed product here, most at
    batch 1-16, where one row times a matrix is far from its tuned cases. Otherwise torch.mm runs per
    step (``__call__``). ``W`` may be a transposed view: the backward's ``W_hh.t()`` packs as cheaply."""

    def __init__(self, W: Tensor, in_c: bool):
        self.W_t, self.shape = W.t(), W.shape
        self.in_c = in_c
        self.packed = pack(W) if in_c else None

    def __call__(self, x: Tensor, out: Tensor, add: Tensor | None = None) -> Tensor:
        """``out = add + x W^T`` by torch, ``add`` None, ``out`` itself or another (B, R) tensor."""
        if add is None:
            return torch.mm(x, self.W_t, out=out)
        if add is out:
            return out.addmm_(x, self.W_t)
        return torch.addmm(add, x, self.W_t, out=out)

    def loop(self, T: int, x: Tensor, y: Tensor, *, add: bool = False, mask: Tensor | None = None,
             scratch: Tensor | None = None, base: Tensor | None = None) -> _abi.Steps:  # fmt: skip
        """This product over the T steps of a loop in C, as ``rk_steps`` (_kernels.h) describes it: forward,
        ``y[t] (+)= (x[t] * mask) W^T``; backward, ``y = base + (x[t] W^T) * mask``. x is (T or T + 1, B, K);
        ``mask`` is (B, ·) in full, ``scratch`` a (B, ·) buffer, where there is a mask."""
        check_float32(x, y, *(t for t in (mask, scratch, base) if t is not None))
        (R, K), threads = self.shape, torch.get_num_threads()
        return _abi.Steps(T, x.shape[1], R, K, threads, int(add), ptr(self.packed), ptr(mask), ptr(scratch), ptr(x),
                          ptr(y), ptr(base))  # fmt: skip


def forward_steps(cell: str, args: ctypes.Structure, hs: Tensor, W_hh: Tensor, products: Tensor,
                  rec_mask: Tensor | None, scratch, add: bool, in_c: bool) -> None:  # fmt: skip
    """The forward's loop of the C training kernel ``rk_<cell>_forward_step``: per step t, ``W_hh h_in`` goes
    into ``products[t]`` (or is added there when ``add``), with ``h_in = hs[t] * rec_mask``, then the step runs
    with ``args.t = t``. With ``in_c`` (:class:`StepProduct`) the whole loop runs in one call to
    ``rk_<cell>_forward_steps``."""
    T, B, H = products.shape[0], hs.shape[1], hs.shape[2]
    check_float32(hs, products, W_hh)
    ref, product = ctypes.byref(args), StepProduct(W_hh, in_c)
    h_in = scratch.empty((B, H), hs) if rec_mask is not None else None
    if product.in_c:
        steps = product.loop(T, hs, products, add=add, mask=full_mask(rec_mask, (B, H)), scratch=h_in)
        getattr(cells_lib, f"rk_{cell}_forward_steps")(ctypes.byref(steps), ref)
        return
    step, hs_t, out_t = getattr(cells_lib, f"rk_{cell}_forward_step"), hs.unbind(0), products.unbind(0)
    for t in range(T):
        h = hs_t[t] if rec_mask is None else torch.mul(hs_t[t], rec_mask, out=h_in)
        product(h, out_t[t], out_t[t] if add else None)
        args.t = t
        step(ref)


def backward_steps(cell: str, args: ctypes.Structure, DU: Tensor, W_hh: Tensor, base: Tensor, dh: Tensor,
                   rec_mask: Tensor | None, scratch, in_c: bool) -> None:  # fmt: skip
    """The backward's loop: per step t from the last, ``rk_<cell>_backward_step`` (which leaves ``DU[t]`` and
    ``base``), then ``dh = base + (DU[t] W_hh) * rec_mask``, the gradient of the carried h of step t-1; in one
    call to ``rk_<cell>_backward_steps`` with ``in_c``."""
    T, (B, H) = DU.shape[0], dh.shape
    check_float32(DU, dh, base, W_hh)
    ref, product = ctypes.byref(args), StepProduct(W_hh.t(), in_c)
    masked = scratch.empty(dh.shape, dh) if rec_mask is not None else None
    if product.in_c:
        steps = product.loop(T, DU, dh, mask=full_mask(rec_mask, (B, H)), scratch=masked, base=base)
        getattr(cells_lib, f"rk_{cell}_backward_steps")(ctypes.byref(steps), ref)
        return
    step, DU_t = getattr(cells_lib, f"rk_{cell}_backward_step"), DU.unbind(0)
    for t in range(T - 1, -1, -1):
        args.t = t
        step(ref)
        if rec_mask is None:
            product(DU_t[t], dh, base)
        else:
            torch.addcmul(base, product(DU_t[t], masked), rec_mask, out=dh)
