"""Many-to-one: the sequence classifier (issue 4), and the pooling that summarises a padded sequence."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from rnnkit.cells import State
from rnnkit.errors import ConfigError
from rnnkit.layers import Recurrent, RecurrentConfig
from rnnkit.models.registry import ConfiguredModel, register_model

POOLINGS = ("last", "mean", "max")


def _pooled_features(rnn: RecurrentConfig, pooling: str) -> int:
    """Feature size of a pooled sequence: the final state of the last layer, or the pooled outputs."""
    if pooling == "last":
        return rnn.num_directions * rnn.output_size
    per_layer = rnn.num_directions * rnn.output_size
    return per_layer * (rnn.num_layers if rnn.skip_connections else 1)


def length_mask(lengths: Tensor, steps: int) -> Tensor:
    """``mask[b, t]`` = t < lengths[b]: (B, T) bool."""
    return torch.arange(steps, device=lengths.device).unsqueeze(0) < lengths.unsqueeze(1)


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
        if self.rnn.input_size != self.embedding_size:
            raise ConfigError(
                f"rnn.input_size ({self.rnn.input_size}) must equal embedding_size ({self.embedding_size})"
            )
        if not self.rnn.batch_first:
            raise ConfigError("a classifier's rnn must be batch_first")
        if self.pooling not in POOLINGS:
            raise ConfigError(f"pooling must be one of {', '.join(POOLINGS)}, got {self.pooling!r}")
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"dropout must be a probability in [0, 1), got {self.dropout}")

    @property
    def features(self) -> int:
        return _pooled_features(self.rnn, self.pooling)


@register_model
class SequenceClassifier(ConfiguredModel):
    """Many-to-one: ``logits = W · dropout(pool(RNN(dropout(E[x_1..n])))) + c``, (B, C).

    ``forward(tokens (B, T), lengths (B,) or None)``; padded positions past ``lengths`` never affect the
    result (see :func:`pool_sequence`). ``logits.softmax(-1)`` is p(class | sequence).
    """

    config_class = SequenceClassifierConfig

    def __init__(self, config: SequenceClassifierConfig, *, device=None, dtype=None) -> None:
        super().__init__()
        self.config = config
        factory = {"device": device, "dtype": dtype}
        self.embedding = nn.Embedding(config.vocab_size, config.embedding_size, **factory)
        self.rnn = Recurrent.from_config(config.rnn, **factory)
        self.dropout = nn.Dropout(config.dropout)
        self.head = nn.Linear(config.features, config.num_classes, **factory)
        with torch.no_grad():
            self.embedding.weight.uniform_(-0.1, 0.1)

    def forward(self, tokens: Tensor, lengths: Tensor | None = None) -> Tensor:
        x = self.dropout(self.embedding(tokens))  # (B, T, E)
        out, state = self.rnn(x, lengths=lengths)  # (B, T, F)
        pooled = pool_sequence(out, state, lengths, self.config.pooling, self.config.rnn.num_directions)
        return self.head(self.dropout(pooled))  # (B, C)
