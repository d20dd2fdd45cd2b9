"""rnnkit export: every cell and option, as ONNX graphs run in onnxruntime, against PyTorch to 1e-5.

Each graph is exported at one batch and length and checked at others (dynamic axes), on random tokens,
random initial states and lengths that differ along the batch. The reference is the model's own forward
in PyTorch (the tagger's with its boolean-mask character features, seq2seq's ``start`` and ``step``, the
forecaster's with :func:`rnnkit.models.forecast.quantiles` of its parameters, and, from a trained run, the
forecast ``rnnkit eval`` reports, rebuilt from the graph and its metadata).
"""

import builtins
import json
import os

import numpy as np
import pytest
import torch

from rnnkit.cli import main
from rnnkit.data.tokenizers import CharTokenizer
from rnnkit.decoding import greedy_decode
from rnnkit.layers import RecurrentConfig
from rnnkit.models import (
    CharFeaturesConfig,
    Forecaster,
    ForecasterConfig,
    LanguageModel,
    LanguageModelConfig,
    Seq2Seq,
    Seq2SeqConfig,
    SequenceClassifier,
    SequenceClassifierConfig,
    SequenceTagger,
    SequenceTaggerConfig,
    save_model,
)
from rnnkit.models.forecast import QUANTILES, decoder_config, quantiles

ort = pytest.importorskip("onnxruntime", reason="onnxruntime is not installed: pip install 'rnnkit[export]'")
pytest.importorskip("onnx", reason="onnx is not installed: pip install 'rnnkit[export]'")

from rnnkit.apps import export  # noqa: E402  (after the skips: it needs onnx to do anything)

TOL = 1e-5
E, H, V = 5, 6, 11

CELLS = {  # every cell and option, each through the cells' equations
    "rnn tanh": dict(cell="rnn"),
    "rnn relu no bias layer_norm zoneout": dict(cell="rnn", nonlinearity="relu", bias=False, layer_norm=True,
                                                zoneout=0.1),
    "lstm": dict(cell="lstm"),
    "lstm peephole proj layer_norm": dict(cell="lstm", peephole=True, proj_size=4, layer_norm=True),
    "lstm zoneout recurrent_dropout": dict(cell="lstm", zoneout=0.3, recurrent_dropout=0.4, dropout=0.2),
    "gru after": dict(cell="gru"),
    "gru before (Cho) layer_norm zoneout": dict(cell="gru", reset="before", layer_norm=True, zoneout=0.2),
    "gru skip_connections": dict(cell="gru", skip_connections=True),
}


def rnn_config(input_size, num_layers=2, **options):
    return RecurrentConfig(input_size=input_size, hidden_size=H, num_layers=num_layers, batch_first=True, **options)


def session(onnx_model):
    return ort.InferenceSession(onnx_model.SerializeToString(), providers=["CPUExecutionProvider"])


def assert_close(got, expected, what=""):
    for a, b in zip(got, expected, strict=True):
        b = b.detach().numpy() if isinstance(b, torch.Tensor) else b
        assert a.shape == b.shape, what
        if a.dtype == np.bool_:
            assert np.array_equal(a, b), what
        else:
            assert np.abs(a - b).max() <= TOL, f"{what}: {np.abs(a - b).max()}"


def lengths_for(B, T, g):
    return torch.tensor([T] + torch.randint(1, T + 1, (B - 1,), generator=g).tolist())


def states(rnn, B, g):
    LD = rnn.num_layers * rnn.num_directions
    sizes = (rnn.proj_size or rnn.hidden_size, rnn.hidden_size) if rnn.cell == "lstm" else (rnn.hidden_size,)
    return [torch.randn(LD, B, n, generator=g) for n in sizes]


