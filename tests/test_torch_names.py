"""rnnkit's layers hold their parameters under torch.nn's names: state dicts move both ways unchanged, the
extras are named in the same style, old run directories still load, and torch's idioms work."""

import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from torch import nn

import rnnkit
from rnnkit.models import load_model

pytestmark = pytest.mark.usefixtures("float64")
DATA = Path(__file__).parent / "data"
TORCH = {rnnkit.RNN: nn.RNN, rnnkit.LSTM: nn.LSTM, rnnkit.GRU: nn.GRU}
CONFIGS = [
    (rnnkit.LSTM, dict(num_layers=2, bidirectional=True, proj_size=2)),
    (rnnkit.LSTM, dict(bias=False)),
    (rnnkit.GRU, dict(num_layers=3, batch_first=True)),
    (rnnkit.GRU, dict(bidirectional=True, bias=False)),
    (rnnkit.RNN, dict(num_layers=2, nonlinearity="relu", bidirectional=True)),
]


@pytest.mark.parametrize("cls, kwargs", CONFIGS)
def test_state_dicts_move_both_ways_unchanged(cls, kwargs):
    torch.manual_seed(0)
    theirs, ours = TORCH[cls](3, 4, **kwargs), cls(3, 4, **kwargs)
    assert list(ours.state_dict()) == list(theirs.state_dict())
    assert ours._flat_weights_names == theirs._flat_weights_names
    assert [[p.shape for p in cell] for cell in ours.all_weights] == [[p.shape for p in c] for c in theirs.all_weights]
    ours.load_state_dict(theirs.state_dict())  # torch -> rnnkit, strict
    x = torch.randn(5, 2, 3) if not kwargs.get("batch_first") else torch.randn(2, 5, 3)
    torch.testing.assert_close(ours(x)[0], theirs(x)[0])
    fresh = TORCH[cls](3, 4, **kwargs)
    fresh.load_state_dict(ours.state_dict())  # rnnkit -> torch
    torch.testing.assert_close(fresh(x)[0], theirs(x)[0])


def test_extras_are_named_in_torchs_style():
    layer = rnnkit.LSTM(3, 4, 2, bidirectional=True, layer_norm=True, peephole=True)
    names = list(layer.state_dict())
    assert names[:8] == ["weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0", "ln_ih_weight_l0",
                         "ln_hh_weight_l0", "ln_cell_weight_l0", "ln_cell_bias_l0"]  # fmt: skip
    assert "peephole_l0" in names and "peephole_l1_reverse" in names and "ln_hh_weight_l1_reverse" in names
    assert layer.peephole_l0.shape == (12,) and layer.ln_ih_weight_l1.shape == (16,)
    assert layer._flat_weights_names == [n for n in names if not n.startswith(("ln_", "peephole"))]


def test_torch_idioms_work_by_name():
    torch.manual_seed(1)
    lstm = rnnkit.LSTM(3, 6, 2)
    nn.init.orthogonal_(lstm.weight_hh_l0)
    with torch.no_grad():
        lstm.bias_ih_l1[6:12].fill_(2.0)  # the forget gate's bias by name
    q = lstm.weight_hh_l0.detach()  # (24, 6) with orthonormal columns
    torch.testing.assert_close(q.T @ q, torch.eye(6), atol=1e-12, rtol=0)
    x = torch.randn(5, 2, 3)
    # the reference backend reads the same parameters the user changed
    reference = rnnkit.LSTM(3, 6, 2, backend="reference")
    reference.load_state_dict(lstm.state_dict())
    torch.testing.assert_close(lstm(x)[0], reference(x)[0])
    assert torch.equal(reference.bias_ih_l1[6:12], torch.full((6,), 2.0))


@pytest.mark.parametrize("backend", ["auto", "reference", "fused"])
@pytest.mark.parametrize("name", ["weight_hh_l0", "weight_ih_l1"])
def test_weight_norm_parametrization_on_a_torch_name(name, backend):
    """torch.nn.utils.parametrizations.weight_norm on weight_hh_l0 trains through every backend."""
    torch.manual_seed(2)
    theirs = nn.GRU(3, 4, 2)
    ours = rnnkit.GRU.from_torch(theirs, backend=backend)
    for module in (theirs, ours):
        nn.utils.parametrizations.weight_norm(module, name)
    x = torch.randn(6, 2, 3)
    torch.testing.assert_close(ours(x)[0], theirs(x)[0])
    ours(x)[0].sum().backward()
    theirs(x)[0].sum().backward()
    g_ours = getattr(ours.parametrizations, name).original1.grad
    g_theirs = getattr(theirs.parametrizations, name).original1.grad
    torch.testing.assert_close(g_ours, g_theirs)


