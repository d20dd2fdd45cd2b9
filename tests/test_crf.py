"""The linear-chain CRF against brute-force enumeration of every tag sequence on tiny cases."""

import itertools

import pytest
import torch

from rnnkit.crf import CRF, FORBIDDEN, allowed_transitions


def brute_force(crf: CRF, emissions: torch.Tensor, length: int):
    """All K^n sequences of one row: their scores, log Z, the best sequence and the tag marginals."""
    start, transitions, end = crf.scores()
    K = emissions.shape[-1]
    sequences = list(itertools.product(range(K), repeat=length))
    scores = []
    for y in sequences:
        s = start[y[0]] + end[y[-1]] + sum(emissions[t, y[t]] for t in range(length))
        s = s + sum(transitions[y[t - 1], y[t]] for t in range(1, length))
        scores.append(s)
    scores = torch.stack(scores)
    probs = scores.softmax(0)
    marginals = torch.zeros(length, K, dtype=emissions.dtype)
    for p, y in zip(probs, sequences):
        for t in range(length):
            marginals[t, y[t]] += p
    best = sequences[int(scores.argmax())]
    return scores, torch.logsumexp(scores, 0), list(best), marginals


def random_crf(K: int, constraints=None) -> CRF:
    crf = CRF(K, constraints, dtype=torch.float64)
    with torch.no_grad():
        for p in crf.parameters():
            p.normal_(0, 1.0)
    return crf


@pytest.mark.parametrize("seed", range(3))
def test_log_partition_viterbi_and_score_match_enumeration(seed):
    torch.manual_seed(seed)
    K, T = 3, 5
    crf = random_crf(K)
    lengths = torch.tensor([5, 3, 1, 4])
    emissions = torch.randn(len(lengths), T, K, dtype=torch.float64)
    mask = torch.arange(T) < lengths.unsqueeze(1)
    tags = torch.randint(0, K, (len(lengths), T))
    log_z = crf.log_partition(emissions, mask)
    paths = crf.decode(emissions, mask)
    _, best_scores = crf.viterbi(emissions, mask)
    scores = crf.score(emissions, tags, mask)
    for b, n in enumerate(lengths.tolist()):
        all_scores, expected_log_z, expected_best, _ = brute_force(crf, emissions[b], n)
        assert log_z[b].item() == pytest.approx(expected_log_z.item(), abs=1e-10)
        assert paths[b] == expected_best
        assert best_scores[b].item() == pytest.approx(all_scores.max().item(), abs=1e-10)
        index = sum(y * K ** (n - 1 - t) for t, y in enumerate(tags[b, :n].tolist()))  # product() order
        assert scores[b].item() == pytest.approx(all_scores[index].item(), abs=1e-10)
    nll = crf(emissions, tags, mask)
    assert torch.allclose(nll, log_z - scores) and (nll > 0).all()


def test_gradient_of_log_partition_gives_the_tag_marginals():
    torch.manual_seed(0)
    crf = random_crf(3)
    emissions = torch.randn(1, 4, 3, dtype=torch.float64, requires_grad=True)
    mask = torch.ones(1, 4, dtype=torch.bool)
    crf.log_partition(emissions, mask).sum().backward()
    _, _, _, marginals = brute_force(crf, emissions[0].detach(), 4)
    assert torch.allclose(emissions.grad[0], marginals, atol=1e-10)


def test_padding_does_not_change_a_row():
    torch.manual_seed(1)
    crf = random_crf(4)
    short = torch.randn(1, 3, 4, dtype=torch.float64)
    padded = torch.cat([short, torch.randn(1, 2, 4, dtype=torch.float64) * 100], dim=1)
    mask = torch.tensor([[True, True, True, False, False]])
    assert crf.log_partition(padded, mask).item() == pytest.approx(
        crf.log_partition(short, torch.ones(1, 3, dtype=torch.bool)).item(), abs=1e-10
    )
    assert crf.decode(padded, mask) == crf.decode(short, torch.ones(1, 3, dtype=torch.bool))


def test_bio_constraints_forbid_ill_formed_sequences():
    tags = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]
    start, pairs, end = allowed_transitions(tags, "bio")
    assert start.tolist() == [True, True, False, True, False]
    assert not pairs[0, 2] and not pairs[3, 2] and not pairs[2, 4]  # O->I-PER, B-LOC->I-PER, I-PER->I-LOC
    assert pairs[1, 2] and pairs[2, 2] and pairs[2, 3] and pairs[4, 0] and end.all()
    torch.manual_seed(2)
    crf = random_crf(len(tags), (start, pairs, end))
    emissions = torch.randn(1, 4, len(tags), dtype=torch.float64)
    emissions[0, :, 2] += 5.0  # I-PER everywhere looks best word by word
    mask = torch.ones(1, 4, dtype=torch.bool)
    path = crf.decode(emissions, mask)[0]
    assert path[0] != 2 and all(pairs[a, b] for a, b in zip(path, path[1:]))
    # log Z over the allowed sequences only: forbidden ones weigh exp(FORBIDDEN) ~ 0
    all_scores, expected, _, _ = brute_force(crf, emissions[0], 4)
    sequences = list(itertools.product(range(len(tags)), repeat=4))
    ok = torch.tensor([bool(start[y[0]]) and all(pairs[a, b] for a, b in zip(y, y[1:])) for y in sequences])
    assert crf.log_partition(emissions, mask).item() == pytest.approx(torch.logsumexp(all_scores[ok], 0).item())
    assert (all_scores[~ok] < FORBIDDEN / 2).all()


def test_bioes_constraints():
    tags = ["O", "B-X", "I-X", "E-X", "S-X"]
    start, pairs, end = allowed_transitions(tags, "bioes")
    assert start.tolist() == [True, True, False, False, True]
    assert end.tolist() == [True, False, False, True, True]
    allowed = {(tags[i], tags[j]) for i in range(5) for j in range(5) if pairs[i, j]}
    assert allowed == {
        ("O", "O"), ("O", "B-X"), ("O", "S-X"), ("B-X", "I-X"), ("B-X", "E-X"), ("I-X", "I-X"), ("I-X", "E-X"),
        ("E-X", "O"), ("E-X", "B-X"), ("E-X", "S-X"), ("S-X", "O"), ("S-X", "B-X"), ("S-X", "S-X"),
    }  # fmt: skip
    with pytest.raises(ValueError, match="scheme must be one of"):
        allowed_transitions(tags, "bilou")


def test_constraints_are_not_saved_with_the_weights():
    crf = CRF(5, allowed_transitions(["O", "B-X", "I-X", "B-Y", "I-Y"], "bio"))
    assert set(crf.state_dict()) == {"transitions", "start", "end"}