@pytest.mark.parametrize("name", list(CELLS))
def test_language_model_sequence_and_step_graphs_match_pytorch(name):
    torch.manual_seed(1)
    model = LanguageModel(LanguageModelConfig(V, E, rnn_config(E, **CELLS[name]))).eval()
    sequence, step = export.build_exports(model, "lm", {})
    g = torch.Generator().manual_seed(2)
    cell = model.config.rnn.cell
    for B, T in ((5, 9), (1, 1), (2, 3)):  # not the export's (3, 6): the batch and time axes are dynamic
        tokens = torch.randint(0, V, (B, T), generator=g)
        state = states(model.config.rnn, B, g)
        with torch.no_grad():
            logits, final = model(tokens, tuple(state) if cell == "lstm" else state[0])
            step_logits, step_final = model(tokens[:, :1], tuple(state) if cell == "lstm" else state[0])
        feeds = dict(zip(["h0", "c0"], [s.numpy() for s in state]))
        got = session(sequence.model).run(None, {"tokens": tokens.numpy(), **feeds})
        assert_close(got, [logits, *(final if cell == "lstm" else (final,))], f"{name} sequence B={B} T={T}")
        got = session(step.model).run(None, {"tokens": tokens[:, 0].numpy(), **feeds})
        expected = [step_logits[:, 0], *(step_final if cell == "lstm" else (step_final,))]
        assert_close(got, expected, f"{name} step B={B}")


def test_sequence_graph_runs_its_recurrences_as_scans_over_a_dynamic_time_axis():
    model = LanguageModel(LanguageModelConfig(V, E, rnn_config(E, cell="lstm"))).eval()
    sequence, step = export.build_exports(model, "lm", {})
    ops = [node.op_type for node in sequence.model.graph.node]
    assert ops.count("Scan") == 2  # one per layer; the step graph has none (one step, traced)
    assert "Scan" not in [node.op_type for node in step.model.graph.node]
    dims = sequence.model.graph.input[0].type.tensor_type.shape.dim
    assert [d.dim_param for d in dims] == ["batch", "time"]
    long = torch.randint(0, V, (2, 200))  # far past the export's 6 steps
    with torch.no_grad():
        logits, _ = model(long)
    zeros = {name: np.zeros((2, 2, H), np.float32) for name in ("h0", "c0")}
    assert_close(session(sequence.model).run(["logits"], {"tokens": long.numpy(), **zeros}), [logits])


CLASSIFY = {
    "lstm bidirectional last": (dict(cell="lstm", bidirectional=True), "last"),
    "gru before bidirectional mean": (dict(cell="gru", reset="before", bidirectional=True, layer_norm=True), "mean"),
    "rnn skip max": (dict(cell="rnn", skip_connections=True, bidirectional=True), "max"),
    "lstm peephole proj zoneout last": (dict(cell="lstm", peephole=True, proj_size=3, zoneout=0.1), "last"),
}


@pytest.mark.parametrize("name", list(CLASSIFY))
def test_classifier_with_lengths_matches_pytorch(name):
    options, pooling = CLASSIFY[name]
    torch.manual_seed(3)
    model = SequenceClassifier(SequenceClassifierConfig(V, E, 4, rnn_config(E, **options), pooling=pooling)).eval()
    (graph,) = export.build_exports(model, "classify", {})
    g = torch.Generator().manual_seed(4)
    for B, T in ((6, 8), (1, 2)):
        tokens, lengths = torch.randint(0, V, (B, T), generator=g), lengths_for(B, T, g)
        with torch.no_grad():
            expected = model(tokens, lengths)
        got = session(graph.model).run(None, {"tokens": tokens.numpy(), "lengths": lengths.numpy()})
        assert_close(got, [expected], f"{name} B={B} T={T}")


@pytest.mark.parametrize("chars", ["lstm", "cnn", None])
def test_tagger_emissions_match_pytorch_and_viterbi_matches_the_crf(chars):
    from rnnkit_onnx import sampler

    torch.manual_seed(5)
    char_config = CharFeaturesConfig(chars, 9, 4, 3) if chars else None
    features = E + (char_config.output_size if chars else 0) + 2
    tags = ["O", "B-X", "I-X", "B-Y", "I-Y"]
    config = SequenceTaggerConfig(V, E, tags, rnn_config(features, cell="lstm", bidirectional=True), chars=char_config,
                                  casing_size=2, crf=True)  # fmt: skip
    model = SequenceTagger(config).eval()
    with torch.no_grad():
        model.crf.transitions.normal_()  # a CRF whose transitions matter
    (graph,) = export.build_exports(model, "tag", export.run_metadata(model, "tag", {}))
    g = torch.Generator().manual_seed(6)
    B, T, W = 4, 7, 5
    words, lengths = torch.randint(0, V, (B, T), generator=g), lengths_for(B, T, g)
    char_ids = torch.randint(1, 9, (B, T, W), generator=g)
    char_lengths = torch.randint(1, W + 1, (B, T), generator=g)
    casing = torch.randint(0, 8, (B, T), generator=g)
    with torch.no_grad():
        expected = model(words, lengths, char_ids if chars else None, char_lengths if chars else None, casing)
    feeds = {"words": words, "lengths": lengths, "chars": char_ids, "char_lengths": char_lengths, "casing": casing}
    used = [i.name for i in graph.model.graph.input]
    (emissions,) = session(graph.model).run(None, {k: v.numpy() for k, v in feeds.items() if k in used})
    mask = (torch.arange(T) < lengths.unsqueeze(1)).numpy()
    assert np.abs(emissions - expected.numpy())[mask].max() <= TOL
    meta = {p.key: json.loads(p.value) for p in graph.model.metadata_props if p.key == "rnnkit.crf"}
    paths = sampler.viterbi(emissions, lengths.tolist(), *sampler.crf_scores(meta))
    assert paths == model.decode(expected, lengths)


