"""The n-gram and HMM baselines against plainly written references: a dict-based Kneser-Ney, brute-force
enumeration of HMM state paths, hand-computed unigram values, and hmmlearn where it is installed."""

from __future__ import annotations

import itertools
import math
from collections import defaultdict

import numpy as np
import pytest
import torch

from rnnkit.baselines.hmm import DiscreteHMM, HMMConfig, expected_counts, training_windows
from rnnkit.baselines.ngram import FALLBACK_DISCOUNTS, KneserNey, NGramConfig, fit_text
from rnnkit.errors import CheckpointError, ConfigError

TEXT = (
    "the cat sat on the mat and the dog sat on the log; a rat ran to the cat, the cat ran to the rat "
    "and then the dog ate a hot dog on a mat. then the cat and the rat sat on the dog's log at noon.\n"
)

# -- a second, plain implementation of interpolated modified Kneser-Ney (slow, dicts) -------------------


class ReferenceKN:
    """Chen & Goodman's formulas read literally: counts in dicts, p_n(w | h) computed recursively."""

    def __init__(self, tokens: list[int], vocab_size: int, order: int) -> None:
        self.V, self.N = vocab_size, order
        self.counts: dict[int, dict[tuple, int]] = {}
        self.D: dict[int, tuple[float, float, float]] = {}
        for n in range(1, order + 1):
            if n == order:
                c: dict[tuple, int] = defaultdict(int)
                for i in range(len(tokens) - n + 1):
                    c[tuple(tokens[i : i + n])] += 1
            else:  # distinct left neighbours, the stream's start counting as one
                left: dict[tuple, set] = defaultdict(set)
                for i in range(len(tokens) - n + 1):
                    left[tuple(tokens[i : i + n])].add(tokens[i - 1] if i > 0 else "start")
                c = {g: len(s) for g, s in left.items()}
            self.counts[n] = dict(c)
            self.D[n] = self.discounts(list(c.values()))

    @staticmethod
    def discounts(values: list[int]) -> tuple[float, float, float]:
        n = {k: sum(1 for v in values if v == k) for k in (1, 2, 3, 4)}
        if min(n.values()) == 0:
            return FALLBACK_DISCOUNTS
        y = n[1] / (n[1] + 2 * n[2])
        d = tuple(k - (k + 1) * y * n[k + 1] / n[k] for k in (1, 2, 3))
        if any(not 0 <= d[k - 1] <= k for k in (1, 2, 3)):
            return FALLBACK_DISCOUNTS
        return d

    def prob(self, h: tuple, w: int) -> float:
        n = len(h) + 1
        if n == 0 or n > self.N:
            raise AssertionError
        lower = 1.0 / self.V if n == 1 else self.prob(h[1:], w)
        followers = {g[-1]: c for g, c in self.counts[n].items() if g[:-1] == h}
        total = sum(followers.values())
        if total == 0:
            return lower
        D = self.D[n]

        def disc(c: int) -> float:
            return 0.0 if c == 0 else D[min(c, 3) - 1]

        gamma = sum(disc(c) for c in followers.values()) / total
        c = followers.get(w, 0)
        return max(c - disc(c), 0.0) / total + gamma * lower

    def log_probs(self, tokens: list[int]) -> np.ndarray:
        return np.array(
            [math.log(self.prob(tuple(tokens[max(0, t - self.N + 1) : t]), tokens[t])) for t in range(len(tokens))]
        )


def char_ids(text: str, vocab: str) -> list[int]:
    return [vocab.index(c) for c in text]


def test_kneser_ney_matches_the_plain_reference_on_a_tiny_corpus():
    vocab = "".join(sorted(set(TEXT))) + "zq"  # z, q: in the vocabulary, never in training
    train = char_ids(TEXT, vocab)
    query = char_ids("the dog sat on a cat; zq rats ate the log at noon.\nthe mat", vocab)
    computed = set()
    for order in range(1, 6):
        ref = ReferenceKN(train, len(vocab), order)
        model = KneserNey.fit(np.array(train, dtype=np.uint8), len(vocab), order)
        np.testing.assert_allclose(model.discounts, [ref.D[n] for n in range(1, order + 1)], rtol=1e-12)
        np.testing.assert_allclose(model.log_probs(query), ref.log_probs(query), rtol=1e-11, atol=1e-12)
        for t in (0, 3, 17, len(query) - 1):
            h = tuple(query[max(0, t - order + 1) : t])
            p = model.next_distribution(np.array(h, dtype=np.int64))
            np.testing.assert_allclose(p, [ref.prob(h, w) for w in range(len(vocab))], rtol=1e-11, atol=1e-14)
        computed |= {n for n in range(1, order + 1) if ref.D[n] != FALLBACK_DISCOUNTS}
    assert computed and computed != set(range(1, 6))  # both the estimated and the fallback discounts ran


