"""Layers against torch.nn.RNN/LSTM/GRU (outputs, final states, every gradient) and against step loops."""

import random

import pytest
import torch
from torch import nn
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence

import rnnkit
from rnnkit.cells import as_tuple

pytestmark = pytest.mark.usefixtures("float64")
TOL = dict(rtol=1e-10, atol=1e-12)
TORCH = {rnnkit.RNN: nn.RNN, rnnkit.LSTM: nn.LSTM, rnnkit.GRU: nn.GRU}


def random_config(rng: random.Random):
    cls = rng.choice([rnnkit.RNN, rnnkit.LSTM, rnnkit.GRU])
    kwargs = dict(
        num_layers=rng.randint(1, 3),
        bias=rng.random() < 0.8,
        batch_first=rng.random() < 0.5,
        bidirectional=rng.random() < 0.5,
    )
    if cls is rnnkit.RNN:
        kwargs["nonlinearity"] = rng.choice(["tanh", "relu"])
    if cls is rnnkit.LSTM and rng.random() < 0.3:
        kwargs["proj_size"] = 2
    return cls, kwargs


def flat(x):
    return x.data if isinstance(x, PackedSequence) else x


def grads_of(output, final, inputs):
    """Gradients of a fixed random functional of output and final states with respect to ``inputs``."""
    g = torch.Generator().manual_seed(123)
    loss = sum((t * torch.randn(t.shape, generator=g)).sum() for t in (flat(output), *as_tuple(final)))
    return torch.autograd.grad(loss, inputs, retain_graph=True)  # the packed input is shared


CONFIGS = list(range(24))


@pytest.mark.parametrize("seed", CONFIGS)
@pytest.mark.parametrize("backend", ["reference", "auto"])
def test_layer_matches_torch(seed, backend):
    rng = random.Random(seed)
    torch.manual_seed(seed)
    cls, kwargs = random_config(rng)
    I, H, T, B = rng.randint(1, 5), rng.randint(3, 5), rng.randint(1, 6), rng.randint(1, 4)
    theirs = TORCH[cls](I, H, **kwargs)
    ours = cls.from_torch(theirs, backend=backend)
    mode = rng.choice(["plain", "lengths", "packed", "unbatched"])
    x = torch.randn(T, B, I, requires_grad=True)
    lengths = torch.tensor([rng.randint(1, T) for _ in range(B)])
    lengths[rng.randrange(B)] = T

    D, L = 2 if kwargs["bidirectional"] else 1, kwargs["num_layers"]
    H_out = kwargs.get("proj_size") or H
    batch_shape = (B,) if mode != "unbatched" else ()
    h0 = torch.randn(D * L, *batch_shape, H_out, requires_grad=True)
    c0 = torch.randn(D * L, *batch_shape, H, requires_grad=True)
    state = (h0, c0) if cls is rnnkit.LSTM else h0

    if mode == "unbatched":
        inp = x[:, 0]
    elif mode == "packed":
        inp = pack_padded_sequence(x, lengths, enforce_sorted=False)
    else:
        inp = x.transpose(0, 1) if kwargs["batch_first"] else x
    if mode == "packed" and kwargs["batch_first"]:
        inp = pack_padded_sequence(x.transpose(0, 1), lengths, batch_first=True, enforce_sorted=False)

    if mode == "lengths":
        # torch has no lengths=: its answer is the packed run, padded back with zeros.
        packed = pack_padded_sequence(x, lengths, enforce_sorted=False)
        out_packed, final_theirs = theirs(packed, state)
        out_theirs, _ = nn.utils.rnn.pad_packed_sequence(out_packed, total_length=T)
        if kwargs["batch_first"]:
            out_theirs = out_theirs.transpose(0, 1)
        out_ours, final_ours = ours(inp, state, lengths=lengths)
    else:
        out_theirs, final_theirs = theirs(inp, state)
        out_ours, final_ours = ours(inp, state)

    assert type(out_ours) is type(out_theirs)
    if isinstance(out_ours, PackedSequence):
        assert torch.equal(out_ours.batch_sizes, out_theirs.batch_sizes)
        assert torch.equal(out_ours.sorted_indices, out_theirs.sorted_indices)
    torch.testing.assert_close(flat(out_ours), flat(out_theirs), **TOL)
    for a, b in zip(as_tuple(final_ours), as_tuple(final_theirs)):
        torch.testing.assert_close(a, b, **TOL)

    inputs = [x, h0] + ([c0] if cls is rnnkit.LSTM else [])
    names = [name for name, _ in theirs.named_parameters()]
    assert [name for name, _ in ours.named_parameters()] == names  # torch's names, in torch's order
    ours_grads = grads_of(out_ours, final_ours, inputs + [getattr(ours, n) for n in names])
    theirs_grads = grads_of(out_theirs, final_theirs, inputs + [getattr(theirs, n) for n in names])
    for a, b in zip(ours_grads, theirs_grads):
        torch.testing.assert_close(a, b, **TOL)