ATTENTIONS = ["none", "bahdanau", "luong", "luong without input feeding"]


@pytest.mark.parametrize("cell", ["lstm", "gru"])
@pytest.mark.parametrize("attention", ATTENTIONS)
def test_seq2seq_encoder_and_decoder_step_match_pytorch(attention, cell, tmp_path):
    from rnnkit_onnx import sampler

    options = {}
    if attention == "luong without input feeding":
        attention, options = "luong", {"input_feeding": False}
    torch.manual_seed(7)
    encoder = rnn_config(E, cell=cell, bidirectional=True, layer_norm=cell == "gru")
    config = Seq2SeqConfig.sized(vocab_size=V, embedding_size=E, encoder=encoder, decoder=rnn_config(E, cell=cell),
                                 attention=attention, **options)  # fmt: skip
    model = Seq2Seq(config).eval()
    meta = export.run_metadata(model, "seq2seq", {})
    encoder_graph, step_graph = export.build_exports(model, "seq2seq", meta)
    g = torch.Generator().manual_seed(8)
    B, S = 5, 9
    source, lengths = torch.randint(3, V, (B, S), generator=g), lengths_for(B, S, g)
    with torch.no_grad():
        memory, carry = model.start(source, lengths)
    encoded = session(encoder_graph.model).run(None, {"source": source.numpy(), "source_lengths": lengths.numpy()})
    outputs = json.loads({p.key: p.value for p in encoder_graph.model.metadata_props}["rnnkit.outputs"])
    named = dict(zip(outputs, encoded))
    expected = [memory.values] + ([memory.keys] if memory.keys is not None else []) + [memory.mask]
    expected += list(carry.state if cell == "lstm" else (carry.state,))
    expected += [carry.feed] if carry.feed is not None else []
    assert_close(encoded, expected, "encoder")
    tokens = torch.randint(3, V, (B,), generator=g)
    with torch.no_grad():
        logits, new = model.step(tokens, carry, memory)
    step_inputs = [i.name for i in step_graph.model.graph.input]
    feeds = {"tokens": tokens.numpy(), **{k + "0": v for k, v in named.items() if k + "0" in step_inputs},
             **{k: v for k, v in named.items() if k in step_inputs}}  # fmt: skip
    got = session(step_graph.model).run(None, feeds)
    expected = [logits] + list(new.state if cell == "lstm" else (new.state,))
    expected += [new.feed] if new.feed is not None else []
    assert_close(got, expected, "decoder step")
    # greedy decoding driven from numpy: the tokens of rnnkit.decoding.greedy_decode
    export.set_metadata(encoder_graph.model, {"rnnkit.step_graph": "m.step.onnx"})
    export.write_atomic(step_graph.model, tmp_path / "m.step.onnx")
    export.write_atomic(encoder_graph.model, tmp_path / "m.onnx")
    reference = greedy_decode(model, source, lengths, max_length=12)
    tokens_out, finished = sampler.greedy_decode(tmp_path / "m.onnx", source.numpy(), lengths.numpy(), max_length=12)
    assert (tokens_out, finished) == (reference.tokens, reference.finished)


# -- forecasters ----------------------------------------------------------------------------------------

FORECAST_CELLS = {  # the decoder has the encoder's cell; a bidirectional encoder goes through the bridges
    "lstm bidirectional": dict(cell="lstm", bidirectional=True),
    "gru layer_norm zoneout": dict(cell="gru", layer_norm=True, zoneout=0.2),
    "lstm peephole proj bidirectional": dict(cell="lstm", peephole=True, proj_size=4, bidirectional=True),
}
FC, FK, FH, SERIES = 4, 2, 5, 3  # channels (target, missing flag, 2 more), known channels, horizon, series


