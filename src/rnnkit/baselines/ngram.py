"""Interpolated modified Kneser-Ney n-gram language models (Chen & Goodman 1998), counted in numpy.

The model of order N predicts token w from the n-1 = N-1 tokens h before it. At every order n = N, ..., 1
(h_n: the last n-1 tokens of the history, h_1 empty)

    p_n(w | h_n) = max(c_n(h_n w) - D_n(c_n(h_n w)), 0) / c_n(h_n .)  +  gamma_n(h_n) p_{n-1}(w | h_{n-1})
    gamma_n(h)   = (D_n1 N_1(h .) + D_n2 N_2(h .) + D_n3+ N_3+(h .)) / c_n(h .)
    p_0(w)       = 1 / V                                   (uniform over the whole vocabulary)

where c_n(h .) = sum_w c_n(h w) and N_k(h .) is the number of words w with c_n(h w) = k (3+: at least 3).
A context never seen at order n has gamma_n = 1 (p_n = p_{n-1}). The counts c_n are

- at the highest order N, the raw count of the n-gram in the training stream;
- below it, the continuation count N_1+(. h w): how many distinct tokens precede h w in the stream, where
  the start of the stream counts as one more distinct predecessor of the stream's first n-gram (KenLM gives
  n-grams after ``<s>`` their raw count the same way).

Each order has three discounts from its count-of-counts n_k (the number of n-grams with c_n = k):

    Y = n_1 / (n_1 + 2 n_2),    D_nk = k - (k + 1) Y n_{k+1} / n_k     (k = 1, 2, 3)

as KenLM's ``lmplz`` estimates them; where some n_k (k <= 4) is 0 or a D_nk falls outside [0, k] (small or
artificial data), the order takes the fallback discounts (0.5, 1.0, 1.5), lmplz's ``--discount_fallback``.

The model works on one stream of token ids, exactly as rnnkit's language models see a corpus
(:func:`rnnkit.data.lm.load_corpus`: characters, or words with ``<unk>`` and ``<eos>`` at every line end), so
its nats per token compare with ``rnnkit eval`` of an LM run. Contexts run across line ends as the LM's
state does; the first tokens of a stream are predicted from the shorter context they have (token 0 from
the unigram p_1), as KenLM predicts a sentence's first words after ``<s>``.

Counting is vectorised. The n-gram starting at position i is named by its rank among the distinct n-grams,
built order by order: ``rank_n[i] = rank of key rank_{n-1}[i] * V + x[i + n - 1]`` (np.unique), so keys
are exact int64 (no hash collisions) and sorted keys put the n-grams of one context next to each other.
Scoring a text looks its n-grams up the same way with np.searchsorted, one pass per order.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np
import torch

from rnnkit.data.lm import Corpus, load_corpus
from rnnkit.decoding import check_sampling, sample_logits
from rnnkit.errors import CheckpointError, ConfigError, DataError

MAX_ORDER = 10
FALLBACK_DISCOUNTS = (0.5, 1.0, 1.5)


@dataclass(frozen=True)
class NGramConfig:
    """What ``rnnkit baseline ngram`` needs: the model's order and how to tokenise its text (as LMDataConfig)."""

    order: int = 5
    level: str = "char"
    vocab_size: int | None = 10000  # word level: the most frequent words kept, the rest are <unk>
    word_split: str = "whitespace"
    lowercase: bool = False
    discount_fallback: tuple[float, float, float] = field(default=FALLBACK_DISCOUNTS)

    def __post_init__(self) -> None:
        check_order(self.order)
        if self.level not in ("char", "word"):
            raise ConfigError(f"n-gram level must be 'char' or 'word', got {self.level!r}")
        if self.vocab_size is not None and (not _is_int(self.vocab_size) or self.vocab_size < 3):
            raise ConfigError(f"n-gram vocab_size must be an integer >= 3 or None, got {self.vocab_size!r}")
        _check_fallback(self.discount_fallback)


def check_order(order) -> None:
    """Raise ConfigError unless ``order`` is an integer from 1 to MAX_ORDER."""
    if not _is_int(order) or not 1 <= order <= MAX_ORDER:
        raise ConfigError(f"n-gram order must be an integer from 1 to {MAX_ORDER}, got {order!r}")


