"""PyTorch's own RNN tests, run on torch.nn and on rnnkit with the implementation as a parameter.

Ported from PyTorch's repository: test/test_nn.py (TestNN, and TestNNDeviceType instantiated on the CPU),
test/nn/test_pruning.py, and test/test_modules.py for the ModuleInfo entries of RNN, GRU, LSTM, RNNCell, GRUCell
and LSTMCell in torch/testing/_internal/common_modules.py (their inputs and error inputs, written out here). Each
test names the original in a comment. CUDA- and cuDNN-only tests are left out; tests PyTorch guards with a cuDNN
check but whose loop also runs on the CPU keep their CPU half. test/nn/test_packed_sequence.py runs no RNN module
(it tests torch.nn.utils.rnn alone), so nothing is ported from it: packed sequences through a module are
test_variable_sequence's subject.

``nn_impl`` gives the six classes. Cells are stepped through ``nn_impl.step``, which returns torch's value (h',
or (h', c') for the LSTM cell): rnnkit cells return ``(output, new_state)`` by design, the one place the two
are called differently (see docs/torch_differences.md; test_cell_returns_new_state checks the literal call).

Errors: PyTorch checks the exception type and a regex of its own wording. Here the type is torch's and the regex
asks for the facts a message must state (the argument's name, the sizes involved), checked on torch's message too.
Tolerances are torch's: ``torch.testing.assert_close`` has the defaults of PyTorch's ``TestCase.assertEqual``.
Deliberate differences are ``xfail(strict=True)`` for rnnkit only and listed in docs/torch_differences.md.
"""

from __future__ import annotations

import copy
import io
import random
from contextlib import contextmanager
from dataclasses import dataclass
from itertools import product

import pytest
import torch
import torch.nn.utils.parametrize as parametrize
import torch.nn.utils.prune as prune
import torch.nn.utils.rnn as rnn_utils
from torch import nn
from torch.autograd import gradcheck, gradgradcheck
from torch.testing import assert_close, make_tensor

import rnnkit


@dataclass(frozen=True)
class Impl:
    """One implementation of PyTorch's recurrent modules."""

    name: str
    RNN: type
    LSTM: type
    GRU: type
    RNNCell: type
    LSTMCell: type
    GRUCell: type

    def step(self, cell, x, hx=None):
        """One cell step as torch returns it: h' for RNNCell/GRUCell, (h', c') for LSTMCell."""
        if self.name == "rnnkit":
            return cell(x, hx)[1]  # rnnkit cells return (output, new_state)
        return cell(x, hx)

    def __repr__(self) -> str:
        return self.name


TORCH = Impl("torch", nn.RNN, nn.LSTM, nn.GRU, nn.RNNCell, nn.LSTMCell, nn.GRUCell)
RNNKIT = Impl("rnnkit", rnnkit.RNN, rnnkit.LSTM, rnnkit.GRU, rnnkit.RNNCell, rnnkit.LSTMCell, rnnkit.GRUCell)


def impls(rnnkit_xfail: str | None = None) -> list:
    """Both implementations; with ``rnnkit_xfail``, rnnkit is a strict expected failure for that reason."""
    marks = [pytest.mark.xfail(strict=True, reason=rnnkit_xfail)] if rnnkit_xfail else []
    return [pytest.param(TORCH, id="torch"), pytest.param(RNNKIT, id="rnnkit", marks=marks)]


with_impl = pytest.mark.parametrize("nn_impl", impls())
MODES = ["RNN", "GRU", "LSTM"]
double = pytest.mark.usefixtures("float64")  # PyTorch's @set_default_dtype(torch.double)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
    random.seed(0)


def facts(*words: str) -> str:
    """A regex that matches a message containing every one of ``words`` (as whole words), in any order."""
    return "".join(rf"(?=.*(?<!\w){w}(?!\w))" for w in words)


def assert_not_close(a, b) -> None:
    """PyTorch's assertNotEqual: fails where assertEqual (assert_close's tolerances) would pass."""
    with pytest.raises(AssertionError):
        assert_close(a, b)


# -- test/test_nn.py, TestNN: cells ----------------------------------------------------------------------------


@with_impl
@pytest.mark.parametrize("mode", ["RNNCell", "GRUCell"])
@pytest.mark.parametrize("bias", [True, False])
def test_RNN_cell(nn_impl, mode, bias):
    # TestNN.test_RNN_cell: six steps and a backward pass (PyTorch's smoke test; shapes and gradients added).
    input = torch.randn(3, 10)
    hx = torch.randn(3, 20)
    cell = getattr(nn_impl, mode)(10, 20, bias=bias)
    for _ in range(6):
        hx = nn_impl.step(cell, input, hx)
    assert hx.shape == (3, 20)
    hx.sum().backward()
    assert all(p.grad is not None for p in cell.parameters())
    assert len(list(cell.parameters())) == (4 if bias else 2)


@with_impl
def test_RNN_cell_forward_zero_hidden_size(nn_impl):
    # TestNN.test_RNN_cell_forward_zero_hidden_size
    input = torch.randn(3, 10)
    hx = torch.randn(3, 0)
    for cell in (
        nn_impl.RNNCell(10, 0, nonlinearity="relu"),
        nn_impl.RNNCell(10, 0, nonlinearity="tanh"),
        nn_impl.GRUCell(10, 0),
    ):
        assert nn_impl.step(cell, input, hx).shape == torch.Size([3, 0])


NO_BROADCASTING = {
    # Test hidden/input batch size broadcasting
    "batch": (torch.Size([3, 10]), torch.Size([1, 20]), torch.Size([3, 20])),
    # Test hx's hidden_size vs module's hidden_size broadcasting
    "hidden_size": (torch.Size([3, 10]), torch.Size([3, 1]), torch.Size([3, 20])),
    # Test input's input_size vs module's input_size broadcasting
    "input_size": (torch.Size([3, 1]), torch.Size([3, 20]), torch.Size([3, 20])),
}


@with_impl
@pytest.mark.parametrize("case", list(NO_BROADCASTING))
@pytest.mark.parametrize("mode", ["RNNCell", "GRUCell", "LSTMCell-h", "LSTMCell-c"])
def test_RNN_cell_no_broadcasting(nn_impl, case, mode):
    # TestNN.test_RNN_cell_no_broadcasting: sizes that broadcast are refused with a RuntimeError.
    input_shape, bad_shape, good_shape = NO_BROADCASTING[case]
    input, bad_hx, good_hx = torch.randn(input_shape), torch.randn(bad_shape), torch.randn(good_shape)
    cell = getattr(nn_impl, mode.split("-")[0])(10, 20)
    hx = {"LSTMCell-h": (bad_hx, good_hx), "LSTMCell-c": (good_hx, bad_hx)}.get(mode, bad_hx)
    with pytest.raises(RuntimeError):
        nn_impl.step(cell, input, hx)


@with_impl
@pytest.mark.parametrize("bias", [True, False])
def test_LSTM_cell(nn_impl, bias):
    # TestNN.test_LSTM_cell: six steps and a backward pass (PyTorch's smoke test; shapes and gradients added).
    input = torch.randn(3, 10)
    hx = torch.randn(3, 20)
    cx = torch.randn(3, 20)
    lstm = nn_impl.LSTMCell(10, 20, bias=bias)
    for _ in range(6):
        hx, cx = nn_impl.step(lstm, input, (hx, cx))
    assert hx.shape == cx.shape == (3, 20)
    (hx + cx).sum().backward()
    assert all(p.grad is not None for p in lstm.parameters())


