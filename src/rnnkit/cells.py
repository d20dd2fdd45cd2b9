"""Recurrent cells, each written once as its equations.

The equations are pure functions of a :class:`CellWeights` (the tensors a cell reads) and the inputs:
:func:`rnn_step`, :func:`lstm_step` and :func:`gru_step`. A :class:`CellSpec` says which of them a cell
is and with which options, and adds what is not part of the equations proper: recurrent dropout and
zoneout, masks, the initial state, the shapes and initialisation of the parameters. Everything that
computes a cell step by step calls these: the cell modules below, the layers' reference backend
(:mod:`rnnkit.layers`) and the generation stepper (:mod:`rnnkit.kernels.stepper`). The fused
recurrences of :mod:`rnnkit.kernels` compute the same functions faster and are tested against them.

Every cell module follows one contract (as flax's recurrent cells do)::

    out, new_state = cell(x_t, state)       # x_t: (B, I) or (I,) unbatched
    state = cell.init_state(batch_size)     # zeros

``state`` is a tensor ``h`` of shape (B, H) for :class:`RNNCell` and :class:`GRUCell` and a pair
``(h, c)`` for :class:`LSTMCell`. Gate weights are stacked as in ``torch.nn`` (``weight_ih`` (k·H, I),
``weight_hh`` (k·H, H), ``bias_ih``, ``bias_hh``; gate order i, f, g, o for the LSTM and r, z, n for the
GRU), so weights move between rnnkit and torch unchanged.

Options shared by all cells (keyword-only):

- ``layer_norm``: layer normalisation (Ba et al. 2016) of the input projection ``W_ih x`` and of the
  recurrent projection ``W_hh h``, each gate's H-vector normalised on its own with a learned gain
  (``ln_ih_weight``, ``ln_hh_weight``, shape (k·H,)); the biases are added after normalisation and act
  as its shift. The LSTM also normalises its cell before the output tanh (``ln_cell_weight``,
  ``ln_cell_bias``).
- ``recurrent_dropout`` p: dropout on the h_{t-1} that enters ``W_hh`` (Gal & Ghahramani 2016). A layer
  draws one mask per sequence and passes it as ``recurrent_mask``; a cell called alone in training mode
  draws a fresh mask per call.
- ``zoneout`` p: each state unit keeps its previous value with probability p (Krueger et al. 2016),
  ``s_t = m * s_{t-1} + (1 - m) * s~_t`` with m ~ Bernoulli(p); in eval mode the expectation
  ``s_t = p * s_{t-1} + (1 - p) * s~_t`` is used, as in the paper and Haste.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rnnkit.checks import (
    ShapeError,
    check_bool,
    check_input,
    check_probability,
    check_size,
    check_tensor_matches,
    describe,
)

State = Tensor | tuple[Tensor, ...]

LAYER_NORM_EPS = 1e-5  # every layer norm of every cell; the C kernels export theirs and are checked against it
FORGET_BIAS = 1.0  # the LSTM's forget-gate bias at initialisation (b_if + b_hf), as char-rnn and Keras
KINDS = ("rnn", "lstm", "gru")
NUM_GATES = {"rnn": 1, "lstm": 4, "gru": 3}


class CellWeights(NamedTuple):
    """The tensors one cell's equations read; None where an option is off.

    Shapes (k gates, H hidden, P = proj_size or H, I input): ``weight_ih`` (k·H, I), ``weight_hh``
    (k·H, P), ``bias_ih``/``bias_hh`` (k·H,), ``ln_ih_weight``/``ln_hh_weight`` (k·H,),
    ``ln_cell_weight``/``ln_cell_bias`` (H,) (LSTM), ``weight_ch`` (3H,) the peepholes [p_i, p_f, p_o]
    (LSTM), ``weight_hr`` (P, H) the output projection (LSTM). Layer norm is on when ``ln_ih_weight``
    is given, peepholes when ``weight_ch`` is, the projection when ``weight_hr`` is.
    """

    weight_ih: Tensor
    weight_hh: Tensor
    bias_ih: Tensor | None = None
    bias_hh: Tensor | None = None
    ln_ih_weight: Tensor | None = None
    ln_hh_weight: Tensor | None = None
    ln_cell_weight: Tensor | None = None
    ln_cell_bias: Tensor | None = None
    weight_ch: Tensor | None = None
    weight_hr: Tensor | None = None

    @property
    def layer_norm(self) -> bool:
        return self.ln_ih_weight is not None


# -- the equations ---------------------------------------------------------------------------------


def gate_norm(x: Tensor, num_gates: int, weight: Tensor) -> Tensor:
    """Layer-normalise each gate's block of a (B, k·H) projection on its own, then scale by ``weight``."""
    shape = x.shape
    H = weight.shape[0] // num_gates  # from the gain, a fixed size (an ONNX export cannot read x's shape here)
    x = x.reshape(*shape[:-1], num_gates, H)  # (B, k, H)
    x = F.layer_norm(x, (H,), eps=LAYER_NORM_EPS)
    return x.reshape(shape) * weight


