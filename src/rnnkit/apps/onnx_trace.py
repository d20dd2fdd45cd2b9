"""Tracing rnnkit's models into ONNX with each recurrence as a true ONNX ``Scan`` over time.

The fused C and TorchScript backends cannot be traced, and a Python time loop unrolls at trace time into a
graph of fixed length. So each (layer, direction) of a recurrent stack becomes a ``Scan`` whose body is one
step of the cell's own equations (:meth:`rnnkit.cells.CellSpec.advance` in eval semantics: recurrent
dropout is the identity, zoneout its expectation), with the padded-step rule of
:func:`rnnkit.stack.run_cell`: past a sequence's length the state stays and the output is 0.

How: while a model is traced, every :class:`~rnnkit.layers.Recurrent` in it is replaced by an
:class:`ExportRecurrent`, which runs the same stack (:func:`rnnkit.stack.run_stack`: layers, directions
reversed within their lengths, dropout between layers, skip connections) with a cell runner that records
one placeholder node ``rnnkit::Recurrence`` per cell (:class:`Recording`); the model's own forward
(embeddings, pooling, attention, bridges, heads) is traced as it is. :func:`replace_recurrences` then swaps
each placeholder for a Scan over the cell's step, itself traced and exported on its own
(:class:`CellStep`). Graphs of one step need no Scan: their step is traced directly (``scan=False``).

The exporter is torch's TorchScript-based one (``torch.onnx.export(..., dynamo=False)``, deprecated since
torch 2.9 but present in 2.13 and 2.14, the versions rnnkit runs on): it is the one that takes a placeholder
node with its own symbolic and ``dynamic_axes`` on every version we support.
"""

from __future__ import annotations

import contextlib
import io
import warnings
from collections.abc import Iterator

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rnnkit import stack
from rnnkit.cells import CellSpec, CellWeights, as_tuple
from rnnkit.errors import ConfigError
from rnnkit.layers import Recurrent

OPSET = 17  # LayerNormalization is an ONNX op from 17 on
EXTRA = "rnnkit export needs onnx and onnxruntime: pip install 'rnnkit[export]'"


def require_onnx():
    """The onnx module, or a one-line ConfigError naming the extra to install."""
    try:
        import onnx
        import onnxruntime  # noqa: F401
    except ImportError:
        raise ConfigError(EXTRA) from None
    return onnx


# -- the recurrence as Scan nodes ---------------------------------------------------------------------


class Recording:
    """The cells met while tracing, each as (spec, weights), and the cell runner that records them.

    ``scan=True``: each cell's run over time is a placeholder node ``rnnkit::Recurrence`` (attribute
    ``index`` into :attr:`cells`) that :func:`replace_recurrences` turns into a Scan; its PyTorch value is
    computed by :func:`rnnkit.stack.run_cell` with tracing paused. ``scan=False``: the step loop of
    :func:`rnnkit.stack.run_cell` itself is traced (unrolled: for one-step graphs).
    """

    def __init__(self, scan: bool) -> None:
        self.scan = scan
        self.cells: list[tuple[CellSpec, CellWeights]] = []
        cells = self.cells

        class Recurrence(torch.autograd.Function):
            @staticmethod
            def forward(ctx, index: int, masked: bool, x: Tensor, *rest: Tensor):
                spec, w = cells[index]
                n = len(spec.state_sizes)
                state = rest[:n] if n > 1 else rest[0]
                tracing = torch._C._get_tracing_state()
                torch._C._set_tracing_state(None)  # the value only: the graph gets the placeholder below
                try:
                    out, final = stack.run_cell(spec, w, x, state, rest[n] if masked else None, (None, None), False)
                finally:
                    torch._C._set_tracing_state(tracing)
                return (out, *as_tuple(final))

            @staticmethod
            def symbolic(g, index: int, masked: bool, x, *rest):
                spec = cells[index][0]
                outs = g.op("rnnkit::Recurrence", x, *rest, index_i=index, outputs=1 + len(spec.state_sizes))
                outs[0].setType(x.type().with_sizes([None, None, spec.output_size]))  # (T, B, H_out)
                for value, size in zip(outs[1:], spec.state_sizes):
                    value.setType(x.type().with_sizes([None, size]))  # (B, n)
                return outs

        self._function = Recurrence

    def run_cell(self, spec: CellSpec, w: CellWeights, x: Tensor, state, valid, masks, training: bool):
        """A cell runner for :func:`rnnkit.stack.run_stack` (eval semantics: no masks)."""
        if not self.scan:
            return stack.run_cell(spec, w, x, state, valid, (None, None), False)
        index = len(self.cells)
        self.cells.append((spec, w))
        inputs = [x, *as_tuple(state)] + ([valid] if valid is not None else [])
        outs = self._function.apply(index, valid is not None, *inputs)
        final = tuple(outs[1:])
        return outs[0], (final if len(final) > 1 else final[0])