@with_impl
def test_LSTM_cell_forward_input_size(nn_impl):
    # TestNN.test_LSTM_cell_forward_input_size
    input = torch.randn(3, 11)
    hx = torch.randn(3, 20)
    cx = torch.randn(3, 20)
    lstm = nn_impl.LSTMCell(10, 20)
    with pytest.raises(Exception):  # noqa: B017 - PyTorch asserts Exception
        nn_impl.step(lstm, input, (hx, cx))


@with_impl
def test_LSTM_cell_forward_hidden_size(nn_impl):
    # TestNN.test_LSTM_cell_forward_hidden_size
    input = torch.randn(3, 10)
    hx = torch.randn(3, 21)
    cx = torch.randn(3, 20)
    lstm = nn_impl.LSTMCell(10, 20)
    with pytest.raises(Exception):  # noqa: B017 - PyTorch asserts Exception
        nn_impl.step(lstm, input, (hx, cx))
    with pytest.raises(Exception):  # noqa: B017
        nn_impl.step(lstm, input, (cx, hx))


@pytest.mark.parametrize(
    "nn_impl", impls("rnnkit cells return (output, new_state), one contract for every cell (DESIGN.md section 2)")
)
@pytest.mark.parametrize("mode", ["RNNCell", "GRUCell", "LSTMCell"])
def test_cell_returns_new_state(nn_impl, mode):
    # The literal call of TestNN.test_RNN_cell / test_LSTM_cell: `hx = cell(input, hx)`, `hx, cx = lstm(...)`.
    cell = getattr(nn_impl, mode)(10, 20)
    input, hx = torch.randn(3, 10), torch.randn(3, 20)
    state = (hx, torch.randn(3, 20)) if mode == "LSTMCell" else hx
    result = cell(input, state)
    if mode == "LSTMCell":
        assert isinstance(result, tuple) and len(result) == 2
        assert all(isinstance(t, torch.Tensor) and t.shape == (3, 20) for t in result)
    else:
        assert isinstance(result, torch.Tensor) and result.shape == (3, 20)


# -- test/test_nn.py, TestNN: layers ---------------------------------------------------------------------------

INPUT_SIZE, HIDDEN_SIZE, PROJ_SIZE, NUM_LAYERS, BATCH_SIZE, SEQ_LEN = 3, 5, 2, 2, 4, 6
BAD_SIZE = 7  # prime number so that no size can divide it.


def update_shape(shape, dim, new_dim_size):
    new_shape = list(shape)
    new_shape[dim] = new_dim_size
    return tuple(new_shape)


CORRECT_INPUT = (SEQ_LEN, BATCH_SIZE, INPUT_SIZE)
CORRECT_HIDDEN = (NUM_LAYERS, BATCH_SIZE, HIDDEN_SIZE)
ARGS_CHECK_CASES = {
    "input batch size": (update_shape(CORRECT_INPUT, 1, BAD_SIZE), CORRECT_HIDDEN),
    "hidden batch size": (CORRECT_INPUT, update_shape(CORRECT_HIDDEN, 1, BAD_SIZE)),
    "input size": (update_shape(CORRECT_INPUT, 2, BAD_SIZE), CORRECT_HIDDEN),
    "hidden size": (CORRECT_INPUT, update_shape(CORRECT_HIDDEN, 2, BAD_SIZE)),
    "hidden[0]": (CORRECT_INPUT, update_shape(CORRECT_HIDDEN, 0, BAD_SIZE)),
}


@with_impl
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("case", list(ARGS_CHECK_CASES))
def test_rnn_args_check(nn_impl, mode, case):
    # TestNN.test_rnn_args_check: a wrong input or hidden shape raises a RuntimeError.
    input_shape, hidden_shape = ARGS_CHECK_CASES[case]
    input, hidden = torch.randn(input_shape), torch.randn(hidden_shape)
    if mode != "LSTM":
        inputs = [(input, hidden)]
    elif hidden_shape == CORRECT_HIDDEN:
        inputs = [(input, (hidden, hidden))]
    else:
        good_hidden = torch.randn(CORRECT_HIDDEN)
        inputs = [(input, (hidden, good_hidden)), (input, (good_hidden, hidden))]
    for input, hidden in inputs:
        model = getattr(nn_impl, mode)(INPUT_SIZE, HIDDEN_SIZE, NUM_LAYERS)
        with pytest.raises(RuntimeError):
            model(input, hidden)


CORRECT_H = (NUM_LAYERS, BATCH_SIZE, PROJ_SIZE)
CORRECT_C = (NUM_LAYERS, BATCH_SIZE, HIDDEN_SIZE)
PROJ_ARGS_CHECK_CASES = {
    "input batch size": (update_shape(CORRECT_INPUT, 1, BAD_SIZE), CORRECT_H, CORRECT_C),
    "hidden batch size": (CORRECT_INPUT, update_shape(CORRECT_H, 1, BAD_SIZE), update_shape(CORRECT_C, 1, BAD_SIZE)),
    "input size": (update_shape(CORRECT_INPUT, 2, BAD_SIZE), CORRECT_H, CORRECT_C),
    "hidden size": (CORRECT_INPUT, update_shape(CORRECT_H, 2, BAD_SIZE), update_shape(CORRECT_C, 2, BAD_SIZE)),
    "hidden[0]": (CORRECT_INPUT, update_shape(CORRECT_H, 0, BAD_SIZE), update_shape(CORRECT_C, 0, BAD_SIZE)),
    "proj size = hidden size": (CORRECT_INPUT, update_shape(CORRECT_H, 0, HIDDEN_SIZE), CORRECT_C),
    "proj size != hidden size": (CORRECT_INPUT, update_shape(CORRECT_H, 0, BAD_SIZE), CORRECT_C),
    "cell size != hidden size": (CORRECT_INPUT, CORRECT_H, update_shape(CORRECT_C, 0, BAD_SIZE)),
}


@with_impl
@pytest.mark.parametrize("case", list(PROJ_ARGS_CHECK_CASES))
def test_projections_lstm_args_check(nn_impl, case):
    # TestNN.test_projections_lstm_args_check
    input_shape, h_shape, c_shape = PROJ_ARGS_CHECK_CASES[case]
    model = nn_impl.LSTM(INPUT_SIZE, HIDDEN_SIZE, NUM_LAYERS, proj_size=PROJ_SIZE)
    with pytest.raises(RuntimeError):
        model(torch.randn(input_shape), (torch.randn(h_shape), torch.randn(c_shape)))


@with_impl
@pytest.mark.parametrize("mode", MODES)
def test_rnn_initial_hidden_state(nn_impl, mode):
    # TestNN.test_rnn_initial_hidden_state: a zero initial state is the default one.
    rnn = getattr(nn_impl, mode)(30, 20, 2)
    input = torch.randn(10, 32, 30)
    hidden = torch.zeros(2, 32, 20)
    if mode == "LSTM":
        hidden = (hidden, hidden)
    output1, hidden1 = rnn(input, hidden)
    output2, hidden2 = rnn(input)
    assert_close(output1, output2)
    assert_close(hidden1, hidden2)


