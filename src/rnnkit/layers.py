"""Recurrent layers: the time loop, lengths, reversal, stacking, bidirectional, skip connections.

``rnnkit.RNN``, ``rnnkit.LSTM`` and ``rnnkit.GRU`` are drop-in replacements for their ``torch.nn``
namesakes: same positional arguments and defaults, same output and state shapes, ``PackedSequence`` in
and out. Extras are keyword-only. A layer owns one cell per (layer, direction), in ``self.cells`` at
index ``layer * num_directions + direction``.

Shapes (T = time, B = batch, D = 2 if bidirectional else 1, L = num_layers, H_out = proj_size or H)::

    input   (T, B, I)  (B, T, I) with batch_first, or (T, I) unbatched
    output  (T, B, D * H_out), or (T, B, L * D * H_out) with skip connections
    h_n     (L * D, B, H_out);  c_n (L * D, B, H) for the LSTM

How a layer computes is chosen by ``backend``: ``"reference"`` runs the cells step by step and is the
definition of correct; ``"native"`` calls torch's own kernels (only for what they compute); ``"fused"``
runs each cell as a fused recurrence with hand-written backpropagation through time
(:mod:`rnnkit.kernels`, every option); ``"auto"`` picks native for plain cells and fused otherwise, but
for the plain GRU and RNN in float32 on the CPU over 16 steps or more, where the fused backend's C loops
are faster than torch's kernels (see :meth:`Recurrent.backend_for`).
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence, pad_packed_sequence

from rnnkit.cells import GRUCell, LSTMCell, RecurrentCell, RNNCell, State, as_tuple, check_tensor_matches
from rnnkit.config import config_from_dict
from rnnkit.kernels import fused_cell, native

CELLS: dict[str, type[RecurrentCell]] = {"rnn": RNNCell, "lstm": LSTMCell, "gru": GRUCell}


@dataclass(frozen=True)
class RecurrentConfig:
    """Everything that defines a recurrent layer; ``config.json`` stores it as a dict."""

    cell: str
    input_size: int
    hidden_size: int
    num_layers: int = 1
    bias: bool = True
    batch_first: bool = False
    dropout: float = 0.0
    bidirectional: bool = False
    nonlinearity: str = "tanh"  # RNN only
    reset: str = "after"  # GRU only
    proj_size: int = 0  # LSTM only
    peephole: bool = False  # LSTM only
    layer_norm: bool = False
    recurrent_dropout: float = 0.0
    zoneout: float = 0.0
    skip_connections: bool = False
    backend: str = "auto"

    def __post_init__(self) -> None:
        if self.cell not in CELLS:
            raise ValueError(f"cell must be one of {sorted(CELLS)}, got {self.cell!r}")
        for name in ("input_size", "hidden_size", "num_layers"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
        for name in ("dropout", "recurrent_dropout", "zoneout"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value < 1.0:
                raise ValueError(f"{name} must be a probability in [0, 1), got {value!r}")
        if self.backend not in BACKENDS and self.backend != "auto":
            raise ValueError(f"backend must be one of {['auto', *sorted(BACKENDS)]}, got {self.backend!r}")
        if self.backend == "native" and not self.is_plain:
            raise ValueError(
                "backend 'native' (torch's kernels) computes only plain cells: no layer_norm, peephole, "
                "recurrent_dropout, zoneout, skip_connections or reset='before'; use 'auto' or 'reference'"
            )
        only = {
            "nonlinearity": ("rnn", "tanh"),
            "reset": ("gru", "after"),
            "proj_size": ("lstm", 0),
            "peephole": ("lstm", False),
        }
        for name, (cell, default) in only.items():
            if getattr(self, name) != default and self.cell != cell:
                raise ValueError(f"{name} applies to the {cell.upper()} only, not the {self.cell.upper()}")

    @property
    def num_directions(self) -> int:
        return 2 if self.bidirectional else 1

    @property
    def output_size(self) -> int:
        """Feature size of h (proj_size when the LSTM projects)."""
        return self.proj_size or self.hidden_size

    @property
    def output_features(self) -> int:
        """Feature size of the layer's output at each step: D * H_out, times L with skip connections
        (every layer's output is concatenated)."""
        per_layer = self.num_directions * self.output_size
        return per_layer * (self.num_layers if self.skip_connections else 1)

    @property
    def is_plain(self) -> bool:
        """True when torch's own RNN kernels compute exactly this model (at training time too)."""
        return (
            not (self.layer_norm or self.peephole or self.recurrent_dropout or self.zoneout or self.skip_connections)
            and self.reset == "after"
        )


class Recurrent(nn.Module):
    """A stack of recurrent cells run over time. Build one through ``RNN``, ``LSTM`` or ``GRU``."""

    def __init__(self, config: RecurrentConfig, *, device=None, dtype=None) -> None:
        super().__init__()
        self.config = config
        if config.dropout > 0 and config.num_layers == 1:
            warnings.warn(
                f"dropout={config.dropout} only acts between layers and num_layers=1: it has no effect",
                stacklevel=3,
            )
        D, H_out = config.num_directions, config.output_size
        self.cells = nn.ModuleList()
        for layer in range(config.num_layers):
            if layer == 0:
                layer_input = config.input_size
            else:
                layer_input = D * H_out + (config.input_size if config.skip_connections else 0)
            for _ in range(D):
                self.cells.append(self._make_cell(layer_input, device=device, dtype=dtype))

    def _make_cell(self, input_size: int, **factory) -> RecurrentCell:
        c = self.config
        options = dict(layer_norm=c.layer_norm, recurrent_dropout=c.recurrent_dropout, zoneout=c.zoneout, **factory)
        if c.cell == "rnn":
            return RNNCell(input_size, c.hidden_size, c.bias, c.nonlinearity, **options)
        if c.cell == "lstm":
            return LSTMCell(input_size, c.hidden_size, c.bias, peephole=c.peephole, proj_size=c.proj_size, **options)
        return GRUCell(input_size, c.hidden_size, c.bias, reset=c.reset, **options)

    # -- torch.nn compatible attributes -----------------------------------------------------------

    def __getattr__(self, name: str):
        # input_size, hidden_size, num_layers, batch_first, ... read as on torch.nn.RNNBase.
        if name != "config" and "config" in self.__dict__ and hasattr(self.__dict__["config"], name):
            return getattr(self.__dict__["config"], name)
        return super().__getattr__(name)

    def reset_parameters(self) -> None:
        for cell in self.cells:
            cell.reset_parameters()

    def _apply(self, fn, recurse: bool = True):
        module = super()._apply(fn, recurse)
        self.flatten_parameters()  # after .to(), .cuda(), .half(), as torch.nn.RNNBase does
        return module

    def flatten_parameters(self) -> None:
        """On a GPU, lay a plain stack's weights out in one contiguous buffer, as cuDNN wants them; without
        it cuDNN copies every weight at every call. The parameters stay the cells' own, now views of that
        buffer. Elsewhere, and for what cuDNN does not compute, a no-op."""
        c = self.config
        weights = [p for _, p in _torch_names(self)]
        if not c.is_plain or not all(w.is_cuda and w.dtype == weights[0].dtype for w in weights):
            return
        if not all(torch.backends.cudnn.is_acceptable(w) for w in weights):
            return
        if len({w.data_ptr() for w in weights}) != len(weights):  # shared weights: keep the copying path
            return
        from torch.backends.cudnn import rnn as cudnn_rnn

        mode = {"lstm": "LSTM", "gru": "GRU", "rnn": f"RNN_{c.nonlinearity.upper()}"}[c.cell]
        with torch.cuda.device_of(weights[0]), torch.no_grad():
            if torch._use_cudnn_rnn_flatten_weight():
                torch._cudnn_rnn_flatten_weight(
                    weights, (4 if c.bias else 2) + (1 if c.proj_size else 0), c.input_size,
                    cudnn_rnn.get_cudnn_mode(mode), c.hidden_size, c.proj_size, c.num_layers, c.batch_first,
                    c.bidirectional,
                )  # fmt: skip

    def extra_repr(self) -> str:
        c = self.config
        s = f"{c.input_size}, {c.hidden_size}"
        defaults = RecurrentConfig(c.cell, c.input_size, c.hidden_size)
        for field in dataclasses.fields(c):
            if field.name not in ("cell", "input_size", "hidden_size") and getattr(c, field.name) != getattr(
                defaults, field.name
            ):
                s += f", {field.name}={getattr(c, field.name)!r}"
        return s

    def get_config(self) -> dict:
        return dataclasses.asdict(self.config)

    @classmethod
    def from_config(cls, config: dict | RecurrentConfig, *, device=None, dtype=None) -> Recurrent:
        """Rebuild a layer from ``get_config()``; unknown keys and wrong types are rejected."""
        if isinstance(config, dict):
            config = config_from_dict(RecurrentConfig, config)
        layer_class = {"rnn": RNN, "lstm": LSTM, "gru": GRU}[config.cell]
        layer = Recurrent.__new__(layer_class)
        Recurrent.__init__(layer, config, device=device, dtype=dtype)
        return layer

    @property
    def backend(self) -> str:
        """The backend that ``forward`` uses, after resolving ``"auto"``, on a sequence of
        ``C_PRODUCT_MIN_STEPS`` (16) steps or more: :meth:`backend_for` such a sequence."""
        return self.backend_for(native.C_PRODUCT_MIN_STEPS)

    def backend_for(self, steps: int, input: Tensor | None = None) -> str:
        """The backend that ``forward`` uses on ``input``, a sequence of ``steps`` steps: the configured one or, for
        ``"auto"``, the fastest that computes exactly this model. That is the fused backend for what torch's
        kernels do not compute and torch's own (native) for plain cells, with one exception. The plain GRU and
        vanilla RNN in float32 on the CPU, over 16 steps or more and outside autocast, take the fused backend,
        whose C loops run forward+backward in 0.1-0.9x the time of torch's CPU kernels (``rnnkit bench``,
        2 cores, H 64-1024, B 1-64). torch's CPU LSTM kernel is on a par with them (0.8-1.2x in training,
        slower in inference at small sizes), so the LSTM stays native.

        Like every fused path, that one differentiates once and has no ``setup_context``: under a ``torch.func``
        transform (the weights or ``input`` wrapped by grad, vmap, jvp) auto stays native, but double
        backward (``create_graph=True``) needs ``backend="native"`` (or ``RNNKIT_C_CELLS=0``, which sends
        auto there)."""
        c = self.config
        if c.backend != "auto":
            return c.backend
        if not c.is_plain:
            return "fused"
        W_hh = self.cells[0].weight_hh
        if (
            c.cell != "lstm"
            and steps >= native.C_PRODUCT_MIN_STEPS
            and native.c_steps_apply(W_hh, W_hh)
            and not torch.is_autocast_enabled("cpu")  # torch's kernels compute in autocast's dtype
            and not any(_under_functorch(t) for t in (W_hh, input) if t is not None)
        ):
            return "fused"
        return "native"

    # -- forward ----------------------------------------------------------------------------------

    def forward(
        self,
        input: Tensor | PackedSequence,
        state: State | None = None,
        lengths: Tensor | Sequence[int] | None = None,
        *,
        hx: State | None = None,
    ) -> tuple[Tensor | PackedSequence, State]:
        """Run the stack over a sequence: ``output, h_n`` (``output, (h_n, c_n)`` for the LSTM).

        ``state`` (alias ``hx``, as torch names it): initial state shaped like the final one; zeros if
        omitted. ``lengths`` (B,): true lengths of padded sequences; steps past a sequence's length
        leave its state untouched and give zero outputs, and the backward direction reverses each
        sequence within its length. A ``PackedSequence`` input gives a ``PackedSequence`` output.
        """
        name = type(self).__name__
        if hx is not None:
            if state is not None:
                raise TypeError(f"{name}: pass the initial state as state or as hx, not both")
            state = hx
        packed = input if isinstance(input, PackedSequence) else None
        if packed is not None:
            if lengths is not None:
                raise ValueError(f"{name}: a PackedSequence carries its own lengths; do not pass lengths too")
            check_tensor_matches(name, "input", packed.data, self.cells[0].weight_ih)
            x, lengths = pad_packed_sequence(packed)  # (T, B, I), original batch order
            batched = True
        else:
            x, batched = self._check_input(input)
        T, B = x.shape[0], x.shape[1]
        lengths = self._check_lengths(lengths, T, B, x.device, batched)
        initial = self._check_state(state, B, batched)
        masks = self._draw_masks(T, B, x)

        backend = BACKENDS[self.backend_for(T, x)]
        output, final = backend(self, x, initial, lengths, masks)  # (T, B, F), each (L * D, B, *)
        if packed is not None:
            output = _pack_like(output, lengths, packed)
        elif self.config.batch_first and batched:
            output = output.transpose(0, 1)
        if not batched:
            output = output.squeeze(1)
            final = tuple(f.squeeze(1) for f in final)
        return output, (final if self.config.cell == "lstm" else final[0])

    # -- input checks -----------------------------------------------------------------------------

    def _check_input(self, input) -> tuple[Tensor, bool]:
        name, c = type(self).__name__, self.config
        if not isinstance(input, Tensor):
            raise TypeError(f"{name}: input must be a torch.Tensor or PackedSequence, got {type(input).__name__}")
        layout = "(B, T, I)" if c.batch_first else "(T, B, I)"
        if input.dim() not in (2, 3):
            raise ValueError(
                f"{name}: input must have shape {layout} or (T, I) unbatched with I={c.input_size}, "
                f"got {tuple(input.shape)}"
            )
        if input.shape[-1] != c.input_size:
            raise ValueError(f"{name}: input has {input.shape[-1]} features, expected input_size={c.input_size}")
        check_tensor_matches(name, "input", input, self.cells[0].weight_ih)
        batched = input.dim() == 3
        x = input if batched else input.unsqueeze(1)
        if batched and c.batch_first:
            x = x.transpose(0, 1)
        if x.shape[0] == 0 or x.shape[1] == 0:
            raise ValueError(f"{name}: input has an empty time or batch dimension: {tuple(input.shape)}")
        return x, batched

    def _check_lengths(self, lengths, T: int, B: int, device, batched: bool) -> Tensor | None:
        if lengths is None:
            return None
        name = type(self).__name__
        if not batched:
            raise ValueError(f"{name}: lengths need batched input")
        if not isinstance(lengths, Tensor):
            lengths = torch.as_tensor(lengths)
        if lengths.is_floating_point() or lengths.is_complex() or lengths.dtype == torch.bool:
            raise TypeError(f"{name}: lengths must be integers, got dtype {lengths.dtype}")
        if tuple(lengths.shape) != (B,):
            raise ValueError(f"{name}: lengths must have shape ({B},) for batch size {B}, got {tuple(lengths.shape)}")
        low, high = int(lengths.min()), int(lengths.max())
        if low < 1 or high > T:
            bad = low if low < 1 else high
            raise ValueError(f"{name}: lengths must lie in 1..{T} (the number of time steps), got {bad}")
        return lengths.to(device=device, dtype=torch.long)

    def _check_state(self, state, B: int, batched: bool) -> tuple[Tensor, ...] | None:
        """Check the user's initial state: (h_0,) or (h_0, c_0), each batched (L * D, B, *); None for zeros."""
        c, name = self.config, type(self).__name__
        if state is None:
            return None
        is_lstm = c.cell == "lstm"
        if is_lstm != isinstance(state, tuple) or (is_lstm and len(state) != 2):
            kind = "a pair (h_0, c_0)" if is_lstm else "a tensor h_0"
            raise TypeError(f"{name}: state must be {kind}, got {type(state).__name__}")
        LD = c.num_layers * c.num_directions
        sizes = (c.output_size, c.hidden_size) if is_lstm else (c.hidden_size,)
        parts = []
        for label, s, size in zip(("h_0", "c_0"), as_tuple(state), sizes):
            expected = (LD, B, size) if batched else (LD, size)
            if not isinstance(s, Tensor):
                raise TypeError(f"{name}: {label} must be a tensor, got {type(s).__name__}")
            if tuple(s.shape) != expected:
                raise ValueError(f"{name}: {label} must have shape {expected}, got {tuple(s.shape)}")
            check_tensor_matches(name, label, s, self.cells[0].weight_ih)
            parts.append(s if batched else s.unsqueeze(1))
        return tuple(parts)

    def _draw_masks(self, T: int, B: int, x: Tensor) -> list[tuple[Tensor | None, tuple[Tensor, ...] | None]]:
        """Per cell: one recurrent-dropout mask per sequence (B, H_out), zoneout masks (T, B, n) per state."""
        if not self.training:
            return [(None, None)] * len(self.cells)
        return [cell.draw_masks(T, B, x) for cell in self.cells]

    # -- weights to and from torch.nn -------------------------------------------------------------

    @classmethod
    def from_torch(cls, module: nn.RNNBase, **options) -> Recurrent:
        """A layer with ``module``'s configuration and an exact copy of its weights.

        ``options`` are keyword-only extras (e.g. ``backend="reference"``, ``recurrent_dropout=0.25``).
        """
        torch_class = {RNN: nn.RNN, LSTM: nn.LSTM, GRU: nn.GRU}.get(cls)
        if torch_class is None or not isinstance(module, torch_class):
            expected = torch_class.__name__ if torch_class else "an nn.RNN, nn.LSTM or nn.GRU"
            raise TypeError(f"{cls.__name__}.from_torch expects torch.nn.{expected}, got {type(module).__name__}")
        fields = dict(
            cell=cls.__name__.lower(),
            input_size=module.input_size,
            hidden_size=module.hidden_size,
            num_layers=module.num_layers,
            bias=module.bias,
            batch_first=module.batch_first,
            dropout=float(module.dropout),
            bidirectional=module.bidirectional,
        )
        if cls is RNN:
            fields["nonlinearity"] = module.nonlinearity
        if cls is LSTM:
            fields["proj_size"] = module.proj_size
        weight = module.weight_ih_l0
        layer = cls.from_config(RecurrentConfig(**fields, **options), device=weight.device, dtype=weight.dtype)
        with torch.no_grad():
            for name, param in _torch_names(layer):
                param.copy_(getattr(module, name))
        return layer

    def to_torch(self) -> nn.RNNBase:
        """The same model as a ``torch.nn`` module with an exact copy of the weights.

        Refused for options torch does not compute; recurrent dropout is allowed, since it changes
        training only and the exported module is for inference.
        """
        c = self.config
        extras = [n for n in ("layer_norm", "peephole", "zoneout", "skip_connections") if getattr(c, n)]
        if c.reset != "after":
            extras.append("reset='before'")
        if extras:
            raise ValueError(f"{type(self).__name__}.to_torch: torch.nn cannot compute {', '.join(extras)}")
        weight = self.cells[0].weight_ih
        args = dict(
            num_layers=c.num_layers,
            bias=c.bias,
            batch_first=c.batch_first,
            dropout=c.dropout,
            bidirectional=c.bidirectional,
            device=weight.device,
            dtype=weight.dtype,
        )
        if c.cell == "rnn":
            module = nn.RNN(c.input_size, c.hidden_size, nonlinearity=c.nonlinearity, **args)
        elif c.cell == "lstm":
            module = nn.LSTM(c.input_size, c.hidden_size, proj_size=c.proj_size, **args)
        else:
            module = nn.GRU(c.input_size, c.hidden_size, **args)
        with torch.no_grad():
            for name, param in _torch_names(self):
                getattr(module, name).copy_(param)
        return module


class RNN(Recurrent):
    r"""Multi-layer Elman RNN, a drop-in for ``torch.nn.RNN``.

    :math:`h_t = \sigma(W_{ih} x_t + b_{ih} + W_{hh} h_{t-1} + b_{hh})` in every layer and direction.

    Positional arguments as torch: ``RNN(input_size, hidden_size, num_layers=1, nonlinearity="tanh",
    bias=True, batch_first=False, dropout=0.0, bidirectional=False)``. Keyword-only extras:
    ``layer_norm``, ``recurrent_dropout``, ``zoneout``, ``skip_connections``, ``backend``.
    See :class:`rnnkit.cells.RNNCell` for the equations and :mod:`rnnkit.layers` for shapes.
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        nonlinearity: str = "tanh",
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
        device=None,
        dtype=None,
        *,
        layer_norm: bool = False,
        recurrent_dropout: float = 0.0,
        zoneout: float = 0.0,
        skip_connections: bool = False,
        backend: str = "auto",
    ) -> None:
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"nonlinearity must be 'tanh' or 'relu', got {nonlinearity!r}")
        config = RecurrentConfig(
            "rnn", input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional,
            nonlinearity=nonlinearity, layer_norm=layer_norm, recurrent_dropout=recurrent_dropout,
            zoneout=zoneout, skip_connections=skip_connections, backend=backend,
        )  # fmt: skip
        super().__init__(config, device=device, dtype=dtype)


class LSTM(Recurrent):
    """Multi-layer LSTM, a drop-in for ``torch.nn.LSTM``; returns ``output, (h_n, c_n)``.

    Positional arguments as torch: ``LSTM(input_size, hidden_size, num_layers=1, bias=True,
    batch_first=False, dropout=0.0, bidirectional=False, proj_size=0)``. Keyword-only extras:
    ``peephole``, ``layer_norm``, ``recurrent_dropout``, ``zoneout``, ``skip_connections``, ``backend``.
    See :class:`rnnkit.cells.LSTMCell` for the equations and :mod:`rnnkit.layers` for shapes.
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
        proj_size: int = 0,
        device=None,
        dtype=None,
        *,
        peephole: bool = False,
        layer_norm: bool = False,
        recurrent_dropout: float = 0.0,
        zoneout: float = 0.0,
        skip_connections: bool = False,
        backend: str = "auto",
    ) -> None:
        if isinstance(proj_size, bool) or not isinstance(proj_size, int) or not 0 <= proj_size < hidden_size:
            raise ValueError(f"proj_size must be an integer in [0, hidden_size={hidden_size}), got {proj_size!r}")
        config = RecurrentConfig(
            "lstm", input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional,
            proj_size=proj_size, peephole=peephole, layer_norm=layer_norm, recurrent_dropout=recurrent_dropout,
            zoneout=zoneout, skip_connections=skip_connections, backend=backend,
        )  # fmt: skip
        super().__init__(config, device=device, dtype=dtype)