@pytest.mark.parametrize("order", range(1, 11))
def test_every_context_sums_to_one_and_log_probs_agree(order):
    rng = np.random.default_rng(order)
    V = 6
    train = rng.integers(0, V - 1, 500)  # token V - 1 never occurs
    model = KneserNey.fit(train, V, order)
    contexts = [train[max(0, t - order + 1) : t] for t in range(0, 300, 7)]  # seen contexts of every length
    contexts += [rng.integers(0, V, k) for k in range(order)]  # mostly unseen ones
    for ctx in contexts:
        p = model.next_distribution(ctx)
        assert p.shape == (V,) and (p > 0).all()
        assert abs(p.sum() - 1.0) < 1e-12
    query = rng.integers(0, V, 120)
    slow = [math.log(model.next_distribution(query[max(0, t - order + 1) : t])[query[t]]) for t in range(120)]
    np.testing.assert_allclose(model.log_probs(query), slow, rtol=1e-12)


def test_order_one_is_the_discounted_unigram_interpolated_with_uniform():
    # counts 1, 1, 2, 3, 4, 10, 0 over 7 words: n1 = 2, n2 = n3 = n4 = 1, so Y = 2 / (2 + 2) = 1/2 and
    # D1 = 1 - 2 Y n2/n1 = 1/2, D2 = 2 - 3 Y n3/n2 = 1/2, D3+ = 3 - 4 Y n4/n3 = 1; T = 21;
    # gamma = (D1 n1 + D2 n2 + D3+ (n3 + n4 + n10)) / T = (1 + 0.5 + 3) / 21
    counts = [1, 1, 2, 3, 4, 10, 0]
    tokens = np.random.default_rng(0).permutation(np.repeat(np.arange(7), counts))
    model = KneserNey.fit(tokens, 7, 1)
    np.testing.assert_allclose(model.discounts, [[0.5, 0.5, 1.0]])
    D = [0.5, 0.5, 0.5, 1.0, 1.0, 1.0, 0.0]  # D(c) of each word
    expected = [(c - d) / 21 + 4.5 / 21 / 7 for c, d in zip(counts, D)]
    np.testing.assert_allclose(model.next_distribution([3, 4]), expected, rtol=1e-13)
    np.testing.assert_allclose(np.exp(model.log_probs([6, 5, 0])), [expected[6], expected[5], expected[0]])


@pytest.mark.parametrize("order", [0, 11, -1, 2.5, True, "5"])
def test_bad_orders_are_a_config_error(order):
    with pytest.raises(ConfigError, match=r"n-gram order must be an integer from 1 to 10, got"):
        NGramConfig(order=order)
    with pytest.raises(ConfigError, match=r"n-gram order must be an integer from 1 to 10, got"):
        KneserNey.fit(np.zeros(10, dtype=np.int64), 3, order)


def test_ngram_arrays_round_trip_through_safetensors_and_bad_arrays_are_refused(tmp_path):
    safetensors_numpy = pytest.importorskip("safetensors.numpy")
    rng = np.random.default_rng(1)
    model = KneserNey.fit(rng.integers(0, 8, 400), 8, 4)
    safetensors_numpy.save_file(model.to_arrays(), tmp_path / "model.safetensors")
    loaded = KneserNey.from_arrays(safetensors_numpy.load_file(tmp_path / "model.safetensors"))
    query = rng.integers(0, 8, 50)
    np.testing.assert_array_equal(loaded.log_probs(query), model.log_probs(query))
    arrays = model.to_arrays()
    arrays["keys.3"] = arrays["keys.3"][::-1].copy()
    with pytest.raises(CheckpointError, match="keys.3 are not sorted"):
        KneserNey.from_arrays(arrays)
    arrays = model.to_arrays()
    del arrays["gamma.2"]
    with pytest.raises(CheckpointError, match="'gamma.2' is missing"):
        KneserNey.from_arrays(arrays)


