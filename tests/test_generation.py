"""Fast generation (rnnkit.kernels.stepper, cstepper) gives the tokens of the plain per-token module calls."""

import sys

import pytest
import torch
from torch import nn

import rnnkit
from rnnkit.decoding import sample_logits
from rnnkit.kernels import cstepper, dispatch
from rnnkit.kernels.stepper import make_stepper

pytestmark = pytest.mark.usefixtures("float64")
V, E, H = 13, 5, 6


def plain_generate(embedding, rnn, head, n_tokens, *, prime, num_samples=1, seed=0, **sampling):
    """The definition: call the modules for the prime and then for every sampled token."""
    generator = torch.Generator().manual_seed(seed)
    batch_first = getattr(rnn, "batch_first", False)
    for m in (embedding, rnn, head):
        m.eval()

    def step(tokens, state):
        x = embedding(tokens)
        out, state = rnn(x if batch_first else x.transpose(0, 1), state)
        return head(out[:, -1] if batch_first else out[-1]), state

    tokens = []
    with torch.no_grad():
        logits, state = step(torch.tensor(prime).expand(num_samples, -1), None)
        for _ in range(n_tokens):
            token = sample_logits(logits, generator=generator, **sampling)
            tokens.append(token)
            logits, state = step(token.unsqueeze(1), state)
    return torch.stack(tokens, dim=1)


RNNS = {
    "torch lstm 2 layers": lambda: nn.LSTM(E, H, 2),
    "torch lstm proj batch_first": lambda: nn.LSTM(E, H, batch_first=True, proj_size=4),
    "torch gru": lambda: nn.GRU(E, H, 2, batch_first=True),
    "torch rnn relu": lambda: nn.RNN(E, H, nonlinearity="relu"),
    "rnnkit lstm plain": lambda: rnnkit.LSTM(E, H, 2),
    "rnnkit lstm everything": lambda: rnnkit.LSTM(
        E, H, 2, batch_first=True, layer_norm=True, peephole=True, proj_size=3, zoneout=0.2, recurrent_dropout=0.3
    ),  # fmt: skip
    "rnnkit gru before layer_norm": lambda: rnnkit.GRU(E, H, reset="before", layer_norm=True, zoneout=0.1),
    "rnnkit gru after skip": lambda: rnnkit.GRU(E, H, 3, skip_connections=True, layer_norm=True),
    "rnnkit rnn tanh layer_norm": lambda: rnnkit.RNN(E, H, 2, layer_norm=True, bias=False),
}


def head_for(rnn):
    if isinstance(rnn, rnnkit.Recurrent):
        c = rnn.config
        return nn.Linear(c.output_size * (c.num_layers if c.skip_connections else 1), V)
    return nn.Linear(rnn.proj_size or rnn.hidden_size, V)


@pytest.mark.parametrize("name", list(RNNS))
def test_fast_path_gives_the_tokens_of_the_plain_loop(name):
    torch.manual_seed(0)
    embedding, rnn = nn.Embedding(V, E), RNNS[name]()
    head = head_for(rnn)
    assert make_stepper(embedding, rnn, head) is not None, "this layer should take the fast path"
    for kwargs in [dict(seed=3), dict(seed=4, num_samples=5, top_k=4, temperature=0.7), dict(temperature=0)]:
        fast = rnnkit.generate(embedding, rnn, head, 25, prime=[1, 2, 3], **kwargs)
        seed = kwargs.pop("seed", 0)
        plain = plain_generate(embedding, rnn, head, 25, prime=[1, 2, 3], seed=seed, **kwargs)
        assert torch.equal(fast, plain), kwargs


@pytest.mark.parametrize("name", list(RNNS))
def test_logits_of_each_step_match_the_modules(name):
    torch.manual_seed(1)
    embedding, rnn = nn.Embedding(V, E), RNNS[name]()
    head = head_for(rnn)
    rnn.eval()
    stepper = make_stepper(embedding, rnn, head)
    tokens = torch.tensor([[4, 0, 7, 7, 2], [1, 1, 12, 3, 0]])  # (N, T)
    with torch.no_grad():
        logits = [stepper.prime(tokens[:, :1])]
        for t in range(1, tokens.shape[1]):
            logits.append(stepper.step(tokens[:, t]))
        x = embedding(tokens)
        out, _ = rnn(x if getattr(rnn, "batch_first", False) else x.transpose(0, 1))
        expected = head(out if getattr(rnn, "batch_first", False) else out.transpose(0, 1))  # (N, T, V)
    torch.testing.assert_close(torch.stack(logits, dim=1), expected, rtol=1e-10, atol=1e-12)