class GRU(Recurrent):
    """Multi-layer GRU, a drop-in for ``torch.nn.GRU`` (``reset="after"``), or Cho et al.'s form (``reset="before"``).

    Positional arguments as torch: ``GRU(input_size, hidden_size, num_layers=1, bias=True,
    batch_first=False, dropout=0.0, bidirectional=False)``. Keyword-only extras: ``reset``,
    ``layer_norm``, ``recurrent_dropout``, ``zoneout``, ``skip_connections``, ``backend``.
    See :class:`rnnkit.cells.GRUCell` for the equations and :mod:`rnnkit.layers` for shapes.
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
        device=None,
        dtype=None,
        *,
        reset: str = "after",
        layer_norm: bool = False,
        recurrent_dropout: float = 0.0,
        zoneout: float = 0.0,
        skip_connections: bool = False,
        backend: str = "auto",
    ) -> None:
        if reset not in ("after", "before"):
            raise ValueError(f"reset must be 'after' (PyTorch/cuDNN) or 'before' (Cho et al.), got {reset!r}")
        config = RecurrentConfig(
            "gru", input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional,
            reset=reset, layer_norm=layer_norm, recurrent_dropout=recurrent_dropout, zoneout=zoneout,
            skip_connections=skip_connections, backend=backend,
        )  # fmt: skip
        super().__init__(config, device=device, dtype=dtype)


# -- backends --------------------------------------------------------------------------------------
# A backend maps (layer, x (T, B, I), initial state, lengths (B,) or None, masks per cell) to
# (output (T, B, F), final state). States are stacked over cells as torch stacks them: (h,) or (h, c),
# each (L * D, B, *); an initial state of None means zeros. Layers draw masks, so every backend sees
# the same ones.

Masks = tuple[Tensor | None, tuple[Tensor, ...] | None]
Stacked = tuple[Tensor, ...]
Backend = Callable[[Recurrent, Tensor, Stacked | None, Tensor | None, list[Masks]], tuple[Tensor, Stacked]]


def reverse_padded(x: Tensor, lengths: Tensor | None) -> Tensor:
    """Reverse each sequence of x (T, B, ...) within its length, leaving the padding at the end."""
    if lengths is None:
        return x.flip(0)
    T = x.shape[0]
    t = torch.arange(T, device=x.device).unsqueeze(1)  # (T, 1)
    index = torch.where(t < lengths, lengths - 1 - t, t)  # (T, B); an involution
    return x.gather(0, index.view(T, -1, *([1] * (x.dim() - 2))).expand_as(x))


def run_cell(cell: RecurrentCell, x: Tensor, state: State, valid: Tensor | None, masks: Masks) -> tuple[Tensor, State]:
    """The step loop over x (T, B, I): one cell call per step; invalid (padded) steps keep the state."""
    recurrent_mask, zoneout_masks = masks
    outputs = []
    for t in range(x.shape[0]):
        zoneout_mask = None if zoneout_masks is None else tuple(m[t] for m in zoneout_masks)
        out, new_state = cell.advance(x[t], state, recurrent_mask, zoneout_mask)
        if valid is not None:
            keep = valid[t].unsqueeze(-1)  # (B, 1)
            new_state = tuple(torch.where(keep, n, o) for n, o in zip(as_tuple(new_state), as_tuple(state)))
            new_state = new_state if isinstance(state, tuple) else new_state[0]
            out = out.masked_fill(~keep, 0.0)
        outputs.append(out)
        state = new_state
    return torch.stack(outputs), state


def run_stack(
    layer: Recurrent,
    x: Tensor,
    initial: Stacked | None,
    lengths: Tensor | None,
    masks: list[Masks],
    cell_runner: Callable = run_cell,
):
    """Every layer and direction of the stack, each cell run over its sequence by ``cell_runner``."""
    c = layer.config
    B = x.shape[1]
    D = c.num_directions
    valid = None if lengths is None else torch.arange(x.shape[0], device=x.device).unsqueeze(1) < lengths  # (T, B)
    layer_input, layer_outputs, finals = x, [], []
    for layer_index in range(c.num_layers):
        directions = []
        for direction in range(D):
            i = layer_index * D + direction
            seq = layer_input if direction == 0 else reverse_padded(layer_input, lengths)
            cell = layer.cells[i]
            if initial is None:
                state = cell.init_state(B, device=x.device, dtype=x.dtype)
            else:
                state = tuple(part[i] for part in initial) if len(initial) > 1 else initial[0][i]
            out, final = cell_runner(cell, seq, state, valid, masks[i])
            directions.append(out if direction == 0 else reverse_padded(out, lengths))
            finals.append(final)
        out = directions[0] if D == 1 else torch.cat(directions, dim=-1)  # (T, B, D * H_out)
        layer_outputs.append(out)
        if layer_index < c.num_layers - 1:
            out = F.dropout(out, c.dropout, layer.training)
            layer_input = torch.cat([x, out], dim=-1) if c.skip_connections else out
    output = torch.cat(layer_outputs, dim=-1) if c.skip_connections else layer_outputs[-1]
    return output, tuple(torch.stack(parts) for parts in zip(*[as_tuple(s) for s in finals]))


def run_reference(layer: Recurrent, x: Tensor, initial: Stacked | None, lengths: Tensor | None, masks: list[Masks]):
    """The definition of correct: every layer and direction as a plain step loop over its cell."""
    return run_stack(layer, x, initial, lengths, masks, run_cell)


def run_fused(layer: Recurrent, x: Tensor, initial: Stacked | None, lengths: Tensor | None, masks: list[Masks]):
    """The same stack with each cell as a fused recurrence and hand-written BPTT (:mod:`rnnkit.kernels`)."""
    return run_stack(layer, x, initial, lengths, masks, fused_cell)


def run_native(layer: Recurrent, x: Tensor, initial: Stacked | None, lengths: Tensor | None, masks: list[Masks]):
    """torch's own multi-layer kernels (cuDNN on GPU): only for configurations with ``is_plain``."""
    c = layer.config
    weights = [p for _, p in _torch_names(layer)]
    if initial is None:
        LD, B = len(layer.cells), x.shape[1]
        sizes = (c.output_size, c.hidden_size) if c.cell == "lstm" else (c.hidden_size,)
        initial = tuple(x.new_zeros(LD, B, n) for n in sizes)
    hx = initial if c.cell == "lstm" else initial[0]
    function = {"lstm": torch._VF.lstm, "gru": torch._VF.gru, "rnn": getattr(torch._VF, f"rnn_{c.nonlinearity}")}[
        c.cell
    ]
    flags = (c.bias, c.num_layers, float(c.dropout), layer.training, c.bidirectional)
    if lengths is None:
        result = function(x, hx, weights, *flags, False)
        output = result[0]
    else:
        packed = pack_padded_sequence(x, lengths.cpu(), enforce_sorted=False)
        hx = tuple(h.index_select(1, packed.sorted_indices) for h in as_tuple(hx))
        result = function(packed.data, packed.batch_sizes, hx if c.cell == "lstm" else hx[0], weights, *flags)
        output, _ = pad_packed_sequence(packed._replace(data=result[0]), total_length=x.shape[0])
        result = (result[0], *(h.index_select(1, packed.unsorted_indices) for h in result[1:]))
    return output, tuple(result[1:])  # (h_n,) or (h_n, c_n), each (L * D, B, *)