@with_impl
@pytest.mark.parametrize("bidir", [False, True])
def test_projections_lstm_initial_hidden_state(nn_impl, bidir):
    # TestNN.test_projections_lstm_initial_hidden_state
    rnn = nn_impl.LSTM(30, 20, 2, bidirectional=bidir, proj_size=10)
    num_dirs = 2 if bidir else 1
    input = torch.randn(10, 32, 30)
    hidden = (torch.zeros(2 * num_dirs, 32, 10), torch.zeros(2 * num_dirs, 32, 20))
    output1, hidden1 = rnn(input, hidden)
    output2, hidden2 = rnn(input)
    assert_close(output1, output2)
    assert_close(hidden1, hidden2)


@with_impl
@pytest.mark.parametrize("mode", ["RNN", "GRU"])
def test_projections_errors_on_gru_and_rnn(nn_impl, mode):
    # TestNN.test_projections_errors_on_gru_and_rnn ("proj_size argument is only supported for LSTM, not RNN or GRU")
    with pytest.raises(ValueError, match=facts("proj_size", "LSTM")):
        getattr(nn_impl, mode)(30, 20, 2, proj_size=10)


FORWARD_EXCEPTION_CASES = {  # module, its hidden of the wrong size, the expected size of h
    "LSTM": ("LSTM", {}, 20),
    "LSTM-proj": ("LSTM", {"proj_size": 10}, 10),
    "GRU": ("GRU", {}, 20),
    "RNN": ("RNN", {}, 20),
}


@with_impl
@pytest.mark.parametrize("case", list(FORWARD_EXCEPTION_CASES))
def test_cudnn_forward_exception(nn_impl, case):
    # TestNN.test_cudnn_forward_exception (it runs on the CPU too): "Expected hidden.*size.*got" and
    # "input.size(-1) must be equal to input_size"; the messages must name both sizes.
    mode, kwargs, h_size = FORWARD_EXCEPTION_CASES[case]
    rnn = getattr(nn_impl, mode)(10, 20, batch_first=True, **kwargs)
    hidden = (torch.zeros(1, 2, 19), torch.zeros(1, 2, 19)) if mode == "LSTM" else torch.zeros(1, 2, 19)
    x_wrong = torch.randn(2, 3, 3)
    x_right = torch.randn(2, 3, 10)
    with pytest.raises(RuntimeError, match=facts("19", str(h_size))):
        rnn(x_right, hidden)
    with pytest.raises(RuntimeError, match=facts("input_size", "10", "3")):
        rnn(x_wrong)


@double
@with_impl
@pytest.mark.parametrize("p", [0, 0.276, 0.731, 1])
@pytest.mark.parametrize("train", [True, False])
def test_RNN_dropout(nn_impl, p, train):
    # TestNN.test_RNN_dropout (its CPU half): dropout acts between layers, with torch's scaling.
    rnn = nn_impl.RNN(10, 1000, 2, bias=False, dropout=p, nonlinearity="relu")
    rnn.train(train)
    with torch.no_grad():
        rnn.weight_ih_l0.fill_(1)
        rnn.weight_hh_l0.fill_(1)
        rnn.weight_ih_l1.fill_(1)
        rnn.weight_hh_l1.fill_(1)
    input = torch.ones(1, 1, 10)
    hx = torch.zeros(2, 1, 1000)

    output, hy = rnn(input, hx)
    assert_close(output.min(), output.max())
    output_val = output[0][0][0]
    if p == 0 or not train:
        assert_close(output_val, torch.tensor(10000.0))
    elif p == 1:
        assert_close(output_val, torch.tensor(0.0))
    else:
        assert 8000 < output_val < 12000
        denorm_mod = (output_val * (1 - p)) % 10
        assert min(denorm_mod, 10 - denorm_mod) < 1e-2
    assert_close(hy[0].min(), hy[0].max())
    assert_close(hy[1].min(), hy[1].max())
    assert_close(hy[0][0][0], torch.tensor(10.0))
    assert_close(hy[1][0][0], output_val)


@double
@with_impl
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("bidirectional", [True, False])
def test_error_RNN_seq_len_zero(nn_impl, mode, bidirectional):
    # TestNN.test_error_RNN_seq_len_zero (its CPU half): "Expected sequence length to be larger than 0 in RNN"
    input = torch.ones(0, 10, 5)
    rnn = getattr(nn_impl, mode)(5, 6, bidirectional=bidirectional)
    with pytest.raises(RuntimeError, match=r"(?i)sequence length|time"):
        rnn(input)


@with_impl
@pytest.mark.parametrize("mode", MODES)
def test_RNN_input_size_zero(nn_impl, mode):
    # TestNN.test_RNN_input_size_zero: a batch of zero sequences.
    input = torch.zeros((5, 0, 3))
    rnn = getattr(nn_impl, mode)(input_size=3, hidden_size=4)
    outs = rnn(input)
    assert outs[0].shape == torch.Size([5, 0, 4])
    outs[0].sum().backward()  # Check that backward does not cause a hard error


@with_impl
@pytest.mark.parametrize("p", [0, 0.1234])
@pytest.mark.parametrize("train", [True, False])
def test_RNN_dropout_state(nn_impl, p, train):
    # TestNN.test_RNN_dropout_state (its CPU half): dropout draws anew at every call and survives pickling.
    rnn = nn_impl.RNN(100, 100, 2, bias=False, dropout=p, nonlinearity="relu")
    rnn.train(train)
    input = torch.rand(1, 1, 100)
    hx = torch.rand(2, 1, 100)

    output1, hy1 = rnn(input, hx)
    output2, hy2 = rnn(input, hx)

    buf = io.BytesIO()
    torch.save(rnn, buf)
    buf.seek(0)
    rnn2 = torch.load(buf, weights_only=False)  # a file this test wrote
    rnn2.flatten_parameters()
    output3, hy3 = rnn2(input, hx)

    if p == 0 or not train:
        assert_close(output1, output2)
        assert_close(output1, output3)
        assert_close(hy1, hy2)
        assert_close(hy1, hy3)
    else:
        assert_not_close(output1, output2)
        assert_not_close(output1, output3)
        assert_not_close(hy1, hy2)
        assert_not_close(hy1, hy3)


@double
@with_impl
@pytest.mark.parametrize("train", [True, False])
def test_RNN_change_dropout(nn_impl, train):
    # TestNN.test_RNN_change_dropout (its CPU half): `rnn.dropout = p` acts at the next call.
    rnn = nn_impl.RNN(100, 100, 2, dropout=0, nonlinearity="relu")
    input = torch.rand(3, 2, 100)
    rnn.train(train)

    prev_output = None
    for p in (0, 0.5, 0, 0.7, 0.2, 1, 0.2, 0):
        rnn.dropout = p
        output1, hy1 = rnn(input)
        output2, hy2 = rnn(input)

        if p == 0 or p == 1 or not train:
            assert_close(output1, output2)
            assert_close(hy1, hy2)
        else:
            assert_not_close(output1, output2)
            assert_not_close(hy1, hy2)

        if prev_output is not None:
            if not train:
                assert_close(output1.data, prev_output)
                assert_close(output2.data, prev_output)
            else:
                assert_not_close(output1.data, prev_output)
                assert_not_close(output2.data, prev_output)
        prev_output = output1.data