def input_projection(w: CellWeights, x: Tensor, num_gates: int) -> Tensor:
    """``[LN](W_ih x) + b_ih``: (B, k·H)."""
    gx = F.linear(x, w.weight_ih)
    if w.layer_norm:
        gx = gate_norm(gx, num_gates, w.ln_ih_weight)
    return gx if w.bias_ih is None else gx + w.bias_ih


def recurrent_projection(w: CellWeights, h: Tensor, num_gates: int, rows: slice = slice(None)) -> Tensor:
    """``[LN](W_hh h) + b_hh`` restricted to the gate ``rows`` (all by default; ``num_gates`` of them)."""
    gh = F.linear(h, w.weight_hh[rows])
    if w.layer_norm:
        gh = gate_norm(gh, num_gates, w.ln_hh_weight[rows])
    return gh if w.bias_hh is None else gh + w.bias_hh[rows]


def rnn_step(w: CellWeights, x: Tensor, h: Tensor, *, nonlinearity: str = "tanh", h_in: Tensor | None = None) -> Tensor:
    r"""The vanilla (Elman) step: :math:`h_t = \sigma(W_{ih} x_t + b_{ih} + W_{hh} h_{t-1} + b_{hh})`.

    The course notes' ``h_t = σ(U x_t + V h_{t-1} + b)`` with U = W_ih, V = W_hh, b = b_ih + b_hh; σ is
    tanh or relu. ``h_in``: the h that enters ``W_hh`` (h with recurrent dropout), h by default.
    x (B, I), h (B, H) -> h_t (B, H).
    """
    pre = input_projection(w, x, 1) + recurrent_projection(w, h if h_in is None else h_in, 1)
    return torch.tanh(pre) if nonlinearity == "tanh" else torch.relu(pre)


def lstm_step(
    w: CellWeights, x: Tensor, state: tuple[Tensor, Tensor], *, h_in: Tensor | None = None
) -> tuple[Tensor, Tensor]:
    r"""One LSTM step (Hochreiter & Schmidhuber 1997, with the forget gate of Gers et al. 2000).

    .. math::
        i_t &= \sigma(W_{ii} x_t + b_{ii} + W_{hi} h_{t-1} + b_{hi} [+ p_i \odot c_{t-1}]) \\
        f_t &= \sigma(W_{if} x_t + b_{if} + W_{hf} h_{t-1} + b_{hf} [+ p_f \odot c_{t-1}]) \\
        g_t &= \tanh(W_{ig} x_t + b_{ig} + W_{hg} h_{t-1} + b_{hg}) \\
        c_t &= f_t \odot c_{t-1} + i_t \odot g_t \\
        o_t &= \sigma(W_{io} x_t + b_{io} + W_{ho} h_{t-1} + b_{ho} [+ p_o \odot c_t]) \\
        h_t &= o_t \odot \tanh([\mathrm{LN}]\, c_t)   \quad [h_t \leftarrow W_{hr} h_t \text{ with a projection}]

    The bracketed peephole terms (Gers & Schmidhuber 2000) are there when ``w.weight_ch`` is.
    x (B, I), state (h (B, P), c (B, H)) -> (h_t (B, P), c_t (B, H)).
    """
    h, c = state
    gates = input_projection(w, x, 4) + recurrent_projection(w, h if h_in is None else h_in, 4)  # (B, 4H)
    i, f, g, o = gates.chunk(4, dim=-1)
    if w.weight_ch is not None:
        p_i, p_f, p_o = w.weight_ch.chunk(3)
        i = i + p_i * c
        f = f + p_f * c
    i, f, g = torch.sigmoid(i), torch.sigmoid(f), torch.tanh(g)
    c = f * c + i * g
    if w.weight_ch is not None:
        o = o + p_o * c
    o = torch.sigmoid(o)
    c_out = c if w.ln_cell_weight is None else F.layer_norm(c, w.ln_cell_weight.shape, w.ln_cell_weight, w.ln_cell_bias,
                                                             LAYER_NORM_EPS)  # fmt: skip
    h = o * torch.tanh(c_out)
    if w.weight_hr is not None:
        h = F.linear(h, w.weight_hr)
    return h, c


