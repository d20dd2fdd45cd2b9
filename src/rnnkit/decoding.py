"""Decoding: sampling with temperature, top-k and top-p (nucleus), priming, and greedy choice.

Generation is one-to-many: a prime (or a single start token) sets the state, then each sampled token
is fed back as the next input::

    ids = rnnkit.generate(model.embedding, model.rnn, model.head, 200, prime=[3, 14], temperature=0.8, seed=1)

Same seed, same tokens (on the same device).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch
from torch import Tensor, nn

from rnnkit.kernels.generation import make_stepper


def check_sampling(temperature: float, top_k: int | None, top_p: float | None) -> None:
    """Raise ValueError naming the bad sampling option."""
    if isinstance(temperature, bool) or not isinstance(temperature, (int, float)) or temperature < 0:
        raise ValueError(f"temperature must be a number >= 0 (0 = greedy), got {temperature!r}")
    if top_k is not None and (isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1):
        raise ValueError(f"top_k must be an integer >= 1, got {top_k!r}")
    if top_p is not None and (isinstance(top_p, bool) or not isinstance(top_p, (int, float)) or not 0 < top_p <= 1):
        raise ValueError(f"top_p must be in (0, 1], got {top_p!r}")


def sample_logits(
    logits: Tensor,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Draw one token per row of ``logits`` (N, V): softmax(logits / T) restricted to the top-k tokens
    and to the smallest set whose probability reaches top_p. Temperature 0 is greedy (argmax)."""
    if temperature == 0:
        return logits.argmax(dim=-1)
    if temperature != 1.0:
        logits = logits / temperature
    if top_k is not None and top_k < logits.shape[-1]:
        kth = torch.topk(logits, top_k, dim=-1).values[..., -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p is not None and top_p < 1.0:
        sorted_logits, order = torch.sort(logits, dim=-1, descending=True)
        cumulative = sorted_logits.softmax(dim=-1).cumsum(dim=-1)
        drop = cumulative - sorted_logits.softmax(dim=-1) >= top_p  # keep tokens until the mass reaches p
        sorted_logits = sorted_logits.masked_fill(drop, float("-inf"))
        logits = torch.empty_like(logits).scatter_(-1, order, sorted_logits)
    probs = logits.softmax(dim=-1)
    # argmax(p / q), q ~ Exp(1), is a draw from p: the exponential race torch.multinomial runs for one
    # sample (same generator use, same tokens), without its validity checks that cost more than the draw.
    race = torch.empty_like(probs).exponential_(1.0, generator=generator)
    return (probs / race).argmax(dim=-1)


def iter_generate(
    embedding: nn.Module,
    rnn: nn.Module,
    head: nn.Module,
    n_tokens: int,
    *,
    prime: Sequence[int] | Tensor | None = None,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    num_samples: int = 1,
    seed: int | None = None,
) -> Iterator[Tensor]:
    """Yield the sampled tokens one step at a time, each a (num_samples,) tensor; see :func:`generate`."""
    if isinstance(n_tokens, bool) or not isinstance(n_tokens, int) or n_tokens < 1:
        raise ValueError(f"n_tokens must be an integer >= 1, got {n_tokens!r}")
    if isinstance(num_samples, bool) or not isinstance(num_samples, int) or num_samples < 1:
        raise ValueError(f"num_samples must be an integer >= 1, got {num_samples!r}")
    check_sampling(temperature, top_k, top_p)
    weight = next(embedding.parameters())
    vocab_size, device = weight.shape[0], weight.device
    prime = torch.as_tensor([0] if prime is None or len(prime) == 0 else prime, dtype=torch.long).flatten()
    bad = (prime < 0) | (prime >= vocab_size)
    if bad.any():
        raise ValueError(f"prime token id {int(prime[bad][0])} is outside the vocabulary of {vocab_size} tokens")
    generator = torch.Generator(device=device)
    generator.manual_seed(seed if seed is not None else int(torch.randint(0, 2**62, ()).item()))
    batch_first = getattr(rnn, "batch_first", False)

    def step(tokens: Tensor, state):  # tokens (N, T) -> logits of the last step (N, V)
        x = embedding(tokens)  # (N, T, E)
        out, state = rnn(x if batch_first else x.transpose(0, 1), state)
        last = out[:, -1] if batch_first else out[-1]
        return head(last), state

    modules = (embedding, rnn, head)
    was_training = [m.training for m in modules]
    for m in modules:
        m.eval()
    try:
        with torch.no_grad():
            stepper = make_stepper(embedding, rnn, head)  # prepared weights and fused steps; None: modules
            prime_ids = prime.to(device).expand(num_samples, -1)
            if stepper is not None:
                logits, state = stepper.prime(prime_ids), None
            else:
                logits, state = step(prime_ids, None)
            for i in range(n_tokens):
                token = sample_logits(logits, temperature, top_k, top_p, generator)  # (N,)
                yield token
                if i + 1 < n_tokens:
                    if stepper is not None:
                        logits = stepper.step(token)
                    else:
                        logits, state = step(token.unsqueeze(1), state)
    finally:
        for m, mode in zip(modules, was_training):
            m.train(mode)


def generate(
    embedding: nn.Module,
    rnn: nn.Module,
    head: nn.Module,
    n_tokens: int,
    *,
    prime: Sequence[int] | Tensor | None = None,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    num_samples: int = 1,
    seed: int | None = None,
) -> Tensor:
    """Sample ``n_tokens`` tokens after ``prime`` for ``num_samples`` sequences at once: (num_samples, n_tokens).

    ``embedding`` maps ids (N, T) to (N, T, E); ``rnn`` is any rnnkit or torch.nn recurrent layer;
    ``head`` maps its output features to logits over the vocabulary. Without a prime, token 0 starts.
    """
    steps = iter_generate(
        embedding, rnn, head, n_tokens, prime=prime, temperature=temperature, top_k=top_k, top_p=top_p,
        num_samples=num_samples, seed=seed,
    )  # fmt: skip
    return torch.stack(list(steps), dim=1)
