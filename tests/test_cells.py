"""Cells against torch.nn's cells and against the equations written out here, in float64."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import rnnkit
from rnnkit.cells import GRUCell, LSTMCell, RNNCell

pytestmark = pytest.mark.usefixtures("float64")
TOL = dict(rtol=1e-10, atol=1e-12)
B, I, H = 3, 5, 4


def copy_weights(ours, theirs):
    with torch.no_grad():
        for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
            getattr(ours, name).copy_(getattr(theirs, name))


@pytest.mark.parametrize(
    "ours_cls, torch_cls, kwargs",
    [
        (RNNCell, nn.RNNCell, {}),
        (RNNCell, nn.RNNCell, {"nonlinearity": "relu"}),
        (LSTMCell, nn.LSTMCell, {}),
        (GRUCell, nn.GRUCell, {}),
    ],
)
def test_cell_matches_torch(ours_cls, torch_cls, kwargs):
    torch.manual_seed(0)
    theirs = torch_cls(I, H, **kwargs)
    ours = ours_cls(I, H, **kwargs)
    copy_weights(ours, theirs)
    x = torch.randn(B, I, requires_grad=True)
    state = (torch.randn(B, H), torch.randn(B, H)) if ours_cls is LSTMCell else torch.randn(B, H)
    out, new_state = ours(x, state)
    expected = theirs(x, state)
    if ours_cls is LSTMCell:
        torch.testing.assert_close(new_state[0], expected[0], **TOL)
        torch.testing.assert_close(new_state[1], expected[1], **TOL)
        torch.testing.assert_close(out, expected[0], **TOL)
        expected = expected[0] + expected[1]
        got = new_state[0] + new_state[1]
    else:
        torch.testing.assert_close(out, expected, **TOL)
        got = out
    grads = torch.autograd.grad(got.sum(), [x, ours.weight_hh])
    want = torch.autograd.grad(expected.sum(), [x, theirs.weight_hh])
    for g, w in zip(grads, want):
        torch.testing.assert_close(g, w, **TOL)


def test_unbatched_cell_call():
    cell = LSTMCell(I, H)
    x = torch.randn(I)
    out, (h, c) = cell(x)
    batched_out, _ = cell(x.unsqueeze(0))
    assert out.shape == (H,) and h.shape == (H,) and c.shape == (H,)
    torch.testing.assert_close(out, batched_out[0], **TOL)


def test_gru_reset_before_follows_cho_equations():
    """n = tanh(W_in x + b_in + W_hn (r * h) + b_hn), written out independently of rnnkit."""
    torch.manual_seed(1)
    cell = GRUCell(I, H, reset="before")
    x, h = torch.randn(B, I), torch.randn(B, H)
    W_ir, W_iz, W_in = cell.weight_ih.chunk(3)
    W_hr, W_hz, W_hn = cell.weight_hh.chunk(3)
    b_ir, b_iz, b_in = cell.bias_ih.chunk(3)
    b_hr, b_hz, b_hn = cell.bias_hh.chunk(3)
    r = torch.sigmoid(x @ W_ir.T + b_ir + h @ W_hr.T + b_hr)
    z = torch.sigmoid(x @ W_iz.T + b_iz + h @ W_hz.T + b_hz)
    n = torch.tanh(x @ W_in.T + b_in + (r * h) @ W_hn.T + b_hn)
    expected = (1 - z) * n + z * h
    out, _ = cell(x, h)
    torch.testing.assert_close(out, expected, **TOL)
    # and the two forms really are different functions of the same weights
    after = GRUCell(I, H, reset="after")
    after.load_state_dict(cell.state_dict())
    assert not torch.allclose(after(x, h)[0], out)


def test_lstm_peephole_and_projection_follow_equations():
    torch.manual_seed(2)
    P = 2
    cell = LSTMCell(I, H, peephole=True, proj_size=P)
    x, h, c = torch.randn(B, I), torch.randn(B, P), torch.randn(B, H)
    g = x @ cell.weight_ih.T + cell.bias_ih + h @ cell.weight_hh.T + cell.bias_hh
    gi, gf, gg, go = g.chunk(4, dim=1)
    p_i, p_f, p_o = cell.weight_ch.chunk(3)
    i = torch.sigmoid(gi + p_i * c)
    f = torch.sigmoid(gf + p_f * c)
    c_new = f * c + i * torch.tanh(gg)
    o = torch.sigmoid(go + p_o * c_new)
    h_new = (o * torch.tanh(c_new)) @ cell.weight_hr.T
    out, (h_out, c_out) = cell(x, (h, c))
    torch.testing.assert_close(c_out, c_new, **TOL)
    torch.testing.assert_close(h_out, h_new, **TOL)
    assert out.shape == (B, P)


def test_layer_norm_lstm_follows_equations():
    torch.manual_seed(3)
    cell = LSTMCell(I, H, layer_norm=True)
    with torch.no_grad():  # move gains and shifts off their defaults so they matter
        for p in (cell.ln_ih_weight, cell.ln_hh_weight, cell.ln_cell_weight, cell.ln_cell_bias):
            p.uniform_(0.5, 1.5)
    x, h, c = torch.randn(B, I), torch.randn(B, H), torch.randn(B, H)

    def per_gate_ln(v, gain):
        blocks = v.view(B, 4, H)
        mean = blocks.mean(-1, keepdim=True)
        var = blocks.var(-1, unbiased=False, keepdim=True)
        return ((blocks - mean) / torch.sqrt(var + 1e-5)).reshape(B, 4 * H) * gain

    g = per_gate_ln(x @ cell.weight_ih.T, cell.ln_ih_weight) + cell.bias_ih
    g = g + per_gate_ln(h @ cell.weight_hh.T, cell.ln_hh_weight) + cell.bias_hh
    i, f, gg, o = g.chunk(4, dim=1)
    c_new = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(gg)
    mean, var = c_new.mean(-1, keepdim=True), c_new.var(-1, unbiased=False, keepdim=True)
    c_norm = (c_new - mean) / torch.sqrt(var + 1e-5) * cell.ln_cell_weight + cell.ln_cell_bias
    h_new = torch.sigmoid(o) * torch.tanh(c_norm)
    _, (h_out, c_out) = cell(x, (h, c))
    torch.testing.assert_close(c_out, c_new, **TOL)
    torch.testing.assert_close(h_out, h_new, **TOL)


def test_recurrent_dropout_mask_enters_only_the_recurrent_product():
    torch.manual_seed(4)
    cell = GRUCell(I, H, recurrent_dropout=0.5)
    plain = GRUCell(I, H)
    plain.load_state_dict(cell.state_dict())
    x, h = torch.randn(B, I), torch.randn(B, H)
    mask = torch.randint(0, 2, (B, H)).double() * 2.0
    r, z, n = plain.input_projection(x).chunk(3, dim=1)
    hr, hz, hn = plain.recurrent_projection(h * mask).chunk(3, dim=1)
    r, z = torch.sigmoid(r + hr), torch.sigmoid(z + hz)
    expected = (1 - z) * torch.tanh(n + r * hn) + z * h  # the carried h is not masked
    out, _ = cell(x, h, recurrent_mask=mask)
    torch.testing.assert_close(out, expected, **TOL)
    cell.eval()
    torch.testing.assert_close(cell(x, h)[0], plain(x, h)[0], **TOL)


def test_zoneout_keeps_masked_units_and_uses_expectation_at_eval():
    torch.manual_seed(5)
    cell = LSTMCell(I, H, zoneout=0.3)
    plain = LSTMCell(I, H)
    plain.load_state_dict(cell.state_dict())
    x, state = torch.randn(B, I), (torch.randn(B, H), torch.randn(B, H))
    new_h, new_c = plain(x, state)[1]
    mask = (torch.rand(B, H) < 0.5).double(), (torch.rand(B, H) < 0.5).double()
    _, (h, c) = cell(x, state, zoneout_mask=mask)
    torch.testing.assert_close(h, mask[0] * state[0] + (1 - mask[0]) * new_h, **TOL)
    torch.testing.assert_close(c, mask[1] * state[1] + (1 - mask[1]) * new_c, **TOL)
    cell.eval()
    _, (h, c) = cell(x, state)
    torch.testing.assert_close(h, 0.3 * state[0] + 0.7 * new_h, **TOL)


def test_default_init():
    torch.manual_seed(6)
    cell = LSTMCell(I, 16)
    bound = 1 / 16**0.5
    assert cell.weight_hh.abs().max() <= bound
    assert cell.weight_ih.std() > bound / 3  # uniform, not zeros
    forget = slice(16, 32)
    torch.testing.assert_close(cell.bias_ih[forget] + cell.bias_hh[forget], torch.ones(16))
    ln = GRUCell(I, H, layer_norm=True)
    assert torch.equal(ln.ln_hh_weight, torch.ones(3 * H))


def test_init_state():
    cell = LSTMCell(I, H, proj_size=2)
    h, c = cell.init_state(7)
    assert h.shape == (7, 2) and c.shape == (7, H) and not h.any()
    h = GRUCell(I, H).init_state(2, dtype=torch.float32)
    assert h.dtype == torch.float32 and h.shape == (2, H)


GRADCHECK_CELLS = [
    ("rnn tanh", lambda: RNNCell(I, H)),
    ("rnn relu", lambda: RNNCell(I, H, nonlinearity="relu")),
    ("rnn layer_norm", lambda: RNNCell(I, H, layer_norm=True)),
    ("lstm", lambda: LSTMCell(I, H)),
    ("lstm no bias", lambda: LSTMCell(I, H, bias=False)),
    ("lstm peephole", lambda: LSTMCell(I, H, peephole=True)),
    ("lstm projection", lambda: LSTMCell(I, H, proj_size=2)),
    ("lstm layer_norm", lambda: LSTMCell(I, H, layer_norm=True)),
    ("lstm recurrent_dropout", lambda: LSTMCell(I, H, recurrent_dropout=0.4)),
    ("lstm zoneout", lambda: LSTMCell(I, H, zoneout=0.4)),
    ("gru after", lambda: GRUCell(I, H)),
    ("gru before", lambda: GRUCell(I, H, reset="before")),
    ("gru before layer_norm", lambda: GRUCell(I, H, reset="before", layer_norm=True)),
    ("gru zoneout", lambda: GRUCell(I, H, zoneout=0.4, recurrent_dropout=0.3)),
]


@pytest.mark.parametrize("name, make", GRADCHECK_CELLS, ids=[n for n, _ in GRADCHECK_CELLS])
def test_cell_gradcheck(name, make):
    torch.manual_seed(7)
    cell = make()
    x = torch.randn(2, I, requires_grad=True)
    states = [torch.randn(2, n, requires_grad=True) for n in cell.state_sizes]
    params = list(cell.parameters())

    def run(x, *tensors):
        state = tuple(tensors[: len(states)]) if len(states) > 1 else tensors[0]
        torch.manual_seed(0)  # the same dropout and zoneout masks on every evaluation
        out, new = cell(x, state)
        return (out, *rnnkit.cells.as_tuple(new))

    assert torch.autograd.gradcheck(run, (x, *states, *params))


@pytest.mark.parametrize(
    "call, error, match",
    [
        (lambda c: c(torch.randn(2, 3, I)), ValueError, r"shape \(batch, 5\)"),
        (lambda c: c(torch.randn(2, I + 1)), ValueError, "6 features, expected input_size=5"),
        (lambda c: c(torch.randn(2, I, dtype=torch.float32)), TypeError, "dtype torch.float32"),
        (lambda c: c(torch.ones(2, I, dtype=torch.long)), TypeError, "floating-point"),
        (lambda c: c([1.0] * I), TypeError, "torch.Tensor"),
        (lambda c: c(torch.randn(2, I), torch.randn(2, H)), TypeError, r"pair \(h, c\)"),
        (lambda c: c(torch.randn(2, I), (torch.randn(3, H), torch.randn(2, H))), ValueError, r"\(2, 4\)"),
        (lambda c: c(torch.randn(2, I), (torch.randn(2, H), torch.randn(2, H + 1))), ValueError, "state c"),
    ],
)
def test_bad_cell_input(call, error, match):
    with pytest.raises(error, match=match):
        call(LSTMCell(I, H))


def test_bad_cell_device():
    cell = GRUCell(I, H)
    x = torch.randn(2, I, device="meta")
    with pytest.raises(TypeError, match="is on meta but the parameters are on cpu"):
        cell(x)


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: RNNCell(I, H, nonlinearity="sigmoid"), "nonlinearity must be 'tanh' or 'relu', got 'sigmoid'"),
        (lambda: GRUCell(I, H, reset="middle"), "reset must be 'after'"),
        (lambda: LSTMCell(I, -1), "hidden_size must be an integer >= 0, got -1"),  # 0 is allowed, as in torch
        (lambda: LSTMCell(I, H, proj_size=H), "proj_size must be smaller"),
        (lambda: LSTMCell(I, H, zoneout=1.0), r"zoneout must be a probability in \[0, 1\), got 1.0"),
        (lambda: GRUCell(I, H, recurrent_dropout=-0.1), "recurrent_dropout"),
    ],
)
def test_bad_cell_arguments(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_forward_uses_functional_dropout_free_path_in_eval():
    cell = RNNCell(I, H, recurrent_dropout=0.5).eval()
    x, h = torch.randn(B, I), torch.randn(B, H)
    expected = torch.tanh(F.linear(x, cell.weight_ih, cell.bias_ih) + F.linear(h, cell.weight_hh, cell.bias_hh))
    torch.testing.assert_close(cell(x, h)[0], expected, **TOL)
