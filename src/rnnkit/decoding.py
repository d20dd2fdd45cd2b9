"""Decoding: sampling with temperature, top-k and top-p (nucleus), priming, and greedy choice.

Generation is one-to-many: a prime (or a single start token) sets the state, then each sampled token
is fed back as the next input::

    ids = rnnkit.generate(model.embedding, model.rnn, model.head, 200, prime=[3, 14], temperature=0.8, seed=1)

Same seed, same tokens (on the same device).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import NamedTuple

import torch
from torch import Tensor, nn

from rnnkit.kernels.cstepper import CLoop
from rnnkit.kernels.stepper import make_stepper
from rnnkit_onnx.sampler import check_sampling  # torch-free: the ONNX sampler's check is the one

__all__ = ["check_sampling"]  # re-exported: rnnkit.decoding.check_sampling is what the library calls


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
    """Yield the sampled tokens one step at a time, each a (num_samples,) tensor: ``n_tokens`` of them after
    ``prime``, for ``num_samples`` sequences at once (:func:`generate` stacks them).

    ``embedding`` maps ids (N, T) to (N, T, E); ``rnn`` is any rnnkit or torch.nn recurrent layer;
    ``head`` maps its output features to logits over the vocabulary. Without a prime, token 0 starts.
    """
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
            token = sample_logits(logits, temperature, top_k, top_p, generator)  # (N,)
            yield token
            loop = None if stepper is None else CLoop.make(stepper, temperature, top_k, top_p)
            if loop is not None:  # runs of tokens in C: the same draws from the same generator
                for start in range(1, n_tokens, loop.chunk):
                    tokens = loop.run(token, min(loop.chunk, n_tokens - start), generator)  # (steps, N)
                    yield from tokens
                    token = tokens[-1]
                return
            for _ in range(1, n_tokens):
                if stepper is not None:
                    logits = stepper.step(token)
                else:
                    logits, state = step(token.unsqueeze(1), state)
                token = sample_logits(logits, temperature, top_k, top_p, generator)
                yield token
    finally:
        for m, mode in zip(modules, was_training):
            m.train(mode)


def generate(embedding: nn.Module, rnn: nn.Module, head: nn.Module, n_tokens: int, **options) -> Tensor:
    """Sample ``n_tokens`` tokens after ``prime`` for ``num_samples`` sequences at once: (num_samples, n_tokens).
    The arguments and keyword options (``prime``, ``temperature``, ``top_k``, ``top_p``, ``num_samples``,
    ``seed``) are those of :func:`iter_generate`, which yields the same tokens one step at a time."""
    return torch.stack(list(iter_generate(embedding, rnn, head, n_tokens, **options)), dim=1)


# == encoder-decoder decoding: greedy and beam search (issue 5) ====================================
# These work with any model that offers the step interface of rnnkit.models.Seq2Seq:
#
#     memory, carry = model.start(source (B, S), source_lengths (B,))    # both have .select(index)
#     logits, carry = model.step(tokens (N,), carry, memory)             # logits (N, V) of the next token
#     model.go_id, model.end_id                                          # the start and end tokens
#
# A hypothesis ends at the first ``end`` token (not included in its tokens) or, unfinished, after
# ``max_length`` steps; its score is the sum of the log-probabilities of its tokens, plus that of
# ``end`` when it finished.


class Hypotheses(NamedTuple):
    """Decoded outputs of a batch: ``tokens`` per example (without ``end``), ``scores`` (B,) log p, and
    ``finished`` per example (False when ``max_length`` cut it before ``end``)."""

    tokens: list[list[int]]
    scores: Tensor
    finished: list[bool]


def _check_length(max_length: int) -> None:
    if isinstance(max_length, bool) or not isinstance(max_length, int) or max_length < 1:
        raise ValueError(f"max_length must be an integer >= 1, got {max_length!r}")


def _cut(rows: list[list[int]], end: int) -> tuple[list[list[int]], list[bool]]:
    """Each row up to its first ``end``, and whether it had one."""
    tokens, finished = [], []
    for row in rows:
        n = row.index(end) if end in row else len(row)
        tokens.append(row[:n])
        finished.append(n < len(row))
    return tokens, finished


@torch.no_grad()
def greedy_decode(model, source: Tensor, source_lengths: Tensor | None = None, *, max_length: int) -> Hypotheses:
    """Batched greedy decoding: at every step each sequence takes its most probable next token,
    :math:`y_t = \\arg\\max_y p(y \\mid y_{<t}, x)`, until ``end`` or ``max_length`` steps."""
    _check_length(max_length)
    memory, carry = model.start(source, source_lengths)
    B = source.shape[0]
    tokens = torch.full((B,), model.go_id, dtype=torch.long, device=source.device)
    done = torch.zeros(B, dtype=torch.bool, device=source.device)
    scores = torch.zeros(B, device=source.device)
    steps = []
    for _ in range(max_length):
        logits, carry = model.step(tokens, carry, memory)
        log_probs = logits.float().log_softmax(dim=-1)  # (B, V)
        tokens = log_probs.argmax(dim=-1)
        scores += log_probs.gather(1, tokens.unsqueeze(1)).squeeze(1).masked_fill(done, 0.0)
        steps.append(tokens)
        done = done | (tokens == model.end_id)
        if bool(done.all()):
            break
    rows = torch.stack(steps, dim=1).tolist()  # (B, steps)
    tokens_out, finished = _cut(rows, model.end_id)
    return Hypotheses(tokens_out, scores.cpu(), finished)


@torch.no_grad()
def beam_search(
    model, source: Tensor, source_lengths: Tensor | None = None, *, beam_size: int, max_length: int
) -> Hypotheses:
    """Batched beam search: keep the ``beam_size`` highest-scoring prefixes of every example.

    At step t every live prefix y_{<t} of score :math:`\\log p(y_{<t} \\mid x)` is extended by every
    token y, scored :math:`\\log p(y_{<t} \\mid x) + \\log p(y \\mid y_{<t}, x)`, and the best
    ``beam_size`` of all extensions survive. A finished hypothesis keeps its slot and its score (its
    only extension costs nothing), so the search ends when every kept hypothesis has finished, or after
    ``max_length`` steps. The result is the best kept hypothesis of each example. ``beam_size=1`` is
    greedy decoding; a beam as large as the number of hypotheses searches exhaustively.
    """
    _check_length(max_length)
    if isinstance(beam_size, bool) or not isinstance(beam_size, int) or beam_size < 1:
        raise ValueError(f"beam_size must be an integer >= 1, got {beam_size!r}")
    B, K, device, end = source.shape[0], beam_size, source.device, model.end_id
    memory, carry = model.start(source, source_lengths)
    rows = torch.arange(B, device=device).repeat_interleave(K)  # (B*K,): example of each beam
    memory, carry = memory.select(rows), carry.select(rows)
    scores = torch.full((B, K), float("-inf"), device=device)
    scores[:, 0] = 0.0  # one live beam at first; the others are empty (-inf) until filled
    tokens = torch.full((B * K,), model.go_id, dtype=torch.long, device=device)
    finished = torch.zeros(B * K, dtype=torch.bool, device=device)
    offsets = (torch.arange(B, device=device) * K).unsqueeze(1)  # (B, 1)
    history: list[tuple[Tensor, Tensor]] = []  # per step: (parent beam (B, K), token (B, K))
    for _ in range(max_length):
        logits, carry = model.step(tokens, carry, memory)
        log_probs = logits.float().log_softmax(dim=-1)  # (B*K, V)
        V = log_probs.shape[-1]
        frozen = torch.full_like(log_probs, float("-inf"))
        frozen[:, end] = 0.0  # a finished hypothesis extends only by (another) end, at no cost
        log_probs = torch.where(finished.unsqueeze(1), frozen, log_probs)
        candidates = (scores.view(B * K, 1) + log_probs).view(B, K * V)
        scores, index = candidates.topk(K, dim=1)  # (B, K)
        parent, token = index // V, index % V
        flat = (offsets + parent).view(-1)  # (B*K,)
        carry = carry.select(flat)
        tokens = token.view(-1)
        finished = finished.index_select(0, flat) | (tokens == end) | torch.isinf(scores.view(-1))
        history.append((parent, token))
        if bool(finished.all()):
            break
    best = scores.argmax(dim=1)  # (B,)
    beam = best.clone()
    columns = []
    for parent, token in reversed(history):  # follow the back-pointers from the best final beam
        columns.append(token.gather(1, beam.unsqueeze(1)).squeeze(1))
        beam = parent.gather(1, beam.unsqueeze(1)).squeeze(1)
    rows_out = torch.stack(columns[::-1], dim=1).tolist()  # (B, steps)
    tokens_out, done = _cut(rows_out, end)
    return Hypotheses(tokens_out, scores.gather(1, best.unsqueeze(1)).squeeze(1).cpu(), done)


@torch.no_grad()
def score_hypotheses(
    model, source: Tensor, source_lengths: Tensor | None, tokens: Sequence[Sequence[int]], finished: Sequence[bool]
) -> Tensor:
    """Log-probability (B,) of given outputs: the sum of log p of their tokens, plus ``end`` where finished."""
    memory, carry = model.start(source, source_lengths)
    B, device = source.shape[0], source.device
    targets = [list(t) + ([model.end_id] if f else []) for t, f in zip(tokens, finished)]
    T = max((len(t) for t in targets), default=0)
    total = torch.zeros(B, device=device)
    previous = torch.full((B,), model.go_id, dtype=torch.long, device=device)
    for t in range(T):
        logits, carry = model.step(previous, carry, memory)
        log_probs = logits.float().log_softmax(dim=-1)
        step = torch.tensor([row[t] if t < len(row) else 0 for row in targets], device=device)
        live = torch.tensor([t < len(row) for row in targets], device=device)
        total += log_probs.gather(1, step.unsqueeze(1)).squeeze(1).masked_fill(~live, 0.0)
        previous = step
    return total.cpu()
