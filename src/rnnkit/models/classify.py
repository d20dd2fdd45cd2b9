"""Many-to-one: the sequence classifier (issue 4), and the pooling that summarises a padded sequence.

:func:`length_mask` lives in :mod:`rnnkit.models.common` (the tagger needs it too); it is imported here
so that ``rnnkit.models.classify.length_mask`` still names it.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from rnnkit.cells import State
from rnnkit.errors import ConfigError
from rnnkit.layers import RecurrentConfig
from rnnkit.models.common import EmbeddingRecurrent, check_batch_first, check_probability, check_rnn_input, length_mask
from rnnkit.models.registry import register_model

__all__ = ["POOLINGS", "SequenceClassifier", "SequenceClassifierConfig", "length_mask", "pool_sequence"]

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


@dataclass(frozen=True)
class SequenceClassifierConfig:
    """Token embedding -> recurrent stack (uni- or bidirectional) -> pooling -> dropout -> linear head."""

    vocab_size: int
    embedding_size: int
    num_classes: int
    rnn: RecurrentConfig
    pooling: str = "last"
    dropout: float = 0.0

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

    @property
    def features(self) -> int:
        """Feature size of the pooled vector: D * H_out for ``last`` (the top layer's final state), else the
        RNN's output features (with skip connections, every layer's)."""
        r = self.rnn
        return r.num_directions * r.output_size if self.pooling == "last" else r.output_features


@register_model
class SequenceClassifier(EmbeddingRecurrent):
    """Many-to-one: ``logits = W · dropout(pool(RNN(dropout(E[x_1..n])))) + c``, (B, C).

    ``forward(tokens (B, T), lengths (B,) or None)``; padded positions past ``lengths`` never affect the
    result (see :func:`pool_sequence`). ``logits.softmax(-1)`` is p(class | sequence). Its modules
    (``embedding``, ``rnn``, ``dropout``, ``head``) are :class:`~rnnkit.models.common.EmbeddingRecurrent`'s.
    """

    config_class = SequenceClassifierConfig

    def __init__(self, config: SequenceClassifierConfig, *, device=None, dtype=None) -> None:
        super().__init__(config, config.features, config.num_classes, device=device, dtype=dtype)
        with torch.no_grad():
            self.embedding.weight.uniform_(-0.1, 0.1)

    def forward(self, tokens: Tensor, lengths: Tensor | None = None) -> Tensor:
        out, state = self.run(tokens, lengths=lengths)  # (B, T, F)
        pooled = pool_sequence(out, state, lengths, self.config.pooling, self.config.rnn.num_directions)
        return self.head(self.dropout(pooled))  # (B, C)