def test_ngram_sampling_is_seeded_and_top_k_1_is_greedy():
    rng = np.random.default_rng(2)
    model = KneserNey.fit(rng.integers(0, 5, 300), 5, 3)
    a = model.sample(40, prime=[1, 2], generator=7)
    assert np.array_equal(a, model.sample(40, prime=[1, 2], generator=torch.Generator().manual_seed(7)))
    assert not np.array_equal(a, model.sample(40, prime=[1, 2], generator=8))
    greedy = model.sample(10, prime=[1, 2], top_k=1, generator=np.random.default_rng(0))
    history = [1, 2]
    for token in greedy:
        assert token == int(np.argmax(model.next_distribution(history[-2:])))
        history.append(int(token))
    with pytest.raises(ConfigError, match="temperature"):
        model.sample(5, temperature=-1.0)


def test_fit_text_tokenises_words_as_the_lm_does(tmp_path):
    (tmp_path / "train.txt").write_text("a b c a b\nb c a\na b\n")
    (tmp_path / "valid.txt").write_text("a b zzz\nc a\n")
    config = NGramConfig(order=3, level="word")
    model, corpus = fit_text(config, tmp_path / "train.txt", tmp_path / "valid.txt")
    tok = corpus.tokenizer
    assert tok.decode(corpus.valid) == "a b <unk>\nc a\n"  # the unknown word is <unk>, <eos> ends each line
    assert model.vocab_size == len(tok) and len(corpus.valid) == 7
    nats, count = model.score(corpus.valid)
    assert count == 6 and nats == pytest.approx(-model.log_probs(corpus.valid)[1:].mean())


# -- HMM ---------------------------------------------------------------------------------------------


def random_hmm(n: int, v: int, seed: int) -> DiscreteHMM:
    g = torch.Generator().manual_seed(seed)

    def rows(*shape):
        p = torch.rand(*shape, generator=g, dtype=torch.float64) + 0.05
        return p / p.sum(-1, keepdim=True)

    return DiscreteHMM(rows(n), rows(n, n), rows(n, v))


def brute_force_paths(hmm: DiscreteHMM, x: list[int]):
    """Every state path's joint probability p(s, x): yields (path, probability)."""
    for path in itertools.product(range(hmm.num_states), repeat=len(x)):
        p = hmm.start[path[0]] * hmm.emission[path[0], x[0]]
        for t in range(1, len(x)):
            p = p * hmm.transition[path[t - 1], path[t]] * hmm.emission[path[t], x[t]]
        yield path, float(p)


def test_forward_log_likelihood_equals_enumeration_over_all_state_paths():
    hmm = random_hmm(3, 4, seed=0)
    x = [2, 0, 3, 3, 1, 0, 2]
    prefix = [math.log(sum(p for _, p in brute_force_paths(hmm, x[: t + 1]))) for t in range(len(x))]
    assert hmm.log_likelihood(x) == pytest.approx(prefix[-1], rel=1e-12)
    np.testing.assert_allclose(hmm.log_probs(x), np.diff([0.0] + prefix), rtol=1e-11)  # log p(x_t | x_<t)
    for t in (0, 3, 6):
        assert math.log(hmm.next_distribution(x[:t])[x[t]]) == pytest.approx(hmm.log_probs(x)[t], rel=1e-12)


def test_batched_expected_counts_equal_enumeration():
    hmm = random_hmm(3, 4, seed=1)
    windows = torch.tensor([[0, 1, 3, 2, 2], [3, 3, 0, 1, 0], [1, 2, 0, 0, 3]])
    loglik, (c_start, c_trans, c_emit) = expected_counts(windows, hmm.start, hmm.transition, hmm.emission)
    ref_ll, ref_start, ref_trans, ref_emit = 0.0, np.zeros(3), np.zeros((3, 3)), np.zeros((3, 4))
    for x in windows.tolist():
        paths = list(brute_force_paths(hmm, x))
        z = sum(p for _, p in paths)
        ref_ll += math.log(z)
        for path, p in paths:
            ref_start[path[0]] += p / z
            for t in range(len(x)):
                ref_emit[path[t], x[t]] += p / z
                if t:
                    ref_trans[path[t - 1], path[t]] += p / z
    assert loglik == pytest.approx(ref_ll, rel=1e-12)
    for got, want in ((c_start, ref_start), (c_trans, ref_trans), (c_emit, ref_emit)):
        np.testing.assert_allclose(got.numpy(), want, rtol=1e-10, atol=1e-13)