def test_auto_backend_choice():
    assert rnnkit.LSTM(3, 4).backend == "torch"
    assert rnnkit.LSTM(3, 4, layer_norm=True).backend == "fused"
    assert rnnkit.GRU(3, 4, reset="before").backend == "fused"
    assert rnnkit.GRU(3, 4, backend="reference").backend == "reference"


@pytest.mark.parametrize("cls", [rnnkit.RNN, rnnkit.LSTM, rnnkit.GRU])
def test_to_torch_round_trip(cls):
    torch.manual_seed(0)
    ours = cls(3, 4, 2, bidirectional=True, batch_first=True)
    theirs = ours.to_torch()
    assert type(theirs) is TORCH[cls] and theirs.batch_first and theirs.num_layers == 2
    x = torch.randn(2, 5, 3)
    torch.testing.assert_close(ours(x)[0], theirs(x)[0], **TOL)
    back = cls.from_torch(theirs)
    for a, b in zip(ours.state_dict().values(), back.state_dict().values()):
        assert torch.equal(a, b)


def test_to_torch_refuses_what_torch_cannot_compute():
    with pytest.raises(ValueError, match="cannot compute layer_norm"):
        rnnkit.LSTM(3, 4, layer_norm=True).to_torch()
    with pytest.raises(ValueError, match="reset='before'"):
        rnnkit.GRU(3, 4, reset="before").to_torch()
    assert isinstance(rnnkit.LSTM(3, 4, recurrent_dropout=0.3).to_torch(), nn.LSTM)
    with pytest.raises(TypeError, match="expects torch.nn.LSTM, got GRU"):
        rnnkit.LSTM.from_torch(nn.GRU(3, 4))


def gru_before_loop(layer, x, h0):
    """Two-layer Cho-form GRU written from the equations, independent of rnnkit's cells."""
    outputs = x
    finals = []
    for layer_index, h in enumerate(h0):
        W_ir, W_iz, W_in = getattr(layer, f"weight_ih_l{layer_index}").chunk(3)
        W_hr, W_hz, W_hn = getattr(layer, f"weight_hh_l{layer_index}").chunk(3)
        b_ir, b_iz, b_in = getattr(layer, f"bias_ih_l{layer_index}").chunk(3)
        b_hr, b_hz, b_hn = getattr(layer, f"bias_hh_l{layer_index}").chunk(3)
        steps = []
        for x_t in outputs:
            r = torch.sigmoid(x_t @ W_ir.T + b_ir + h @ W_hr.T + b_hr)
            z = torch.sigmoid(x_t @ W_iz.T + b_iz + h @ W_hz.T + b_hz)
            n = torch.tanh(x_t @ W_in.T + b_in + (r * h) @ W_hn.T + b_hn)
            h = (1 - z) * n + z * h
            steps.append(h)
        outputs = torch.stack(steps)
        finals.append(h)
    return outputs, torch.stack(finals)


def test_gru_reset_before_layer_matches_equation_loop():
    torch.manual_seed(1)
    layer = rnnkit.GRU(3, 4, 2, reset="before")
    x, h0 = torch.randn(6, 2, 3), torch.randn(2, 2, 4)
    out, h_n = layer(x, h0)
    expected_out, expected_h = gru_before_loop(layer, x, h0)
    torch.testing.assert_close(out, expected_out, **TOL)
    torch.testing.assert_close(h_n, expected_h, **TOL)


def test_lengths_equal_running_each_sequence_alone():
    torch.manual_seed(2)
    layer = rnnkit.GRU(3, 4, 2, bidirectional=True, reset="before", layer_norm=True)
    x = torch.randn(5, 3, 3)
    lengths = torch.tensor([5, 2, 3])
    out, h_n = layer(x, lengths=lengths)
    for b, n in enumerate(lengths.tolist()):
        alone_out, alone_h = layer(x[:n, b : b + 1])
        torch.testing.assert_close(out[:n, b], alone_out[:, 0], **TOL)
        torch.testing.assert_close(h_n[:, b], alone_h[:, 0], **TOL)
        assert not out[n:, b].any(), "padded steps give zero outputs"