def test_bidirectional_and_custom_modules_fall_back_to_module_calls():
    torch.manual_seed(2)
    embedding, head = nn.Embedding(V, E), nn.Linear(2 * H, V)
    bidirectional = rnnkit.GRU(E, H, bidirectional=True)
    assert make_stepper(embedding, bidirectional, head) is None
    fast = rnnkit.generate(embedding, bidirectional, head, 10, prime=[1], seed=1)
    assert torch.equal(fast, plain_generate(embedding, bidirectional, head, 10, prime=[1], seed=1))

    class Wrapped(nn.Module):  # not a recurrent layer the stepper knows
        def __init__(self):
            super().__init__()
            self.inner = nn.GRU(E, H)

        def forward(self, x, state=None):
            return self.inner(x, state)

    wrapped = Wrapped()
    assert make_stepper(embedding, wrapped, nn.Linear(H, V)) is None
    assert rnnkit.generate(embedding, wrapped, nn.Linear(H, V), 4, seed=0).shape == (1, 4)


def test_any_embedding_module_and_head():
    torch.manual_seed(3)
    embedding = nn.Sequential(nn.Embedding(V, E), nn.Tanh())
    rnn = rnnkit.LSTM(E, H, batch_first=True)
    head = nn.Sequential(nn.Linear(H, 8), nn.ReLU(), nn.Linear(8, V))
    fast = rnnkit.generate(embedding, rnn, head, 15, prime=[5, 6], seed=9, num_samples=3)
    assert torch.equal(fast, plain_generate(embedding, rnn, head, 15, prime=[5, 6], seed=9, num_samples=3))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA graphs need a GPU")
def test_cuda_graph_steps_give_the_same_tokens(monkeypatch):
    torch.manual_seed(4)
    embedding, rnn = nn.Embedding(V, E).cuda(), rnnkit.LSTM(E, H, 2, layer_norm=True).cuda()
    head = nn.Linear(H, V).cuda()
    with_graphs = rnnkit.generate(embedding, rnn, head, 30, prime=[1, 2], seed=5, num_samples=4)
    monkeypatch.setenv("RNNKIT_CUDA_GRAPHS", "0")
    without = rnnkit.generate(embedding, rnn, head, 30, prime=[1, 2], seed=5, num_samples=4)
    assert torch.equal(with_graphs, without)


# -- the C loop (float32 on the CPU, plain cells) --------------------------------------------------

C_RNNS = {
    "torch lstm 2 layers": lambda: nn.LSTM(E, H, 2),
    "torch gru batch_first": lambda: nn.GRU(E, H, 2, batch_first=True),
    "torch rnn relu": lambda: nn.RNN(E, H, nonlinearity="relu"),
    "rnnkit lstm": lambda: rnnkit.LSTM(E, H, batch_first=True),
    "rnnkit gru no bias": lambda: rnnkit.GRU(E, H, 2, bias=False),
    "rnnkit rnn tanh": lambda: rnnkit.RNN(E, H),
    "rnnkit lstm layer_norm zoneout 2 layers": lambda: rnnkit.LSTM(E, H, 2, layer_norm=True, zoneout=0.2),
    "rnnkit gru before": lambda: rnnkit.GRU(E, H, reset="before"),
    "rnnkit gru before layer_norm zoneout": lambda: rnnkit.GRU(E, H, 2, reset="before", layer_norm=True, zoneout=0.1),
    "rnnkit gru after layer_norm no bias": lambda: rnnkit.GRU(E, H, layer_norm=True, bias=False),
    "rnnkit rnn relu layer_norm zoneout": lambda: rnnkit.RNN(E, H, nonlinearity="relu", layer_norm=True, zoneout=0.3),
    "torch lstm proj 2 layers": lambda: nn.LSTM(E, H, 2, proj_size=4),
    "rnnkit lstm everything": lambda: rnnkit.LSTM(
        E, H, 2, batch_first=True, layer_norm=True, peephole=True, proj_size=3, zoneout=0.2, recurrent_dropout=0.3
    ),  # fmt: skip
    "rnnkit lstm peephole": lambda: rnnkit.LSTM(E, H, peephole=True),
    "rnnkit gru after skip": lambda: rnnkit.GRU(E, H, 3, skip_connections=True, layer_norm=True),
    "rnnkit lstm proj skip": lambda: rnnkit.LSTM(E, H, 2, proj_size=4, skip_connections=True),
}