def test_dropout_can_change_after_construction():
    torch.manual_seed(3)
    layer = rnnkit.RNN(5, 5, 2, dropout=0.0, backend="reference").train()
    x = torch.randn(4, 3, 5)
    assert torch.equal(layer(x)[0], layer(x)[0])
    layer.dropout = 0.5
    assert layer.dropout == 0.5 and layer.config.dropout == 0.5
    assert not torch.equal(layer(x)[0], layer(x)[0])
    layer.dropout = 1.0  # as torch: every connection between layers dropped
    torch.testing.assert_close(layer(x)[0], layer(x)[0])
    with pytest.raises(ValueError, match=r"dropout must be a probability in \[0, 1\], got 2"):
        layer.dropout = 2
    with pytest.raises(AttributeError, match="hidden_size shapes the parameters"):
        layer.hidden_size = 7
    layer.batch_first = True
    assert layer(torch.randn(3, 4, 5))[0].shape == (3, 4, 5)


@pytest.mark.parametrize(
    "make, error, match",
    [
        (lambda: rnnkit.LSTM(3, 4, batch_first=1), TypeError, "batch_first should be of type bool, got: int"),
        (lambda: rnnkit.GRU(3, 4, bias="x"), TypeError, "bias should be of type bool, got: str"),
        (lambda: rnnkit.RNN(3.0, 4), TypeError, "input_size should be of type int"),
        (lambda: rnnkit.LSTM(3, 4, colour=1), TypeError, "unexpected keyword argument 'colour'"),
        (lambda: rnnkit.GRU(3, 4, peephole=True), TypeError, "unexpected keyword argument 'peephole'"),
    ],
)
def test_constructor_checks_as_torch(make, error, match):
    with pytest.raises(error, match=match):
        make()


def test_empty_batch_as_torch():
    for cls in (rnnkit.RNN, rnnkit.LSTM, rnnkit.GRU):
        layer = cls(3, 4)
        out, _ = layer(torch.zeros(5, 0, 3))
        assert out.shape == (5, 0, 4)
        out.sum().backward()  # no error, as torch


def test_load_errors_name_the_key_and_shapes():
    ours = rnnkit.LSTM(3, 4, layer_norm=True)
    with pytest.raises(RuntimeError, match="Missing key.*ln_ih_weight_l0"):
        ours.load_state_dict(nn.LSTM(3, 4).state_dict())
    missing, unexpected = ours.load_state_dict(nn.LSTM(3, 4).state_dict(), strict=False)
    assert sorted(missing) == ["ln_cell_bias_l0", "ln_cell_weight_l0", "ln_hh_weight_l0", "ln_ih_weight_l0"]
    with pytest.raises(RuntimeError, match=r"weight_hh_l0.*torch.Size\(\[20, 5\]\).*torch.Size\(\[16, 4\]\)"):
        rnnkit.LSTM(3, 4).load_state_dict(nn.LSTM(3, 5).state_dict())


def test_a_layer_saved_under_the_old_names_loads():
    """tests/data/lstm_before_torch_names.safetensors: a layer's state dict written by rnnkit before its
    parameters took torch's names (``cells.{i}.weight_ih``), with its input and outputs."""
    saved = load_file(DATA / "lstm_before_torch_names.safetensors")
    assert "cells.0.weight_ch" in saved and "cells.3.ln_cell_bias" in saved
    layer = rnnkit.LSTM(3, 5, 2, bidirectional=True, peephole=True, proj_size=2, layer_norm=True).double()
    layer.load_state_dict({k: v for k, v in saved.items() if not k.startswith("__")})
    assert torch.equal(layer.peephole_l1_reverse, saved["cells.3.weight_ch"])
    out, (h, c) = layer.eval()(saved["__input"])
    torch.testing.assert_close(out, saved["__output"], rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(c, saved["__c_n"], rtol=1e-12, atol=1e-12)


def test_a_run_directory_saved_under_the_old_names_loads(tmp_path):
    """tests/data/run_before_torch_names: an LM run directory written by rnnkit before the change."""
    run = tmp_path / "old"
    shutil.copytree(DATA / "run_before_torch_names", run)
    saved = load_file(run / "model.safetensors")
    assert "rnn.cells.1.ln_hh_weight" in saved and not any("_l0" in k for k in saved)
    model = load_model(run, task="lm")
    assert torch.equal(model.rnn.ln_hh_weight_l1, saved["rnn.cells.1.ln_hh_weight"])
    assert torch.equal(model.rnn.weight_ih_l0, saved["rnn.cells.0.weight_ih"])
    assert json.loads((run / "config.json").read_text())["model"]["config"]["rnn"]["backend"] == "auto"