def fit_text(
    config: NGramConfig,
    path: str | os.PathLike,
    valid_path: str | os.PathLike | None = None,
    valid_fraction: float = 0.1,
) -> tuple[KneserNey, Corpus]:
    """Tokenise ``path`` as an LM run with the same options would (load_corpus) and fit the model on its
    training ids; the corpus (tokenizer, train and valid ids) comes back for scoring and vocab.json."""
    corpus = load_corpus(
        path, config.level, valid_path=valid_path, valid_fraction=valid_fraction, vocab_size=config.vocab_size,
        word_split=config.word_split, lowercase=config.lowercase,
    )  # fmt: skip
    model = KneserNey.fit(corpus.train, len(corpus.tokenizer), config.order, config.discount_fallback)
    return model, corpus


class TokenSampler:
    """Sampling from a baseline language model, written once: the model supplies ``sampling_state(prime)``
    (what the next token depends on, after the prime), ``next_log_probs(state)`` (V,) and
    ``advance(state, token)``."""

    def sample(
        self,
        length: int,
        prime=(),
        *,
        temperature: float = 1.0,
        top_k: int | None = None,
        top_p: float | None = None,
        generator: torch.Generator | np.random.Generator | int | None = None,
    ) -> np.ndarray:
        """Draw ``length`` tokens after ``prime``, each from the model's p(x_{t+1} | x_<=t) with temperature,
        top-k and top-p as :func:`rnnkit.decoding.sample_logits`; ``generator`` (torch or numpy Generator, or
        an int seed) makes it repeatable. Returns the (length,) drawn ids, without the prime."""
        _check_sample(length, temperature, top_k, top_p)
        gen = torch_generator(generator)
        state = self.sampling_state(prime)
        out = []
        for _ in range(length):
            token = int(sample_logits(self.next_log_probs(state)[None], temperature, top_k, top_p, gen)[0])
            state = self.advance(state, token)
            out.append(token)
        return np.asarray(out, dtype=np.int64)


