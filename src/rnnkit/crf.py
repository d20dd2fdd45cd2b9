r"""A linear-chain conditional random field over K tags, written from its equations.

For emissions :math:`P \in \mathbb{R}^{T \times K}` (the tagger's scores of each tag at each word), a
transition matrix :math:`A \in \mathbb{R}^{K \times K}` (:math:`A_{ij}` scores tag j right after tag
i) and start/end scores :math:`\pi, \omega \in \mathbb{R}^K`, a tag sequence y has the score

.. math::  s(y) = \pi_{y_1} + \sum_{t=1}^{T} P_{t, y_t} + \sum_{t=2}^{T} A_{y_{t-1}, y_t} + \omega_{y_T}

and probability :math:`p(y) = \exp s(y) / Z` with :math:`Z = \sum_{y'} \exp s(y')` over all
:math:`K^T` sequences (Lafferty et al. 2001; Lample et al. 2016 put one on a BiLSTM). Training
minimises :math:`-\log p(y) = \log Z - s(y)`.

The forward algorithm computes :math:`\log Z` in O(T K^2):
:math:`\alpha_1(j) = \pi_j + P_{1j}`, :math:`\alpha_t(j) = P_{tj} + \log\sum_i \exp(\alpha_{t-1}(i) + A_{ij})`,
:math:`\log Z = \log\sum_j \exp(\alpha_T(j) + \omega_j)`. Viterbi decoding replaces log-sum-exp by max and
keeps back-pointers to recover :math:`\arg\max_y s(y)`.

Batches are right-padded: ``mask`` (B, T) is True on the first ``length`` steps of each row, and
every row has length >= 1. Padded steps carry the forward variables over unchanged.

With ``constraints``, transitions that a tag scheme forbids (``O`` -> ``I-PER`` in BIO, say) get the
score :data:`FORBIDDEN` instead of a learned one, so they have probability ~0 and Viterbi never picks
them: every decoded sequence is well formed.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

FORBIDDEN = -1.0e4  # finite, so log-sum-exp and gradients stay free of NaN


def split_tag(tag: str) -> tuple[str, str]:
    """``"B-PER" -> ("B", "PER")``, ``"O" -> ("O", "")``: the scheme prefix and the entity type."""
    if tag == "O":
        return "O", ""
    prefix, _, kind = tag.partition("-")
    return prefix, kind


def allowed_transitions(tags: list[str], scheme: str) -> tuple[Tensor, Tensor, Tensor]:
    """Which transitions the tag ``scheme`` allows: ``(start (K,), pairs (K, K), end (K,))`` as bools.

    ``pairs[i, j]`` says whether tag j may follow tag i. Schemes: ``"bio"`` (an ``I-X`` continues a
    ``B-X`` or ``I-X``), ``"bioes"`` (``B-X I-X* E-X`` or ``S-X``), ``"io"`` and ``"iob1"`` (anything
    goes; IOB1's ``B-X`` only follows an ``I-X`` or ``B-X`` of the same type, which it also allows).
    """
    K = len(tags)
    parts = [split_tag(t) for t in tags]
    start = torch.ones(K, dtype=torch.bool)
    end = torch.ones(K, dtype=torch.bool)
    pairs = torch.ones(K, K, dtype=torch.bool)
    if scheme in ("io", "iob1"):
        if scheme == "iob1":
            for j, (p, kind) in enumerate(parts):
                start[j] = p != "B"
                for i, (_, prev_kind) in enumerate(parts):
                    pairs[i, j] = p != "B" or prev_kind == kind
        return start, pairs, end
    if scheme not in ("bio", "bioes"):
        raise ValueError(f"scheme must be one of io, iob1, bio, bioes, got {scheme!r}")
    inside = ("I",) if scheme == "bio" else ("I", "E")  # tags that continue an open entity
    opened = ("B", "I")  # tags after which an entity is still open
    for j, (p, kind) in enumerate(parts):
        start[j] = p not in inside
        if scheme == "bioes":
            end[j] = p not in opened
        for i, (q, prev_kind) in enumerate(parts):
            if scheme == "bio":
                pairs[i, j] = p != "I" or (q in opened and prev_kind == kind)
            elif q in opened:  # bioes: an open entity must go on (I) or close (E) with its own type
                pairs[i, j] = p in inside and prev_kind == kind
            else:  # after O, E or S: a new entity (B or S) or O
                pairs[i, j] = p not in inside
    return start, pairs, end


class CRF(nn.Module):
    """Linear-chain CRF over ``num_tags`` tags; see the module docstring for the equations.

    ``crf(emissions (B, T, K), tags (B, T), mask (B, T))`` is the negative log-likelihood of each
    sequence, (B,). ``crf.decode(emissions, mask)`` is the Viterbi path of each row (a list of lists).
    ``constraints`` = ``allowed_transitions(tags, scheme)``, or None for no constraint.
    """

    def __init__(self, num_tags: int, constraints: tuple[Tensor, Tensor, Tensor] | None = None, *,
                 device=None, dtype=None) -> None:  # fmt: skip
        super().__init__()
        if num_tags < 1:
            raise ValueError(f"num_tags must be >= 1, got {num_tags}")
        self.num_tags = num_tags
        factory = {"device": device, "dtype": dtype}
        self.transitions = nn.Parameter(torch.empty(num_tags, num_tags, **factory))
        self.start = nn.Parameter(torch.empty(num_tags, **factory))
        self.end = nn.Parameter(torch.empty(num_tags, **factory))
        if constraints is None:
            constraints = (torch.ones(num_tags, dtype=torch.bool), torch.ones(num_tags, num_tags, dtype=torch.bool),
                           torch.ones(num_tags, dtype=torch.bool))  # fmt: skip
        start, pairs, end = constraints
        if tuple(pairs.shape) != (num_tags, num_tags) or start.shape != (num_tags,) or end.shape != (num_tags,):
            raise ValueError(f"constraints must have shapes ({num_tags},), ({num_tags}, {num_tags}), ({num_tags},)")
        # Derived from the tag set, so not saved with the weights (persistent=False).
        self.register_buffer("allowed_start", start.clone().to(device), persistent=False)
        self.register_buffer("allowed", pairs.clone().to(device), persistent=False)
        self.register_buffer("allowed_end", end.clone().to(device), persistent=False)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        with torch.no_grad():
            self.transitions.uniform_(-0.1, 0.1)
            self.start.zero_()
            self.end.zero_()

    def extra_repr(self) -> str:
        return f"num_tags={self.num_tags}, constrained={not bool(self.allowed.all())}"

    def scores(self) -> tuple[Tensor, Tensor, Tensor]:
        """The effective (start, transitions, end): learned scores with forbidden ones set to FORBIDDEN."""
        return (
            self.start.masked_fill(~self.allowed_start, FORBIDDEN),
            self.transitions.masked_fill(~self.allowed, FORBIDDEN),
            self.end.masked_fill(~self.allowed_end, FORBIDDEN),
        )

    def forward(self, emissions: Tensor, tags: Tensor, mask: Tensor) -> Tensor:
        """Negative log-likelihood ``log Z - s(y)`` of each row's ``tags``: (B,)."""
        return self.log_partition(emissions, mask) - self.score(emissions, tags, mask)

    def score(self, emissions: Tensor, tags: Tensor, mask: Tensor) -> Tensor:
        """``s(y)`` of the given tag sequences (B,); steps outside ``mask`` do not count."""
        start, transitions, end = self.scores()
        B, T, _ = emissions.shape
        mask = mask.to(emissions.dtype)
        emitted = emissions.gather(2, tags.unsqueeze(2)).squeeze(2)  # (B, T)
        total = start[tags[:, 0]] + (emitted * mask).sum(1)
        if T > 1:
            moves = transitions[tags[:, :-1], tags[:, 1:]]  # (B, T-1)
            total = total + (moves * mask[:, 1:]).sum(1)
        last = tags.gather(1, (mask.sum(1).long() - 1).unsqueeze(1)).squeeze(1)  # (B,)
        return total + end[last]

    def log_partition(self, emissions: Tensor, mask: Tensor) -> Tensor:
        """``log Z`` of each row by the forward algorithm: (B,)."""
        start, transitions, end = self.scores()
        alpha = start + emissions[:, 0]  # (B, K)
        for t in range(1, emissions.shape[1]):
            # alpha_t(j) = P_tj + logsumexp_i(alpha_{t-1}(i) + A_ij)
            step = torch.logsumexp(alpha.unsqueeze(2) + transitions, dim=1) + emissions[:, t]  # (B, K)
            alpha = torch.where(mask[:, t].unsqueeze(1), step, alpha)
        return torch.logsumexp(alpha + end, dim=1)

    def viterbi(self, emissions: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        """The best tag sequence of each row and its score: ``(paths (B, T), scores (B,))``.

        Past a row's length the path repeats its last tag (padding; cut it off with the lengths).
        """
        start, transitions, end = self.scores()
        B, T, K = emissions.shape
        score = start + emissions[:, 0]  # (B, K)
        keep = torch.arange(K, device=emissions.device).expand(B, K)
        pointers = []
        for t in range(1, T):
            best, previous = (score.unsqueeze(2) + transitions).max(dim=1)  # (B, K): best predecessor of each tag
            valid = mask[:, t].unsqueeze(1)
            score = torch.where(valid, best + emissions[:, t], score)
            pointers.append(torch.where(valid, previous, keep))  # padded steps point at themselves
        best_score, last = (score + end).max(dim=1)
        path = [last]
        for previous in reversed(pointers):
            last = previous.gather(1, last.unsqueeze(1)).squeeze(1)
            path.append(last)
        path.reverse()
        return torch.stack(path, dim=1), best_score

    def decode(self, emissions: Tensor, mask: Tensor) -> list[list[int]]:
        """Viterbi paths as lists of tag ids, each as long as its row's mask."""
        paths, _ = self.viterbi(emissions, mask)
        lengths = mask.sum(1).tolist()
        return [row[:n] for row, n in zip(paths.tolist(), lengths)]
