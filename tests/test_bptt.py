"""Truncated BPTT and clipping: what they compute, checked against full BPTT and by hand."""

import pytest
import torch

import rnnkit
from rnnkit.bptt import clip_gradients, detach_state, windows

pytestmark = pytest.mark.usefixtures("float64")


def test_windows_carrying_state_reproduce_the_full_forward():
    torch.manual_seed(0)
    lstm = rnnkit.LSTM(3, 5, 2)
    x = torch.randn(10, 2, 3)
    full, _ = lstm(x)
    state, pieces = None, []
    for chunk in windows(x, 4):
        state = detach_state(state)
        out, state = lstm(chunk, state)
        pieces.append(out)
    assert [p.shape[0] for p in pieces] == [4, 4, 2]
    torch.testing.assert_close(torch.cat(pieces), full, rtol=1e-12, atol=1e-12)


def test_truncation_cuts_gradient_flow_at_the_window_boundary():
    torch.manual_seed(1)
    rnn = rnnkit.RNN(2, 4)
    x = torch.randn(8, 1, 2, requires_grad=True)
    # full BPTT: the last output depends on every input
    out, _ = rnn(x)
    (grad_full,) = torch.autograd.grad(out[-1].sum(), x)
    assert (grad_full.abs().sum(dim=(1, 2)) > 0).all()
    # truncated with k=3: the loss on the last window reaches only that window's inputs
    state = None
    for chunk in windows(x, 3):
        state = detach_state(state)
        out, state = rnn(chunk, state)
    (grad_trunc,) = torch.autograd.grad(out[-1].sum(), x)
    assert not grad_trunc[:6].any()
    torch.testing.assert_close(grad_trunc[6:], grad_full[6:], rtol=1e-12, atol=1e-12)


def test_detach_state_keeps_values_and_structure():
    h, c = torch.randn(2, 3, requires_grad=True), torch.randn(2, 3, requires_grad=True)
    dh, dc = detach_state((h * 2, c))
    assert not dh.requires_grad and torch.equal(dh, h * 2) and torch.equal(dc, c)
    assert detach_state(None) is None


def test_clip_by_norm_returns_norm_before_clipping():
    p = torch.nn.Parameter(torch.zeros(2))
    p.grad = torch.tensor([3.0, 4.0])
    assert clip_gradients([p], max_norm=1.0) == pytest.approx(5.0)
    torch.testing.assert_close(p.grad, torch.tensor([0.6, 0.8]))


def test_clip_by_value_returns_norm_before_clipping():
    p, q = torch.nn.Parameter(torch.zeros(2)), torch.nn.Parameter(torch.zeros(1))
    p.grad, q.grad = torch.tensor([3.0, -4.0]), torch.tensor([0.5])
    assert clip_gradients([p, q], max_value=1.0) == pytest.approx((9 + 16 + 0.25) ** 0.5)
    torch.testing.assert_close(p.grad, torch.tensor([1.0, -1.0]))
    torch.testing.assert_close(q.grad, torch.tensor([0.5]))


def test_clip_rejects_bad_thresholds():
    p = torch.nn.Parameter(torch.zeros(1))
    p.grad = torch.ones(1)
    with pytest.raises(ValueError, match="max_norm must be a positive number"):
        clip_gradients([p], max_norm=0)
    with pytest.raises(ValueError, match="window size must be an integer >= 1, got 0"):
        list(windows(torch.zeros(3), 0))


@pytest.mark.parametrize("cls", [rnnkit.LSTM, rnnkit.GRU])
def test_truncated_bptt_training_lowers_the_loss(cls):
    """Learn to output the input seen 2 steps earlier, over a long stream trained in windows of 10."""
    torch.manual_seed(2)
    rnn, head = cls(1, 16), torch.nn.Linear(16, 1)
    params = list(rnn.parameters()) + list(head.parameters())
    optimizer = torch.optim.Adam(params, lr=0.02)
    stream = torch.randn(600, 8, 1)
    target = torch.roll(stream, 2, dims=0)

    def epoch(train: bool) -> float:
        state, total = None, 0.0
        for x, y in zip(windows(stream, 10), windows(target, 10)):
            state = detach_state(state)
            with torch.set_grad_enabled(train):
                out, state = rnn(x, state)
                loss = torch.nn.functional.mse_loss(head(out)[2:], y[2:])
            if train:
                optimizer.zero_grad()
                loss.backward()
                clip_gradients(params, max_norm=1.0)
                optimizer.step()
            total += loss.item()
        return total / 60

    before = epoch(train=False)
    for _ in range(3):
        epoch(train=True)
    after = epoch(train=False)
    assert before > 0.5 and after < 0.1 * before