def gru_step(w: CellWeights, x: Tensor, h: Tensor, *, reset: str = "after", h_in: Tensor | None = None) -> Tensor:
    r"""One GRU step (Cho et al. 2014) in either of its two published forms.

    .. math::
        r_t &= \sigma(W_{ir} x_t + b_{ir} + W_{hr} h_{t-1} + b_{hr}) \\
        z_t &= \sigma(W_{iz} x_t + b_{iz} + W_{hz} h_{t-1} + b_{hz}) \\
        n_t &= \tanh(W_{in} x_t + b_{in} + r_t \odot (W_{hn} h_{t-1} + b_{hn}))
               \quad \text{reset="after" (PyTorch, cuDNN)} \\
        n_t &= \tanh(W_{in} x_t + b_{in} + W_{hn} (r_t \odot h_{t-1}) + b_{hn})
               \quad \text{reset="before" (Cho et al. 2014, the course notes)} \\
        h_t &= (1 - z_t) \odot n_t + z_t \odot h_{t-1}

    "after" lets all three recurrent products share one GEMM; "before" needs r_t first. The two forms
    have the same parameters but compute different functions. x (B, I), h (B, H) -> h_t (B, H).
    """
    H = w.weight_hh.shape[1]
    h_in = h if h_in is None else h_in
    x_r, x_z, x_n = input_projection(w, x, 3).chunk(3, dim=-1)
    if reset == "after":
        h_r, h_z, h_n = recurrent_projection(w, h_in, 3).chunk(3, dim=-1)
        r = torch.sigmoid(x_r + h_r)
        z = torch.sigmoid(x_z + h_z)
        n = torch.tanh(x_n + r * h_n)
    else:
        h_r, h_z = recurrent_projection(w, h_in, 2, slice(0, 2 * H)).chunk(2, dim=-1)
        r = torch.sigmoid(x_r + h_r)
        z = torch.sigmoid(x_z + h_z)
        n = torch.tanh(x_n + recurrent_projection(w, r * h_in, 1, slice(2 * H, 3 * H)))
    return (1.0 - z) * n + z * h


# -- masks -----------------------------------------------------------------------------------------


def bernoulli_mask(shape: tuple[int, ...], p: float, like: Tensor) -> Tensor:
    """A 0/1 mask of ``shape`` with P(1) = p, in ``like``'s dtype and device.

    Drawn as ``uniform < p``: the same distribution as ``bernoulli_``, about twice as fast on CPU, where
    drawing zoneout's (T, B, H) masks is a real share of a training step."""
    return torch.rand(shape, device=like.device, dtype=like.dtype).lt_(p)


def apply_zoneout(new: Tensor, old: Tensor, p: float, mask: Tensor | None, training: bool) -> Tensor:
    """Zoneout of one state tensor: keep ``old`` where ``mask`` is 1 (training) or mix by p (eval)."""
    if p == 0.0:
        return new
    if mask is None and not training:
        return torch.lerp(new, old, p)  # the expectation: p * old + (1 - p) * new
    if mask is None:
        mask = bernoulli_mask(new.shape, p, new)
    return torch.lerp(new, old, mask)  # mask * old + (1 - mask) * new


