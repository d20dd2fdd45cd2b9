"""Recurrent cells, each written as its equations.

Every cell follows one contract (as flax's recurrent cells do)::

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

import torch
import torch.nn.functional as F
from torch import Tensor, nn

State = Tensor | tuple[Tensor, ...]

LAYER_NORM_EPS = 1e-5


def gate_norm(x: Tensor, num_gates: int, weight: Tensor) -> Tensor:
    """Layer-normalise each gate's block of a (B, k·H) projection on its own, then scale by ``weight``."""
    shape = x.shape
    x = x.reshape(*shape[:-1], num_gates, shape[-1] // num_gates)  # (B, k, H)
    x = F.layer_norm(x, x.shape[-1:], eps=LAYER_NORM_EPS)
    return x.reshape(shape) * weight


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


def _check_probability(name: str, p: float) -> float:
    if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0.0 <= p < 1.0:
        raise ValueError(f"{name} must be a probability in [0, 1), got {p!r}")
    return float(p)


def _check_size(name: str, n: int, minimum: int = 1) -> int:
    if isinstance(n, bool) or not isinstance(n, int) or n < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {n!r}")
    return n


class RecurrentCell(nn.Module):
    """What every cell shares: parameters stacked by gate, init, input checks, dropout and zoneout.

    Subclasses set ``num_gates`` and write ``step(x, state, recurrent_mask)`` as their equations.
    """

    num_gates: int = 1

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        bias: bool = True,
        *,
        output_size: int | None = None,
        layer_norm: bool = False,
        recurrent_dropout: float = 0.0,
        zoneout: float = 0.0,
        device=None,
        dtype=None,
    ) -> None:
        super().__init__()
        self.input_size = _check_size("input_size", input_size)
        self.hidden_size = _check_size("hidden_size", hidden_size)
        # h can be narrower than the cell (LSTM projections); W_hh reads h.
        self.output_size = hidden_size if output_size is None else output_size
        self.bias = bool(bias)
        self.layer_norm = bool(layer_norm)
        self.recurrent_dropout = _check_probability("recurrent_dropout", recurrent_dropout)
        self.zoneout = _check_probability("zoneout", zoneout)
        factory = {"device": device, "dtype": dtype}
        gates = self.num_gates * hidden_size
        self.weight_ih = nn.Parameter(torch.empty(gates, input_size, **factory))
        self.weight_hh = nn.Parameter(torch.empty(gates, self.output_size, **factory))
        if self.bias:
            self.bias_ih = nn.Parameter(torch.empty(gates, **factory))
            self.bias_hh = nn.Parameter(torch.empty(gates, **factory))
        else:
            self.register_parameter("bias_ih", None)
            self.register_parameter("bias_hh", None)
        if self.layer_norm:
            self.ln_ih_weight = nn.Parameter(torch.empty(gates, **factory))
            self.ln_hh_weight = nn.Parameter(torch.empty(gates, **factory))

    # -- parameters -------------------------------------------------------------------------------

    def reset_parameters(self) -> None:
        """Uniform(-1/sqrt(H), 1/sqrt(H)) for every weight and bias, as torch.nn; layer-norm gains 1."""
        bound = 1.0 / math.sqrt(self.hidden_size)
        for name, param in self.named_parameters(recurse=False):
            if name.startswith("ln_"):
                nn.init.ones_(param) if name.endswith("weight") else nn.init.zeros_(param)
            else:
                nn.init.uniform_(param, -bound, bound)

    def extra_repr(self) -> str:
        s = f"{self.input_size}, {self.hidden_size}"
        if not self.bias:
            s += ", bias=False"
        for name in ("layer_norm", "recurrent_dropout", "zoneout"):
            if getattr(self, name):
                s += f", {name}={getattr(self, name)}"
        return s

    # -- state ------------------------------------------------------------------------------------

    @property
    def state_sizes(self) -> tuple[int, ...]:
        """Feature size of each state tensor: (H,) or, for the LSTM, (H_out, H)."""
        return (self.hidden_size,)

    def init_state(self, batch_size: int, device=None, dtype=None) -> State:
        """Zero state for ``batch_size`` sequences on the parameters' device and dtype by default."""
        _check_size("batch_size", batch_size)
        device = self.weight_ih.device if device is None else device
        dtype = self.weight_ih.dtype if dtype is None else dtype
        zeros = tuple(torch.zeros(batch_size, n, device=device, dtype=dtype) for n in self.state_sizes)
        return zeros[0] if len(zeros) == 1 else zeros

    # -- the step ---------------------------------------------------------------------------------

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

    def advance(
        self,
        x: Tensor,
        state: State,
        recurrent_mask: Tensor | None = None,
        zoneout_mask: State | None = None,
    ) -> tuple[Tensor, State]:
        """``forward`` without the input checks, for batched input: what layers call at every step."""
        if recurrent_mask is None and self.training and self.recurrent_dropout > 0:
            recurrent_mask = self.recurrent_mask(x.shape[0], x)  # a fresh mask: this call is alone
        new_state = self.step(x, state, recurrent_mask)
        if self.zoneout > 0:
            masks = as_tuple(zoneout_mask) if zoneout_mask is not None else (None,) * len(as_tuple(state))
            zoned = tuple(
                apply_zoneout(n, o, self.zoneout, m, self.training)
                for n, o, m in zip(as_tuple(new_state), as_tuple(state), masks)
            )
            new_state = zoned if isinstance(new_state, tuple) else zoned[0]
        return as_tuple(new_state)[0], new_state

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

    def step(self, x: Tensor, state: State, recurrent_mask: Tensor | None) -> State:  # pragma: no cover
        raise NotImplementedError

    def input_projection(self, x: Tensor) -> Tensor:
        """``W_ih x + b_ih`` with per-gate layer norm of ``W_ih x`` when enabled: (B, k·H)."""
        gx = F.linear(x, self.weight_ih)
        if self.layer_norm:
            gx = gate_norm(gx, self.num_gates, self.ln_ih_weight)
        return gx if self.bias_ih is None else gx + self.bias_ih

    def recurrent_projection(self, h: Tensor, rows: slice = slice(None), num_gates: int | None = None) -> Tensor:
        """``W_hh h + b_hh`` restricted to the gate ``rows`` (all by default), layer-normed per gate."""
        gh = F.linear(h, self.weight_hh[rows])
        if self.layer_norm:
            gh = gate_norm(gh, num_gates or self.num_gates, self.ln_hh_weight[rows])
        return gh if self.bias_hh is None else gh + self.bias_hh[rows]

    # -- input checks -----------------------------------------------------------------------------

    def _check_call(self, input: Tensor, state: State | None) -> tuple[Tensor, State, bool]:
        name = type(self).__name__
        if not isinstance(input, Tensor):
            raise TypeError(f"{name}: input must be a torch.Tensor, got {type(input).__name__}")
        if input.dim() not in (1, 2):
            raise ValueError(
                f"{name}: input must have shape (batch, {self.input_size}) or ({self.input_size},), "
                f"got {tuple(input.shape)}"
            )
        if input.shape[-1] != self.input_size:
            raise ValueError(f"{name}: input has {input.shape[-1]} features, expected input_size={self.input_size}")
        check_tensor_matches(name, "input", input, self.weight_ih)
        batched = input.dim() == 2
        x = input if batched else input.unsqueeze(0)
        if state is None:
            return x, self.init_state(x.shape[0]), batched
        parts = as_tuple(state)
        if len(parts) != len(self.state_sizes) or (len(parts) > 1) != isinstance(state, tuple):
            kind = "a pair (h, c)" if len(self.state_sizes) == 2 else "a tensor h"
            raise TypeError(f"{name}: state must be {kind}, got {_describe(state)}")
        checked = []
        for label, s, size in zip(("h", "c"), parts, self.state_sizes):
            expected = (x.shape[0], size) if batched else (size,)
            if not isinstance(s, Tensor) or tuple(s.shape) != expected:
                raise ValueError(f"{name}: state {label} must have shape {expected}, got {_describe(s)}")
            check_tensor_matches(name, f"state {label}", s, self.weight_ih)
            checked.append(s if batched else s.unsqueeze(0))
        return x, (tuple(checked) if len(checked) > 1 else checked[0]), batched