@with_impl
def test_RNN_nonlinearity(nn_impl):
    # TestNN.test_RNN_nonlinearity ("Unknown nonlinearity 'garbage'. ...")
    assert nn_impl.RNN(1, 10).nonlinearity == "tanh"
    assert nn_impl.RNN(1, 10, nonlinearity="relu").nonlinearity == "relu"
    with pytest.raises(ValueError, match=facts("nonlinearity", "garbage")):
        nn_impl.RNN(1, 10, nonlinearity="garbage")


@with_impl
def test_RNN_nonlinearity_passed_as_arg(nn_impl):
    # TestNN.test_RNN_nonlinearity_passed_as_arg
    rnn = nn_impl.RNN(2, 3, 1, "relu")
    assert rnn.nonlinearity == "relu"


@with_impl
@pytest.mark.filterwarnings("ignore:.*torch.nn.utils.weight_norm. is deprecated:FutureWarning")
@pytest.mark.parametrize("name, proj_size, num_params", [("weight_ih_l0", 0, 4), ("weight_hr_l0", 16, 5)])
def test_rnn_weight_norm(nn_impl, name, proj_size, num_params):
    # TestNN.test_rnn_weight_norm: torch.nn.utils.weight_norm on one weight, then removed.
    layer = nn_impl.LSTM(32, 32, proj_size=proj_size)
    # Applying weight norm on one of them causes it to become a tensor
    layer = torch.nn.utils.weight_norm(layer, name=name)
    assert sum(isinstance(p, torch.nn.Parameter) for p in layer._flat_weights) == num_params - 1
    # Removing the weight norm reparametrization restores the Parameter
    layer = torch.nn.utils.remove_weight_norm(layer, name=name)
    assert sum(isinstance(p, torch.nn.Parameter) for p in layer._flat_weights) == num_params
    # The original weight is back in the parameters; the reparametrization's _v and _g are gone.
    assert name in layer._parameters and layer._parameters[name] is not None
    assert name + "_v" not in layer._parameters and name + "_g" not in layer._parameters
    named = dict(layer.named_parameters())
    assert name in named and named[name] is not None
    assert name + "_v" not in named and name + "_g" not in named


@with_impl
@pytest.mark.parametrize("name, proj_size", [("weight_hh_l0", 0), ("weight_hr_l0", 3)])
def test_RNN_weight_norm_parametrization(nn_impl, name, proj_size):
    # TestNN.test_RNN_cudnn_weight_norm on the CPU, through torch.nn.utils.parametrizations: adding weight norm
    # keeps the output, and so does removing it.
    input_size, hidden_size, num_layers, seq_length, batch = 10, 6, 2, 7, 6
    m = nn_impl.LSTM(input_size, hidden_size, num_layers, proj_size=proj_size)
    input = torch.randn(seq_length, batch, input_size)
    expected_output = m(input)

    m = torch.nn.utils.parametrizations.weight_norm(m, name=name)
    assert parametrize.is_parametrized(m, name)
    assert_close(m(input), expected_output)
    # Added: the layer reads the parametrized weight, so a changed magnitude changes the output.
    with torch.no_grad():
        m.parametrizations[name].original0.mul_(2.0)
    assert_not_close(m(input), expected_output)
    with torch.no_grad():
        m.parametrizations[name].original0.div_(2.0)

    parametrize.remove_parametrizations(m, name)
    assert not parametrize.is_parametrized(m)
    assert isinstance(getattr(m, name), nn.Parameter)
    assert_close(m(input), expected_output)


@with_impl
def test_partial_flat_weights(nn_impl):
    # TestNN.test_partial_flat_weights, moving with .cpu() where PyTorch moves with .cuda(): a layer with a
    # weight deleted can be moved, and works again once the weight is back.
    m = nn_impl.LSTM(10, 6, 2)
    inp = torch.randn(3, 2, 10)
    out_expected = m(inp)
    weight_orig = m.weight_hh_l0
    del m.weight_hh_l0
    assert not hasattr(m, "weight_hh_l0")
    m.cpu()
    m.weight_hh_l0 = weight_orig
    assert_close(m(inp)[0], out_expected[0])


# -- test/test_nn.py, TestNNDeviceType on the CPU ----------------------------------------------------------------


@double
@with_impl
@pytest.mark.parametrize("mode", MODES)
def test_rnn_retain_variables(nn_impl, mode):
    # TestNNDeviceType.test_rnn_retain_variables (dtype double): backward through a retained graph repeats.
    rnn = getattr(nn_impl, mode)(10, 20, num_layers=2)
    input = torch.randn(5, 6, 10, requires_grad=True)
    output = rnn(input)
    output[0].sum().backward(retain_graph=True)
    grads = [input.grad.data.clone()] + [p.grad.data.clone() for p in rnn.parameters()]
    for _ in range(4):
        rnn.zero_grad()
        input.grad.data.zero_()
        output[0].sum().backward(retain_graph=True)
        grads2 = [input.grad.data] + [p.grad.data for p in rnn.parameters()]
        assert_close(grads, grads2)


@double
@with_impl
def test_lstmcell_backward_only_one_output_grad(nn_impl):
    # TestNNDeviceType.test_lstmcell_backward_only_one_output_grad (CUDA there, nothing CUDA in it): undefined
    # gradients don't hamper the backward (PyTorch issue 11872).
    cell = nn_impl.LSTMCell(2, 3)
    s = torch.randn(1, 2, requires_grad=True)
    for i in range(2):
        out = nn_impl.step(cell, s)[i]
        out.sum().backward()
        assert not (s.grad is None or s.grad.abs().sum().item() == 0)


def flatten_out(mod, inp):
    """The module's outputs as a flat tuple of tensors (PyTorch's flatten_out in _test_rnn_mod)."""
    out, state = mod(inp)
    return (out, *state) if isinstance(state, tuple) else (out, state)


@with_impl
@pytest.mark.parametrize("mode", ["LSTM", "GRU"])
@pytest.mark.parametrize("bias", [True, False])
def test_grad_and_gradgrad(nn_impl, mode, bias):
    # TestNNDeviceType.test_LSTM_grad_and_gradgrad and test_GRU_grad_and_gradgrad (via _test_rnn_mod).
    hsize = 4
    inp = torch.rand(1, 3, hsize, dtype=torch.double, requires_grad=True)
    mod = getattr(nn_impl, mode)(hsize, hsize, bias=bias).to(torch.double)
    assert gradcheck(lambda x: flatten_out(mod, x), inp, check_batched_grad=False)
    assert gradgradcheck(lambda x: flatten_out(mod, x), inp, check_batched_grad=False)


