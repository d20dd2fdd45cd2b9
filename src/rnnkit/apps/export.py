"""``rnnkit export RUN --onnx OUT.onnx``: a run's model as ONNX graphs, checked in onnxruntime.

What each task writes (B batch, T time, S source length; every B, T and S is a dynamic axis):

- ``lm``: ``OUT.onnx``, the whole sequence: ``tokens (B, T), h0 [, c0] -> logits (B, T, V), h [, c]``; and
  ``OUT.step.onnx``, one generation step: ``tokens (B,), h0 [, c0] -> logits (B, V), h [, c]``. States are
  torch's ``(L * D, B, H)``; pass zeros to start.
- ``classify``: ``tokens (B, T), lengths (B,) -> logits (B, C)``.
- ``tag``: ``words (B, T), lengths (B,) [, chars (B, T, W), char_lengths (B, T)] [, casing (B, T)] ->
  emissions (B, T, K)``; the CRF's scores (start, transitions, end) ride in the metadata, for Viterbi in
  :mod:`rnnkit_onnx`.
- ``seq2seq``: ``OUT.onnx``, the encoder: ``source (B, S), source_lengths (B,) -> values, [keys,] mask,
  h [, c] [, feed]``; ``OUT.step.onnx``, one decoder step: ``tokens (B,), h [, c] [, feed], values, [keys,]
  mask -> logits (B, V), h [, c] [, feed]``.
- ``forecast``: ``inputs (B, L, C) [, known (B, H, K)] [, series (B,)] -> params (B, H, P), quantiles (B, H, 5)``:
  :class:`~rnnkit.models.forecast.Forecaster`'s forward, direct or encoder-decoder (L, the lookback, is a
  dynamic axis; H is the run's horizon), then the quantiles ``rnnkit eval`` and ``rnnkit predict`` report, at
  :data:`~rnnkit.models.forecast.QUANTILES` (0.025, 0.1, 0.5, 0.9, 0.975: the 95% and 80% bounds and the median),
  computed in the graph (:func:`forecast_quantiles`). Both are in the per-series scaled units of the target; the
  metadata carries the run's per-series ``(center, scale)`` to map them back, ``y = center + scale * z``. A
  graph without calendar channels (K = 0) takes no ``known``, one without a series embedding no ``series``.

Each recurrence is an ONNX ``Scan`` over time whose body is one step of the cell's own equations, and the
rest is traced from the models' own code (:mod:`rnnkit.apps.onnx_trace` says how); every cell and option
exports that way. Before anything is written, ``rnnkit export`` runs every graph in onnxruntime on random
inputs (lengths that differ along the batch, random states) and compares with PyTorch.

Files are written to a temporary name in the output's folder and renamed when complete (the step graph
first, so a main graph never names a step graph that is not there).
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import os
import tempfile
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from rnnkit import checkpoint
from rnnkit.apps.onnx_trace import OPSET, export_graph, require_onnx
from rnnkit.cells import as_tuple
from rnnkit.errors import ConfigError
from rnnkit.models.forecast import INTERVALS, QUANTILES, quantiles

TOLERANCE = 1e-4  # what `rnnkit export` accepts between onnxruntime and PyTorch on its check (tests ask 1e-5)
TASKS = ("lm", "classify", "tag", "seq2seq", "forecast")
CHEBYSHEV_DEGREE = 20  # of the Student-t quantile factors in 4/nu - 1: within 1e-13 of scipy's stdtrit, nu >= 2


# -- the graphs of each task --------------------------------------------------------------------------


def state_names(rnn_config, suffix: str = "") -> list[str]:
    return ["h" + suffix, "c" + suffix] if rnn_config.cell == "lstm" else ["h" + suffix]


def zero_state(rnn_config, batch: int) -> tuple[Tensor, ...]:
    """Random (not zero: a check should see the state used) initial states (L * D, B, *) of a stack."""
    c = rnn_config
    sizes = (c.output_size, c.hidden_size) if c.cell == "lstm" else (c.hidden_size,)
    return tuple(torch.randn(c.num_layers * c.num_directions, batch, n) for n in sizes)


def _pack(state: tuple[Tensor, ...], cell: str):
    return state if cell == "lstm" else state[0]


def lm_sequence(model, tokens: Tensor, *state: Tensor):
    logits, final = model(tokens, _pack(state, model.config.rnn.cell))
    return (logits, *as_tuple(final))


def lm_step(model, tokens: Tensor, *state: Tensor):
    logits, final = model(tokens.unsqueeze(1), _pack(state, model.config.rnn.cell))
    return (logits[:, 0], *as_tuple(final))


def tagger_emissions(model, words: Tensor, lengths: Tensor, *extra: Tensor) -> Tensor:
    """:meth:`SequenceTagger.forward` with the character features computed for every position, real or
    padding, since ONNX has no boolean-mask scatter. Padding's features are set to zero as in the model
    (and the layer zeroes its outputs there anyway), so the emissions are the model's."""
    from rnnkit.models.common import length_mask

    B, T = words.shape
    parts = [model.embedding(words)]  # (B, T, E)
    extra = list(extra)
    if model.chars is not None:
        chars, char_lengths = extra.pop(0), extra.pop(0)
        features = model.chars(chars.reshape(B * T, -1), char_lengths.reshape(-1).clamp(min=1))  # (B*T, F)
        features = features.reshape(B, T, -1)
        mask = length_mask(lengths, T).unsqueeze(-1)  # (B, T, 1)
        parts.append(torch.where(mask, features, torch.zeros_like(features)))
    if model.casing is not None:
        parts.append(model.casing(extra.pop(0)))
    out, _ = model.rnn(torch.cat(parts, dim=-1), lengths=lengths)  # (B, T, F)
    return model.head(out)  # (B, T, K)


