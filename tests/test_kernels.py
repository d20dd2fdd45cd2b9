"""The fused backend against the reference backend: outputs and every gradient, float64, every option."""

import pytest
import torch
from torch import nn

import rnnkit
from rnnkit.cells import as_tuple
from rnnkit.kernels import common

pytestmark = pytest.mark.usefixtures("float64")
TOL = dict(rtol=1e-10, atol=1e-12)

CELLS = {
    "lstm": (rnnkit.LSTM, {}),
    "lstm peephole": (rnnkit.LSTM, dict(peephole=True)),
    "lstm proj": (rnnkit.LSTM, dict(proj_size=2)),
    "gru after": (rnnkit.GRU, {}),
    "gru before": (rnnkit.GRU, dict(reset="before")),
    "rnn tanh": (rnnkit.RNN, {}),
    "rnn relu": (rnnkit.RNN, dict(nonlinearity="relu")),
}
# (options, training mode, lengths, bidirectional, layers): together they cover every option with and
# without the others, lengths in both directions, stacking, skip connections and dropout between layers.
SETTINGS = {
    "plain lengths bidir 2 layers": (dict(), False, True, True, 2),
    "layer_norm": (dict(layer_norm=True), False, False, False, 1),
    "dropout zoneout train lengths": (dict(recurrent_dropout=0.3, zoneout=0.3), True, True, False, 1),
    "zoneout eval bidir": (dict(zoneout=0.4), False, False, True, 1),
    "everything train": (
        dict(layer_norm=True, recurrent_dropout=0.25, zoneout=0.2, skip_connections=True, dropout=0.3),
        True,
        True,
        True,
        2,
    ),  # fmt: skip
}


def build(cell: str, setting: str, backend: str, seed: int = 0):
    cls, cell_kwargs = CELLS[cell]
    options, training, _, bidirectional, layers = SETTINGS[setting]
    torch.manual_seed(seed)
    layer = cls(3, 4, layers, bidirectional=bidirectional, **cell_kwargs, **options, backend=backend)
    return layer.train(training)


def run_and_grad(layer, x, state, lengths, seed=5):
    """Outputs, final states and the gradients of a fixed random functional of them."""
    torch.manual_seed(seed)  # the layer draws its masks from the global generator: same masks per backend
    out, final = layer(x, state, lengths=lengths)
    g = torch.Generator().manual_seed(11)
    loss = sum((t * torch.randn(t.shape, generator=g)).sum() for t in (out, *as_tuple(final)))
    inputs = [x, *as_tuple(state), *layer.parameters()]
    return out, as_tuple(final), torch.autograd.grad(loss, inputs)


def inputs_for(layer, T=5, B=3, with_lengths=True):
    c = layer.config
    g = torch.Generator().manual_seed(3)
    x = torch.randn(T, B, c.input_size, generator=g, requires_grad=True)
    n = c.num_layers * c.num_directions
    h0 = torch.randn(n, B, c.output_size, generator=g, requires_grad=True)
    c0 = torch.randn(n, B, c.hidden_size, generator=g, requires_grad=True)
    state = (h0, c0) if c.cell == "lstm" else h0
    lengths = torch.tensor([T, 2, 4][:B]) if with_lengths else None
    return x, state, lengths


def assert_same(layer_a, layer_b, with_lengths):
    x, state, lengths = inputs_for(layer_a, with_lengths=with_lengths)
    out_a, final_a, grads_a = run_and_grad(layer_a, x, state, lengths)
    out_b, final_b, grads_b = run_and_grad(layer_b, x, state, lengths)
    torch.testing.assert_close(out_a, out_b, **TOL)
    for a, b in zip(final_a, final_b):
        torch.testing.assert_close(a, b, **TOL)
    names = ["x", *[f"state {i}" for i in range(len(final_a))], *[n for n, _ in layer_a.named_parameters()]]
    assert len(grads_a) == len(names)
    for name, a, b in zip(names, grads_a, grads_b):
        torch.testing.assert_close(a, b, **TOL, msg=lambda m, name=name: f"gradient of {name}: {m}")


