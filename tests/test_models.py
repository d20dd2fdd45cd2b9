"""The models package: every registered model round-trips through its spec and a run directory, the registry
refuses unknown and duplicate names, and the shared config checks give each model the same messages."""

import dataclasses
import json
import re

import pytest
import torch
from torch import nn

import rnnkit
from rnnkit.errors import ConfigError
from rnnkit.layers import RecurrentConfig
from rnnkit.models import (
    MODELS,
    CharFeaturesConfig,
    ConditionalGenerator,
    ConditionalGeneratorConfig,
    Forecaster,
    ForecasterConfig,
    LanguageModel,
    LanguageModelConfig,
    MusicModel,
    MusicModelConfig,
    Seq2Seq,
    Seq2SeqConfig,
    SequenceClassifier,
    SequenceClassifierConfig,
    SequenceTagger,
    SequenceTaggerConfig,
    build_model,
    load_model,
    model_spec,
    register_model,
    save_model,
)

V, E, H = 11, 6, 8


def rnn(cell="lstm", input_size=E, **options):
    return RecurrentConfig(cell, input_size, H, batch_first=True, **options)


TOKENS = torch.tensor([[3, 4, 5, 6, 7], [8, 9, 3, 0, 0]])
LENGTHS = torch.tensor([5, 3])

# name -> (a small model, a call of its forward); every registered name needs one (see the first test)
EXAMPLES = {
    "RNN": (lambda: rnnkit.RNN(E, H, 2, nonlinearity="relu"), lambda m: m(torch.randn(5, 2, E))[0]),
    "LSTM": (lambda: rnnkit.LSTM(E, H, bidirectional=True, proj_size=4), lambda m: m(torch.randn(5, 2, E))[0]),
    "GRU": (lambda: rnnkit.GRU(E, H, reset="before", layer_norm=True), lambda m: m(torch.randn(5, 2, E))[0]),
    "LanguageModel": (
        lambda: LanguageModel(LanguageModelConfig(V, E, rnn(num_layers=2, skip_connections=True), dropout=0.1)),
        lambda m: m(TOKENS)[0],
    ),
    "Seq2Seq": (
        lambda: Seq2Seq(
            Seq2SeqConfig.sized(
                vocab_size=V,
                embedding_size=E,
                encoder=rnn("gru", bidirectional=True),
                decoder=rnn("gru"),
                attention="bahdanau",
            )
        ),
        lambda m: m(TOKENS, LENGTHS, TOKENS),
    ),
    "SequenceClassifier": (
        lambda: SequenceClassifier(SequenceClassifierConfig(V, E, 3, rnn(bidirectional=True), pooling="max")),
        lambda m: m(TOKENS, LENGTHS),
    ),
    "SequenceTagger": (
        lambda: SequenceTagger(
            SequenceTaggerConfig(
                V,
                E,
                ["O", "B-X", "I-X"],
                rnn(input_size=E + 4 + 2),
                chars=CharFeaturesConfig("cnn", 9, 5, 4),
                casing_size=2,
            )
        ),
        lambda m: m(TOKENS, LENGTHS, torch.randint(1, 9, (2, 5, 3)), torch.full((2, 5), 3), torch.zeros_like(TOKENS)),
    ),
    "ConditionalGenerator": (
        lambda: ConditionalGenerator(ConditionalGeneratorConfig(V, E, 3, rnn("gru"), label_size=5)),
        lambda m: m(TOKENS, torch.tensor([0, 2]))[0],
    ),
    "Forecaster": (
        lambda: Forecaster(ForecasterConfig(3, 2, 4, rnn("gru", input_size=3 + 2 + 2), num_series=3, series_embedding=2,
                                            head_size=5)),  # fmt: skip
        lambda m: m(torch.randn(2, 6, 3), torch.randn(2, 4, 2), torch.tensor([0, 2])),
    ),
    "MusicModel": (
        lambda: MusicModel(MusicModelConfig(rnn(input_size=12), num_keys=12, output="nade", nade_hidden=5)),
        lambda m: m.log_likelihood((torch.rand(2, 5, 12) < 0.3).float(), LENGTHS),
    ),
}


def test_every_registered_model_has_an_example():
    assert set(EXAMPLES) == set(MODELS)


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_a_model_round_trips_through_its_spec_and_a_run_directory(name, tmp_path):
    make, call = EXAMPLES[name]
    torch.manual_seed(0)
    model = make().eval()
    spec = json.loads(json.dumps(model_spec(model)))  # what config.json holds: JSON types only
    assert spec["type"] == name
    again = type(model).from_config(model.get_config())
    assert again.get_config() == model.get_config()
    built = build_model(spec)
    assert type(built) is type(model) and built.get_config() == model.get_config()
    shapes = {key: value.shape for key, value in model.state_dict().items()}
    assert {key: value.shape for key, value in built.state_dict().items()} == shapes
    save_model(tmp_path / "run", model)
    loaded = load_model(tmp_path / "run").eval()
    assert type(loaded) is type(model) and loaded.get_config() == model.get_config()
    torch.manual_seed(1)
    expected = call(model)
    torch.manual_seed(1)
    torch.testing.assert_close(call(loaded), expected, rtol=0, atol=0)


