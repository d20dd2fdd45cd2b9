"""The language model: a token embedding, a recurrent stack and a softmax head over the vocabulary."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from rnnkit.cells import State
from rnnkit.errors import ConfigError
from rnnkit.layers import Recurrent, RecurrentConfig
from rnnkit.models.registry import ConfiguredModel, register_model


@dataclass(frozen=True)
class LanguageModelConfig:
    """A token embedding, a recurrent stack and a softmax head over the vocabulary.

    ``dropout`` acts on the non-recurrent connections only (Zaremba et al. 2014): on the embeddings and
    on the output of the last layer; ``rnn.dropout`` acts between layers. ``tie_weights`` shares the
    embedding matrix with the output layer (Press & Wolf 2017; Inan et al. 2017) and needs the RNN's
    output size to equal ``embedding_size``. ``init_range`` r, when set, draws every parameter from
    U(-r, r) as Zaremba et al. do; otherwise layers keep their own initialisation and the embedding and
    head use U(-0.1, 0.1).
    """

    vocab_size: int
    embedding_size: int
    rnn: RecurrentConfig
    dropout: float = 0.0
    tie_weights: bool = False
    init_range: float | None = None

    def __post_init__(self) -> None:
        if self.vocab_size < 1 or self.embedding_size < 1:
            raise ConfigError(
                f"vocab_size and embedding_size must be >= 1, got {self.vocab_size}, {self.embedding_size}"
            )
        if self.rnn.input_size != self.embedding_size:
            raise ConfigError(
                f"rnn.input_size ({self.rnn.input_size}) must equal embedding_size ({self.embedding_size})"
            )
        if not self.rnn.batch_first:
            raise ConfigError("a language model's rnn must be batch_first")
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"dropout must be a probability in [0, 1), got {self.dropout}")
        if self.tie_weights and self.output_features != self.embedding_size:
            raise ConfigError(
                f"tied weights need the RNN output size ({self.output_features}) to equal the embedding size "
                f"({self.embedding_size}); set --embedding-size {self.output_features}"
            )

    @property
    def output_features(self) -> int:
        r = self.rnn
        per_layer = r.num_directions * r.output_size
        return per_layer * (r.num_layers if r.skip_connections else 1)


@register_model
class LanguageModel(ConfiguredModel):
    """Next-token model: ``logits_t = W · dropout(RNN(dropout(E[x_{1..t}]))_t) + c``.

    ``forward(tokens (B, T), state) -> logits (B, T, V), state``; the state is the RNN's, to carry
    across windows in truncated BPTT. The course notes' ``o_t = softmax(W h_t + c)`` is
    ``logits.softmax(-1)``.
    """

    config_class = LanguageModelConfig

    def __init__(self, config: LanguageModelConfig, *, device=None, dtype=None) -> None:
        super().__init__()
        self.config = config
        factory = {"device": device, "dtype": dtype}
        self.embedding = nn.Embedding(config.vocab_size, config.embedding_size, **factory)
        self.rnn = Recurrent.from_config(config.rnn, **factory)
        self.dropout = nn.Dropout(config.dropout)
        self.head = nn.Linear(config.output_features, config.vocab_size, **factory)
        self.reset_parameters()
        if config.tie_weights:
            self.head.weight = self.embedding.weight

    def reset_parameters(self) -> None:
        r = self.config.init_range
        with torch.no_grad():
            if r is not None:
                for p in self.parameters():
                    p.uniform_(-r, r)
                return
            self.embedding.weight.uniform_(-0.1, 0.1)
            self.head.weight.uniform_(-0.1, 0.1)
            self.head.bias.zero_()

    def forward(self, tokens: Tensor, state: State | None = None) -> tuple[Tensor, State]:
        x = self.dropout(self.embedding(tokens))  # (B, T, E)
        out, state = self.rnn(x, state)  # (B, T, F)
        return self.head(self.dropout(out)), state  # (B, T, V)