def test_skip_connections_feed_input_to_every_layer_and_every_layer_to_output():
    torch.manual_seed(3)
    layer = rnnkit.LSTM(3, 4, 3, skip_connections=True)
    x = torch.randn(5, 2, 3)
    out, (h_n, _) = layer(x)
    assert out.shape == (5, 2, 12)
    assert layer.specs[1].input_size == 3 + 4 and layer.weight_ih_l1.shape == (16, 3 + 4)
    # rebuild the stack by hand from the cells' equations
    layer_input, outs = x, []
    for i, spec in enumerate(layer.specs):
        state, steps = spec.init_state(2, dtype=x.dtype), []
        for x_t in layer_input:
            o, state = spec.advance(layer.cell_weights(i), x_t, state)
            steps.append(o)
        o = torch.stack(steps)
        outs.append(o)
        layer_input = torch.cat([x, o], dim=-1)
    torch.testing.assert_close(out, torch.cat(outs, dim=-1), **TOL)
    torch.testing.assert_close(h_n[-1], outs[-1][-1], **TOL)


def test_dropout_between_layers():
    torch.manual_seed(4)
    layer = rnnkit.LSTM(3, 8, 2, dropout=0.5, backend="reference")
    x = torch.randn(4, 2, 3)
    layer.eval()
    a, b = layer(x)[0], layer(x)[0]
    torch.testing.assert_close(a, b, **TOL)
    layer.train()
    assert not torch.allclose(layer(x)[0], a)
    with pytest.warns(UserWarning, match="only acts between layers"):
        rnnkit.GRU(3, 4, 1, dropout=0.2)


def test_recurrent_dropout_uses_one_mask_per_sequence():
    """With one mask, a constant zero input and zero biases give the same mask pattern every step."""
    torch.manual_seed(5)
    layer = rnnkit.RNN(2, 6, bias=False, recurrent_dropout=0.5, nonlinearity="relu")
    with torch.no_grad():
        layer.weight_hh_l0.copy_(torch.eye(6))
    out, _ = layer(torch.zeros(4, 3, 2), torch.ones(1, 3, 6))
    zero_pattern = out[0] == 0
    assert zero_pattern.any() and (~zero_pattern).any()
    for t in range(1, 4):
        assert torch.equal(out[t] == 0, zero_pattern)


def test_zoneout_is_deterministic_at_eval_and_random_in_training():
    torch.manual_seed(6)
    layer = rnnkit.LSTM(3, 4, zoneout=0.5)
    x = torch.randn(6, 2, 3)
    first = layer(x)[0]
    assert not torch.allclose(first, layer(x)[0])
    layer.eval()
    torch.testing.assert_close(layer(x)[0], layer(x)[0], **TOL)


def test_unbatched_shapes_and_config_round_trip():
    layer = rnnkit.LSTM(3, 5, 2, bidirectional=True, proj_size=2, peephole=True)
    out, (h, c) = layer(torch.randn(7, 3))
    assert out.shape == (7, 4) and h.shape == (4, 2) and c.shape == (4, 5)
    rebuilt = rnnkit.Recurrent.from_config(layer.get_config())
    assert type(rebuilt) is rnnkit.LSTM and rebuilt.config == layer.config
    assert layer.hidden_size == 5 and layer.bidirectional  # torch.nn attribute names
    assert "peephole=True" in repr(layer)


LAYER_GRADCHECK = [
    ("lstm bidir lengths layer_norm peephole", rnnkit.LSTM, dict(bidirectional=True, layer_norm=True, peephole=True)),
    ("lstm recurrent_dropout zoneout", rnnkit.LSTM, dict(recurrent_dropout=0.3, zoneout=0.3, num_layers=2)),
    ("lstm skip projection", rnnkit.LSTM, dict(skip_connections=True, num_layers=2, proj_size=2)),
    (
        "gru before bidir skip",
        rnnkit.GRU,
        dict(reset="before", bidirectional=True, skip_connections=True, num_layers=2),
    ),
    ("gru layer_norm zoneout", rnnkit.GRU, dict(layer_norm=True, zoneout=0.4, recurrent_dropout=0.2)),
    ("rnn relu layer_norm bidir", rnnkit.RNN, dict(nonlinearity="relu", layer_norm=True, bidirectional=True)),
    ("rnn dropout between layers", rnnkit.RNN, dict(num_layers=2, dropout=0.3)),
]