BACKENDS: dict[str, Backend] = {"reference": run_reference, "native": run_native, "fused": run_fused}


# -- helpers --------------------------------------------------------------------------------------


def _under_functorch(t: Tensor) -> bool:
    """Whether a torch.func transform (grad, vmap, jvp) wraps ``t``."""
    return torch._C._functorch.is_functorch_wrapped_tensor(t)


def _torch_names(layer: Recurrent):
    """(torch name, our parameter) in the order of torch's ``_flat_weights``."""
    c = layer.config
    for i, cell in enumerate(layer.cells):
        suffix = f"_l{i // c.num_directions}" + ("_reverse" if i % c.num_directions else "")
        names = ["weight_ih", "weight_hh"] + (["bias_ih", "bias_hh"] if c.bias else [])
        if c.proj_size:
            names.append("weight_hr")
        for name in names:
            yield name + suffix, getattr(cell, name)


def _pack_like(output: Tensor, lengths: Tensor, like: PackedSequence) -> PackedSequence:
    """Pack a padded (T, B, F) output with the batch order of the input ``like``."""
    order = like.sorted_indices
    if order is not None:
        output = output.index_select(1, order.to(output.device))
        lengths = lengths.index_select(0, order.to(lengths.device))
    data = pack_padded_sequence(output, lengths.cpu(), enforce_sorted=True).data
    return PackedSequence(data, like.batch_sizes, like.sorted_indices, like.unsorted_indices)