class KneserNey(TokenSampler):
    """An interpolated modified Kneser-Ney model of order N over V token ids, stored per order n as

    - ``keys[n]`` (M_n,) int64, sorted: ``rank of the n-gram's context (n-1)-gram * V + w``, n >= 2
      (order 1 is the whole vocabulary, key = w);
    - ``alpha[n]`` (M_n,) float64: the discounted term max(c - D(c), 0) / c(h .) of that n-gram;
    - ``gamma[n]`` (M_{n-1},) float64: the interpolation weight of each (n-1)-gram as a context of order n
      (1 where it has no continuation); ``gamma[1]`` has one entry, the weight of the uniform distribution.

    so p_n(w | h) = alpha[n](h w) + gamma[n](h) p_{n-1}(w | h'), with alpha = 0 for an n-gram not stored.
    """

    def __init__(self, order: int, vocab_size: int, discounts: np.ndarray, keys, alpha, gamma) -> None:
        self.order, self.vocab_size = order, vocab_size
        self.discounts = discounts  # (N, 3): D1, D2, D3+ of orders 1..N
        self.keys: dict[int, np.ndarray] = keys  # n = 2..N
        self.alpha: dict[int, np.ndarray] = alpha  # n = 1..N
        self.gamma: dict[int, np.ndarray] = gamma  # n = 1..N

    # -- training -------------------------------------------------------------------------------------

    @classmethod
    def fit(
        cls,
        ids,
        vocab_size: int,
        order: int,
        discount_fallback: tuple[float, float, float] = FALLBACK_DISCOUNTS,
    ) -> KneserNey:
        """Count the n-grams of the token stream ``ids`` (T,) and build the model of ``order``."""
        check_order(order)
        if not _is_int(vocab_size) or vocab_size < 1:
            raise ConfigError(f"vocab_size must be an integer >= 1, got {vocab_size!r}")
        _check_fallback(discount_fallback)
        x = _check_ids(ids, vocab_size, "the training ids")
        if len(x) == 0:
            raise DataError("the training text has no tokens")
        n_max, V, T = order, int(vocab_size), len(x)
        sizes = {1: V}
        ranks = {1: x}  # ranks[n][i]: rank of the n-gram starting at position i (order 1: the token id)
        firsts: dict[int, np.ndarray] = {}  # position of one occurrence of each distinct n-gram
        keys: dict[int, np.ndarray] = {}
        for n in range(2, n_max + 1):
            _check_key_range(sizes[n - 1], V)
            key = ranks[n - 1][: max(T - n + 1, 0)] * V + x[n - 1 :]
            keys[n], firsts[n], ranks[n] = np.unique(key, return_index=True, return_inverse=True)
            sizes[n] = len(keys[n])

        discounts = np.zeros((n_max, 3))
        alpha: dict[int, np.ndarray] = {}
        gamma: dict[int, np.ndarray] = {}
        for n in range(1, n_max + 1):
            counts = _adjusted_counts(n, n_max, ranks, firsts, sizes)
            d = discounts[n - 1] = _discounts(counts, discount_fallback)
            d_of = np.concatenate([[0.0], d])[np.minimum(counts, 3)]  # D(c): 0 for c = 0, D3+ for c >= 3
            if n == 1:
                context = np.zeros(V, dtype=np.int64)  # one empty context
                num_contexts = 1
            else:
                context = keys[n] // V  # rank of the (n-1)-gram context
                num_contexts = sizes[n - 1]
            total = np.bincount(context, weights=counts, minlength=num_contexts)
            mass = np.bincount(context, weights=d_of * (counts > 0), minlength=num_contexts)
            seen = total > 0
            gamma[n] = np.where(seen, mass / np.where(seen, total, 1.0), 1.0)
            alpha[n] = np.maximum(counts - d_of, 0.0) / np.where(seen, total, 1.0)[context]
        return cls(n_max, V, discounts, keys, alpha, gamma)

    # -- scoring --------------------------------------------------------------------------------------

    def log_probs(self, ids) -> np.ndarray:
        """Natural-log probability of every token of ``ids`` (L,) given the tokens before it in ``ids``
        (at most N-1 of them; token t < N-1 uses the t it has): (L,) float64."""
        q = _check_ids(ids, self.vocab_size, "the ids to score")
        V, L = self.vocab_size, len(q)
        p = self.alpha[1][q] + self.gamma[1][0] / V  # p_1, the uniform p_0 folded in
        context = q  # rank of the (n-1)-gram at each position, -1 where it was never seen
        for n in range(2, self.order + 1):
            m = L - n + 1
            if m <= 0:
                break
            ctx = context[:m]
            known = ctx >= 0
            key = ctx * V + q[n - 1 :]
            table = self.keys[n]
            if len(table):
                at = np.searchsorted(table, key).clip(max=len(table) - 1)
                found = known & (table[at] == key)
            else:
                at, found = np.zeros(m, dtype=np.int64), np.zeros(m, dtype=bool)
            g = np.where(known, self.gamma[n][ctx.clip(min=0)], 1.0)
            a = np.where(found, self.alpha[n][at], 0.0) if len(table) else 0.0
            p[n - 1 :] = a + g * p[n - 1 :]  # p_n = alpha_n + gamma_n p_{n-1} at positions with n-1 tokens before
            context = np.where(found, at, -1)
        return np.log(p)

    def score(self, ids) -> tuple[float, int]:
        """Mean negative log-likelihood (nats per token) of ``ids[1:]`` and how many tokens that is: the
        tokens an rnnkit LM is scored on (``score_ids`` predicts every token but the first)."""
        lp = self.log_probs(ids)
        if len(lp) < 2:
            raise DataError("the text to score has fewer than 2 tokens")
        return float(-lp[1:].mean()), len(lp) - 1

    def next_distribution(self, context_ids) -> np.ndarray:
        """p(. | context): (V,) float64 probabilities of the next token after ``context_ids`` (its last
        N-1 tokens count), summing to 1."""
        ctx = _check_ids(context_ids, self.vocab_size, "the context")
        ctx = ctx[max(len(ctx) - (self.order - 1), 0) :]
        V = self.vocab_size
        p = self.alpha[1] + self.gamma[1][0] / V
        for n in range(2, min(self.order, len(ctx) + 1) + 1):
            r = self._rank(ctx[len(ctx) - (n - 1) :])
            if r < 0:
                break  # an unseen context: every longer one is unseen too
            table = self.keys[n]
            lo, hi = np.searchsorted(table, [r * V, (r + 1) * V])
            p = self.gamma[n][r] * p
            p[table[lo:hi] - r * V] += self.alpha[n][lo:hi]
        return p

    def _rank(self, gram: np.ndarray) -> int:
        """Rank of the k-gram ``gram`` in the order-k table, -1 if it was never seen."""
        r = int(gram[0])
        for n in range(2, len(gram) + 1):
            key = r * self.vocab_size + int(gram[n - 1])
            table = self.keys[n]
            at = int(np.searchsorted(table, key))
            if at == len(table) or table[at] != key:
                return -1
            r = at
        return r

    # -- sampling -------------------------------------------------------------------------------------

    def sampling_state(self, prime) -> list[int]:
        """For :meth:`TokenSampler.sample`: the history so far, the prime's ids (checked)."""
        return [int(i) for i in _check_ids(prime, self.vocab_size, "the prime")]

    def next_log_probs(self, history: list[int]) -> torch.Tensor:
        """log p(. | the last N-1 tokens of ``history``): (V,) float64."""
        context = np.asarray(history[max(len(history) - (self.order - 1), 0) :], dtype=np.int64)
        return torch.from_numpy(np.log(self.next_distribution(context)))

    def advance(self, history: list[int], token: int) -> list[int]:
        history.append(token)
        return history

    # -- storage --------------------------------------------------------------------------------------

    @property
    def num_ngrams(self) -> list[int]:
        """How many distinct n-grams each order stores (order 1: the whole vocabulary)."""
        return [self.vocab_size] + [len(self.keys[n]) for n in range(2, self.order + 1)]

    def to_arrays(self) -> dict[str, np.ndarray]:
        """Flat named arrays (int64 / float64) for ``safetensors.numpy.save_file``; from_arrays reads them."""
        arrays = {
            "order": np.array([self.order], dtype=np.int64),
            "vocab_size": np.array([self.vocab_size], dtype=np.int64),
            "discounts": self.discounts.astype(np.float64),
        }
        for n in range(1, self.order + 1):
            arrays[f"alpha.{n}"] = self.alpha[n]
            arrays[f"gamma.{n}"] = self.gamma[n]
            if n >= 2:
                arrays[f"keys.{n}"] = self.keys[n]
        return arrays

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray]) -> KneserNey:
        """Rebuild a model from to_arrays() output, checking every array (CheckpointError names the bad one)."""

        def get(name: str, dtype, shape=None) -> np.ndarray:
            a = arrays.get(name)
            if not isinstance(a, np.ndarray):
                raise CheckpointError(f"n-gram model: array {name!r} is missing")
            if a.dtype != dtype or (shape is not None and a.shape != shape):
                raise CheckpointError(f"n-gram model: array {name!r} is {a.dtype}{list(a.shape)}, expected {dtype}")
            if a.dtype.kind == "f" and not np.isfinite(a).all():
                raise CheckpointError(f"n-gram model: array {name!r} has non-finite values")
            return a

        order = int(get("order", np.int64, (1,))[0])
        V = int(get("vocab_size", np.int64, (1,))[0])
        if not 1 <= order <= MAX_ORDER or V < 1:
            raise CheckpointError(f"n-gram model: order {order} or vocab_size {V} out of range")
        discounts = get("discounts", np.float64, (order, 3))
        keys, alpha, gamma = {}, {}, {}
        size = V
        for n in range(1, order + 1):
            if n >= 2:
                k = keys[n] = get(f"keys.{n}", np.int64)
                if k.ndim != 1 or (len(k) and (k[0] < 0 or k[-1] >= size * V or (np.diff(k) <= 0).any())):
                    raise CheckpointError(f"n-gram model: keys.{n} are not sorted distinct keys below {size * V}")
            alpha[n] = get(f"alpha.{n}", np.float64, (size if n == 1 else len(keys[n]),))
            gamma[n] = get(f"gamma.{n}", np.float64, (1 if n == 1 else size,))
            for name, a in ((f"alpha.{n}", alpha[n]), (f"gamma.{n}", gamma[n])):
                if (a < 0).any() or (a > 1).any():
                    raise CheckpointError(f"n-gram model: {name} has values outside [0, 1]")
            size = len(alpha[n])
        return cls(order, V, discounts, keys, alpha, gamma)


