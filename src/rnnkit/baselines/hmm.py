"""A discrete hidden Markov model of a token stream (characters), trained by Baum-Welch, in torch.

N hidden states s_t, V symbols x_t; parameters

    pi (N,)     pi_i   = p(s_0 = i)
    A  (N, N)   A_ij   = p(s_t = j | s_{t-1} = i)
    B  (N, V)   B_iv   = p(x_t = v | s_t = i)

Scaled forward-backward (Rabiner 1989), with e_t = B[:, x_t] (N,):

    alpha_0 = pi * e_0 / c_0,             alpha_t = (alpha_{t-1} A) * e_t / c_t     (c_t makes alpha_t sum to 1)
    beta_{T-1} = 1,                       beta_t  = A (e_{t+1} * beta_{t+1}) / c_{t+1}
    log p(x_0..x_{T-1}) = sum_t log c_t,  and c_t = p(x_t | x_<t): the per-token likelihood is exact.
    gamma_t = alpha_t * beta_t = p(s_t | x),  xi_t = alpha_t^T (e_{t+1} * beta_{t+1}) * A / c_{t+1}

Baum-Welch (EM) re-estimates pi ∝ sum gamma_0, A_ij ∝ sum_t xi_t(i, j), B_iv ∝ sum_{t: x_t = v} gamma_t(i) + a
(a: an emission pseudo-count, so that a symbol the training sample lacks keeps a nonzero probability; with
a = 0 each iteration never lowers the training log-likelihood, with a > 0 it never lowers the
log-likelihood plus the Dirichlet log-prior a sum log B).

Training runs on a bounded sample: at most ``max_train_tokens`` tokens, as windows of ``window`` tokens
spread evenly over the training text, each an independent sequence from pi; the windows are processed
in batches (all windows of a batch step through time together), and their expected counts are summed
before each update, so every iteration is an exact EM step on the sample. Scoring runs the forward
recursion over the whole text in float64, carrying alpha from token to token, so ``log_probs`` is the
model's true log p(x_t | x_<t) for every token.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from rnnkit.baselines.ngram import TokenSampler, _check_ids, _is_int
from rnnkit.errors import CheckpointError, ConfigError, DataError

BATCH_ELEMENTS = 1 << 23  # windows x steps x states held at once in one forward-backward batch


@dataclass(frozen=True)
class HMMConfig:
    """Baum-Welch settings of ``rnnkit baseline hmm``."""

    states: int = 64
    iterations: int = 50
    tol: float = 1e-4  # stop when the training nats per token improve by less than this
    restarts: int = 1  # independent random initialisations, the best final training likelihood kept
    window: int = 256
    max_train_tokens: int = 200_000
    pseudocount: float = 1e-2
    seed: int = 0
    dtype: str = "float32"  # of training; scoring is always float64

    def __post_init__(self) -> None:
        if not _is_int(self.states) or self.states < 2:
            raise ConfigError(f"HMM states must be an integer >= 2, got {self.states!r}")
        for name in ("iterations", "restarts", "window", "max_train_tokens"):
            value = getattr(self, name)
            if not _is_int(value) or value < 1:
                raise ConfigError(f"HMM {name} must be an integer >= 1, got {value!r}")
        for name in ("tol", "pseudocount"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                raise ConfigError(f"HMM {name} must be a number >= 0, got {value!r}")
        if not _is_int(self.seed):
            raise ConfigError(f"HMM seed must be an integer, got {self.seed!r}")
        if self.dtype not in ("float32", "float64"):
            raise ConfigError(f"HMM dtype must be 'float32' or 'float64', got {self.dtype!r}")


class DiscreteHMM(TokenSampler):
    """A categorical HMM: ``start`` pi (N,), ``transition`` A (N, N), ``emission`` B (N, V), float64 rows
    that sum to 1. ``history`` holds the training nats per token before each update (empty if not fit)."""

    def __init__(self, start: Tensor, transition: Tensor, emission: Tensor, history=()) -> None:
        start, transition, emission = (torch.as_tensor(t, dtype=torch.float64) for t in (start, transition, emission))
        n = start.shape[0] if start.ndim == 1 else -1
        if n < 2 or transition.shape != (n, n) or emission.ndim != 2 or emission.shape[0] != n:
            raise ConfigError(
                f"HMM parameters must be start (N,), transition (N, N), emission (N, V) with N >= 2, got "
                f"{list(start.shape)}, {list(transition.shape)}, {list(emission.shape)}"
            )
        for name, p in (("start", start), ("transition", transition), ("emission", emission)):
            if (
                not torch.isfinite(p).all()
                or (p < 0).any()
                or not torch.allclose(p.sum(-1), torch.ones((), dtype=torch.float64))
            ):
                raise ConfigError(f"HMM {name} probabilities must be finite, >= 0 and sum to 1 per row")
        self.start, self.transition, self.emission = start, transition, emission
        self.history = tuple(float(h) for h in history)

    @property
    def num_states(self) -> int:
        return self.start.shape[0]

    @property
    def vocab_size(self) -> int:
        return self.emission.shape[1]

    @property
    def num_parameters(self) -> int:
        """Free parameters: (N - 1) + N (N - 1) + N (V - 1)."""
        n, v = self.num_states, self.vocab_size
        return (n - 1) + n * (n - 1) + n * (v - 1)

    # -- training -------------------------------------------------------------------------------------

    @classmethod
    def fit(cls, ids, vocab_size: int, config: HMMConfig = HMMConfig()) -> DiscreteHMM:
        """Baum-Welch on a bounded sample of the stream ``ids`` (see the module docstring), ``restarts``
        times from seeded random starts; the restart with the best final training likelihood is kept."""
        if not _is_int(vocab_size) or vocab_size < 1:
            raise ConfigError(f"vocab_size must be an integer >= 1, got {vocab_size!r}")
        x = _check_ids(ids, vocab_size, "the training ids")
        if len(x) < 2:
            raise DataError("the training text has fewer than 2 tokens")
        windows = torch.from_numpy(training_windows(x, config.window, config.max_train_tokens))  # (W, T)
        dtype = torch.float32 if config.dtype == "float32" else torch.float64
        unigram = torch.bincount(windows.reshape(-1), minlength=vocab_size).to(torch.float64) + 1.0
        best = None
        for r in range(config.restarts):
            gen = torch.Generator().manual_seed(config.seed + r)
            n = config.states
            start = torch.full((n,), 1.0 / n, dtype=torch.float64)
            transition = torch.empty(n, n, dtype=torch.float64).exponential_(1.0, generator=gen)
            emission = unigram * torch.empty(n, vocab_size, dtype=torch.float64).exponential_(1.0, generator=gen)
            params = [start, transition / transition.sum(1, keepdim=True), emission / emission.sum(1, keepdim=True)]
            history = []
            for _ in range(config.iterations):
                loglik, counts = expected_counts(windows, *(p.to(dtype) for p in params))
                history.append(-loglik / windows.numel())
                params = _m_step(params, counts, config.pseudocount)
                if len(history) > 1 and history[-2] - history[-1] < config.tol:
                    break
            loglik, _ = expected_counts(windows, *(p.to(dtype) for p in params))
            history.append(-loglik / windows.numel())
            if best is None or history[-1] < best[1][-1]:
                best = (params, history)
        params, history = best
        return cls(*params, history=history)

    # -- scoring --------------------------------------------------------------------------------------

    def log_probs(self, ids) -> np.ndarray:
        """log p(x_t | x_<t) of every token of ``ids`` (L,) by the forward algorithm over the whole
        sequence, alpha carried from token to token (x_0: log p(x_0) under pi): (L,) float64."""
        x = torch.from_numpy(_check_ids(ids, self.vocab_size, "the ids to score"))
        out = torch.empty(len(x), dtype=torch.float64)
        emit = self.emission.T.contiguous()  # (V, N): one row per symbol
        alpha = self.start
        for t in range(len(x)):
            a = (alpha if t == 0 else alpha @ self.transition) * emit[x[t]]
            c = a.sum()
            out[t] = c
            alpha = a / c
        return out.log_().numpy()

    def log_likelihood(self, ids) -> float:
        """log p(ids) = sum of log_probs."""
        return float(self.log_probs(ids).sum())

    def score(self, ids) -> tuple[float, int]:
        """Mean negative log-likelihood (nats per token) of ``ids[1:]`` given all tokens before, and how
        many tokens that is: the tokens an rnnkit LM is scored on."""
        lp = self.log_probs(ids)
        if len(lp) < 2:
            raise DataError("the text to score has fewer than 2 tokens")
        return float(-lp[1:].mean()), len(lp) - 1

    def filtered_state(self, context_ids) -> Tensor:
        """p(s_t | x_0..x_t) (N,) after ``context_ids`` (pi before the first token, for an empty context)."""
        x = _check_ids(context_ids, self.vocab_size, "the context")
        alpha = None
        for v in x:
            a = (self.start if alpha is None else alpha @ self.transition) * self.emission[:, int(v)]
            alpha = a / a.sum()
        return alpha

    def next_distribution(self, context_ids) -> np.ndarray:
        """p(x_{t+1} | context): (V,) float64, (alpha_t A) B, or pi B for an empty context."""
        alpha = self.filtered_state(context_ids)
        state = self.start if alpha is None else alpha @ self.transition
        return (state @ self.emission).numpy()

    # -- sampling -------------------------------------------------------------------------------------

    def sampling_state(self, prime) -> Tensor:
        """For :meth:`TokenSampler.sample`: p(s_{t+1} | x_<=t) after the prime, (N,)."""
        alpha = self.filtered_state(prime)
        return self.start if alpha is None else alpha @ self.transition

    def next_log_probs(self, state: Tensor) -> Tensor:
        """log p(x_{t+1} | x_<=t) = log (state B): (V,)."""
        return (state @ self.emission).log()

    def advance(self, state: Tensor, token: int) -> Tensor:
        """The filtered state updated with the drawn token, carried one step: (alpha_{t+1}) A."""
        a = state * self.emission[:, token]
        return (a / a.sum()) @ self.transition

    # -- storage --------------------------------------------------------------------------------------

    def to_arrays(self) -> dict[str, np.ndarray]:
        """Named float64 arrays for ``safetensors.numpy.save_file``; from_arrays reads them back."""
        return {
            "start": self.start.numpy(),
            "transition": self.transition.numpy(),
            "emission": self.emission.numpy(),
            "history": np.asarray(self.history, dtype=np.float64),
        }

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray]) -> DiscreteHMM:
        """Rebuild a model from to_arrays() output; a missing or malformed array is a CheckpointError."""
        for name in ("start", "transition", "emission", "history"):
            a = arrays.get(name)
            if not isinstance(a, np.ndarray) or a.dtype != np.float64:
                raise CheckpointError(f"HMM model: array {name!r} is missing or not float64")
        try:
            return cls(
                torch.from_numpy(arrays["start"].copy()),
                torch.from_numpy(arrays["transition"].copy()),
                torch.from_numpy(arrays["emission"].copy()),
                arrays["history"].tolist(),
            )
        except ConfigError as error:
            raise CheckpointError(f"HMM model: {error}") from None


def training_windows(ids: np.ndarray, window: int, max_tokens: int) -> np.ndarray:
    """(W, T) int64 windows of ``ids``: T = min(window, len(ids)), W = min(len // T, max(max_tokens // T, 1)),
    starting at evenly spaced offsets so that a bounded sample still covers the whole text."""
    t = min(window, len(ids))
    w = max(1, min(len(ids) // t, max_tokens // t))
    starts = np.linspace(0, len(ids) - t, w).round().astype(np.int64)
    return np.asarray(ids, dtype=np.int64)[starts[:, None] + np.arange(t)]


def expected_counts(windows: Tensor, start: Tensor, transition: Tensor, emission: Tensor):
    """One E-step over ``windows`` (W, T): the summed log-likelihood (float) and the expected counts
    (start (N,), transition (N, N), emission (N, V), float64), batched over windows."""
    w_all, t_len = windows.shape
    n, v = emission.shape
    batch = max(1, BATCH_ELEMENTS // (t_len * n))
    loglik = 0.0
    c_start = torch.zeros(n, dtype=torch.float64)
    c_trans = torch.zeros(n, n, dtype=torch.float64)
    c_emit = torch.zeros(v, n, dtype=torch.float64)
    emit_t = emission.T.contiguous()  # (V, N)
    for lo in range(0, w_all, batch):
        x = windows[lo : lo + batch]  # (W, T)
        e = emit_t[x]  # (W, T, N)
        alpha = torch.empty_like(e)
        scale = torch.empty(x.shape, dtype=e.dtype)  # (W, T)
        a = start * e[:, 0]
        for t in range(t_len):
            if t:
                a = (a @ transition) * e[:, t]
            c = a.sum(-1, keepdim=True)
            scale[:, t] = c[:, 0]
            a = a / c
            alpha[:, t] = a
        beta = torch.empty_like(e)
        b = torch.ones_like(e[:, 0])
        beta[:, -1] = b
        for t in range(t_len - 2, -1, -1):
            b = ((e[:, t + 1] * b) @ transition.T) / scale[:, t + 1, None]
            beta[:, t] = b
        gamma = alpha * beta  # (W, T, N): p(s_t | window)
        loglik += scale.double().log().sum().item()
        c_start += gamma[:, 0].double().sum(0)
        if t_len > 1:
            right = e[:, 1:] * beta[:, 1:] / scale[:, 1:, None]  # (W, T-1, N)
            xi = alpha[:, :-1].reshape(-1, n).T @ right.reshape(-1, n)  # (N, N), times A below
            c_trans += (xi * transition).double()
        c_emit.index_add_(0, x.reshape(-1), gamma.reshape(-1, n).double())
    return loglik, (c_start, c_trans, c_emit.T.contiguous())


def _m_step(params: list[Tensor], counts, pseudocount: float) -> list[Tensor]:
    """New (pi, A, B) from expected counts; a state with no expected transitions keeps its old row."""
    start, transition, _ = params
    c_start, c_trans, c_emit = counts
    new_start = c_start / c_start.sum()
    rows = c_trans.sum(1, keepdim=True)
    new_trans = torch.where(rows > 0, c_trans / rows.clamp(min=1e-300), transition)
    emit = c_emit + pseudocount
    emit_rows = emit.sum(1, keepdim=True)
    new_emit = torch.where(emit_rows > 0, emit / emit_rows.clamp(min=1e-300), params[2])
    return [new_start, new_trans, new_emit]