class ExportRecurrent(nn.Module):
    """Stands in for a :class:`~rnnkit.layers.Recurrent` while a model is traced: the same stack
    (:func:`rnnkit.stack.run_stack`), its cells run by a :class:`Recording`, batched input only."""

    def __init__(self, layer: Recurrent, recording: Recording) -> None:
        super().__init__()
        self.layer, self.recording = layer, recording
        self.config = layer.config

    def __getattr__(self, name: str):
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(self.layer, name)

    def forward(self, input: Tensor, state=None, lengths: Tensor | None = None, *, hx=None):
        c = self.layer.config
        state = hx if state is None else state
        x = input.transpose(0, 1) if c.batch_first else input  # (T, B, I)
        LD = len(self.layer.specs)
        if state is None:  # zeros shaped from x, so the batch axis stays dynamic in the graph
            sizes = (c.output_size, c.hidden_size) if c.cell == "lstm" else (c.hidden_size,)
            initial = tuple(torch.zeros_like(x[0, :, :1]).expand(-1, n).unsqueeze(0).expand(LD, -1, -1) for n in sizes)
        else:
            initial = as_tuple(state)
        masks = [(None, None)] * LD
        out, final = stack.run_stack(self.layer, x, initial, lengths, masks, self.recording.run_cell)
        if c.batch_first:
            out = out.transpose(0, 1)
        return out, (final if c.cell == "lstm" else final[0])


@contextlib.contextmanager
def exportable(model: nn.Module, recording: Recording) -> Iterator[nn.Module]:
    """``model`` in eval mode with every recurrent layer in it replaced by an :class:`ExportRecurrent`;
    put back as it was on exit."""
    swapped = []
    for module in list(model.modules()):
        for child_name, child in list(module.named_children()):
            if isinstance(child, Recurrent):
                swapped.append((module, child_name, child))
    was_training = model.training
    model.eval()
    try:
        for parent, name, child in swapped:
            parent._modules[name] = ExportRecurrent(child, recording)
        yield model
    finally:
        for parent, name, child in swapped:
            parent._modules[name] = child
        model.train(was_training)


@contextlib.contextmanager
def static_layer_norm() -> Iterator[None]:
    """Trace ``F.layer_norm`` with its normalized shape as constants.

    The cells pass ``x.shape[-1:]``, which the tracer records as a value computed from the input, while the
    ONNX exporter needs LayerNormalization's axes fixed; the feature sizes are fixed, so reading them as
    ints (what this does) traces the same function."""
    original = F.layer_norm

    def layer_norm(input, normalized_shape, weight=None, bias=None, eps=1e-5):
        return original(input, [int(s) for s in normalized_shape], weight, bias, eps)

    F.layer_norm = layer_norm
    try:
        yield
    finally:
        F.layer_norm = original


class CellStep(nn.Module):
    """One step of a cell in eval semantics, the body of its Scan: ``(*state, x_t[, keep]) -> (*state, out_t)``;
    with ``keep`` (B,) bool, the padded-step rule of :func:`rnnkit.stack.run_cell`."""

    def __init__(self, spec: CellSpec, w: CellWeights, masked: bool) -> None:
        super().__init__()
        self.spec, self.masked = spec, masked
        self.w = CellWeights(*[None if t is None else t.detach() for t in w])

    def forward(self, *args: Tensor) -> tuple[Tensor, ...]:
        n = len(self.spec.state_sizes)
        state, x = args[:n], args[n]
        out, new = self.spec.advance(self.w, x, state if n > 1 else state[0])
        new = as_tuple(new)
        if self.masked:
            keep = args[n + 1].unsqueeze(-1)  # (B, 1)
            new = tuple(torch.where(keep, a, b) for a, b in zip(new, state))
            out = out.masked_fill(~keep, 0.0)
        return (*new, out)