# -- what a cell is ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CellSpec:
    """Which equations a cell computes and with which options: everything but its weights.

    ``kind`` is "rnn", "lstm" or "gru"; ``nonlinearity`` applies to the RNN, ``reset``, "after" or
    "before", to the GRU, ``proj_size`` and ``peephole`` to the LSTM.
    """

    kind: str
    input_size: int
    hidden_size: int
    bias: bool = True
    nonlinearity: str = "tanh"
    reset: str = "after"
    proj_size: int = 0
    peephole: bool = False
    layer_norm: bool = False
    recurrent_dropout: float = 0.0
    zoneout: float = 0.0

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"cell must be one of {list(KINDS)}, got {self.kind!r}")
        check_size("input_size", self.input_size, minimum=0)
        check_size("hidden_size", self.hidden_size, minimum=0)
        check_size("proj_size", self.proj_size, minimum=0)
        if self.nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"nonlinearity must be 'tanh' or 'relu', got {self.nonlinearity!r}")
        if self.reset not in ("after", "before"):
            raise ValueError(f"reset must be 'after' (PyTorch/cuDNN) or 'before' (Cho et al.), got {self.reset!r}")
        if self.proj_size and self.proj_size >= self.hidden_size:
            raise ValueError(f"proj_size must be smaller than hidden_size={self.hidden_size}, got {self.proj_size}")
        check_probability("recurrent_dropout", self.recurrent_dropout)
        check_probability("zoneout", self.zoneout)

    @property
    def num_gates(self) -> int:
        return NUM_GATES[self.kind]

    @property
    def output_size(self) -> int:
        """Feature size of h: proj_size when the LSTM projects, else hidden_size."""
        return self.proj_size or self.hidden_size

    @property
    def state_sizes(self) -> tuple[int, ...]:
        """Feature size of each state tensor: (H,) or, for the LSTM, (H_out, H)."""
        return (self.output_size, self.hidden_size) if self.kind == "lstm" else (self.hidden_size,)

    # -- parameters -------------------------------------------------------------------------------

    def parameter_shapes(self) -> Iterator[tuple[str, tuple[int, ...]]]:
        """(name, shape) of every parameter, torch's first and in torch's order, then the options'."""
        gates, H, P = self.num_gates * self.hidden_size, self.hidden_size, self.output_size
        yield "weight_ih", (gates, self.input_size)
        yield "weight_hh", (gates, P)
        if self.bias:
            yield "bias_ih", (gates,)
            yield "bias_hh", (gates,)
        if self.proj_size:
            yield "weight_hr", (self.proj_size, H)
        if self.layer_norm:
            yield "ln_ih_weight", (gates,)
            yield "ln_hh_weight", (gates,)
            if self.kind == "lstm":
                yield "ln_cell_weight", (H,)
                yield "ln_cell_bias", (H,)
        if self.peephole:
            yield "weight_ch", (3 * H,)

    def init_parameters(self, params: dict[str, Tensor]) -> None:
        """Initialise ``params`` (named as :meth:`parameter_shapes`) in place: U(-1/sqrt(H), 1/sqrt(H)) for
        every weight and bias, as torch.nn; layer-norm gains 1 and shifts 0; the LSTM's forget gate
        ``b_if + b_hf = FORGET_BIAS``, so the cell remembers by default."""
        bound = 1.0 / math.sqrt(self.hidden_size) if self.hidden_size > 0 else 0.0
        with torch.no_grad():
            for name, param in params.items():
                if name.startswith("ln_"):
                    param.fill_(0.0 if name == "ln_cell_bias" else 1.0)
                else:
                    param.uniform_(-bound, bound)
            if self.kind == "lstm" and self.bias:
                H = self.hidden_size
                params["bias_ih"][H : 2 * H].fill_(FORGET_BIAS)
                params["bias_hh"][H : 2 * H].zero_()

    def folded_biases(self, w: CellWeights) -> tuple[Tensor | None, Tensor | None]:
        """The biases a fused loop adds: ``(b_ih + b_hh, None)``, since b_hh joins the input side even after
        the recurrent layer norm, except for the GRU's "after" form, where r multiplies ``W_hn h + b_hn``:
        ``(b_ih, b_hh)`` kept apart."""
        if w.bias_ih is None:
            return None, None
        if self.kind == "gru" and self.reset == "after":
            return w.bias_ih, w.bias_hh
        return w.bias_ih + w.bias_hh, None

    @property
    def is_plain(self) -> bool:
        """True when torch's own kernels compute exactly this cell (no option torch lacks)."""
        extras = self.layer_norm or self.peephole or self.recurrent_dropout or self.zoneout
        return not extras and self.reset == "after"

    # -- steps ------------------------------------------------------------------------------------

    def step(self, w: CellWeights, x: Tensor, state: State, h_in: Tensor | None = None) -> State:
        """The cell's equations (:func:`rnn_step`, :func:`lstm_step` or :func:`gru_step`), without zoneout."""
        if self.kind == "lstm":
            return lstm_step(w, x, state, h_in=h_in)
        if self.kind == "gru":
            return gru_step(w, x, state, reset=self.reset, h_in=h_in)
        return rnn_step(w, x, state, nonlinearity=self.nonlinearity, h_in=h_in)

    def advance(
        self,
        w: CellWeights,
        x: Tensor,
        state: State,
        recurrent_mask: Tensor | None = None,
        zoneout_mask: State | None = None,
        training: bool = False,
    ) -> tuple[Tensor, State]:
        """One step with dropout and zoneout: ``(out, new_state)`` for batched x (B, I).

        ``recurrent_mask`` (B, H_out), already scaled by 1/(1-p), multiplies the h that enters ``W_hh``;
        ``zoneout_mask``: Bernoulli(p) masks shaped like the state (1 = keep the old value). Masks that
        are passed are applied; omitted ones are drawn here in training mode, and in eval mode dropout is
        the identity and zoneout takes its expectation."""
        if recurrent_mask is None and training and self.recurrent_dropout > 0:
            recurrent_mask = self.recurrent_mask(x.shape[0], x)  # a fresh mask: this call is alone
        h = as_tuple(state)[0]
        new_state = self.step(w, x, state, None if recurrent_mask is None else h * recurrent_mask)
        if self.zoneout > 0:
            masks = as_tuple(zoneout_mask) if zoneout_mask is not None else (None,) * len(as_tuple(state))
            zoned = tuple(
                apply_zoneout(n, o, self.zoneout, m, training)
                for n, o, m in zip(as_tuple(new_state), as_tuple(state), masks)
            )
            new_state = zoned if isinstance(new_state, tuple) else zoned[0]
        return as_tuple(new_state)[0], new_state

    def init_state(self, batch_size: int, *, device=None, dtype=None) -> State:
        """Zero state for ``batch_size`` sequences."""
        check_size("batch_size", batch_size, minimum=0)
        zeros = tuple(torch.zeros(batch_size, n, device=device, dtype=dtype) for n in self.state_sizes)
        return zeros[0] if len(zeros) == 1 else zeros

    def draw_masks(self, steps: int, batch_size: int, like: Tensor) -> tuple[Tensor | None, tuple[Tensor, ...] | None]:
        """Training masks for a sequence: one recurrent-dropout mask (B, H_out), scaled by 1/(1-p), and
        zoneout masks (T, B, n) per state tensor; None where the option is off."""
        recurrent = self.recurrent_mask(batch_size, like) if self.recurrent_dropout > 0 else None
        zoneout = self.zoneout_masks(steps, batch_size, like) if self.zoneout > 0 else None
        return recurrent, zoneout

    def recurrent_mask(self, batch_size: int, like: Tensor) -> Tensor:
        """One recurrent-dropout mask (B, H_out): 1/(1-p) with probability 1-p, else 0."""
        keep = 1.0 - self.recurrent_dropout
        return bernoulli_mask((batch_size, self.output_size), keep, like).div_(keep)

    def zoneout_masks(self, steps: int, batch_size: int, like: Tensor) -> tuple[Tensor, ...]:
        """Zoneout masks (T, B, n), one per state tensor: 1 (keep the old value) with probability p."""
        return tuple(bernoulli_mask((steps, batch_size, n), self.zoneout, like) for n in self.state_sizes)


