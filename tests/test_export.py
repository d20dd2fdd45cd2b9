"""rnnkit export: every cell and option, as ONNX graphs run in onnxruntime, against PyTorch to 1e-5.

Each graph is exported at one batch and length and checked at others (dynamic axes), on random tokens,
random initial states and lengths that differ along the batch. The reference is the model's own forward
in PyTorch (the tagger's with its boolean-mask character features, seq2seq's ``start`` and ``step``).
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
    for task, message in (("forecast", "cannot be exported yet"), ("music", "rnnkit export exports lm")):
        (lm_run / "config.json").write_text(json.dumps({**config, "task": task}))
        assert message in run_error(["export", str(lm_run), "--onnx", str(tmp_path / "a.onnx")], capsys)
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
