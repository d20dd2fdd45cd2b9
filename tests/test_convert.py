"""rnnkit.convert.from_keras_weights against Keras' equations written in numpy (no TensorFlow needed).

The arrays are built by hand in Keras' layout (kernel (I, k·H), recurrent_kernel (H, k·H), gates side by side in
Keras' order i,f,c,o or z,r,h); the reference runs Keras' recurrences as Keras writes them, batch-major, and the
converted weights loaded into torch.nn.LSTM/GRU (and rnnkit.GRU(reset="before")) must give the same outputs.
"""

import numpy as np
import pytest
import torch
from torch import nn

import rnnkit
from rnnkit.convert import from_keras_weights

B, T, I, H = 3, 5, 4, 6
ATOL = 1e-5


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def keras_lstm(x, kernel, recurrent_kernel, bias=None, go_backwards=False):
    """keras.layers.LSTM (recurrent_activation="sigmoid"): x (B, T, I) -> outputs (B, T, H), h_T, c_T."""
    H = recurrent_kernel.shape[0]
    bias = np.zeros(4 * H) if bias is None else bias
    h = c = np.zeros((x.shape[0], H))
    steps = range(x.shape[1])[::-1] if go_backwards else range(x.shape[1])
    outputs = []
    for t in steps:
        z = x[:, t] @ kernel + h @ recurrent_kernel + bias
        i, f, cc, o = (z[:, g * H : (g + 1) * H] for g in range(4))
        i, f, o = sigmoid(i), sigmoid(f), sigmoid(o)
        c = f * c + i * np.tanh(cc)
        h = o * np.tanh(c)
        outputs.append(h)
    return np.stack(outputs, 1), h, c


def keras_gru(x, kernel, recurrent_kernel, bias=None, reset_after=True, go_backwards=False):
    """keras.layers.GRU (recurrent_activation="sigmoid") in either reset_after form: outputs (B, T, H), h_T."""
    H = recurrent_kernel.shape[0]
    if bias is None:
        bias = np.zeros((2, 3 * H)) if reset_after else np.zeros(3 * H)
    input_bias, recurrent_bias = (bias[0], bias[1]) if reset_after else (bias, None)
    split = lambda m: (m[:, :H], m[:, H : 2 * H], m[:, 2 * H :])  # noqa: E731 - z, r, h
    h = np.zeros((x.shape[0], H))
    steps = range(x.shape[1])[::-1] if go_backwards else range(x.shape[1])
    outputs = []
    for t in steps:
        x_z, x_r, x_h = split(x[:, t] @ kernel + input_bias)
        if reset_after:
            r_z, r_r, r_h = split(h @ recurrent_kernel + recurrent_bias)
            z, r = sigmoid(x_z + r_z), sigmoid(x_r + r_r)
            hh = np.tanh(x_h + r * r_h)
        else:
            z = sigmoid(x_z + h @ recurrent_kernel[:, :H])
            r = sigmoid(x_r + h @ recurrent_kernel[:, H : 2 * H])
            hh = np.tanh(x_h + (r * h) @ recurrent_kernel[:, 2 * H :])
        h = z * h + (1 - z) * hh
        outputs.append(h)
    return np.stack(outputs, 1), h


def keras_arrays(kind, rng, use_bias=True, reset_after=True, input_size=I):
    """One layer's get_weights() in Keras' layout, float32 as Keras keeps them."""
    k = {"lstm": 4, "gru": 3}[kind]
    arrays = [rng.normal(0, 0.5, (input_size, k * H)), rng.normal(0, 0.5, (H, k * H))]
    if use_bias:
        shape = (2, k * H) if kind == "gru" and reset_after else (k * H,)
        arrays.append(rng.normal(0, 0.5, shape))
    return [a.astype(np.float32) for a in arrays]


def torch_run(module, x):
    with torch.no_grad():
        out, state = module(torch.from_numpy(x))
    return out.numpy(), tuple(s.numpy() for s in state) if isinstance(state, tuple) else state.numpy()


@pytest.fixture
def rng():
    return np.random.default_rng(0)


@pytest.fixture
def x(rng):
    return rng.normal(0, 1, (B, T, I)).astype(np.float32)


@pytest.mark.parametrize("use_bias", [True, False])
def test_lstm_matches_keras(rng, x, use_bias):
    weights = keras_arrays("lstm", rng, use_bias=use_bias)
    lstm = nn.LSTM(I, H, batch_first=True, bias=use_bias)
    lstm.load_state_dict(from_keras_weights("lstm", weights))
    out, (h_n, c_n) = torch_run(lstm, x)
    ref_out, ref_h, ref_c = keras_lstm(x.astype(np.float64), *(w.astype(np.float64) for w in weights))
    np.testing.assert_allclose(out, ref_out, atol=ATOL, rtol=0)
    np.testing.assert_allclose(h_n[0], ref_h, atol=ATOL, rtol=0)
    np.testing.assert_allclose(c_n[0], ref_c, atol=ATOL, rtol=0)