# -- the cell modules ------------------------------------------------------------------------------


class RecurrentCell(nn.Module):
    """A cell as a module: a :class:`CellSpec` and its parameters, under torch's cell names.

    Subclasses (:class:`RNNCell`, :class:`LSTMCell`, :class:`GRUCell`) only build the spec. The spec's
    fields read as attributes (``cell.hidden_size``, ``cell.zoneout``...).
    """

    def __init__(self, spec: CellSpec, *, device=None, dtype=None) -> None:
        super().__init__()
        self.spec = spec
        factory = {"device": device, "dtype": dtype}
        for name, shape in spec.parameter_shapes():
            self.register_parameter(name, nn.Parameter(torch.empty(shape, **factory)))
        if not spec.bias:
            self.register_parameter("bias_ih", None)
            self.register_parameter("bias_hh", None)
        self.reset_parameters()

    @classmethod
    def sharing(cls, spec: CellSpec, weights: CellWeights) -> RecurrentCell:
        """A cell module of ``spec`` whose parameters are the given ones (not copies): one (layer, direction)
        of a layer as a cell, for code that steps cells (:mod:`rnnkit.diagnostics`)."""
        cell = RecurrentCell.__new__(CELL_CLASSES[spec.kind])
        nn.Module.__init__(cell)
        cell.spec = spec
        for name in CellWeights._fields:
            cell.register_parameter(name, getattr(weights, name))
        return cell

    def __getattr__(self, name: str):
        spec = self.__dict__.get("spec")
        if spec is not None and name in CellSpec.__dataclass_fields__:
            return getattr(spec, name)
        return super().__getattr__(name)

    @property
    def num_gates(self) -> int:
        return self.spec.num_gates

    @property
    def output_size(self) -> int:
        return self.spec.output_size

    @property
    def state_sizes(self) -> tuple[int, ...]:
        return self.spec.state_sizes

    @property
    def weights(self) -> CellWeights:
        """This cell's parameters as the equations read them."""
        return CellWeights(**{name: getattr(self, name) for name, _ in self.spec.parameter_shapes()})

    def reset_parameters(self) -> None:
        """Uniform(-1/sqrt(H), 1/sqrt(H)) as torch.nn, layer-norm gains 1, the LSTM's forget bias 1."""
        self.spec.init_parameters({name: getattr(self, name) for name, _ in self.spec.parameter_shapes()})

    def extra_repr(self) -> str:
        s = self.spec
        text = f"{s.input_size}, {s.hidden_size}"
        defaults = CellSpec(s.kind, s.input_size, s.hidden_size)
        for name in CellSpec.__dataclass_fields__:
            if name not in ("kind", "input_size", "hidden_size") and getattr(s, name) != getattr(defaults, name):
                text += f", {name}={getattr(s, name)!r}"
        return text

    def init_state(self, batch_size: int, device=None, dtype=None) -> State:
        """Zero state for ``batch_size`` sequences on the parameters' device and dtype by default."""
        device = self.weight_ih.device if device is None else device
        dtype = self.weight_ih.dtype if dtype is None else dtype
        return self.spec.init_state(batch_size, device=device, dtype=dtype)

    def forward(
        self,
        input: Tensor,
        state: State | None = None,
        *,
        recurrent_mask: Tensor | None = None,
        zoneout_mask: State | None = None,
    ) -> tuple[Tensor, State]:
        """One time step: ``(x_t, state) -> (out, new_state)``. Unbatched (I,) input gives unbatched results.

        ``recurrent_mask`` (B, H_out): a dropout mask, already scaled by 1/(1-p), for the h that enters
        ``W_hh``. ``zoneout_mask``: Bernoulli(p) masks shaped like the state (1 = keep the old value).
        Masks that are passed are applied; omitted ones are drawn here in training mode, and in eval
        mode dropout is the identity and zoneout takes its expectation.
        """
        x, state, batched = self._check_call(input, state)
        out, new_state = self.advance(x, state, recurrent_mask, zoneout_mask)
        if not batched:
            out = out.squeeze(0)
            new_state = map_state(lambda s: s.squeeze(0), new_state)
        return out, new_state

    def advance(self, x: Tensor, state: State, recurrent_mask: Tensor | None = None,
                zoneout_mask: State | None = None) -> tuple[Tensor, State]:  # fmt: skip
        """``forward`` without the input checks, for batched input."""
        # only recurrent dropout and zoneout act differently in training (torch's cells never read training)
        training = self.training if (self.spec.recurrent_dropout or self.spec.zoneout) else False
        return self.spec.advance(self.weights, x, state, recurrent_mask, zoneout_mask, training)

    def step(self, x: Tensor, state: State, recurrent_mask: Tensor | None = None) -> State:
        """The equations alone (no zoneout): the new state."""
        h_in = None if recurrent_mask is None else as_tuple(state)[0] * recurrent_mask
        return self.spec.step(self.weights, x, state, h_in)

    def input_projection(self, x: Tensor) -> Tensor:
        """``[LN](W_ih x) + b_ih``: (B, k·H)."""
        return input_projection(self.weights, x, self.num_gates)

    def recurrent_projection(self, h: Tensor) -> Tensor:
        """``[LN](W_hh h) + b_hh``: (B, k·H)."""
        return recurrent_projection(self.weights, h, self.num_gates)

    def draw_masks(self, steps: int, batch_size: int, like: Tensor):
        return self.spec.draw_masks(steps, batch_size, like)

    def recurrent_mask(self, batch_size: int, like: Tensor) -> Tensor:
        return self.spec.recurrent_mask(batch_size, like)

    def zoneout_masks(self, steps: int, batch_size: int, like: Tensor) -> tuple[Tensor, ...]:
        return self.spec.zoneout_masks(steps, batch_size, like)

    # -- input checks -----------------------------------------------------------------------------

    def _check_call(self, input: Tensor, state: State | None) -> tuple[Tensor, State, bool]:
        name, size = type(self).__name__, self.input_size
        batched = check_input(name, input, (1, 2), f"(batch, {size}) or ({size},)", size, self.weight_ih)
        x = input if batched else input.unsqueeze(0)
        if state is None:
            return x, self.init_state(x.shape[0]), batched
        parts = as_tuple(state)
        if len(parts) != len(self.state_sizes) or (len(parts) > 1) != isinstance(state, tuple):
            kind = "a pair (h, c)" if len(self.state_sizes) == 2 else "a tensor h"
            raise TypeError(f"{name}: state must be {kind}, got {describe(state)}")
        checked = []
        for label, s, size in zip(("h", "c"), parts, self.state_sizes):
            expected = (x.shape[0], size) if batched else (size,)
            if not isinstance(s, Tensor) or tuple(s.shape) != expected:
                raise ShapeError(f"{name}: state {label} must have shape {expected}, got {describe(s)}")
            check_tensor_matches(name, f"state {label}", s, self.weight_ih)
            checked.append(s if batched else s.unsqueeze(0))
        return x, (tuple(checked) if len(checked) > 1 else checked[0]), batched


