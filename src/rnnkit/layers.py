"""Recurrent layers: the time loop, lengths, reversal, stacking, bidirectional, skip connections.

``rnnkit.RNN``, ``rnnkit.LSTM`` and ``rnnkit.GRU`` are drop-in replacements for their ``torch.nn``
namesakes: same positional arguments and defaults, same parameter names and order (``weight_ih_l0``,
``weight_hh_l0``, ``bias_ih_l0``, ``bias_hh_l0``, ``weight_hr_l0``, ``..._reverse``), so ``state_dict()`` keys
are torch's and ``load_state_dict`` works both ways, same output and state shapes, ``PackedSequence`` in
and out. Extras are keyword-only; the parameters they add are named in the same style (:data:`EXTRA_NAMES`):
``ln_ih_weight_l0``, ``ln_hh_weight_l0``, ``ln_cell_weight_l0``, ``ln_cell_bias_l0``, ``peephole_l0``.

Shapes (T = time, B = batch, D = 2 if bidirectional else 1, L = num_layers, H_out = proj_size or H)::

    input   (T, B, I)  (B, T, I) with batch_first, or (T, I) unbatched
    output  (T, B, D * H_out), or (T, B, L * D * H_out) with skip connections
    h_n     (L * D, B, H_out);  c_n (L * D, B, H) for the LSTM

Each (layer, direction) computes the cell of :mod:`rnnkit.cells` given by its :class:`~rnnkit.cells.CellSpec`
over the weights :meth:`Recurrent.cell_weights` reads from the layer. How is chosen by ``backend``
(:mod:`rnnkit.kernels.dispatch` decides): ``"reference"`` runs the cells step by step and is the
definition of correct; ``"torch"`` calls torch's own kernels (only for what they compute); ``"fused"``
runs each cell as a fused recurrence with hand-written backpropagation through time; ``"auto"`` picks.
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import PackedSequence, pad_packed_sequence

from rnnkit import stack
from rnnkit.cells import KINDS, CellSpec, CellWeights, RecurrentCell, State, as_tuple
from rnnkit.checks import ShapeError, check_input, check_probability, check_tensor_matches
from rnnkit.config import config_from_dict
from rnnkit.kernels import dispatch

# Layer names of the cells' parameters that torch.nn lacks (the rest keep the cell's name): + "_l{k}[_reverse]".
EXTRA_NAMES = {"ln_ih_weight": "ln_ih_weight", "ln_hh_weight": "ln_hh_weight", "ln_cell_weight": "ln_cell_weight",
               "ln_cell_bias": "ln_cell_bias", "weight_ch": "peephole"}  # fmt: skip
TORCH_NAMES = ("weight_ih", "weight_hh", "bias_ih", "bias_hh", "weight_hr")
# What may change after construction, as on torch.nn.RNNBase (read at the next call); the rest shapes the
# parameters and is fixed.
MUTABLE = ("batch_first", "dropout", "recurrent_dropout", "zoneout", "backend")


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
        if self.cell not in KINDS:
            raise ValueError(f"cell must be one of {sorted(KINDS)}, got {self.cell!r}")
        for name in ("bias", "batch_first", "bidirectional", "peephole", "layer_norm", "skip_connections"):
            value = getattr(self, name)
            if not isinstance(value, bool):
                raise TypeError(f"{name} should be of type bool, got: {type(value).__name__}")
        for name in ("input_size", "hidden_size", "num_layers"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise TypeError(f"{name} should be of type int, got: {type(value).__name__}")
            if value < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
        check_probability("dropout", self.dropout, closed=True)  # torch accepts 1.0: every output dropped
        if self.backend in dispatch.ALIASES:
            object.__setattr__(self, "backend", dispatch.ALIASES[self.backend])
        if self.backend not in dispatch.CHOICES:
            raise ValueError(f"backend must be one of {list(dispatch.CHOICES)}, got {self.backend!r}")
        only = {"nonlinearity": ("rnn", "tanh"), "reset": ("gru", "after"), "proj_size": ("lstm", 0),
                "peephole": ("lstm", False)}  # fmt: skip
        for name, (cell, default) in only.items():
            if getattr(self, name) != default and self.cell != cell:
                raise ValueError(f"{name} applies to the {cell.upper()} only, not the {self.cell.upper()}")
        self.cell_spec(self.input_size)  # the cell's own checks: nonlinearity, reset, proj_size, probabilities
        if self.backend == "torch" and not self.is_plain:
            raise ValueError(
                "backend 'torch' (torch's kernels) computes only plain cells: no layer_norm, peephole, "
                "recurrent_dropout, zoneout, skip_connections or reset='before'; use 'auto' or 'reference'"
            )

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

    def layer_input_size(self, layer: int) -> int:
        """Input features of layer ``layer``: the input, then the layer below's outputs (and the input again
        with skip connections)."""
        if layer == 0:
            return self.input_size
        return self.num_directions * self.output_size + (self.input_size if self.skip_connections else 0)

    def cell_spec(self, input_size: int) -> CellSpec:
        """The cell every (layer, direction) computes, reading ``input_size`` features."""
        return CellSpec(self.cell, input_size, self.hidden_size, self.bias, nonlinearity=self.nonlinearity,
                        reset=self.reset, proj_size=self.proj_size, peephole=self.peephole,
                        layer_norm=self.layer_norm, recurrent_dropout=self.recurrent_dropout,
                        zoneout=self.zoneout)  # fmt: skip


def parameter_name(stem: str, layer: int, direction: int) -> str:
    """The layer's name for a cell parameter: torch's (``weight_hh_l1_reverse``) or in its style."""
    return f"{EXTRA_NAMES.get(stem, stem)}_l{layer}" + ("_reverse" if direction else "")


class Recurrent(nn.Module):
    """A stack of recurrent cells run over time. Build one through ``RNN``, ``LSTM`` or ``GRU``.

    Parameters are held by the layer under torch's names (:func:`parameter_name`). The config's fields
    read as attributes (``layer.hidden_size``); those in :data:`MUTABLE` can be set, as on torch.nn, and
    take effect at the next call (``layer.dropout = 0.3``).
    """

    def __init__(self, config: RecurrentConfig, *, device=None, dtype=None) -> None:
        super().__init__()
        self.config = config
        self._specs = self._make_specs(config)
        if config.dropout > 0 and config.num_layers == 1:
            warnings.warn(
                f"dropout={config.dropout} only acts between layers and num_layers=1: it has no effect",
                stacklevel=3,
            )
        factory = {"device": device, "dtype": dtype}
        self._stems: list[list[str]] = []  # per cell: the cell's names of its parameters
        self._all_weights: list[list[str]] = []  # per cell: the layer's names of the same parameters
        for layer in range(config.num_layers):
            spec = config.cell_spec(config.layer_input_size(layer))
            for direction in range(config.num_directions):
                stems, names = [], []
                for stem, shape in spec.parameter_shapes():
                    name = parameter_name(stem, layer, direction)
                    self.register_parameter(name, nn.Parameter(torch.empty(shape, **factory)))
                    stems.append(stem)
                    names.append(name)
                self._stems.append(stems)
                self._all_weights.append(names)
        self._flat_weights_names = [n for names in self._all_weights for n in names if n.rsplit("_l", 1)[0]
                                    in TORCH_NAMES]  # fmt: skip
        self._register_load_state_dict_pre_hook(self._rename_old_keys)
        self.reset_parameters()

    # -- torch.nn compatible attributes -----------------------------------------------------------

    def __getattr__(self, name: str):
        # input_size, hidden_size, num_layers, batch_first, ... read as on torch.nn.RNNBase.
        config = self.__dict__.get("config")
        if config is not None and name in RecurrentConfig.__dataclass_fields__:
            return getattr(config, name)
        return super().__getattr__(name)

    def __setattr__(self, name: str, value) -> None:
        config = self.__dict__.get("config")
        if config is not None and name in RecurrentConfig.__dataclass_fields__:
            if name not in MUTABLE:
                raise AttributeError(f"{type(self).__name__}.{name} shapes the parameters and is fixed when the "
                                     f"layer is built; build a new layer (what can change: {', '.join(MUTABLE)})")
            self.__dict__["config"] = config = dataclasses.replace(config, **{name: value})  # checked as at first
            self.__dict__["_specs"] = self._make_specs(config)
            return
        super().__setattr__(name, value)

    @property
    def specs(self) -> list[CellSpec]:
        """The cell each (layer, direction) computes, at index ``layer * num_directions + direction``."""
        return self._specs

    @staticmethod
    def _make_specs(c: RecurrentConfig) -> list[CellSpec]:
        return [c.cell_spec(c.layer_input_size(i // c.num_directions)) for i in range(c.num_layers * c.num_directions)]

    def cell_weights(self, index: int) -> CellWeights:
        """The weights of cell ``index`` (``layer * num_directions + direction``) as its equations read them."""
        return CellWeights(**{stem: getattr(self, name) for stem, name in zip(self._stems[index],
                                                                                self._all_weights[index])})  # fmt: skip

    def cell(self, index: int) -> RecurrentCell:
        """Cell ``index`` (``layer * num_directions + direction``) as a cell module sharing this layer's parameters."""
        return RecurrentCell.sharing(self.specs[index], self.cell_weights(index))

    @property
    def _flat_weights(self) -> list[Tensor]:
        """torch's weights in torch's order (what its kernels take), as they are now (parametrizations too)."""
        return [getattr(self, name, None) for name in self._flat_weights_names]  # None where one was deleted, as torch

    @property
    def all_weights(self) -> list[list[Tensor]]:
        """Per (layer, direction), its parameters: torch's in torch's order, then those of the extras."""
        return [[getattr(self, name) for name in names] for names in self._all_weights]

    def _rename_old_keys(self, state_dict, prefix, *args) -> None:
        """Run directories saved before wave 2 hold ``cells.{i}.{name}``: read them under the new names."""
        for i, (stems, names) in enumerate(zip(self._stems, self._all_weights)):
            for stem, name in zip(stems, names):
                old = f"{prefix}cells.{i}.{stem}"
                if old in state_dict and prefix + name not in state_dict:
                    state_dict[prefix + name] = state_dict.pop(old)

    def reset_parameters(self) -> None:
        """Each cell's initialisation (:meth:`rnnkit.cells.CellSpec.init_parameters`)."""
        for spec, stems, names in zip(self.specs, self._stems, self._all_weights):
            spec.init_parameters({stem: getattr(self, name) for stem, name in zip(stems, names)})

    def _apply(self, fn, recurse: bool = True):
        module = super()._apply(fn, recurse)
        self.flatten_parameters()  # after .to(), .cuda(), .half(), as torch.nn.RNNBase does
        return module

    def flatten_parameters(self) -> None:
        """On a GPU, lay a plain stack's weights out in one contiguous buffer, as cuDNN wants them; without
        it cuDNN copies every weight at every call. The parameters stay the layer's own, now views of that
        buffer. Elsewhere, and for what cuDNN does not compute, a no-op."""
        c = self.config
        weights = self._flat_weights
        if not c.is_plain or not all(isinstance(w, nn.Parameter) and w.is_cuda and w.dtype == weights[0].dtype
                                     for w in weights):  # fmt: skip
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
        return self.backend_for(dispatch.C_PRODUCT_MIN_STEPS)

    def backend_for(self, steps: int, input: Tensor | None = None) -> str:
        """The backend that ``forward`` uses on ``input``, a sequence of ``steps`` steps: the configured one or,
        for ``"auto"``, what :func:`rnnkit.kernels.dispatch.auto_backend` picks."""
        return dispatch.layer_plan(self.config, self._recurrent_weight(), steps, input).backend

    def _recurrent_weight(self) -> Tensor:
        return getattr(self, self._all_weights[0][1])  # weight_hh_l0

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
        first = getattr(self, self._all_weights[0][0])  # weight_ih_l0: the dtype and device inputs must have
        packed = input if isinstance(input, PackedSequence) else None
        if packed is not None:
            if lengths is not None:
                raise ValueError(f"{name}: a PackedSequence carries its own lengths; do not pass lengths too")
            check_tensor_matches(name, "input", packed.data, first)
            x, lengths = pad_packed_sequence(packed)  # (T, B, I), original batch order
            batched = True
        else:
            x, batched = self._check_input(input, first)
        T, B = x.shape[0], x.shape[1]
        lengths = self._check_lengths(lengths, T, B, x.device, batched)
        initial = self._check_state(state, B, batched, first)
        if B == 0:  # an empty batch, as torch allows: empty outputs
            output, final = self._empty_run(x, initial)
        else:
            plan = dispatch.layer_plan(self.config, self._recurrent_weight(), T, x)
            masks = self._draw_masks(T, B, x)
            run = stack.BACKENDS[plan.backend]
            output, final = run(self, x, initial, lengths, masks, plan)  # (T, B, F), each (L * D, B, *)
        if packed is not None:
            output = stack.pack_like(output, lengths, packed)
        elif self.config.batch_first and batched:
            output = output.transpose(0, 1)
        if not batched:
            output = output.squeeze(1)
            final = tuple(f.squeeze(1) for f in final)
        return output, (final if self.config.cell == "lstm" else final[0])

    def _empty_run(self, x: Tensor, initial: tuple[Tensor, ...] | None) -> tuple[Tensor, tuple[Tensor, ...]]:
        c = self.config
        zero = sum(p.sum() for p in self.parameters()) * 0  # keeps the graph, so backward through it runs
        output = x.new_zeros(x.shape[0], 0, c.output_features) + zero
        sizes = (c.output_size, c.hidden_size) if c.cell == "lstm" else (c.hidden_size,)
        final = initial or tuple(x.new_zeros(len(self._all_weights), 0, n) for n in sizes)
        return output, final

    # -- input checks -----------------------------------------------------------------------------

    def _check_input(self, input, first: Tensor) -> tuple[Tensor, bool]:
        name, c = type(self).__name__, self.config
        shapes = f"{'(B, T, I)' if c.batch_first else '(T, B, I)'} or (T, I) unbatched with I={c.input_size}"
        batched = check_input(name, input, (2, 3), shapes, c.input_size, first, "a torch.Tensor or PackedSequence")
        x = input if batched else input.unsqueeze(1)
        if batched and c.batch_first:
            x = x.transpose(0, 1)
        if x.shape[0] == 0:
            raise ShapeError(f"{name}: input has an empty time dimension: {tuple(input.shape)} (expected sequence "
                             f"length to be larger than 0)")  # fmt: skip
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
        if B == 0:
            return None
        low, high = int(lengths.min()), int(lengths.max())
        if low < 1 or high > T:
            bad = low if low < 1 else high
            raise ValueError(f"{name}: lengths must lie in 1..{T} (the number of time steps), got {bad}")
        return lengths.to(device=device, dtype=torch.long)

    def _check_state(self, state, B: int, batched: bool, first: Tensor) -> tuple[Tensor, ...] | None:
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
                raise ShapeError(f"{name}: {label} must have shape {expected}, got {tuple(s.shape)}")
            check_tensor_matches(name, label, s, first)
            parts.append(s if batched else s.unsqueeze(1))
        return tuple(parts)

    def _draw_masks(self, T: int, B: int, x: Tensor) -> list[tuple[Tensor | None, tuple[Tensor, ...] | None]]:
        """Per cell: one recurrent-dropout mask per sequence (B, H_out), zoneout masks (T, B, n) per state."""
        if not self.training:
            return [(None, None)] * len(self._all_weights)
        return [spec.draw_masks(T, B, x) for spec in self.specs]

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
        fields = dict(cell=cls.__name__.lower(), input_size=module.input_size, hidden_size=module.hidden_size,
                      num_layers=module.num_layers, bias=module.bias, batch_first=module.batch_first,
                      dropout=float(module.dropout), bidirectional=module.bidirectional)  # fmt: skip
        if cls is RNN:
            fields["nonlinearity"] = module.nonlinearity
        if cls is LSTM:
            fields["proj_size"] = module.proj_size
        weight = module.weight_ih_l0
        layer = cls.from_config(RecurrentConfig(**fields, **options), device=weight.device, dtype=weight.dtype)
        with torch.no_grad():
            for name in layer._flat_weights_names:
                getattr(layer, name).copy_(getattr(module, name))
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
        weight = self._flat_weights[0]
        args = dict(num_layers=c.num_layers, bias=c.bias, batch_first=c.batch_first, dropout=c.dropout,
                    bidirectional=c.bidirectional, device=weight.device, dtype=weight.dtype)  # fmt: skip
        if c.cell == "rnn":
            module = nn.RNN(c.input_size, c.hidden_size, nonlinearity=c.nonlinearity, **args)
        elif c.cell == "lstm":
            module = nn.LSTM(c.input_size, c.hidden_size, proj_size=c.proj_size, **args)
        else:
            module = nn.GRU(c.input_size, c.hidden_size, **args)
        module.load_state_dict({name: getattr(self, name).detach() for name in self._flat_weights_names})
        return module