class RNNCell(RecurrentCell):
    r"""The vanilla (Elman) recurrent cell.

    .. math::
        h_t = \sigma(W_{ih} x_t + b_{ih} + W_{hh} h_{t-1} + b_{hh})

    with σ = tanh or relu (``nonlinearity``); the course notes' ``h_t = σ(U x_t + V h_{t-1} + b)`` with
    U = W_ih, V = W_hh, b = b_ih + b_hh. Output and state are both h_t (B, H).
    """

    num_gates = 1

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, nonlinearity: str = "tanh", **options):
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"nonlinearity must be 'tanh' or 'relu', got {nonlinearity!r}")
        super().__init__(input_size, hidden_size, bias, **options)
        self.nonlinearity = nonlinearity
        self.reset_parameters()

    def step(self, x: Tensor, h: Tensor, recurrent_mask: Tensor | None) -> Tensor:
        h_in = h if recurrent_mask is None else h * recurrent_mask
        pre = self.input_projection(x) + self.recurrent_projection(h_in)
        return torch.tanh(pre) if self.nonlinearity == "tanh" else torch.relu(pre)

    def extra_repr(self) -> str:
        s = super().extra_repr()
        return s if self.nonlinearity == "tanh" else s + ", nonlinearity='relu'"


class LSTMCell(RecurrentCell):
    r"""Long short-term memory (Hochreiter & Schmidhuber 1997, with the forget gate of Gers et al. 2000).

    .. math::
        i_t &= \sigma(W_{ii} x_t + b_{ii} + W_{hi} h_{t-1} + b_{hi} [+ p_i \odot c_{t-1}]) \\
        f_t &= \sigma(W_{if} x_t + b_{if} + W_{hf} h_{t-1} + b_{hf} [+ p_f \odot c_{t-1}]) \\
        g_t &= \tanh(W_{ig} x_t + b_{ig} + W_{hg} h_{t-1} + b_{hg}) \\
        c_t &= f_t \odot c_{t-1} + i_t \odot g_t \\
        o_t &= \sigma(W_{io} x_t + b_{io} + W_{ho} h_{t-1} + b_{ho} [+ p_o \odot c_t]) \\
        h_t &= o_t \odot \tanh(c_t)   \quad [h_t = W_{hr}(o_t \odot \tanh(c_t)) \text{ with a projection}]

    The bracketed peephole terms (Gers & Schmidhuber 2000) are present with ``peephole=True``
    (``weight_ch`` = [p_i, p_f, p_o], shape (3H,)). ``proj_size`` P > 0 adds torch's output projection
    ``weight_hr`` (P, H), so h is (B, P). With ``layer_norm`` the output uses ``tanh(LN(c_t))``.
    The forget-gate bias starts at 1 (as char-rnn and Keras) so the cell remembers by default.
    State: ``(h, c)``, shapes (B, P or H) and (B, H).
    """

    num_gates = 4

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        bias: bool = True,
        *,
        peephole: bool = False,
        proj_size: int = 0,
        **options,
    ):
        _check_size("hidden_size", hidden_size)
        _check_size("proj_size", proj_size, minimum=0)
        if proj_size >= hidden_size:
            raise ValueError(f"proj_size must be smaller than hidden_size={hidden_size}, got {proj_size}")
        super().__init__(input_size, hidden_size, bias, output_size=proj_size or hidden_size, **options)
        self.peephole = bool(peephole)
        self.proj_size = proj_size
        factory = {"device": self.weight_ih.device, "dtype": self.weight_ih.dtype}
        if self.peephole:
            self.weight_ch = nn.Parameter(torch.empty(3 * hidden_size, **factory))
        if proj_size:
            self.weight_hr = nn.Parameter(torch.empty(proj_size, hidden_size, **factory))
        if self.layer_norm:
            self.ln_cell_weight = nn.Parameter(torch.empty(hidden_size, **factory))
            self.ln_cell_bias = nn.Parameter(torch.empty(hidden_size, **factory))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        super().reset_parameters()
        if self.bias:
            with torch.no_grad():
                H = self.hidden_size
                self.bias_ih[H : 2 * H].fill_(1.0)  # forget gate: b_if + b_hf = 1
                self.bias_hh[H : 2 * H].zero_()

    @property
    def state_sizes(self) -> tuple[int, int]:
        return (self.output_size, self.hidden_size)

    def step(self, x: Tensor, state: tuple[Tensor, Tensor], recurrent_mask: Tensor | None) -> tuple[Tensor, Tensor]:
        h, c = state
        h_in = h if recurrent_mask is None else h * recurrent_mask
        gates = self.input_projection(x) + self.recurrent_projection(h_in)  # (B, 4H)
        i, f, g, o = gates.chunk(4, dim=-1)
        if self.peephole:
            p_i, p_f, p_o = self.weight_ch.chunk(3)
            i = i + p_i * c
            f = f + p_f * c
        i, f, g = torch.sigmoid(i), torch.sigmoid(f), torch.tanh(g)
        c = f * c + i * g
        if self.peephole:
            o = o + p_o * c
        o = torch.sigmoid(o)
        c_out = (
            F.layer_norm(c, c.shape[-1:], self.ln_cell_weight, self.ln_cell_bias, LAYER_NORM_EPS)
            if self.layer_norm
            else c
        )
        h = o * torch.tanh(c_out)
        if self.proj_size:
            h = F.linear(h, self.weight_hr)
        return h, c

    def extra_repr(self) -> str:
        s = super().extra_repr()
        if self.peephole:
            s += ", peephole=True"
        if self.proj_size:
            s += f", proj_size={self.proj_size}"
        return s