def forecaster(likelihood, decoder, cell_options, *, known=FK, embedding=2, window_scaling=True):
    torch.manual_seed(11)
    static = embedding + (2 if window_scaling else 0)
    rnn = rnn_config(FC + static, **cell_options)
    config = ForecasterConfig(FC, known, FH, rnn, decoder_config(rnn, known + static + 1) if decoder else None,
                              num_series=SERIES, series_embedding=embedding, likelihood=likelihood, head_size=7,
                              window_scaling=window_scaling)  # fmt: skip
    model = Forecaster(config).eval()
    with torch.no_grad():
        model.head.weight.normal_(std=0.5)  # away from its start at "the window's mean, unit spread"
        model.head.bias.normal_()
    return model


def windows(B, L, K, g):
    inputs = torch.randn(B, L, FC, generator=g)
    inputs[..., 1] = (torch.rand(B, L, generator=g) < 0.3).float()  # the target's missing flag
    inputs[0, :, 1] = 1.0  # a window with no observed target
    return inputs, torch.randn(B, FH, K, generator=g), torch.randint(0, SERIES, (B,), generator=g)


def decoded(metadata):
    """Metadata values as set_metadata writes them: JSON, or a string as itself."""
    out = {}
    for key, value in metadata.items():
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
    return out


def forecast_check(graph, model, B, L, g, what):
    """The graph against the model's forward and rnnkit.models.forecast.quantiles on random windows; the
    largest difference seen."""
    inputs, known, series = windows(B, L, model.config.known_size, g)
    with torch.no_grad():
        params = model(inputs, known, series)
        expected = [params, quantiles(model.config.likelihood, params, QUANTILES)]
    used = [i.name for i in graph.model.graph.input]
    feeds = {k: v.numpy() for k, v in zip(["inputs", "known", "series"], (inputs, known, series)) if k in used}
    got = session(graph.model).run(None, feeds)
    assert_close(got, expected, what)
    return max(float(np.abs(a - b.numpy()).max()) for a, b in zip(got, expected))


@pytest.mark.parametrize("cell", list(FORECAST_CELLS))
@pytest.mark.parametrize("decoder", [False, True], ids=["direct", "decoder"])
@pytest.mark.parametrize("likelihood", ["gaussian", "student_t", "quantile"])
def test_forecaster_parameters_and_quantiles_match_pytorch(likelihood, decoder, cell):
    model = forecaster(likelihood, decoder, FORECAST_CELLS[cell])
    meta = export.run_metadata(model, "forecast", {})
    (graph,) = export.build_exports(model, "forecast", meta)
    assert [i.name for i in graph.model.graph.input] == ["inputs", "known", "series"]
    assert [o.name for o in graph.model.graph.output] == ["params", "quantiles"]
    scans = 2 * (2 if "bidirectional" in cell else 1) + (2 if decoder else 0)  # per layer and direction, 2 layers
    assert [node.op_type for node in graph.model.graph.node].count("Scan") == scans
    g = torch.Generator().manual_seed(12)
    for B, L in ((5, 9), (1, 2), (2, 30)):  # not the export's (3, 6): batch and lookback are dynamic
        forecast_check(graph, model, B, L, g, f"{likelihood} {cell} B={B} L={L}")
    props = decoded({p.key: p.value for p in graph.model.metadata_props})
    assert props["rnnkit.likelihood"] == likelihood and props["rnnkit.horizon"] == FH
    assert props["rnnkit.quantile_levels"] == list(QUANTILES) and props["rnnkit.intervals"]["80"] == [0.1, 0.9]
    assert props["rnnkit.form"] == ("encoder-decoder" if decoder else "direct")
    assert len(props["rnnkit.parameters"]) == model.config.outputs


def test_a_forecaster_without_known_channels_embedding_or_window_scaling_takes_only_its_inputs():
    model = forecaster("student_t", True, FORECAST_CELLS["lstm bidirectional"], known=0, embedding=0,
                       window_scaling=False)  # fmt: skip
    (graph,) = export.build_exports(model, "forecast", {})
    assert [i.name for i in graph.model.graph.input] == ["inputs"]  # no calendar, one series: nothing else read
    g = torch.Generator().manual_seed(13)
    for B, L in ((4, 7), (1, 1)):
        forecast_check(graph, model, B, L, g, f"inputs only B={B} L={L}")