@pytest.mark.parametrize("use_bias", [True, False])
def test_gru_reset_after_matches_keras(rng, x, use_bias):
    weights = keras_arrays("gru", rng, use_bias=use_bias)
    gru = nn.GRU(I, H, batch_first=True, bias=use_bias)
    gru.load_state_dict(from_keras_weights("gru", weights))
    out, h_n = torch_run(gru, x)
    ref_out, ref_h = keras_gru(x.astype(np.float64), *(w.astype(np.float64) for w in weights), reset_after=True)
    np.testing.assert_allclose(out, ref_out, atol=ATOL, rtol=0)
    np.testing.assert_allclose(h_n[0], ref_h, atol=ATOL, rtol=0)


def test_gru_reset_before_matches_keras_in_rnnkit_cell(rng, x):
    # reset_after=False is Cho et al.'s form: rnnkit's GRUCell(reset="before") computes it (the cell's names are the
    # layer's without the _l0 suffix, as torch's cells).
    weights = keras_arrays("gru", rng, reset_after=False)
    converted = from_keras_weights("gru", weights, reset_after=False)
    assert torch.equal(converted["bias_hh_l0"], torch.zeros(3 * H))
    cell = rnnkit.GRUCell(I, H, reset="before")
    cell.load_state_dict({name.removesuffix("_l0"): value for name, value in converted.items()})
    h = torch.zeros(B, H)
    outs = []
    with torch.no_grad():
        for t in range(T):
            _, h = cell(torch.from_numpy(x[:, t]), h)
            outs.append(h)
    ref_out, _ = keras_gru(x.astype(np.float64), *(w.astype(np.float64) for w in weights), reset_after=False)
    np.testing.assert_allclose(torch.stack(outs, 1).numpy(), ref_out, atol=ATOL, rtol=0)


def test_gru_reset_before_is_not_torchs_gru(rng, x):
    # Why reset_after=False needs reset="before": torch.nn.GRU computes the other form and gives other outputs.
    weights = keras_arrays("gru", rng, reset_after=False)
    gru = nn.GRU(I, H, batch_first=True)
    gru.load_state_dict(from_keras_weights("gru", weights, reset_after=False))
    out, _ = torch_run(gru, x)
    ref_out, _ = keras_gru(x.astype(np.float64), *(w.astype(np.float64) for w in weights), reset_after=False)
    assert np.abs(out - ref_out).max() > 1e-3


LAYER_CASES = [
    ("lstm", dict(), {}),
    ("gru", dict(reset_after=True), {}),
    ("gru", dict(reset_after=False), {"reset": "before"}),
]


@pytest.mark.parametrize("kind, options, rnnkit_options", LAYER_CASES, ids=["lstm", "gru-after", "gru-before"])
def test_rnnkit_layers_match_keras(rng, x, kind, options, rnnkit_options):
    # rnnkit's layers hold torch's names (issue 18), so the same dict loads into them.
    weights = keras_arrays(kind, rng, **options)
    layer = {"lstm": rnnkit.LSTM, "gru": rnnkit.GRU}[kind](I, H, batch_first=True, **rnnkit_options)
    layer.load_state_dict(from_keras_weights(kind, weights, **options))
    out, state = torch_run(layer, x)
    x64, w64 = x.astype(np.float64), [w.astype(np.float64) for w in weights]
    if kind == "lstm":
        ref_out, ref_h, ref_c = keras_lstm(x64, *w64)
        np.testing.assert_allclose(state[1][0], ref_c, atol=ATOL, rtol=0)
    else:
        ref_out, ref_h = keras_gru(x64, *w64, reset_after=options["reset_after"])
    np.testing.assert_allclose(out, ref_out, atol=ATOL, rtol=0)
    np.testing.assert_allclose((state[0] if kind == "lstm" else state)[0], ref_h, atol=ATOL, rtol=0)


@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_bidirectional_matches_keras(rng, x, kind):
    # keras.layers.Bidirectional(layer): get_weights() is the forward layer's then the backward layer's; the
    # backward one reads the sequence reversed and its outputs are reversed back, then concatenated.
    forward, backward = keras_arrays(kind, rng), keras_arrays(kind, rng)
    module = {"lstm": nn.LSTM, "gru": nn.GRU}[kind](I, H, batch_first=True, bidirectional=True)
    module.load_state_dict(from_keras_weights(kind, forward + backward, bidirectional=True))
    out, state = torch_run(module, x)
    x64 = x.astype(np.float64)
    run = keras_lstm if kind == "lstm" else keras_gru
    fw = run(x64, *(w.astype(np.float64) for w in forward))
    bw = run(x64, *(w.astype(np.float64) for w in backward), go_backwards=True)
    ref_out = np.concatenate([fw[0], bw[0][:, ::-1]], axis=-1)
    np.testing.assert_allclose(out, ref_out, atol=ATOL, rtol=0)
    h_n = state[0] if kind == "lstm" else state
    np.testing.assert_allclose(h_n[0], fw[1], atol=ATOL, rtol=0)
    np.testing.assert_allclose(h_n[1], bw[1], atol=ATOL, rtol=0)