# -- helpers --------------------------------------------------------------------------------------------


def _adjusted_counts(n: int, n_max: int, ranks: dict, firsts: dict, sizes: dict) -> np.ndarray:
    """c_n of every order-n entry: raw counts at the top order, continuation counts below it."""
    if n == n_max:
        return np.bincount(ranks[n], minlength=sizes[n]).astype(np.int64)
    # the (n+1)-gram at position i has suffix n-gram at i + 1: one per distinct (n+1)-gram = one per
    # distinct left neighbour of that suffix
    suffix = ranks[n][firsts[n + 1] + 1]
    counts = np.bincount(suffix, minlength=sizes[n]).astype(np.int64)
    if len(ranks[n]):
        counts[ranks[n][0]] += 1  # the stream's start is one more distinct predecessor of its first n-gram
    return counts


def _discounts(counts: np.ndarray, fallback) -> np.ndarray:
    """D1, D2, D3+ from the count-of-counts n_1..n_4 of ``counts`` (Chen & Goodman eq. 26), else fallback."""
    nk = np.bincount(np.minimum(counts, 5), minlength=6)[1:5].astype(np.float64)  # n_1..n_4
    if (nk == 0).any():
        return np.array(fallback, dtype=np.float64)
    y = nk[0] / (nk[0] + 2.0 * nk[1])
    k = np.arange(1, 4, dtype=np.float64)
    d = k - (k + 1) * y * nk[1:] / nk[:-1]
    if (d < 0).any() or (d > k).any():
        return np.array(fallback, dtype=np.float64)
    return d