@pytest.mark.parametrize("setting", list(SETTINGS))
@pytest.mark.parametrize("cell", list(CELLS))
def test_fused_matches_reference(cell, setting):
    reference, fused = build(cell, setting, "reference"), build(cell, setting, "fused")
    assert_same(reference, fused, with_lengths=SETTINGS[setting][2])


@pytest.mark.parametrize("cell", list(CELLS))
def test_python_step_loops_match_reference(cell, monkeypatch):
    """The pure-Python loops (no TorchScript) compute the same thing: the fallback CI may take."""
    monkeypatch.setenv("RNNKIT_JIT", "0")
    setting = "everything train"
    assert_same(build(cell, setting, "reference"), build(cell, setting, "fused"), with_lengths=True)


def test_loops_are_scripted_when_torchscript_is_on():
    from rnnkit.kernels import gru, lstm, rnn

    loops = [lstm.lstm_forward_loop, lstm.lstm_backward_loop, gru.gru_after_forward_loop,
             gru.gru_after_backward_loop, gru.gru_before_forward_loop, gru.gru_before_backward_loop,
             rnn.rnn_forward_loop, rnn.rnn_backward_loop]  # fmt: skip
    if not hasattr(torch.jit, "script"):
        pytest.skip("this torch has no TorchScript")
    for loop in loops:
        assert isinstance(getattr(common.compiled(loop, True), "__wrapped__", None), torch.jit.ScriptFunction), loop


GRADCHECK = {
    "lstm everything": (
        rnnkit.LSTM,
        dict(peephole=True, proj_size=2, layer_norm=True, recurrent_dropout=0.3, zoneout=0.3),
    ),  # fmt: skip
    "gru after layer_norm zoneout": (rnnkit.GRU, dict(layer_norm=True, zoneout=0.4, recurrent_dropout=0.2)),
    "gru before layer_norm": (rnnkit.GRU, dict(reset="before", layer_norm=True, recurrent_dropout=0.2)),
    "rnn relu layer_norm zoneout": (rnnkit.RNN, dict(nonlinearity="relu", layer_norm=True, zoneout=0.3)),
}


@pytest.mark.parametrize("name", list(GRADCHECK))
def test_fused_gradcheck(name):
    cls, kwargs = GRADCHECK[name]
    torch.manual_seed(2)
    layer = cls(2, 3, backend="fused", **kwargs).train()
    x, state, lengths = inputs_for(layer, T=4, B=2)
    params = dict(layer.named_parameters())

    def run(x, *rest):
        n = len(as_tuple(state))
        state_ = tuple(rest[:n]) if n == 2 else rest[0]
        torch.manual_seed(0)  # identical masks on every evaluation
        out, final = torch.func.functional_call(layer, dict(zip(params, rest[n:])), (x, state_), {"lengths": lengths})
        return (out, *as_tuple(final))

    assert torch.autograd.gradcheck(run, (x, *as_tuple(state), *params.values()), fast_mode=True)


def test_auto_picks_torch_for_plain_cells_and_fused_otherwise():
    # this file runs in float64, where no C loop applies; the float32 CPU exception for the GRU and RNN
    # is tested in test_c_cells.py
    assert rnnkit.LSTM(3, 4).backend == "torch"
    assert rnnkit.GRU(3, 4, bidirectional=True, num_layers=2).backend == "torch"
    assert rnnkit.RNN(3, 4, nonlinearity="relu").backend == "torch"
    for layer in [
        rnnkit.LSTM(3, 4, layer_norm=True),
        rnnkit.LSTM(3, 4, peephole=True),
        rnnkit.GRU(3, 4, reset="before"),
        rnnkit.RNN(3, 4, zoneout=0.1),
        rnnkit.LSTM(3, 4, recurrent_dropout=0.1),
        rnnkit.GRU(3, 4, skip_connections=True, num_layers=2),
    ]:
        assert layer.backend == "fused", layer  # fmt: skip
    assert rnnkit.LSTM(3, 4, layer_norm=True, backend="reference").backend == "reference"
    assert rnnkit.LSTM(3, 4, backend="fused").backend == "fused"


