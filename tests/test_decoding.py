"""Sampling and generation."""

import pytest
import torch
from torch import nn

import rnnkit
from rnnkit.decoding import generate, sample_logits


def small_model(seed=0, torch_rnn=False):
    torch.manual_seed(seed)
    embedding = nn.Embedding(11, 6)
    rnn = nn.LSTM(6, 8, 2) if torch_rnn else rnnkit.GRU(6, 8, 2, batch_first=True, layer_norm=True)
    head = nn.Linear(8, 11)
    return embedding, rnn, head


def test_same_seed_same_tokens_and_shapes():
    model = small_model()
    a = generate(*model, 30, prime=[1, 2, 3], seed=7, num_samples=4)
    b = generate(*model, 30, prime=[1, 2, 3], seed=7, num_samples=4)
    c = generate(*model, 30, prime=[1, 2, 3], seed=8, num_samples=4)
    assert a.shape == (4, 30) and torch.equal(a, b) and not torch.equal(a, c)
    assert a.min() >= 0 and a.max() < 11


def test_greedy_agrees_with_a_manual_step_loop_and_with_top_k_1():
    embedding, rnn, head = small_model(torch_rnn=True)
    got = generate(embedding, rnn, head, 12, prime=[4, 5], temperature=0)
    tokens, state = torch.tensor([[4, 5]]), None
    expected = []
    with torch.no_grad():
        for _ in range(12):
            out, state = rnn(embedding(tokens).transpose(0, 1), state)
            nxt = head(out[-1]).argmax(-1)
            expected.append(int(nxt))
            tokens = nxt.unsqueeze(0)
    assert got[0].tolist() == expected
    assert torch.equal(generate(embedding, rnn, head, 12, prime=[4, 5], top_k=1, seed=3), got)
    assert torch.equal(generate(embedding, rnn, head, 12, prime=[4, 5], top_p=1e-6, seed=3), got)


def test_top_k_and_top_p_restrict_the_support():
    logits = torch.tensor([[5.0, 4.0, 1.0, 0.0, -1.0]]).expand(2000, -1)
    g = torch.Generator().manual_seed(0)
    top2 = sample_logits(logits, top_k=2, generator=g)
    assert set(top2.tolist()) == {0, 1}
    probs = logits[0].softmax(-1)  # p0 = 0.70, p0 + p1 = 0.96
    nucleus = sample_logits(logits, top_p=0.9, generator=g)
    assert set(nucleus.tolist()) == {0, 1} and probs[0] < 0.9 < probs[:2].sum()
    cold = sample_logits(logits, temperature=0.05, generator=g)
    assert set(cold.tolist()) == {0}


def test_generation_restores_training_mode():
    embedding, rnn, head = small_model()
    rnn.train()
    generate(embedding, rnn, head, 3, seed=0)
    assert rnn.training and embedding.training


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(n_tokens=0), "n_tokens must be an integer >= 1, got 0"),
        (dict(prime=[3, 11]), "prime token id 11 is outside the vocabulary of 11 tokens"),
        (dict(temperature=-1.0), "temperature must be a number >= 0"),
        (dict(top_k=0), "top_k must be an integer >= 1"),
        (dict(top_p=1.5), r"top_p must be in \(0, 1\]"),
        (dict(num_samples=0), "num_samples must be an integer >= 1"),
    ],
)
def test_bad_generation_arguments(kwargs, match):
    args = {"n_tokens": 5, **kwargs}
    n = args.pop("n_tokens")
    with pytest.raises(ValueError, match=match):
        generate(*small_model(), n, **args)
