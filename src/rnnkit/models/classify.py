"""Many-to-one: the sequence classifier (issue 4), and the pooling that summarises a padded sequence.

:func:`length_mask` lives in :mod:`rnnkit.models.common` (the tagger needs it too); it is imported here
so that ``rnnkit.models.classify.length_mask`` still names it.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from rnnkit.cells import State
from rnnkit.errors import ConfigError
from rnnkit.layers import RecurrentConfig
from rnnkit.models.common import EmbeddingRecurrent, check_batch_first, check_probability, check_rnn_input, length_mask
from rnnkit.models.registry import register_model

__all__ = ["POOLINGS", "SequenceClassifier", "SequenceClassifierConfig", "length_mask", "ngram_ids", "pool_sequence"]

POOLINGS = ("last", "mean", "max")


def pool_sequence(output: Tensor, state: State, lengths: Tensor | None, pooling: str, directions: int) -> Tensor:
    r"""Summarise a recurrent stack's run over padded sequences as one vector per sequence: (B, F).

    ``last``: the final state of the last layer, :math:`h_{n_b}` for sequence b of length :math:`n_b`
    (each direction's own final state: the backward one has read the sequence back to its first token);
    ``mean``: :math:`\frac{1}{n_b}\sum_{t \le n_b} o_t`; ``max``: the elementwise max over
    :math:`t \le n_b`. Padding never enters: the layer keeps the state still past a sequence's length.
    """
    if pooling == "last":
        h = state[0] if isinstance(state, tuple) else state  # (L * D, B, H_out)
        return torch.cat(list(h[-directions:]), dim=-1)  # (B, D * H_out)
    B, T, _ = output.shape
    if lengths is None:
        lengths = torch.full((B,), T, dtype=torch.long, device=output.device)
    mask = length_mask(lengths.to(output.device), T).unsqueeze(-1)  # (B, T, 1)
    if pooling == "mean":
        return (output * mask).sum(1) / lengths.to(output.device, output.dtype).unsqueeze(1)
    if pooling == "max":
        return output.masked_fill(~mask, float("-inf")).amax(1)
    raise ValueError(f"pooling must be one of {', '.join(POOLINGS)}, got {pooling!r}")


def ngram_ids(tokens: Tensor, lengths: Tensor | None, buckets: int) -> tuple[Tensor, Tensor]:
    r"""The hashed unigrams and bigrams of padded token ids, and which of them lie inside each sequence.

    Unigram :math:`x_t \bmod N` for :math:`t < n_b`, bigram :math:`(P x_t + x_{t+1} + 7) \bmod N` for
    :math:`t < n_b - 1`, with N = ``buckets`` and P = 1000003 (a prime, so that (a, b) and (b, a) land apart).
    Returns ids (B, 2T - 1) and mask (B, 2T - 1) bool; a bucket may hold several n-grams, as in fastText.
    """
    B, T = tokens.shape
    if lengths is None:
        lengths = torch.full((B,), T, dtype=torch.long, device=tokens.device)
    lengths = lengths.to(tokens.device)
    bigrams = (tokens[:, :-1] * 1000003 + tokens[:, 1:] + 7) % buckets  # (B, T - 1)
    ids = torch.cat([tokens % buckets, bigrams], dim=1)
    mask = torch.cat([length_mask(lengths, T), length_mask(lengths - 1, T - 1)], dim=1)
    return ids, mask


@dataclass(frozen=True)
class SequenceClassifierConfig:
    """Token embedding -> recurrent stack (uni- or bidirectional) -> pooling -> dropout -> linear head,
    plus, with ``ngram_buckets`` N > 0, a linear model of the sequence's hashed unigrams and bigrams added
    to the logits (see :class:`SequenceClassifier`)."""

    vocab_size: int
    embedding_size: int
    num_classes: int
    rnn: RecurrentConfig
    pooling: str = "last"
    dropout: float = 0.0
    ngram_buckets: int = 0

    def __post_init__(self) -> None:
        if min(self.vocab_size, self.embedding_size) < 1 or self.num_classes < 2:
            raise ConfigError(
                f"vocab_size and embedding_size must be >= 1 and num_classes >= 2, got {self.vocab_size}, "
                f"{self.embedding_size}, {self.num_classes}"
            )
        check_rnn_input(self.rnn, self.embedding_size)
        check_batch_first("a classifier", rnn=self.rnn)
        if self.pooling not in POOLINGS:
            raise ConfigError(f"pooling must be one of {', '.join(POOLINGS)}, got {self.pooling!r}")
        check_probability("dropout", self.dropout)
        if self.ngram_buckets < 0:
            raise ConfigError(f"ngram_buckets must be >= 0 (0: no n-gram term), got {self.ngram_buckets}")

    @property
    def features(self) -> int:
        """Feature size of the pooled vector: D * H_out for ``last`` (the top layer's final state), else the
        RNN's output features (with skip connections, every layer's)."""
        r = self.rnn
        return r.num_directions * r.output_size if self.pooling == "last" else r.output_features


@register_model
class SequenceClassifier(EmbeddingRecurrent):
    r"""Many-to-one: ``logits = W · dropout(pool(RNN(dropout(E[x_1..n])))) + c``, (B, C).

    With ``ngram_buckets`` N > 0 the logits also get the mean of one row of ``ngrams`` G (N, C) per hashed
    unigram and bigram of the sequence (:func:`ngram_ids`), :math:`\frac{1}{|S_b|}\sum_{g \in S_b} G_g`:
    the wide, bag-of-n-grams half of a wide-and-deep model (fastText, Joulin et al. 2017), which learns
    "not good" or "too long" as a feature of its own. G starts at zero, so at initialisation the model is
    the recurrent one.

    ``forward(tokens (B, T), lengths (B,) or None)``; padded positions past ``lengths`` never affect the
    result (see :func:`pool_sequence`). ``logits.softmax(-1)`` is p(class | sequence). Its modules
    (``embedding``, ``rnn``, ``dropout``, ``head``) are :class:`~rnnkit.models.common.EmbeddingRecurrent`'s,
    then ``ngrams`` when N > 0.
    """

    config_class = SequenceClassifierConfig

    def __init__(self, config: SequenceClassifierConfig, *, device=None, dtype=None) -> None:
        super().__init__(config, config.features, config.num_classes, device=device, dtype=dtype)
        with torch.no_grad():
            self.embedding.weight.uniform_(-0.1, 0.1)
        if config.ngram_buckets:
            self.ngrams = nn.Embedding(config.ngram_buckets, config.num_classes, device=device, dtype=dtype)
            nn.init.zeros_(self.ngrams.weight)

    def forward(self, tokens: Tensor, lengths: Tensor | None = None) -> Tensor:
        out, state = self.run(tokens, lengths=lengths)  # (B, T, F)
        pooled = pool_sequence(out, state, lengths, self.config.pooling, self.config.rnn.num_directions)
        logits = self.head(self.dropout(pooled))  # (B, C)
        if self.config.ngram_buckets:
            ids, mask = ngram_ids(tokens, lengths, self.config.ngram_buckets)  # (B, S)
            weights = mask.to(logits.dtype)
            wide = (self.ngrams(ids) * weights.unsqueeze(-1)).sum(1) / weights.sum(1, keepdim=True).clamp_min(1)
            logits = logits + wide
        return logits