@pytest.mark.parametrize("cls", [rnnkit.LSTM, rnnkit.GRU, rnnkit.RNN])
def test_auto_and_fused_agree_with_torch_on_plain_cells(cls):
    torch.manual_seed(4)
    theirs = {rnnkit.LSTM: nn.LSTM, rnnkit.GRU: nn.GRU, rnnkit.RNN: nn.RNN}[cls](3, 4, 2, bidirectional=True)
    auto, fused = cls.from_torch(theirs), cls.from_torch(theirs, backend="fused")
    assert auto.backend == "torch"
    x = torch.randn(6, 2, 3)
    expected, _ = theirs(x)
    torch.testing.assert_close(auto(x)[0], expected, **TOL)
    torch.testing.assert_close(fused(x)[0], expected, **TOL)


def test_float32_plain_lstm_close_to_torch():
    torch.manual_seed(5)
    theirs = nn.LSTM(8, 16, dtype=torch.float32)
    fused = rnnkit.LSTM.from_torch(theirs, backend="fused")
    x = torch.randn(20, 4, 8, dtype=torch.float32, requires_grad=True)
    out_t, (h_t, c_t) = theirs(x)
    out_f, (h_f, c_f) = fused(x)
    torch.testing.assert_close(out_f, out_t, rtol=1e-5, atol=1e-6)
    (gt,) = torch.autograd.grad(out_t.square().sum() + c_t.sum(), x)
    (gf,) = torch.autograd.grad(out_f.square().sum() + c_f.sum(), x)
    torch.testing.assert_close(gf, gt, rtol=1e-4, atol=1e-5)


def test_inference_without_graph_and_repeated_backward():
    layer = build("lstm peephole", "everything train", "fused").eval()
    x, state, lengths = inputs_for(layer)
    with torch.no_grad():
        out_nograd, _ = layer(x, state, lengths=lengths)
    out, (h, c) = layer(x, state, lengths=lengths)
    torch.testing.assert_close(out_nograd, out, **TOL)
    loss = out.square().sum() + c.sum()
    first = torch.autograd.grad(loss, [x, layer.weight_hh_l0], retain_graph=True)
    second = torch.autograd.grad(loss, [x, layer.weight_hh_l0])
    for a, b in zip(first, second):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_single_step_single_sequence_and_frozen_weights():
    layer = build("gru before", "layer_norm", "fused")
    reference = build("gru before", "layer_norm", "reference")
    for p in [*layer.parameters(), *reference.parameters()]:
        p.requires_grad_(False)
    x = torch.randn(1, 1, 3, requires_grad=True)
    (gx_f,) = torch.autograd.grad(layer(x)[0].sum(), x)
    (gx_r,) = torch.autograd.grad(reference(x)[0].sum(), x)
    torch.testing.assert_close(gx_f, gx_r, **TOL)


def test_scratch_buffers_are_recycled_but_never_shared_within_a_block():
    like = torch.empty(0)
    with common.Scratch() as scratch:
        a, b = scratch.empty((3, 4), like), scratch.empty((3, 4), like)
        assert a.data_ptr() != b.data_ptr()
    with common.Scratch() as scratch:
        again = {scratch.empty((3, 4), like).data_ptr(), scratch.empty((3, 4), like).data_ptr()}
        assert again == {a.data_ptr(), b.data_ptr()}, "the second call reuses the first call's buffers"
        assert scratch.empty((5,), like).shape == (5,)