@pytest.mark.parametrize("likelihood", ["gaussian", "student_t"])
def test_the_graph_s_quantile_factors_are_scipy_s_for_every_degree_of_freedom(likelihood):
    from scipy.special import stdtrit

    nu = torch.tensor([2.0, 2.0001, 2.1, 2.5, 3.0, 4.1, 7.0, 15.0, 60.0, 1e3, 1e5, 1e9], dtype=torch.float64)
    mu = torch.linspace(-3, 3, len(nu), dtype=torch.float64)
    sigma = torch.linspace(0.01, 20, len(nu), dtype=torch.float64)
    params = torch.stack([mu, sigma, nu], -1)[None, :, : 3 if likelihood == "student_t" else 2]  # (1, 12, P)
    got = export.forecast_quantiles(likelihood, params, export.quantile_factors(likelihood, QUANTILES))
    expected = quantiles(likelihood, params, QUANTILES)
    assert (got - expected).abs().max() <= 1e-11
    if likelihood == "student_t":  # and scipy's own numbers, by the definition: mu + sigma * t_nu^-1(p)
        direct = mu[:, None] + sigma[:, None] * torch.from_numpy(stdtrit(nu[:, None].numpy(), np.array(QUANTILES)))
        assert (got[0] - direct).abs().max() <= 1e-11


def forecast_csv(path):
    rows = ["shop,month,units,price"]
    for shop, level in (("a", 10.0), ("b", 50.0)):
        for t in range(40):
            y, m = divmod(t, 12)
            rows.append(f"{shop},{2000 + y}-{m + 1:02d},{level + 5 * np.sin(t / 2) + 0.1 * t:.3f},{1 + 0.05 * t:.2f}")
    path.write_text("\n".join(rows) + "\n")
    return path