class RNN(Recurrent):
    r"""Multi-layer Elman RNN, a drop-in for ``torch.nn.RNN``.

    :math:`h_t = \sigma(W_{ih} x_t + b_{ih} + W_{hh} h_{t-1} + b_{hh})` in every layer and direction.

    Positional arguments as torch: ``RNN(input_size, hidden_size, num_layers=1, nonlinearity="tanh",
    bias=True, batch_first=False, dropout=0.0, bidirectional=False)``. Keyword-only extras:
    ``layer_norm``, ``recurrent_dropout``, ``zoneout``, ``skip_connections``, ``backend``.
    See :func:`rnnkit.cells.rnn_step` for the equations and :mod:`rnnkit.layers` for shapes.
    """

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, nonlinearity: str = "tanh",
                 bias: bool = True, batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False,
                 device=None, dtype=None, **options) -> None:  # fmt: skip
        config = RecurrentConfig("rnn", input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional,
                                 nonlinearity=nonlinearity, **_extras(options, ()))  # fmt: skip
        super().__init__(config, device=device, dtype=dtype)


class LSTM(Recurrent):
    """Multi-layer LSTM, a drop-in for ``torch.nn.LSTM``; returns ``output, (h_n, c_n)``.

    Positional arguments as torch: ``LSTM(input_size, hidden_size, num_layers=1, bias=True,
    batch_first=False, dropout=0.0, bidirectional=False, proj_size=0)``. Keyword-only extras:
    ``peephole``, ``layer_norm``, ``recurrent_dropout``, ``zoneout``, ``skip_connections``, ``backend``.
    See :func:`rnnkit.cells.lstm_step` for the equations and :mod:`rnnkit.layers` for shapes.
    """

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False, proj_size: int = 0,
                 device=None, dtype=None, **options) -> None:  # fmt: skip
        if isinstance(proj_size, bool) or not isinstance(proj_size, int) or not 0 <= proj_size < hidden_size:
            raise ValueError(f"proj_size must be an integer in [0, hidden_size={hidden_size}), got {proj_size!r}")
        config = RecurrentConfig("lstm", input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional,
                                 proj_size=proj_size, **_extras(options, ("peephole",)))  # fmt: skip
        super().__init__(config, device=device, dtype=dtype)