@with_impl
def test_LSTM_differentiable_backward_using_oneDNN(nn_impl):
    # TestNNDeviceType.test_LSTM_differentiable_backward_using_oneDNN: a derivative of the output that is
    # differentiated again, the same with oneDNN (mkldnn) off and on.
    batch, seq_len, input = 10, 12, 3
    net = nn_impl.LSTM(input, 3, 20, batch_first=True)
    x = torch.rand(batch, seq_len, input)
    x1 = x.clone().requires_grad_(True)
    x2 = x.clone().requires_grad_(True)
    enabled = torch._C._get_mkldnn_enabled()
    try:
        torch._C._set_mkldnn_enabled(False)
        out1, _ = net(x1)
        der_out1 = torch.autograd.grad(out1, x1, grad_outputs=torch.ones_like(out1), retain_graph=True,
                                       create_graph=True)[0]  # fmt: skip
        der_out1.sum().backward(retain_graph=True)

        torch._C._set_mkldnn_enabled(True)
        out2, _ = net(x2)
        der_out2 = torch.autograd.grad(out2, x2, grad_outputs=torch.ones_like(out2), retain_graph=True,
                                       create_graph=True)[0]  # fmt: skip
        der_out2.sum().backward(retain_graph=True)
    finally:
        torch._C._set_mkldnn_enabled(enabled)
    assert torch.allclose(der_out1, der_out2)
    assert torch.allclose(x1.grad, x2.grad)


VARIABLE_SEQUENCE_CASES = [  # enforce_sorted, lengths
    (True, [5]),
    (False, [5]),
    (True, [10, 10, 6, 2, 2, 1, 1]),
    (False, [10, 10, 6, 2, 2, 1, 1]),
    (False, [2, 1, 3, 2, 10, 5, 3]),
]


@with_impl
@pytest.mark.parametrize("enforce_sorted, lengths", VARIABLE_SEQUENCE_CASES)
@pytest.mark.parametrize("use_default_hiddens", [True, False])
@pytest.mark.parametrize("proj_size", [0, 2])
def test_variable_sequence(nn_impl, enforce_sorted, lengths, use_default_hiddens, proj_size):
    # TestNNDeviceType.test_variable_sequence (dtype float): a packed batch against each sequence run alone,
    # forward and backward, with torch's precision (dtype2prec float: 1e-5; parameter gradients 2e-4).
    def pad(var, length):
        if var.size(0) == length:
            return var
        return torch.cat([var, var.new_zeros(length - var.size(0), *var.size()[1:])])

    def maybe_index_tuple(maybe_tuple_of_tensors, index):
        if maybe_tuple_of_tensors is None:
            return None
        return tuple(maybe_tuple_of_tensors[j][:, index : index + 1, :].contiguous() for j in range(2))

    input_size, hidden_size, num_layers, bidirectional = 3, 4, 2, True
    max_length = max(lengths)
    x_leaf = torch.randn(max_length, len(lengths), input_size, requires_grad=True)
    num_directions = 2 if bidirectional else 1
    lstm = nn_impl.LSTM(input_size, hidden_size, bidirectional=bidirectional, num_layers=num_layers,
                        proj_size=proj_size)  # fmt: skip
    lstm2 = copy.deepcopy(lstm)
    x = x_leaf

    hidden0 = None
    if not use_default_hiddens:
        real_hidden_size = hidden_size if proj_size == 0 else proj_size
        hidden0 = (
            torch.randn(num_directions * num_layers, len(lengths), real_hidden_size),
            torch.randn(num_directions * num_layers, len(lengths), hidden_size),
        )

    # Compute sequences separately
    seq_outs, seq_hiddens = [], []
    for i, l in enumerate(lengths):
        out, hid = lstm2(x[:l, i : i + 1], maybe_index_tuple(hidden0, i))
        seq_outs.append(pad(out, max_length))
        seq_hiddens.append(hid)
    seq_out = torch.cat(seq_outs, 1)
    seq_hidden = tuple(torch.cat(hids, 1) for hids in zip(*seq_hiddens))

    # Use packed format
    packed = rnn_utils.pack_padded_sequence(x, lengths, enforce_sorted=enforce_sorted)
    packed_out, packed_hidden = lstm(packed, hidden0)
    unpacked, unpacked_len = rnn_utils.pad_packed_sequence(packed_out)

    # Check forward
    prec = 1e-5
    assert_close(packed_hidden, seq_hidden, atol=prec, rtol=0)
    assert_close(unpacked, seq_out, atol=prec, rtol=0)
    assert unpacked_len.tolist() == lengths

    # Check backward
    seq_out.sum().backward()
    grad_x = x_leaf.grad.data.clone()
    x_leaf.grad.data.zero_()
    unpacked.sum().backward()

    assert_close(x_leaf.grad, grad_x, atol=prec, rtol=0)
    for p1, p2 in zip(lstm.parameters(), lstm2.parameters(), strict=True):
        assert_close(p1.grad, p2.grad, atol=2e-4, rtol=0)


LEGACY_PICKLE = ("rnnkit has no modules pickled by PyTorch <= 1.7 to stay compatible with: its hyper-parameters "
                 "live in one validated config (proj_size is not in __dict__); run directories are its format")


@pytest.mark.parametrize("nn_impl", impls(LEGACY_PICKLE))
def test_save_lstm_compatibility(nn_impl):
    # TestNNDeviceType.test_save_lstm_compatibility: an LSTM whose state lacks proj_size (as PyTorch <= 1.7
    # saved it) still loads through __setstate__.
    model = nn_impl.LSTM(2, 3)
    x = torch.randn(32, 5, 2)
    expected = model(x)

    assert model.proj_size == 0
    state_dict = model.__dict__
    del state_dict["proj_size"]

    loaded_model = nn_impl.LSTM(2, 3)
    loaded_model.__setstate__(state_dict)
    result = loaded_model(x)
    assert_close(result, expected)


# -- test/nn/test_pruning.py -------------------------------------------------------------------------------------


@with_impl
def test_rnn_pruning(nn_impl):
    # TestPruningNN.test_rnn_pruning: pruning one weight makes it a tensor; removing the pruning restores it.
    layer = nn_impl.LSTM(32, 32)
    prune.l1_unstructured(layer, "weight_ih_l0", 0.5)
    assert sum(isinstance(p, torch.nn.Parameter) for p in layer._flat_weights) == 3
    prune.remove(layer, "weight_ih_l0")
    assert sum(isinstance(p, torch.nn.Parameter) for p in layer._flat_weights) == 4
    assert "weight_ih_l0" in layer._parameters and layer._parameters["weight_ih_l0"] is not None
    assert "weight_ih_l0_orig" not in layer._parameters
    named = dict(layer.named_parameters())
    assert "weight_ih_l0" in named and named["weight_ih_l0"] is not None
    assert "weight_ih_l0_orig" not in named


# -- test/test_modules.py on the ModuleInfo entries of the six modules -------------------------------------------


@dataclass(frozen=True)
class Sample:
    """One ModuleInput of common_modules: constructor arguments and unbatched forward inputs (their shapes)."""

    mode: str
    kwargs: tuple
    input_shape: tuple
    hidden_shapes: tuple | None = None  # None: no initial state; else one shape, two for the LSTM (cell)

    @property
    def is_cell(self) -> bool:
        return self.mode.endswith("Cell")

    def build(self, nn_impl, **factory):
        return getattr(nn_impl, self.mode)(**dict(self.kwargs), **factory)

    def inputs(self, dtype=torch.float32, requires_grad=False):
        make = dict(dtype=dtype, device="cpu", requires_grad=requires_grad)
        x = make_tensor(self.input_shape, **make)
        if self.hidden_shapes is None:
            return (x,)
        h = tuple(make_tensor(s, **make) for s in self.hidden_shapes)
        return (x, h if len(h) == 2 else h[0])

    def __str__(self) -> str:
        hidden = "" if self.hidden_shapes is None else "-hx"
        return f"{self.mode}({','.join(f'{k}={v}' for k, v in self.kwargs)}){hidden}"