@pytest.mark.parametrize("decoder", [False, True], ids=["direct", "decoder"])
def test_export_of_a_forecast_run_gives_rnnkit_eval_s_forecast_from_its_metadata(decoder, tmp_path, capsys):
    from rnnkit.data.timeseries import window_origins
    from rnnkit.tasks.forecast import load_parts, model_forecasts, prepare_like, window_tensors

    data = forecast_csv(tmp_path / "shops.csv")
    argv = ["train", "forecast", "--data", str(data), "--target", "units", "--date", "month", "--features", "price",
            "--id", "shop", "--horizon", "4", "--lookback", "8", "--hidden-size", "6", "--head-size", "6",
            "--max-steps", "3", "--out", str(tmp_path / "run"), "--quiet"]  # fmt: skip
    argv += ["--decoder"] if decoder else []
    assert main(argv) == 0, capsys.readouterr().err
    capsys.readouterr()
    out = tmp_path / "f.onnx"
    assert main(["export", str(tmp_path / "run"), "--onnx", str(out), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["files"] == [str(out)] and result["max_abs_diff"]["sequence"] <= TOL
    meta = decoded(session_meta(out))
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert meta["rnnkit.task"] == "forecast" and meta["rnnkit.graph"] == "forecast.sequence"
    assert meta["rnnkit.lookback"] == 8 and meta["rnnkit.series"] == ["a", "b"]
    assert meta["rnnkit.channels"] == config["channels"] and meta["rnnkit.known_channels"] == config["known_channels"]
    assert meta["rnnkit.inputs"] == ["inputs", "known", "series"] and meta["rnnkit.known_channels"]  # the calendar
    # the test windows as rnnkit eval builds them; the graph's quantiles, un-scaled with the metadata alone
    model, data_config, stats, index = load_parts(tmp_path / "run", config, "cpu")
    prepared = prepare_like(data_config.read(), data_config, stats, config)
    reference, _ = model_forecasts(model, prepared, "test", "cpu", series_index=index)
    which, origins = window_origins(prepared, "test")
    inputs, known, _, _, _ = window_tensors(prepared, which, origins, "cpu")
    ids = [prepared.series[k].id for k in which.tolist()]
    rows = np.array([meta["rnnkit.series"].index(i) for i in ids])
    sess = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    _, q = sess.run(None, {"inputs": inputs.numpy(), "known": known.numpy(), "series": rows})
    levels = meta["rnnkit.quantile_levels"]
    assert set(meta["rnnkit.interval_scales"]) == {"80", "95"}  # what rnnkit eval widens the intervals by
    for n, (series_id, f) in enumerate(zip(ids, reference)):
        center, scale = meta["rnnkit.scaling"]["target"][series_id]
        values = center + scale * q[n].astype(np.float64)  # (H, 5)
        for bound, level in (("median", 0.5), ("lo80", 0.1), ("hi80", 0.9), ("lo95", 0.025), ("hi95", 0.975)):
            assert np.abs(values[:, levels.index(level)] - getattr(f, bound)).max() <= TOL * scale, bound


# -- the command ------------------------------------------------------------------------------------------


@pytest.fixture
def lm_run(tmp_path):
    torch.manual_seed(9)
    tokenizer = CharTokenizer.build(["hello world\n"])
    rnn = rnn_config(E, num_layers=1, cell="gru", reset="before", layer_norm=True)
    model = LanguageModel(LanguageModelConfig(len(tokenizer), E, rnn))
    save_model(tmp_path / "run", model, config={"task": "lm"}, vocab=tokenizer.to_json())
    return tmp_path / "run"


def test_export_command_writes_both_graphs_checked_in_onnxruntime(lm_run, tmp_path, capsys):
    out = tmp_path / "lm.onnx"
    assert main(["export", str(lm_run), "--onnx", str(out), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["files"] == [str(out), str(tmp_path / "lm.step.onnx")]
    assert all(diff <= TOL for diff in result["max_abs_diff"].values())
    meta = session_meta(out)
    assert meta["rnnkit.task"] == "lm" and meta["rnnkit.step_graph"] == "lm.step.onnx"
    assert sorted(os.listdir(tmp_path)) == ["lm.onnx", "lm.step.onnx", "run"]  # no temporary files left


def session_meta(path):
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).get_modelmeta().custom_metadata_map


def run_error(argv, capsys):
    status = main(argv)
    err = capsys.readouterr().err
    assert status == 2 and err.count("\n") == 1, err
    return err


def test_bad_runs_and_paths_are_one_line_errors(lm_run, tmp_path, capsys):
    assert "not an rnnkit run directory" in run_error(["export", str(tmp_path), "--onnx", str(tmp_path / "a.onnx")],
                                                      capsys)  # fmt: skip
    assert "does not exist" in run_error(["export", str(tmp_path / "none"), "--onnx", str(tmp_path / "a.onnx")], capsys)
    err = run_error(["export", str(lm_run), "--onnx", str(tmp_path / "missing" / "a.onnx")], capsys)
    assert "output folder" in err and "does not exist" in err
    config = json.loads((lm_run / "config.json").read_text())
    (lm_run / "config.json").write_text(json.dumps({**config, "task": "music"}))  # forecast runs export (above)
    err = run_error(["export", str(lm_run), "--onnx", str(tmp_path / "a.onnx")], capsys)
    assert "rnnkit export exports lm, classify, tag, seq2seq, forecast runs" in err
    assert sorted(os.listdir(tmp_path)) == ["run"]


def test_a_failed_check_or_write_leaves_no_file(lm_run, tmp_path, capsys, monkeypatch):
    out = tmp_path / "lm.onnx"
    monkeypatch.setattr(export, "TOLERANCE", -1.0)  # every check fails
    assert "differs from PyTorch" in run_error(["export", str(lm_run), "--onnx", str(out)], capsys)
    monkeypatch.undo()

    def interrupted(src, dst):
        raise KeyboardInterrupt  # as if stopped between writing and renaming

    monkeypatch.setattr(export.os, "replace", interrupted)
    with pytest.raises(KeyboardInterrupt):
        export.export_run(lm_run, out)
    assert sorted(os.listdir(tmp_path)) == ["run"]


def test_without_onnx_the_command_names_the_extra(lm_run, tmp_path, capsys, monkeypatch):
    real_import = builtins.__import__

    def no_onnx(name, *args, **kwargs):
        if name.split(".")[0] in ("onnx", "onnxruntime"):
            raise ImportError(f"No module named {name!r}")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_onnx)
    err = run_error(["export", str(lm_run), "--onnx", str(tmp_path / "a.onnx")], capsys)
    assert "pip install 'rnnkit[export]'" in err