def test_baum_welch_never_decreases_the_training_likelihood():
    truth = random_hmm(4, 6, seed=2)
    truth = DiscreteHMM(
        truth.start,
        truth.transition * 0.2 + 0.8 * torch.eye(4),
        truth.emission**3 / (truth.emission**3).sum(1, keepdim=True),
    )
    x = truth.sample(3000, generator=0)
    config = HMMConfig(states=4, iterations=15, tol=0.0, window=100, pseudocount=0.0, dtype="float64", seed=3)
    model = DiscreteHMM.fit(x, 6, config)
    nats = np.array(model.history)  # training nats per token, before each update and after the last
    assert len(nats) == 16
    assert (np.diff(nats) <= 1e-12).all()
    assert nats[-1] < nats[0] - 0.05
    # the held-out likelihood is the exact forward value: it agrees with the per-token scores
    held_out = truth.sample(500, generator=1)
    assert model.score(held_out)[0] == pytest.approx(-model.log_probs(held_out)[1:].mean())


def test_hmm_restarts_keep_the_best_and_float32_training_works():
    x = random_hmm(3, 5, seed=4).sample(1500, generator=2)
    one = DiscreteHMM.fit(x, 5, HMMConfig(states=3, iterations=8, window=60, seed=0, restarts=1))
    three = DiscreteHMM.fit(x, 5, HMMConfig(states=3, iterations=8, window=60, seed=0, restarts=3))
    assert three.history[-1] <= one.history[-1] + 1e-6  # restart 0 is the same run in both
    assert one.emission.dtype == torch.float64 and (one.emission > 0).all()  # the pseudo-count keeps every symbol


@pytest.mark.parametrize("states", [1, 0, -3, 2.0])
def test_fewer_than_two_states_is_a_config_error(states):
    with pytest.raises(ConfigError, match="HMM states must be an integer >= 2, got"):
        HMMConfig(states=states)


def test_training_windows_are_bounded_and_spread_over_the_text():
    ids = np.arange(10_000)
    w = training_windows(ids, 100, 2_500)
    assert w.shape == (25, 100) and w[0, 0] == 0 and w[-1, -1] == 9_999
    assert (np.diff(w, axis=1) == 1).all()
    assert training_windows(np.arange(30), 100, 1000).shape == (1, 30)


def test_hmm_arrays_round_trip_and_sampling_is_seeded():
    hmm = random_hmm(3, 4, seed=5)
    loaded = DiscreteHMM.from_arrays(hmm.to_arrays())
    x = [0, 1, 2, 3, 0]
    np.testing.assert_array_equal(loaded.log_probs(x), hmm.log_probs(x))
    arrays = hmm.to_arrays()
    arrays["transition"] = arrays["transition"] * 2
    with pytest.raises(CheckpointError, match="transition probabilities"):
        DiscreteHMM.from_arrays(arrays)
    a = hmm.sample(30, prime=[1], generator=3)
    assert np.array_equal(a, hmm.sample(30, prime=[1], generator=3)) and a.min() >= 0 and a.max() < 4


def test_log_likelihood_matches_hmmlearn():
    hmmlearn = pytest.importorskip("hmmlearn.hmm")
    hmm = random_hmm(4, 5, seed=6)
    x = hmm.sample(400, generator=4)
    ref = hmmlearn.CategoricalHMM(n_components=4, n_features=5)
    ref.startprob_, ref.transmat_, ref.emissionprob_ = (t.numpy() for t in (hmm.start, hmm.transition, hmm.emission))
    assert hmm.log_likelihood(x) == pytest.approx(ref.score(x.reshape(-1, 1)), rel=1e-10)