def module_samples() -> list[Sample]:
    """module_inputs_torch_nn_{RNN_GRU_Cell, LSTMCell, RNN_GRU, LSTM}: every sample is unbatched."""
    samples = [
        Sample("RNNCell", (("input_size", 5), ("hidden_size", 10)), (5,), ((10,),)),
        Sample("RNNCell", (("input_size", 5), ("hidden_size", 10), ("bias", True)), (5,), ((10,),)),
        Sample("RNNCell", (("input_size", 5), ("hidden_size", 10), ("bias", True), ("nonlinearity", "relu")),
               (5,), ((10,),)),  # fmt: skip
        Sample("GRUCell", (("input_size", 5), ("hidden_size", 10)), (5,), ((10,),)),
        Sample("GRUCell", (("input_size", 5), ("hidden_size", 10), ("bias", True)), (5,), ((10,),)),
        Sample("LSTMCell", (("input_size", 5), ("hidden_size", 10)), (5,), ((10,), (10,))),
        Sample("LSTMCell", (("input_size", 5), ("hidden_size", 10), ("bias", True)), (5,), ((10,), (10,))),
    ]
    for mode in ("RNN", "GRU"):
        nonlinearities = ("relu", "tanh") if mode == "RNN" else (None,)
        for nl, b, b_f, bidir in product(nonlinearities, (False, True), (False, True), (False, True)):
            kw = (("input_size", 2), ("num_layers", 2), ("batch_first", b_f), ("bias", b), ("bidirectional", bidir))
            kw += (("nonlinearity", nl),) if nl else ()
            samples.append(Sample(mode, (("hidden_size", 2), *kw), (3, 2)))
            samples.append(Sample(mode, (("hidden_size", 3), *kw), (3, 2), ((4 if bidir else 2, 3),)))
    for b, b_f, bidir, proj_size in product((False, True), (False, True), (False, True), (0, 2)):
        kw = (("input_size", 2), ("hidden_size", 3), ("num_layers", 2), ("proj_size", proj_size),
              ("batch_first", b_f), ("bias", b), ("bidirectional", bidir))  # fmt: skip
        D = 4 if bidir else 2
        samples.append(Sample("LSTM", kw, (2, 2)))
        samples.append(Sample("LSTM", kw, (3, 2), ((D, proj_size or 3), (D, 3))))
    return samples


SAMPLES = module_samples()
MODULES = ["RNN", "GRU", "LSTM", "RNNCell", "GRUCell", "LSTMCell"]
# As TestModule does, one test per module runs every sample of it; a failure names its sample in a note.
per_module = pytest.mark.parametrize("mode", MODULES)


def samples_of(mode: str):
    """The samples of module ``mode``."""
    for sample in SAMPLES:
        if sample.mode == mode:
            yield sample


@contextmanager
def describing(*what):
    """Adds ``what`` (the sample, the mode) to the message of an error raised inside."""
    try:
        yield
    except BaseException as error:
        error.add_note("in " + ", ".join(map(str, what)))
        raise


def run(nn_impl, m, sample: Sample, args):
    """The module's forward on ``args`` as torch returns it (cells stepped through nn_impl.step)."""
    return nn_impl.step(m, *args) if sample.is_cell else m(*args)


def no_batch_dim_reference(nn_impl, m, sample: Sample, args):
    """common_modules' no_batch_dim_reference_{fn, rnn_gru, lstm, lstmcell}: the same inputs as a batch of one,
    the batch dimension removed from the result."""
    unsqueeze = lambda t, d: tuple(s.unsqueeze(d) for s in t) if isinstance(t, tuple) else t.unsqueeze(d)  # noqa: E731
    squeeze = lambda t, d: tuple(s.squeeze(d) for s in t) if isinstance(t, tuple) else t.squeeze(d)  # noqa: E731
    if sample.is_cell:
        return squeeze(nn_impl.step(m, *(unsqueeze(a, 0) for a in args)), 0)
    batch_dim = 0 if dict(sample.kwargs)["batch_first"] else 1
    x, h = args[0].unsqueeze(batch_dim), (unsqueeze(args[1], 1) if len(args) == 2 else None)
    output, state = m(x, h)
    return output.squeeze(batch_dim), squeeze(state, 1)


@with_impl
@per_module
def test_forward(nn_impl, mode):
    # TestModule.test_forward (float32 and float64, train and eval): unbatched input against the batched
    # reference; .float()/.double() convert.
    for sample, dtype, training in product(samples_of(mode), (torch.float32, torch.float64), (True, False)):
        with describing(sample, dtype, "train" if training else "eval"):
            m = sample.build(nn_impl).to(dtype)
            m.train(training)
            args = sample.inputs(dtype)
            outputs = run(nn_impl, m, sample, args)
            assert_close(outputs, no_batch_dim_reference(nn_impl, m, sample, args))
            m.float() if dtype == torch.float32 else m.double()
            run(nn_impl, m, sample, args)
            assert all(p.dtype == dtype and p.device.type == "cpu" for p in m.parameters())


@with_impl
@per_module
def test_factory_kwargs(nn_impl, mode):
    # TestModule.test_factory_kwargs: device and dtype passed to the constructor reach every parameter.
    for sample, dtype in product(samples_of(mode), (torch.float32, torch.float64)):
        with describing(sample, dtype):
            m = sample.build(nn_impl, device="cpu", dtype=dtype)
            params = list(m.parameters())
            assert params and all(p.dtype == dtype and p.device == torch.device("cpu") for p in params)


@with_impl
@per_module
def test_repr(nn_impl, mode):
    # TestModule.test_repr: repr and str work (and name the class, added).
    for sample in samples_of(mode):
        with describing(sample):
            m = sample.build(nn_impl)
            assert type(m).__name__ in repr(m)
            assert str(m) == repr(m)


@with_impl
@per_module
def test_pickle(nn_impl, mode):
    # TestModule.test_pickle: an unpickled module gives the same output.
    for sample in samples_of(mode):
        with describing(sample):
            m = sample.build(nn_impl)
            args = sample.inputs()
            output = run(nn_impl, m, sample, args)
            buf = io.BytesIO()
            torch.save(m, buf)
            buf.seek(0)
            m_copy = torch.load(buf, weights_only=False)  # a file this test wrote
            assert_close(run(nn_impl, m_copy, sample, args), output)


def make_non_contiguous(obj):
    """test_non_contiguous_tensors' _make_non_contiguous: the same values, every other element of a wider tensor."""
    if isinstance(obj, tuple):
        return tuple(make_non_contiguous(o) for o in obj)
    out = torch.repeat_interleave(obj, 2, dim=-1)[..., ::2].detach()
    out.requires_grad = obj.requires_grad
    return out