def test_layer_index_names_a_stacked_layer(rng, x):
    # Two stacked Keras LSTMs, converted one layer at a time, load into a two-layer torch LSTM.
    first, second = keras_arrays("lstm", rng), keras_arrays("lstm", rng, input_size=H)
    lstm = nn.LSTM(I, H, num_layers=2, batch_first=True)
    lstm.load_state_dict({**from_keras_weights("lstm", first), **from_keras_weights("lstm", second, layer=1)})
    out, _ = torch_run(lstm, x)
    hidden, _, _ = keras_lstm(x.astype(np.float64), *(w.astype(np.float64) for w in first))
    ref_out, _, _ = keras_lstm(hidden, *(w.astype(np.float64) for w in second))
    np.testing.assert_allclose(out, ref_out, atol=ATOL, rtol=0)


def test_names_order_shapes_and_dtype(rng):
    converted = from_keras_weights("gru", keras_arrays("gru", rng), bidirectional=False)
    assert list(converted) == ["weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0"]
    assert [tuple(v.shape) for v in converted.values()] == [(3 * H, I), (3 * H, H), (3 * H,), (3 * H,)]
    assert all(v.dtype == torch.float32 and v.is_contiguous() for v in converted.values())
    # Keras' gates z, r, h become torch's r, z, n: the first H rows of weight_ih are Keras' columns H..2H.
    kernel = keras_arrays("gru", np.random.default_rng(0))[0]
    again = from_keras_weights("gru", [kernel, *keras_arrays("gru", np.random.default_rng(0))[1:]])
    np.testing.assert_array_equal(again["weight_ih_l0"][:H].numpy(), kernel[:, H : 2 * H].T)
    np.testing.assert_array_equal(again["weight_ih_l0"][H : 2 * H].numpy(), kernel[:, :H].T)


def test_arrays_are_copied(rng):
    weights = keras_arrays("lstm", rng)
    converted = from_keras_weights("lstm", weights)
    weights[0][:] = 0.0
    assert converted["weight_ih_l0"].abs().sum() > 0


ERRORS = [
    (dict(kind="rnn"), r"kind must be 'lstm' or 'gru', got 'rnn'"),
    (dict(n=1), r"a Keras LSTM has 3 arrays \(kernel, recurrent_kernel, bias; 2 without a bias\), got 1"),
    (dict(n=4), r"has 3 arrays .*got 4"),
    (dict(bidirectional=True), r"in Bidirectional has 6 arrays \(forward then backward.*got 3"),
    (dict(recurrent=(H, 3 * H)), r"recurrent_kernel must have shape \(H, 4·H\) for a Keras LSTM, got \(6, 18\)"),
    (dict(kernel=(I, 3 * H)), r"kernel must have shape \(input_size, 24\), got \(4, 18\)"),
    (dict(kernel=(4 * H,)), r"kernel must have shape \(input_size, 24\), got \(24,\)"),
    (dict(bias=(2, 4 * H)), r"bias must have shape \(24,\), got \(2, 24\)"),
    (dict(kind="gru", bias=(3 * H,)), r"bias must have shape \(2, 18\) with reset_after=True, got \(18,\); "
                                      r"for a bias of shape \(3H,\) pass reset_after=False"),  # fmt: skip
    (dict(kind="gru", reset_after=False, bias=(2, 3 * H)), r"bias must have shape \(18,\) with reset_after=False, "
                                                           r"got \(2, 18\); .*pass reset_after=True"),  # fmt: skip
    (dict(layer=-1), r"layer must be an integer >= 0, got -1"),
    (dict(dtype=np.int64), r"floating-point arrays, got dtype int64"),
]


@pytest.mark.parametrize("case, message", ERRORS, ids=[m[:40] for _, m in ERRORS])
def test_errors(case, message):
    kind = case.get("kind", "lstm")
    k = {"lstm": 4, "gru": 3}.get(kind, 4)
    shapes = [case.get("kernel", (I, k * H)), case.get("recurrent", (H, k * H)), case.get("bias", None)]
    if shapes[2] is None:
        shapes[2] = (2, 3 * H) if kind == "gru" and case.get("reset_after", True) else (k * H,)
    dtype = case.get("dtype", np.float32)
    arrays = [np.ones(s, dtype=dtype) for s in shapes]
    arrays = (arrays * 2)[: case.get("n", 3)]
    options = {key: case[key] for key in ("reset_after", "bidirectional", "layer") if key in case}
    with pytest.raises(ValueError, match=message):
        from_keras_weights(kind, arrays, **options)


def test_bidirectional_directions_must_agree(rng):
    forward, backward = keras_arrays("lstm", rng), keras_arrays("lstm", rng, input_size=I + 1)
    with pytest.raises(ValueError, match=r"forward and backward layers must have the same shapes"):
        from_keras_weights("lstm", forward + backward, bidirectional=True)


def test_a_single_array_is_not_a_list(rng):
    with pytest.raises(ValueError, match=r"weights must be the list layer.get_weights\(\) returns, got ndarray"):
        from_keras_weights("lstm", keras_arrays("lstm", rng)[0])