@pytest.mark.skipif(sys.platform != "linux", reason="the C loop is built and tested on Linux")
@pytest.mark.parametrize("name", list(C_RNNS))
def test_c_loop_gives_the_tokens_of_the_plain_loop(name):
    torch.set_default_dtype(torch.float32)  # the C loop runs float32 only
    torch.manual_seed(5)
    embedding, rnn = nn.Embedding(V, E), C_RNNS[name]()
    head = head_for(rnn)
    assert dispatch.c_generation_applies([], None), "the C generation loop was not built (setup.py)"
    stepper = make_stepper(embedding, rnn, head)
    stepper.prime(torch.tensor([[1, 2]]))
    assert cstepper.CLoop.make(stepper, 1.0, None, None) is not None, "this layer should take the C loop"
    n = 2 * cstepper.CHUNK + 7  # several C calls, the last one short
    options = [dict(seed=3), dict(seed=4, num_samples=5, temperature=0.7), dict(temperature=0, num_samples=2),
               dict(seed=6, num_samples=3, top_k=4), dict(seed=7, top_k=1)]  # fmt: skip
    for kwargs in options:
        fast = rnnkit.generate(embedding, rnn, head, n, prime=[1, 2, 3], **kwargs)
        seed = kwargs.pop("seed", 0)
        plain = plain_generate(embedding, rnn, head, n, prime=[1, 2, 3], seed=seed, **kwargs)
        assert torch.equal(fast, plain), kwargs


@pytest.mark.skipif(sys.platform != "linux", reason="the C loop is built and tested on Linux")
@pytest.mark.parametrize("name", list(C_RNNS))
def test_c_loop_state_follows_the_stepper(name):
    """After the same tokens, the C loop's state equals the Stepper's to float32 rounding: a check of
    the arithmetic itself, which equal tokens only imply up to the draws' margins."""
    torch.set_default_dtype(torch.float32)
    torch.manual_seed(6)
    embedding, rnn = nn.Embedding(V, E), C_RNNS[name]()
    head = head_for(rnn)
    for m in (embedding, rnn, head):
        m.eval()
    with torch.no_grad():
        stepper = make_stepper(embedding, rnn, head)
        stepper.prime(torch.tensor([[1, 2], [3, 4]]))
        loop = cstepper.CLoop.make(stepper, 1.0, None, None)
        tokens = loop.run(torch.tensor([5, 6]), 9, torch.Generator().manual_seed(0))  # (9, 2)
        for token in torch.cat([torch.tensor([[5, 6]]), tokens[:-1]]):
            stepper.step(token)
        for c_state, state in zip(loop.state, stepper.state):
            for a, b in zip(c_state, state):
                torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


def test_c_loop_leaves_what_it_does_not_compute_to_the_stepper():
    torch.set_default_dtype(torch.float32)
    embedding, head = nn.Embedding(V, E), nn.Linear(H, V)

    def primed(rnn, head=head, embedding=embedding):
        stepper = make_stepper(embedding, rnn, head)
        stepper.prime(torch.tensor([[1, 2]]))
        return stepper

    plain = primed(nn.LSTM(E, H))
    assert cstepper.CLoop.make(plain, 1.0, None, 0.9) is None  # nucleus sampling
    doubles = primed(nn.LSTM(E, H).double(), nn.Linear(H, V).double(), nn.Embedding(V, E).double())
    assert cstepper.CLoop.make(doubles, 1.0, None, None) is None  # float32 only
    custom_head = primed(nn.LSTM(E, H), nn.Sequential(nn.Linear(H, V)))
    assert cstepper.CLoop.make(custom_head, 1.0, None, None) is None  # a head that is not one nn.Linear