class GRUCell(RecurrentCell):
    r"""Gated recurrent unit (Cho et al. 2014) in either of its two published forms.

    .. math::
        r_t &= \sigma(W_{ir} x_t + b_{ir} + W_{hr} h_{t-1} + b_{hr}) \\
        z_t &= \sigma(W_{iz} x_t + b_{iz} + W_{hz} h_{t-1} + b_{hz}) \\
        n_t &= \tanh(W_{in} x_t + b_{in} + r_t \odot (W_{hn} h_{t-1} + b_{hn}))
               \quad \text{reset="after" (PyTorch, cuDNN)} \\
        n_t &= \tanh(W_{in} x_t + b_{in} + W_{hn} (r_t \odot h_{t-1}) + b_{hn})
               \quad \text{reset="before" (Cho et al. 2014, the course notes)} \\
        h_t &= (1 - z_t) \odot n_t + z_t \odot h_{t-1}

    "after" lets all three recurrent products share one GEMM; "before" needs r_t first. The two forms
    have the same parameters but compute different functions. Output and state: h_t (B, H).
    """

    num_gates = 3

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, *, reset: str = "after", **options):
        if reset not in ("after", "before"):
            raise ValueError(f"reset must be 'after' (PyTorch/cuDNN) or 'before' (Cho et al.), got {reset!r}")
        super().__init__(input_size, hidden_size, bias, **options)
        self.reset = reset
        self.reset_parameters()

    def step(self, x: Tensor, h: Tensor, recurrent_mask: Tensor | None) -> Tensor:
        H = self.hidden_size
        h_in = h if recurrent_mask is None else h * recurrent_mask
        x_r, x_z, x_n = self.input_projection(x).chunk(3, dim=-1)
        if self.reset == "after":
            h_r, h_z, h_n = self.recurrent_projection(h_in).chunk(3, dim=-1)
            r = torch.sigmoid(x_r + h_r)
            z = torch.sigmoid(x_z + h_z)
            n = torch.tanh(x_n + r * h_n)
        else:
            h_r, h_z = self.recurrent_projection(h_in, slice(0, 2 * H), num_gates=2).chunk(2, dim=-1)
            r = torch.sigmoid(x_r + h_r)
            z = torch.sigmoid(x_z + h_z)
            n = torch.tanh(x_n + self.recurrent_projection(r * h_in, slice(2 * H, 3 * H), num_gates=1))
        return (1.0 - z) * n + z * h

    def extra_repr(self) -> str:
        s = super().extra_repr()
        return s if self.reset == "after" else s + ", reset='before'"