def _check_ids(ids, vocab_size: int, what: str) -> np.ndarray:
    a = np.asarray(ids)
    if a.ndim != 1:
        raise DataError(f"{what} must be a 1-D sequence of token ids, got shape {list(a.shape)}")
    if a.size == 0:
        return np.zeros(0, dtype=np.int64)
    if a.dtype.kind not in "iu":
        raise DataError(f"{what} must be integer token ids, got {a.dtype}")
    a = a.astype(np.int64)
    if a.min() < 0 or a.max() >= vocab_size:
        raise DataError(f"{what} hold ids outside the vocabulary 0..{vocab_size - 1} (min {a.min()}, max {a.max()})")
    return a


def _check_key_range(size: int, vocab_size: int) -> None:
    if size * vocab_size >= 1 << 62:
        raise DataError(f"{size} distinct n-grams x {vocab_size} tokens overflow the int64 n-gram keys")


def _check_fallback(fallback) -> None:
    ok = isinstance(fallback, (tuple, list)) and len(fallback) == 3
    if not ok or not all(isinstance(d, (int, float)) and not isinstance(d, bool) for d in fallback):
        raise ConfigError(f"discount_fallback must be three numbers D1, D2, D3+, got {fallback!r}")
    if not all(0 < d <= k for k, d in enumerate(fallback, 1)):
        raise ConfigError(f"discount_fallback must have 0 < D1 <= 1, 0 < D2 <= 2, 0 < D3+ <= 3, got {fallback!r}")


def _check_sample(length, temperature, top_k, top_p) -> None:
    if not _is_int(length) or length < 0:
        raise ConfigError(f"sample length must be an integer >= 0, got {length!r}")
    try:
        check_sampling(temperature, top_k, top_p)
    except ValueError as error:
        raise ConfigError(str(error)) from None


def torch_generator(generator: torch.Generator | np.random.Generator | int | None) -> torch.Generator:
    """A CPU torch.Generator from a torch Generator (used as is), a numpy Generator (seeds a new one from
    its next draw), an int seed, or None (a fresh nondeterministic seed)."""
    if isinstance(generator, torch.Generator):
        return generator
    gen = torch.Generator()
    if isinstance(generator, np.random.Generator):
        gen.manual_seed(int(generator.integers(0, 2**63 - 1)))
    elif _is_int(generator):
        gen.manual_seed(int(generator))
    elif generator is None:
        gen.seed()
    else:
        raise ConfigError(f"generator must be a torch or numpy Generator or an int seed, got {generator!r}")
    return gen


def _is_int(value) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)