def leaves(obj):
    return [t for o in obj for t in leaves(o)] if isinstance(obj, tuple) else [obj]


@with_impl
@per_module
def test_non_contiguous_tensors(nn_impl, mode):
    # TestModule.test_non_contiguous_tensors: non-contiguous inputs and output gradients give the same results.
    # In train mode only: without dropout the samples compute the same in eval mode (test_forward runs both).
    for sample in samples_of(mode):
        with describing(sample):
            check_non_contiguous(nn_impl, sample, training=True)


def check_non_contiguous(nn_impl, sample, training):
    m = sample.build(nn_impl)
    m.train(training)
    args = sample.inputs(requires_grad=True)
    default_output = run(nn_impl, m, sample, args)
    grad_output = tuple(o.detach().clone().normal_() for o in leaves(default_output))
    torch.autograd.backward(leaves(default_output), grad_output)
    default_input_grads = [t.grad.clone() for t in leaves(args)]
    default_param_grads = [p.grad.clone() for p in m.parameters()]

    nc_args, nc_grad_output = make_non_contiguous(args), make_non_contiguous(grad_output)
    assert not all(t.is_contiguous() for t in leaves(nc_args))
    for in_args, g_out in product([args, nc_args], [grad_output, nc_grad_output]):
        for t in leaves(in_args):
            t.grad = None
        m.zero_grad()
        out = run(nn_impl, m, sample, in_args)
        torch.autograd.backward(leaves(out), g_out)
        assert_close(out, default_output)
        assert_close([t.grad for t in leaves(in_args)], default_input_grads, atol=1e-4, rtol=0)
        assert_close([p.grad for p in m.parameters()], default_param_grads)


# Gradient checks on every sample would take minutes. Checked here: the cells, and for each layer two samples, every
# option off without an initial state, and bias, both directions and batch_first with one (the LSTM with a
# projection: the first). The total derivative on all of them, each partial derivative alone (PyTorch's second half)
# on the layers' every-option-off samples; in train mode only (without dropout it computes as eval mode).
def option_values(sample: Sample) -> set:
    kw = dict(sample.kwargs)
    return {kw["bias"], kw["bidirectional"], kw["batch_first"], sample.hidden_shapes is not None}


GRAD_SAMPLES = [  # the cells' samples with an explicit bias=True repeat their default ones (but the relu RNNCell)
    s
    for s in SAMPLES
    if (s.is_cell and (("bias", True) not in s.kwargs or ("nonlinearity", "relu") in s.kwargs))
    or (not s.is_cell and len(option_values(s)) == 1 and dict(s.kwargs).get("nonlinearity") != "relu"
        and not (dict(s.kwargs).get("proj_size") and option_values(s) == {True}))  # the projection: options off
]


def gradients_helper(nn_impl, sample, training, check, partials, total=True):
    """TestModule._test_gradients_helper: the total derivative, then (``partials``) each partial one alone: the
    inputs' and one parameter's (all parameters, or ``partials`` of them by index)."""
    m = sample.build(nn_impl).to(torch.double)
    m.train(training)
    params = tuple(m.parameters())
    args = sample.inputs(torch.double, requires_grad=True)
    n_args = len(leaves(args))

    def fn(*flat):
        x = flat[:n_args]
        args_ = (x[0],) if n_args == 1 else (x[0], x[1] if n_args == 2 else (x[1], x[2]))
        return tuple(leaves(run(nn_impl, m, sample, args_)))

    flat_input = tuple(leaves(args)) + params
    if total:
        assert check(fn, flat_input)
    if not partials:
        return
    for p in params:
        p.requires_grad_(False)
    for p in params if partials is True else [params[i] for i in partials]:
        p.requires_grad_(True)
        assert check(fn, flat_input)
        p.requires_grad_(False)


def with_partials(sample: Sample) -> bool:
    return not sample.is_cell and option_values(sample) == {False}


@with_impl
@pytest.mark.parametrize("sample", GRAD_SAMPLES, ids=str)
def test_grad(nn_impl, sample):
    # TestModule.test_grad (dtype double, train mode)
    gradients_helper(nn_impl, sample, True, gradcheck, with_partials(sample))


@with_impl
@pytest.mark.parametrize("sample", [s for s in GRAD_SAMPLES if not s.is_cell and with_partials(s)], ids=str)
def test_gradgrad(nn_impl, sample):
    # TestModule.test_gradgrad (dtype double, train mode): two of its partial checks, the inputs' with the first
    # layer's W_hh and with the last parameter (the total derivative over every parameter takes 5-10 s a sample).
    gradients_helper(nn_impl, sample, True, gradgradcheck, partials=[1, -1], total=False)


@with_impl
@per_module
def test_memory_format(nn_impl, mode):
    # TestModule.test_memory_format for 1-3D inputs: under contiguous formats the outputs are contiguous and the
    # same, and so are the gradients. In train mode only, as test_non_contiguous_tensors.
    for sample in samples_of(mode):
        with describing(sample):
            check_memory_format(nn_impl, sample, training=True)


def check_memory_format(nn_impl, sample, training):
    m = sample.build(nn_impl)
    m.train(training)
    args = sample.inputs(requires_grad=True)
    desired = run(nn_impl, m, sample, args)
    params = tuple(m.parameters())
    grad_outputs = tuple(torch.rand_like(t) for t in leaves(desired))
    ref_grads = torch.autograd.grad(leaves(desired), leaves(args) + list(params), grad_outputs)
    for module_format in (torch.preserve_format, torch.contiguous_format):
        m.to(memory_format=module_format)
        outputs = run(nn_impl, m, sample, args)
        assert_close(outputs, desired)
        assert all(t.is_contiguous() for t in leaves(outputs))
        grads = torch.autograd.grad(leaves(outputs), leaves(args) + list(params), grad_outputs)
        assert_close(grads, ref_grads)
        assert all(g.is_contiguous() for g in grads)


@with_impl
@per_module
def test_if_train_and_eval_modes_differ(nn_impl, mode):
    # TestModule.test_if_train_and_eval_modes_differ: a forward that reads `training` is allowed only where the
    # ModuleInfo entry says train and eval differ (RNN, GRU, LSTM; not the cells).
    for sample in samples_of(mode):
        with describing(sample):
            m = sample.build(nn_impl)
            delattr(m, "training")
            try:
                run(nn_impl, m, sample, sample.inputs())
            except AttributeError as e:
                if "'training'" not in str(e):
                    raise
                assert not sample.is_cell, "a cell's forward reads `training`; torch's cells' train and eval agree"


@with_impl
@per_module
def test_device_ctx_init(nn_impl, mode):
    # TestModule.test_device_ctx_init: built under torch.device("meta"), the parameters have the CPU ones' metadata.
    for sample in samples_of(mode):
        with describing(sample):
            check_device_ctx_init(nn_impl, sample)