def seq2seq_encoder(model, source: Tensor, source_lengths: Tensor):
    memory, carry = model.start(source, source_lengths)
    keys = () if memory.keys is None else (memory.keys,)
    feed = () if carry.feed is None else (carry.feed,)
    return (memory.values, *keys, memory.mask, *as_tuple(carry.state), *feed)


def seq2seq_step(model, tokens: Tensor, *rest: Tensor):
    from rnnkit.models.seq2seq import DecoderCarry, EncoderMemory

    c = model.config
    n = 2 if c.decoder.cell == "lstm" else 1
    state, rest = rest[:n], list(rest[n:])
    feed = rest.pop(0) if c.attention == "luong" and c.input_feeding else None
    values = rest.pop(0)
    keys = rest.pop(0) if c.attention != "none" else None
    mask = rest.pop(0)
    carry = DecoderCarry(_pack(state, c.decoder.cell), feed)
    logits, carry = model.step(tokens, carry, EncoderMemory(values, keys, mask))
    return (logits, *as_tuple(carry.state), *(() if carry.feed is None else (carry.feed,)))


def forecast_outputs(model, inputs: Tensor, known: Tensor, series: Tensor, *, factors: np.ndarray):
    """:meth:`Forecaster.forward`, then :func:`forecast_quantiles` of its parameters: ``(params (B, H, P),
    quantiles (B, H, Q))``. Without known channels the model gets the empty ``(B, H, 0)`` made here, so the
    graph takes no ``known``."""
    c = model.config
    if not c.known_size:
        known = inputs.new_zeros(inputs.shape[0], c.horizon, 0)
    params = model(inputs, known, series)  # (B, H, P)
    return params, forecast_quantiles(c.likelihood, params, factors)


def forecast_reference(model, inputs: Tensor, known: Tensor, series: Tensor):
    """What the forecast graph must compute, in PyTorch: the model's parameters and
    :func:`rnnkit.models.forecast.quantiles` of them (scipy's ``stdtrit`` for the Student-t)."""
    params = model(inputs, known, series)
    return params, quantiles(model.config.likelihood, params, QUANTILES)