@pytest.mark.parametrize("name, cls, kwargs", LAYER_GRADCHECK, ids=[n for n, *_ in LAYER_GRADCHECK])
def test_layer_gradcheck(name, cls, kwargs):
    torch.manual_seed(8)
    layer = cls(2, 3, **kwargs)
    x = torch.randn(4, 2, 2, requires_grad=True)
    D = 2 if layer.bidirectional else 1
    n = D * layer.num_layers
    h0 = torch.randn(n, 2, layer.config.output_size, requires_grad=True)
    extra = [torch.randn(n, 2, 3, requires_grad=True)] if cls is rnnkit.LSTM else []
    lengths = torch.tensor([4, 2])

    def run(x, h0, *rest):
        torch.manual_seed(0)  # identical masks on every evaluation
        state = (h0, rest[0]) if cls is rnnkit.LSTM else h0
        out, final = layer(x, state, lengths=lengths)
        return (out, *as_tuple(final))

    assert torch.autograd.gradcheck(run, (x, h0, *extra, *layer.parameters()))


@pytest.mark.parametrize(
    "call, error, match",
    [
        (lambda m: m(torch.randn(2, 3, 4, 5)), ValueError, r"shape \(T, B, I\) or \(T, I\)"),
        (lambda m: m(torch.randn(5, 2, 4)), ValueError, "4 features, expected input_size=3"),
        (lambda m: m(torch.randn(5, 2, 3, dtype=torch.float32)), TypeError, "dtype torch.float32 but the parameters"),
        (lambda m: m(torch.randn(5, 2, 3, device="meta")), TypeError, "on meta but the parameters are on cpu"),
        (lambda m: m(torch.randn(0, 2, 3)), ValueError, "empty time dimension"),
        (lambda m: m(torch.randn(5, 2, 3), lengths=[5, 6]), ValueError, r"lengths must lie in 1..5 .*got 6"),
        (lambda m: m(torch.randn(5, 2, 3), lengths=[5, 0]), ValueError, r"lengths must lie in 1..5 .*got 0"),
        (lambda m: m(torch.randn(5, 2, 3), lengths=[5, 2, 1]), ValueError, r"lengths must have shape \(2,\)"),
        (lambda m: m(torch.randn(5, 2, 3), lengths=torch.tensor([5.0, 2.0])), TypeError, "lengths must be integers"),
        (lambda m: m(torch.randn(5, 3), lengths=[5]), ValueError, "lengths need batched input"),
        (lambda m: m(torch.randn(5, 2, 3), torch.randn(2, 2, 4)), TypeError, r"pair \(h_0, c_0\)"),
        (
            lambda m: m(torch.randn(5, 2, 3), (torch.randn(1, 2, 4), torch.randn(2, 2, 4))),
            ValueError,
            r"h_0 must have shape \(2, 2, 4\), got \(1, 2, 4\)",
        ),
        (
            lambda m: m(torch.randn(5, 2, 3), (torch.randn(2, 2, 4), torch.randn(2, 2, 4).float())),
            TypeError,
            "c_0 has dtype torch.float32",
        ),
        (lambda m: m("not a tensor"), TypeError, "must be a torch.Tensor or PackedSequence, got str"),
        (
            lambda m: m(pack_padded_sequence(torch.randn(5, 2, 3), [5, 3]), lengths=[5, 3]),
            ValueError,
            "carries its own lengths",
        ),
    ],
)
def test_bad_layer_input(call, error, match):
    with pytest.raises(error, match=match):
        call(rnnkit.LSTM(3, 4, 2))


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: rnnkit.LSTM(3, 4, 0), "num_layers must be an integer >= 1, got 0"),
        (lambda: rnnkit.LSTM(3, 4, dropout=1.5), r"dropout must be a probability in \[0, 1\], got 1.5"),
        (lambda: rnnkit.GRU(3, 4, reset="sideways"), "reset must be 'after'"),
        (lambda: rnnkit.RNN(3, 4, 1, "sigmoid"), "nonlinearity must be 'tanh' or 'relu', got 'sigmoid'"),
        (lambda: rnnkit.LSTM(3, 4, backend="cuda-magic"), "backend must be one of"),
        (lambda: rnnkit.LSTM(3, 4, layer_norm=True, backend="torch"), "backend 'torch'.*computes only plain"),
        (lambda: rnnkit.LSTM(3, 4, layer_norm=True, backend="native"), "backend 'torch'.*computes only plain"),
        (lambda: rnnkit.LSTM(3, 4, proj_size=4), r"proj_size must be an integer in \[0, hidden_size=4\)"),
        (
            lambda: rnnkit.Recurrent.from_config({"cell": "lstm", "input_size": 3, "hidden_size": 4, "colour": 1}),
            "unknown key 'colour'",
        ),
        (
            lambda: rnnkit.Recurrent.from_config({"cell": "lstm", "input_size": "3", "hidden_size": 4}),
            "input_size must be int",
        ),
    ],
)
def test_bad_layer_arguments(make, match):
    with pytest.raises(ValueError, match=match):
        make()