def check_device_ctx_init(nn_impl, sample):
    m_cpu = sample.build(nn_impl)
    with torch.device("meta"):
        m = sample.build(nn_impl)
    pairs = list(zip(m.named_parameters(), m_cpu.named_parameters(), strict=True)) + list(
        zip(m.named_buffers(), m_cpu.named_buffers(), strict=True)
    )
    for (name_meta, p_meta), (name_cpu, p_cpu) in pairs:
        assert name_meta == name_cpu and p_meta.is_meta
        assert (p_meta.shape, p_meta.dtype, p_meta.stride(), p_meta.requires_grad) == (
            p_cpu.shape, p_cpu.dtype, p_cpu.stride(), p_cpu.requires_grad,
        )  # fmt: skip


CONSTRUCTION_ERRORS = {  # module_error_inputs_torch_nn_RNN_GRU, CONSTRUCTION_ERROR cases: args, kwargs, type, facts
    "hidden_size 0": ((10, 0, 1), {}, ValueError, ("hidden_size",)),  # hidden_size must be greater than zero
    "num_layers 0": ((10, 10, 0), {}, ValueError, ("num_layers",)),  # num_layers must be greater than zero
    "bias 0": ((3, 5), {"bias": 0}, TypeError, ("bias", "bool", "int")),  # bias should be of type bool, got: int
    "bias 1": ((3, 5), {"bias": 1}, TypeError, ("bias", "bool", "int")),
    "bias 'True'": ((3, 5), {"bias": "True"}, TypeError, ("bias", "bool", "str")),
    "batch_first 0": ((3, 5), {"batch_first": 0}, TypeError, ("batch_first", "bool", "int")),
    "batch_first 1": ((3, 5), {"batch_first": 1}, TypeError, ("batch_first", "bool", "int")),
    "batch_first 'False'": ((3, 5), {"batch_first": "False"}, TypeError, ("batch_first", "bool", "str")),
    "input_size 3.0": ((3.0, 5), {}, TypeError, ("input_size", "int", "float")),  # should be of type int, got: float
    "input_size '10'": (("10", 5), {}, TypeError, ("input_size", "int", "str")),
    "input_size 0": ((0, 5), {}, ValueError, ("input_size",)),  # input_size must be greater than zero
    "input_size -1": ((-1, 5), {}, ValueError, ("input_size",)),
    "hidden_size 5.0": ((3, 5.0), {}, TypeError, ("hidden_size", "int", "float")),
}


@with_impl
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("case", list(CONSTRUCTION_ERRORS))
def test_errors_construction(nn_impl, mode, case):
    # TestModule.test_errors, the construction errors of RNN, GRU and LSTM.
    args, kwargs, error_type, words = CONSTRUCTION_ERRORS[case]
    with pytest.raises(error_type, match=facts(*words)):
        getattr(nn_impl, mode)(*args, **kwargs)


@with_impl
@pytest.mark.parametrize("mode", MODES)
def test_errors_dtype_mismatch(nn_impl, mode):
    # TestModule.test_errors: "RNN input dtype .* does not match weight dtype .* Convert input: input\.to\(.*\),
    # or convert model: model\.to\(.*\)" for a float64 input to a float32 module.
    m = getattr(nn_impl, mode)(3, 5, dtype=torch.float32)
    with pytest.raises(ValueError, match=facts("float64", "float32")):
        m(make_tensor((2, 4, 3), dtype=torch.float64, device="cpu"))


CELL_FORWARD_ERRORS = {  # module_error_inputs_torch_nn_{RNN_GRU_Cell, LSTMCell}: input, hidden shapes, type, facts
    "input_size": ((3, 11), (3, 20), RuntimeError, ("11", "10")),  # input has inconsistent input_size: got 11 ...
    "hidden_size": ((3, 10), (3, 21), RuntimeError, ("21", "20")),  # hidden0 has inconsistent hidden_size: got 21 ...
    "batch size": ((3, 10), (5, 20), RuntimeError, ("3", "5")),  # Input batch size 3 doesn't match hidden0 batch ...
    "4D hidden": ((3, 10), (3, 1, 1, 20), ValueError, ()),  # Expected hidden to be 1D or 2D, got 4D instead
}
CELL_CONSTRUCTIONS = {
    "RNNCell": ("RNNCell", ()),
    "GRUCell": ("GRUCell", ()),
    "LSTMCell": ("LSTMCell", ()),
    "RNNCell-relu": ("RNNCell", ("relu",)),
    "RNNCell-tanh": ("RNNCell", ("tanh",)),
}


@with_impl
@pytest.mark.parametrize("cell", list(CELL_CONSTRUCTIONS))
@pytest.mark.parametrize("case", list(CELL_FORWARD_ERRORS))
def test_errors_cell_forward(nn_impl, cell, case):
    # TestModule.test_errors, the forward errors of RNNCell, GRUCell and LSTMCell (the relu/tanh RNNCells are
    # checked for hidden_size, as PyTorch does; the other cases extend to them unchanged).
    mode, extra = CELL_CONSTRUCTIONS[cell]
    input_shape, hidden_shape, error_type, words = CELL_FORWARD_ERRORS[case]
    m = getattr(nn_impl, mode)(10, 20, *(() if not extra else (True, *extra)))
    x, h = make_tensor(input_shape, dtype=torch.float32, device="cpu"), make_tensor(hidden_shape, dtype=torch.float32,
                                                                                     device="cpu")  # fmt: skip
    with pytest.raises(error_type, match=facts(*words) if words else None):
        nn_impl.step(m, x, (h, h) if mode == "LSTMCell" else h)


# -- issue 18's contract, no PyTorch original: state_dict, all_weights and _flat_weights_names as torch's ---------

STATE_DICT_CONFIGS = [
    ("RNN", dict(num_layers=2, nonlinearity="relu")),
    ("GRU", dict(num_layers=2, bidirectional=True)),
    ("GRU", dict(bias=False)),
    ("LSTM", dict(num_layers=2, bidirectional=True, proj_size=2)),
    ("LSTM", dict(num_layers=3, bias=False, batch_first=True)),
]


@with_impl
@pytest.mark.parametrize("mode, kwargs", STATE_DICT_CONFIGS,
                         ids=[f"{m}{i}" for i, (m, _) in enumerate(STATE_DICT_CONFIGS)])
def test_state_dict_is_torchs(nn_impl, mode, kwargs):
    # The parameters' names, order and shapes are torch.nn's, so a state_dict moves between the two unchanged and
    # gives the same outputs; all_weights and _flat_weights_names are torch's.
    theirs = getattr(nn, mode)(3, 4, **kwargs)
    ours = getattr(nn_impl, mode)(3, 4, **kwargs)
    shapes = lambda m: [(k, v.shape) for k, v in m.state_dict().items()]  # noqa: E731
    assert shapes(ours) == shapes(theirs)
    assert [n for n, _ in ours.named_parameters()] == theirs._flat_weights_names
    assert ours._flat_weights_names == theirs._flat_weights_names
    assert [[w.shape for w in layer] for layer in ours.all_weights] == [
        [w.shape for w in layer] for layer in theirs.all_weights
    ]
    x = torch.randn(5, 2, 3)
    ours.load_state_dict(theirs.state_dict())
    assert_close(ours(x), theirs(x))
    with torch.no_grad():
        for p in ours.parameters():
            p.add_(0.5)
    theirs.load_state_dict(ours.state_dict())
    assert_close(theirs(x), ours(x))
    assert [id(w) for layer in ours.all_weights for w in layer] == [id(p) for p in ours.parameters()]