def trace_to_onnx(module: nn.Module, args: tuple, inputs: list[str], outputs: list[str], axes: dict,
                  opset: int = OPSET, placeholders: bool = False):  # fmt: skip
    """``torch.onnx.export`` of ``module`` on ``args`` (TorchScript-based exporter), as an onnx.ModelProto."""
    onnx = require_onnx()
    buffer = io.BytesIO()
    with torch.no_grad(), static_layer_norm(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the exporter's deprecation notice and the tracer's warnings
        torch.onnx.export(module, args, buffer, dynamo=False, opset_version=opset, input_names=inputs,
                          output_names=outputs, dynamic_axes=axes,
                          custom_opsets={"rnnkit": 1} if placeholders else None)  # fmt: skip
    return onnx.load_from_string(buffer.getvalue())


def cell_body(spec: CellSpec, w: CellWeights, masked: bool, prefix: str, opset: int):
    """The Scan body of one cell (names prefixed with ``prefix``) and its weights, for the outer graph."""
    onnx = require_onnx()
    from onnx import helper

    n = len(spec.state_sizes)
    args = [torch.zeros(2, size) for size in spec.state_sizes] + [torch.zeros(2, spec.input_size)]
    inputs = [f"s{k}" for k in range(n)] + ["x"]
    if masked:
        args.append(torch.ones(2, dtype=torch.bool))
        inputs.append("keep")
    outputs = [f"s{k}_next" for k in range(n)] + ["out"]
    step = trace_to_onnx(CellStep(spec, w, masked), tuple(args), inputs, outputs,
                         {name: {0: "B"} for name in inputs + outputs}, opset)  # fmt: skip
    graph = step.graph

    def rename(name: str) -> str:
        return prefix + name if name else name

    nodes = []
    for node in graph.node:
        node = onnx.NodeProto.FromString(node.SerializeToString())
        node.input[:] = [rename(s) for s in node.input]
        node.output[:] = [rename(s) for s in node.output]
        node.name = rename(node.name)
        nodes.append(node)
    weights = []
    for tensor in graph.initializer:  # moved to the outer graph: a Scan body reads outer names
        tensor = onnx.TensorProto.FromString(tensor.SerializeToString())
        tensor.name = rename(tensor.name)
        weights.append(tensor)
    body_inputs, body_outputs = [], []
    for info in graph.input:
        info = onnx.ValueInfoProto.FromString(info.SerializeToString())
        info.name = rename(info.name)
        body_inputs.append(info)
    for info in graph.output:  # through Identity: a body output may also be another output or an input
        info = onnx.ValueInfoProto.FromString(info.SerializeToString())
        source = rename(info.name)
        info.name = source + ":y"
        nodes.append(helper.make_node("Identity", [source], [info.name]))
        body_outputs.append(info)
    return helper.make_graph(nodes, prefix.rstrip("/"), body_inputs, body_outputs), weights


def replace_recurrences(model, recording: Recording, opset: int = OPSET):
    """Turn every ``rnnkit::Recurrence`` placeholder of ``model`` into an ONNX Scan over its cell's step."""
    from onnx import helper

    graph = model.graph
    nodes = []
    for node in graph.node:
        if node.domain != "rnnkit":
            nodes.append(node)
            continue
        index = next(a.i for a in node.attribute if a.name == "index")
        spec, w = recording.cells[index]
        n = len(spec.state_sizes)
        masked = len(node.input) == 2 + n  # x, the states, valid
        body, weights = cell_body(spec, w, masked, f"rnnkit.cell{index}/", opset)
        graph.initializer.extend(weights)
        x, states = node.input[0], list(node.input[1 : 1 + n])
        scanned = [x] + ([node.input[1 + n]] if masked else [])
        out, finals = node.output[0], list(node.output[1:])
        nodes.append(helper.make_node("Scan", states + scanned, finals + [out], name=f"recurrence{index}", body=body,
                                      num_scan_inputs=len(scanned)))  # fmt: skip
    del graph.node[:]
    graph.node.extend(nodes)
    kept = [o for o in model.opset_import if o.domain != "rnnkit"]
    del model.opset_import[:]
    model.opset_import.extend(kept)
    return model


def export_graph(model: nn.Module, forward, args: tuple, inputs: list[str], outputs: list[str], axes: dict,
                 *, scan: bool, opset: int = OPSET):  # fmt: skip
    """Trace ``forward(model, *args)`` with the model's recurrent layers made exportable: an onnx.ModelProto
    whose recurrences are Scans (``scan``) or unrolled steps."""
    recording = Recording(scan)

    class Graph(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, *a):
            return forward(self.model, *a)

    with exportable(model, recording):
        onnx_model = trace_to_onnx(Graph(), args, inputs, outputs, axes, opset, placeholders=scan)
    if scan:
        replace_recurrences(onnx_model, recording, opset)
    require_onnx().checker.check_model(onnx_model)
    return onnx_model