def test_a_config_json_of_today_builds_the_same_head_sizes():
    """Literal specs as config.json stores them: fields and defaults by name, and the feature sizes that the
    heads read (D * H_out, times L with skip connections; the classifier's "last" pooling: D * H_out)."""
    layer = {
        "cell": "lstm",
        "input_size": E,
        "hidden_size": H,
        "num_layers": 2,
        "batch_first": True,
        "bidirectional": True,
        "skip_connections": True,
    }
    lm = build_model({"type": "LanguageModel", "config": {"vocab_size": V, "embedding_size": E, "rnn": layer}})
    assert lm.head.weight.shape == (V, 2 * 2 * H) and lm.config.dropout == 0.0 and lm.config.init_range is None
    for pooling, features in (("last", 2 * H), ("mean", 2 * 2 * H), ("max", 2 * 2 * H)):
        config = {"vocab_size": V, "embedding_size": E, "num_classes": 3, "rnn": layer, "pooling": pooling}
        assert build_model({"type": "SequenceClassifier", "config": config}).head.weight.shape == (3, features)
    tagger = build_model(
        {"type": "SequenceTagger", "config": {"vocab_size": V, "embedding_size": E, "tags": ["O", "B-X"], "rnn": layer}}
    )
    assert tagger.head.weight.shape == (2, 2 * 2 * H) and tagger.config.crf and tagger.config.dropout == 0.5
    decoder = {"cell": "lstm", "input_size": E + 2 * 2 * H, "hidden_size": H, "num_layers": 2, "batch_first": True}
    config = {"vocab_size": V, "embedding_size": E, "encoder": layer, "decoder": decoder, "attention": "bahdanau"}
    seq2seq = build_model({"type": "Seq2Seq", "config": config})
    assert seq2seq.config.memory_features == 2 * 2 * H and seq2seq.readout.weight.shape == (H, H + 2 * 2 * H + E)


def test_an_unknown_model_type_is_refused_with_the_registered_names():
    registered = ", ".join(sorted(MODELS))
    with pytest.raises(ConfigError, match=re.escape(f"unknown model type 'Nope'; registered: {registered}")):
        build_model({"type": "Nope", "config": {}})
    with pytest.raises(ConfigError, match=re.escape('model spec must be {"type": NAME, "config": {...}}')):
        build_model({"type": "LanguageModel"})


def test_a_duplicate_registration_is_refused_and_keeps_the_first():
    class LanguageModel(nn.Module):  # same name as the registered one
        pass

    with pytest.raises(ValueError, match="^model 'LanguageModel' is already registered$"):
        register_model(LanguageModel)
    assert MODELS["LanguageModel"] is rnnkit.models.LanguageModel
    with pytest.raises(ValueError, match="LanguageModel is not a registered model; registered: "):
        model_spec(LanguageModel())


# -- the shared checks: one message for each model config -------------------------------------------------


def lm(layer, dropout=0.0):
    return LanguageModelConfig(V, E, layer, dropout=dropout)


def classifier(layer, dropout=0.0):
    return SequenceClassifierConfig(V, E, 3, layer, dropout=dropout)


def tagger(layer, dropout=0.0):
    return SequenceTaggerConfig(V, E, ["O", "B-X"], layer, dropout=dropout)


def generator(layer, dropout=0.0):
    return ConditionalGeneratorConfig(V, E, 3, layer, dropout=dropout)


def seq2seq(layer, dropout=0.0):
    return Seq2SeqConfig(V, E, layer, dataclasses.replace(layer, input_size=E), dropout=dropout)


CONFIGS = {
    "lm": (lm, "rnn.input_size (5) must equal embedding_size (6)", "a language model's rnn must be batch_first"),
    "classifier": (
        classifier,
        "rnn.input_size (5) must equal embedding_size (6)",
        "a classifier's rnn must be batch_first",
    ),
    "tagger": (
        tagger,
        "rnn.input_size (5) must equal the word features (6 = embedding 6 + chars 0 + casing 0)",
        "a tagger's rnn must be batch_first",
    ),
    "generator": (
        generator,
        "rnn.input_size (5) must equal embedding_size (6)",
        "a generator's rnn must be batch_first, unidirectional and without projection",
    ),
    "seq2seq": (
        seq2seq,
        "encoder.input_size (5) must equal embedding_size (6)",
        "a Seq2Seq model's encoder and decoder must be batch_first",
    ),
}


@pytest.mark.parametrize("kind", sorted(CONFIGS))
def test_the_shared_checks_give_every_model_config_the_same_messages(kind):
    make, input_message, batch_first_message = CONFIGS[kind]
    make(rnn())  # the good config builds
    with pytest.raises(ConfigError, match=f"^{re.escape(input_message)}$"):
        make(rnn(input_size=5))
    with pytest.raises(ConfigError, match=f"^{re.escape(batch_first_message)}$"):
        make(dataclasses.replace(rnn(), batch_first=False))
    for p in (1.0, -0.1, 1.5):
        with pytest.raises(ConfigError, match=rf"^dropout must be a probability in \[0, 1\), got {p}$"):
            make(rnn(), dropout=p)
    make(rnn(), dropout=0.99)


def test_a_bad_config_in_a_spec_is_refused_with_the_same_message():
    spec = model_spec(LanguageModel(lm(rnn())))
    spec["config"]["dropout"] = 1.0
    with pytest.raises(ConfigError, match=r"^config: dropout must be a probability in \[0, 1\), got 1.0$"):
        build_model(spec)