def quantile_factors(likelihood: str, levels: tuple[float, ...], degree: int = CHEBYSHEV_DEGREE) -> np.ndarray:
    r"""What :func:`forecast_quantiles` multiplies :math:`\sigma` by, as constants of the graph.

    ``gaussian``: :math:`\Phi^{-1}(p)` (Q,). ``student_t``: the quantile :math:`t_\nu^{-1}(p)` depends on
    :math:`\nu`, and ONNX has no inverse t CDF, so it is a Chebyshev series in :math:`x = 4/\nu - 1`
    (:math:`\nu \in [2, \infty) \mapsto x \in (-1, 1]`, where it is smooth, :math:`\nu = \infty` being the
    normal's quantile), fitted here at the ``degree + 1`` Chebyshev nodes to scipy's ``stdtrit``, the function
    :func:`rnnkit.models.forecast.quantiles` calls: coefficients (Q, degree + 1), within 1e-13 of it.
    ``quantile``: none (the model predicts the quantiles)."""
    from scipy.special import ndtri, stdtrit

    p = np.asarray(levels, dtype=np.float64)
    if likelihood == "gaussian":
        return ndtri(p)
    if likelihood != "student_t":
        return np.zeros(0)
    nodes = np.cos(np.pi * (np.arange(degree + 1) + 0.5) / (degree + 1))  # x in (-1, 1)
    nu = 4.0 / (nodes + 1.0)  # x = 4/nu - 1
    values = stdtrit(nu[None, :], p[:, None])  # (Q, n)
    return np.stack([np.polynomial.chebyshev.chebfit(nodes, row, degree) for row in values])  # (Q, degree + 1)


def forecast_quantiles(likelihood: str, params: Tensor, factors: np.ndarray) -> Tensor:
    r""":func:`rnnkit.models.forecast.quantiles` at :data:`~rnnkit.models.forecast.QUANTILES` in ops that
    export (``factors`` from :func:`quantile_factors`): :math:`\mu + \sigma\,\Phi^{-1}(p)`;
    :math:`\mu + \sigma \sum_k a_k T_k(4/\nu - 1)` by Clenshaw's recurrence
    :math:`b_k = a_k + 2x\,b_{k+1} - b_{k+2}`, :math:`f = a_0 + x\,b_1 - b_2`; or the predicted quantiles.
    In float64, as that function computes them, then float32: ``params`` (B, H, P) -> (B, H, Q)."""
    if likelihood == "quantile":
        return params[..., list(range(len(QUANTILES)))]
    mu, sigma = params[..., :1].double(), params[..., 1:2].double()  # (B, H, 1)
    if likelihood == "gaussian":
        factor = torch.tensor(factors, dtype=torch.float64)  # (Q,)
    else:
        x = (4.0 / params[..., 2:3].double()).clamp(0.0, 2.0) - 1.0  # nu >= 2: x in (-1, 1]
        a = torch.tensor(factors, dtype=torch.float64).T  # (n, Q)
        b1 = b2 = torch.zeros_like(x)
        for k in range(a.shape[0] - 1, 0, -1):
            b1, b2 = a[k] + 2.0 * x * b1 - b2, b1  # (B, H, Q)
        factor = a[0] + x * b1 - b2
    return (mu + sigma * factor).to(params.dtype)


class Export:
    """One graph to write: the ONNX model, its file, example inputs and what PyTorch answers on them."""

    def __init__(self, name: str, onnx_model, feeds: dict[str, np.ndarray], expected: list[np.ndarray]) -> None:
        self.name, self.model, self.feeds, self.expected = name, onnx_model, feeds, expected


def _random_ids(high: int, *shape: int, generator: torch.Generator) -> Tensor:
    return torch.randint(0, high, shape, generator=generator)