# -- small helpers shared with the layers ---------------------------------------------------------


def as_tuple(state: State) -> tuple[Tensor, ...]:
    return state if isinstance(state, tuple) else (state,)


def map_state(fn, state: State) -> State:
    """Apply ``fn`` to each tensor of a state (a tensor or a tuple of tensors)."""
    return tuple(fn(s) for s in state) if isinstance(state, tuple) else fn(state)


def check_tensor_matches(owner: str, label: str, t: Tensor, reference: Tensor) -> None:
    """Raise TypeError unless ``t`` has the dtype and device of ``reference`` (the parameters)."""
    if not t.is_floating_point():
        raise TypeError(f"{owner}: {label} must be a floating-point tensor, got dtype {t.dtype}")
    if t.dtype != reference.dtype:
        raise TypeError(
            f"{owner}: {label} has dtype {t.dtype} but the parameters are {reference.dtype}; "
            f"convert one with .to({reference.dtype})"
        )
    if t.device != reference.device:
        raise TypeError(
            f"{owner}: {label} is on {t.device} but the parameters are on {reference.device}; "
            f"move one with .to('{reference.device}')"
        )


def _describe(x) -> str:
    if isinstance(x, Tensor):
        return f"a tensor of shape {tuple(x.shape)}"
    if isinstance(x, tuple):
        return f"a tuple of {len(x)}"
    return type(x).__name__