class GRU(Recurrent):
    """Multi-layer GRU, a drop-in for ``torch.nn.GRU`` (``reset="after"``), or Cho et al.'s form (``reset="before"``).

    Positional arguments as torch: ``GRU(input_size, hidden_size, num_layers=1, bias=True,
    batch_first=False, dropout=0.0, bidirectional=False)``. Keyword-only extras: ``reset``,
    ``layer_norm``, ``recurrent_dropout``, ``zoneout``, ``skip_connections``, ``backend``.
    See :func:`rnnkit.cells.gru_step` for the equations and :mod:`rnnkit.layers` for shapes.
    """

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False, device=None,
                 dtype=None, **options) -> None:  # fmt: skip
        config = RecurrentConfig("gru", input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional,
                                 **_extras(options, ("reset",)))  # fmt: skip
        super().__init__(config, device=device, dtype=dtype)


COMMON_EXTRAS = ("layer_norm", "recurrent_dropout", "zoneout", "skip_connections", "backend")


def _extras(options: dict, own: tuple[str, ...]) -> dict:
    """The keyword-only extras a layer class takes: the common ones and the cell's ``own``."""
    if "proj_size" in options:
        raise ValueError("proj_size argument is only supported for LSTM, not RNN or GRU")
    unknown = sorted(set(options) - set(COMMON_EXTRAS) - set(own))
    if unknown:
        raise TypeError(f"unexpected keyword argument {unknown[0]!r}; the extras are: {', '.join(own + COMMON_EXTRAS)}")
    return options