def build_exports(model: nn.Module, task: str, meta: dict, *, batch: int = 3, steps: int = 6,
                  opset: int = OPSET) -> list[Export]:  # fmt: skip
    """The graphs of ``model`` for ``task`` (main graph first), each with check inputs and PyTorch's outputs.

    The check inputs are random tokens with lengths that differ along the batch and random initial states (for
    a forecaster: random windows of ``steps`` past steps, with missing targets)."""
    g = torch.Generator().manual_seed(0)
    B, T = batch, steps
    lengths = torch.tensor([T] + [int(v) for v in torch.randint(1, T + 1, (B - 1,), generator=g)])
    c = model.config
    references = {}  # the PyTorch outputs a graph is checked against, where they are not its traced function's
    if task == "lm":
        names = state_names(c.rnn, "0")
        outs = state_names(c.rnn)
        state = zero_state(c.rnn, B)
        tokens = _random_ids(c.vocab_size, B, T, generator=g)
        state_axes = {name: {1: "batch"} for name in names + outs}
        seq_axes = {"tokens": {0: "batch", 1: "time"}, "logits": {0: "batch", 1: "time"}, **state_axes}
        step_axes = {"tokens": {0: "batch"}, "logits": {0: "batch"}, **state_axes}
        plans = [("sequence", lm_sequence, (tokens, *state), ["tokens", *names], ["logits", *outs], seq_axes, True),
                 ("step", lm_step, (tokens[:, 0], *state), ["tokens", *names], ["logits", *outs], step_axes,
                  False)]  # fmt: skip
    elif task == "classify":
        tokens = _random_ids(c.vocab_size, B, T, generator=g)
        axes = {"tokens": {0: "batch", 1: "time"}, "lengths": {0: "batch"}, "logits": {0: "batch"}}
        plans = [("sequence", lambda m, x, n: m(x, n), (tokens, lengths), ["tokens", "lengths"], ["logits"], axes,
                  True)]  # fmt: skip
    elif task == "tag":
        args, inputs = [_random_ids(c.vocab_size, B, T, generator=g), lengths], ["words", "lengths"]
        axes = {"words": {0: "batch", 1: "time"}, "lengths": {0: "batch"}, "emissions": {0: "batch", 1: "time"}}
        if c.chars is not None:
            W = 4
            args += [_random_ids(c.chars.vocab_size, B, T, W, generator=g),
                     torch.randint(1, W + 1, (B, T), generator=g)]  # fmt: skip
            inputs += ["chars", "char_lengths"]
            axes.update(chars={0: "batch", 1: "time", 2: "chars"}, char_lengths={0: "batch", 1: "time"})
        if c.casing_size:
            args.append(_random_ids(c.num_casings, B, T, generator=g))
            inputs.append("casing")
            axes["casing"] = {0: "batch", 1: "time"}
        plans = [("sequence", tagger_emissions, tuple(args), inputs, ["emissions"], axes, True)]
    elif task == "seq2seq":
        source = _random_ids(c.vocab_size, B, T, generator=g)
        with torch.no_grad():
            encoded = seq2seq_encoder(model.eval(), source, lengths)
        memory = ["values"] + (["keys"] if c.attention != "none" else []) + ["mask"]
        carry = state_names(c.decoder) + (["feed"] if c.attention == "luong" and c.input_feeding else [])
        enc_axes = {"source": {0: "batch", 1: "time"}, "source_lengths": {0: "batch"}}
        enc_axes.update({name: {0: "batch", 1: "time"} for name in memory})
        enc_axes.update({name: {1: "batch"} for name in state_names(c.decoder)})
        if "feed" in carry:
            enc_axes["feed"] = {0: "batch"}
        named = dict(zip(memory + carry, encoded))
        step_args = (_random_ids(c.vocab_size, B, generator=g), *[torch.randn_like(named[k]) for k in carry],
                     *[named[k] for k in memory])  # fmt: skip
        step_inputs = ["tokens"] + [k + "0" for k in carry] + memory
        step_axes = {"tokens": {0: "batch"}, "logits": {0: "batch"}}
        step_axes.update({k: enc_axes[k] for k in memory})
        step_axes.update({k + s: enc_axes[k] for k in carry for s in ("", "0")})
        plans = [("sequence", seq2seq_encoder, (source, lengths), ["source", "source_lengths"], memory + carry,
                  enc_axes, True),
                 ("step", seq2seq_step, step_args, step_inputs, ["logits"] + carry, step_axes, False)]  # fmt: skip
    elif task == "forecast":
        # windows as rnnkit.data.timeseries makes them: channel 1 is the target's 0/1 missing flag (one window
        # wholly missing, the case window_statistics treats apart), every other channel a scaled number
        windows = torch.randn(B, T, c.input_size, generator=g)
        windows[..., 1] = (torch.rand(B, T, generator=g) < 0.3).float()
        windows[B // 2, :, 1] = 1.0
        args = (windows, torch.randn(B, c.horizon, c.known_size, generator=g),
                _random_ids(c.num_series, B, generator=g))  # fmt: skip
        axes = {"inputs": {0: "batch", 1: "lookback"}, "known": {0: "batch"}, "series": {0: "batch"},
                "params": {0: "batch"}, "quantiles": {0: "batch"}}  # fmt: skip
        factors = quantile_factors(c.likelihood, QUANTILES)
        forward = functools.partial(forecast_outputs, factors=factors)
        plans = [("sequence", forward, args, ["inputs", "known", "series"], ["params", "quantiles"], axes, True)]
        references["sequence"] = forecast_reference
    else:
        raise ConfigError(f"rnnkit export does not know task {task!r}; it exports {', '.join(TASKS)} runs")
    exports = []
    for name, forward, args, inputs, outputs, axes, scan in plans:
        onnx_model = export_graph(model, forward, args, inputs, outputs, axes, scan=scan, opset=opset)
        with torch.no_grad():
            model.eval()
            expected = [t.numpy() for t in as_tuple(references.get(name, forward)(model, *args))]
        used = [i.name for i in onnx_model.graph.input]  # the exporter drops inputs the graph never reads
        feeds = {k: v.numpy() for k, v in zip(inputs, args) if k in used}
        set_metadata(onnx_model, {**meta, "rnnkit.graph": f"{task}.{name}", "rnnkit.inputs": used,
                                  "rnnkit.outputs": outputs})  # fmt: skip
        exports.append(Export(name, onnx_model, feeds, expected))
    return exports


def set_metadata(onnx_model, meta: dict) -> None:
    """Add key-value metadata to the model, each value as JSON (strings as themselves)."""
    from onnx import helper

    props = {p.key: p.value for p in onnx_model.metadata_props}
    props.update({k: v if isinstance(v, str) else json.dumps(v) for k, v in meta.items()})
    helper.set_model_props(onnx_model, props)


def run_metadata(model: nn.Module, task: str, config: dict) -> dict:
    """What a user of the graphs needs besides them: sizes, special ids, the tag set and its CRF scores, a
    forecaster's likelihood, levels and scaling (:func:`forecast_metadata`)."""
    c = model.config
    meta = {"rnnkit.format": 1, "rnnkit.task": task, "rnnkit.model": type(model).__name__}
    if task == "lm":
        rnn = c.rnn
        meta.update({"rnnkit.vocab_size": c.vocab_size, "rnnkit.state_shapes": state_shapes(rnn)})
    elif task == "classify":
        meta["rnnkit.num_classes"] = c.num_classes
    elif task == "tag":
        meta["rnnkit.tags"] = list(c.tags)
        if model.crf is not None:
            start, transitions, end = (t.detach().double().tolist() for t in model.crf.scores())
            meta["rnnkit.crf"] = {"start": start, "transitions": transitions, "end": end}
    elif task == "seq2seq":
        meta.update({"rnnkit.go_id": c.go_id, "rnnkit.end_id": c.end_id, "rnnkit.pad_id": c.pad_id,
                     "rnnkit.vocab_size": c.vocab_size})  # fmt: skip
    elif task == "forecast":
        meta.update(forecast_metadata(c, config))
    return meta


PARAMETER_NAMES = {"gaussian": ["mu", "sigma"], "student_t": ["mu", "sigma", "nu"]}


def forecast_metadata(c, config: dict) -> dict:
    """A forecast graph's metadata: what its numbers are, and how to make its inputs and read its outputs.

    From the model: the likelihood, the names of its parameters, the horizon, the form (direct or
    encoder-decoder), the quantile levels and which are the median and the intervals. From the run's
    ``config.json`` where it has them: the lookback it was trained with, the names of the input and known
    channels, the series ids in the order of the ``series`` input, the target's name, the frequency and the
    per-series scaling fitted on the training part (``{"scaling", "target": {id: [center, scale]},
    "features": {id: {column: [center, scale, fill]}}, "categories"}``, :class:`TrainingStats`): the inputs'
    numbers are scaled with it, and outputs map back to the data's units as ``center + scale * z``."""
    data = config.get("data") or {}
    meta = {
        "rnnkit.likelihood": c.likelihood,
        "rnnkit.parameters": PARAMETER_NAMES.get(c.likelihood, [f"q{q:g}" for q in QUANTILES]),
        "rnnkit.horizon": c.horizon,
        "rnnkit.form": "direct" if c.decoder is None else "encoder-decoder",
        "rnnkit.window_scaling": c.window_scaling,
        "rnnkit.quantile_levels": list(QUANTILES),
        "rnnkit.median": 0.5,
        "rnnkit.intervals": {str(k): list(v) for k, v in INTERVALS.items()},
        "rnnkit.num_series": c.num_series,
        "rnnkit.unscale": "y = center + scale * z, (center, scale) = rnnkit.scaling['target'][series id]",
    }
    optional = {"rnnkit.lookback": data.get("lookback"), "rnnkit.target": data.get("target"),
                "rnnkit.channels": config.get("channels"), "rnnkit.known_channels": config.get("known_channels"),
                "rnnkit.series": config.get("series"), "rnnkit.frequency": config.get("frequency"),
                "rnnkit.scaling": config.get("stats")}  # fmt: skip
    meta.update({k: v for k, v in optional.items() if v is not None})
    return meta


def forecast_calibration(run, model, config: dict) -> dict:
    """The factors ``rnnkit eval`` widens the graph's intervals by (:func:`rnnkit.tasks.forecast.calibration`,
    fitted on the validation part of the run's own file), or nothing where that file cannot be read."""
    from rnnkit.tasks.forecast import calibration, load_run  # here: the forecast task only when one is exported

    try:
        data, stats, index = load_run(Path(run), config)
        scales = calibration(model, data, stats, config, index, "cpu")
    except (ValueError, OSError):  # rnnkit's DataError, ConfigError, CheckpointError are ValueErrors
        return {}
    return {"rnnkit.interval_scales": {str(k): v for k, v in scales.items()},
            "rnnkit.widen": "bound = median + s * (bound - median), s = rnnkit.interval_scales[level]; "
                            "95% bounds at least as wide as the 80% ones"
                            + ("; then median and bounds at least rnnkit.scaling['floor'][series id] where it "
                               "has one" if data.floor else "")}  # fmt: skip


def state_shapes(rnn) -> list[list[int]]:
    """(L * D, H) of each state tensor, the batch axis left out."""
    LD = rnn.num_layers * rnn.num_directions
    return [[LD, rnn.output_size], [LD, rnn.hidden_size]] if rnn.cell == "lstm" else [[LD, rnn.hidden_size]]


# -- checking and writing -------------------------------------------------------------------------------


def check_in_onnxruntime(export: Export) -> float:
    """Largest absolute difference between onnxruntime's outputs and PyTorch's on the check inputs."""
    import onnxruntime

    session = onnxruntime.InferenceSession(export.model.SerializeToString(), providers=["CPUExecutionProvider"])
    got = session.run(None, export.feeds)
    worst = 0.0
    for a, b in zip(got, export.expected):
        if a.shape != b.shape:
            raise ConfigError(f"the exported {export.name} graph gives shape {a.shape} where PyTorch gives {b.shape}")
        if a.size and a.dtype != np.bool_:
            worst = max(worst, float(np.abs(a.astype(np.float64) - b.astype(np.float64)).max()))
        elif a.size and not np.array_equal(a, b):
            worst = float("inf")
    return worst


def step_path(out: Path) -> Path:
    """Where the step graph of ``out`` goes: ``OUT.step.onnx`` beside ``OUT.onnx``."""
    stem = out.name[: -len(".onnx")] if out.name.endswith(".onnx") else out.name
    return out.with_name(stem + ".step.onnx")


def write_atomic(onnx_model, path: Path) -> None:
    """Write to a temporary file in ``path``'s folder, then rename: never a half-written model at ``path``."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(onnx_model.SerializeToString())
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def export_run(run: str | os.PathLike, out: str | os.PathLike, *, verify: bool = True) -> dict:
    """Export run directory ``run`` to ``out`` (and ``OUT.step.onnx`` where the task has a step graph).

    Returns ``{"task", "files", "max_abs_diff"}``; raises a one-line error for a path that is not a run, a
    task that cannot be exported, a missing output folder, or a graph that onnxruntime computes otherwise."""
    from rnnkit.models import load_model

    out = Path(out)
    if not out.parent.is_dir():
        raise ConfigError(f"the output folder {str(out.parent)!r} does not exist")
    if out.is_dir():
        raise ConfigError(f"{str(out)!r} is a folder; give the path of the .onnx file to write")
    config = checkpoint.load_config(run)
    task = config.get("task")
    if task not in TASKS:
        raise ConfigError(f"{run} is a {task!r} run; rnnkit export exports {', '.join(TASKS)} runs")
    require_onnx()
    model = load_model(run, device="cpu", task=task)
    meta = run_metadata(model, task, config)
    if task == "forecast":
        meta.update(forecast_calibration(run, model, config))
    exports = build_exports(model, task, meta)
    diffs = {}
    if verify:
        for export in exports:
            diffs[export.name] = check_in_onnxruntime(export)
            if not diffs[export.name] <= TOLERANCE:
                raise ConfigError(f"the exported {export.name} graph differs from PyTorch by {diffs[export.name]:.3g} "
                                  f"(> {TOLERANCE}) in onnxruntime; nothing written")  # fmt: skip
    files = [out, step_path(out)][: len(exports)]
    if len(exports) > 1:
        set_metadata(exports[0].model, {"rnnkit.step_graph": files[1].name})
    for export, path in reversed(list(zip(exports, files))):  # the step graph first
        write_atomic(export.model, path)
    return {"task": task, "files": [str(p) for p in files], "max_abs_diff": diffs}


# -- the command ------------------------------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = "Export a run's model as ONNX graphs, checked in onnxruntime against PyTorch."
    parser.add_argument("run", metavar="RUN", help="run directory (lm, classify, tag, seq2seq or forecast)")
    parser.add_argument("--onnx", required=True, metavar="OUT.onnx",
                        help="file to write; lm and seq2seq runs also write OUT.step.onnx beside it")  # fmt: skip
    parser.add_argument("--no-verify", action="store_true",
                        help="skip the check of onnxruntime's outputs against PyTorch's")  # fmt: skip
    parser.add_argument("--json", action="store_true")


def main(args: argparse.Namespace) -> int:
    result = export_run(args.run, args.onnx, verify=not args.no_verify)
    if args.json:
        print(json.dumps(result))
    else:
        checked = ", ".join(f"{name} {diff:.2g}" for name, diff in result["max_abs_diff"].items())
        note = f" (checked in onnxruntime, max |difference| from torch: {checked})" if checked else ""
        print(f"wrote {' and '.join(result['files'])}{note}")
    return 0