class RNNCell(RecurrentCell):
    r"""The vanilla (Elman) recurrent cell, a drop-in for ``torch.nn.RNNCell``: :func:`rnn_step`.

    :math:`h_t = \sigma(W_{ih} x_t + b_{ih} + W_{hh} h_{t-1} + b_{hh})` with σ = tanh or relu
    (``nonlinearity``). Output and state are both h_t (B, H). Keyword-only extras: ``layer_norm``,
    ``recurrent_dropout``, ``zoneout``.
    """

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, nonlinearity: str = "tanh",
                 device=None, dtype=None, **options):  # fmt: skip
        check_bool("bias", bias)
        spec = CellSpec("rnn", input_size, hidden_size, bias, nonlinearity=nonlinearity, **options)
        super().__init__(spec, device=device, dtype=dtype)


class LSTMCell(RecurrentCell):
    r"""Long short-term memory, a drop-in for ``torch.nn.LSTMCell``: :func:`lstm_step`.

    Keyword-only extras: ``peephole`` (``weight_ch`` = [p_i, p_f, p_o], shape (3H,)), ``proj_size`` P > 0
    (torch's output projection ``weight_hr`` (P, H), so h is (B, P)), ``layer_norm`` (with the cell norm
    ``ln_cell_weight``, ``ln_cell_bias``), ``recurrent_dropout``, ``zoneout``. The forget-gate bias starts
    at 1 (as char-rnn and Keras) so the cell remembers by default. State: ``(h, c)``, shapes (B, P or H)
    and (B, H).
    """

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, device=None, dtype=None, *,
                 peephole: bool = False, proj_size: int = 0, **options):  # fmt: skip
        check_bool("bias", bias)
        spec = CellSpec("lstm", input_size, hidden_size, bias, peephole=bool(peephole), proj_size=proj_size, **options)
        super().__init__(spec, device=device, dtype=dtype)


class GRUCell(RecurrentCell):
    r"""Gated recurrent unit, a drop-in for ``torch.nn.GRUCell`` (``reset="after"``), or Cho et al.'s form
    (``reset="before"``): :func:`gru_step`. Output and state: h_t (B, H). Keyword-only extras: ``reset``,
    ``layer_norm``, ``recurrent_dropout``, ``zoneout``.
    """

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, device=None, dtype=None, *,
                 reset: str = "after", **options):  # fmt: skip
        check_bool("bias", bias)
        spec = CellSpec("gru", input_size, hidden_size, bias, reset=reset, **options)
        super().__init__(spec, device=device, dtype=dtype)


CELL_CLASSES: dict[str, type[RecurrentCell]] = {"rnn": RNNCell, "lstm": LSTMCell, "gru": GRUCell}


# -- small helpers shared with the layers ---------------------------------------------------------


def as_tuple(state: State) -> tuple[Tensor, ...]:
    return state if isinstance(state, tuple) else (state,)


def map_state(fn, state: State) -> State:
    """Apply ``fn`` to each tensor of a state (a tensor or a tuple of tensors)."""
    return tuple(fn(s) for s in state) if isinstance(state, tuple) else fn(state)
