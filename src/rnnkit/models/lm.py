"""The language model: a token embedding, a recurrent stack and a softmax head over the vocabulary."""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor, nn

from rnnkit.cells import State
from rnnkit.errors import ConfigError
from rnnkit.layers import RecurrentConfig
from rnnkit.models.common import EmbeddingRecurrent, check_batch_first, check_probability, check_rnn_input, init_uniform
from rnnkit.models.registry import register_model


@dataclass(frozen=True)
class LanguageModelConfig:
    """A token embedding, a recurrent stack and a softmax head over the vocabulary.

    ``dropout`` acts on the non-recurrent connections only (Zaremba et al. 2014): on the embeddings and
    on the output of the last layer; ``rnn.dropout`` acts between layers. ``tie_weights`` shares the
    embedding matrix with the output layer (Press & Wolf 2017; Inan et al. 2017) and needs the RNN's
    output size to equal ``embedding_size``. ``init_range`` r, when set, draws every parameter from
    U(-r, r) as Zaremba et al. do; otherwise layers keep their own initialisation, the head uses U(-0.1, 0.1) and the
    embedding N(0, 1) (U(-0.1, 0.1) when tied to the head).
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
        check_rnn_input(self.rnn, self.embedding_size)
        check_batch_first("a language model", rnn=self.rnn)
        check_probability("dropout", self.dropout)
        if self.tie_weights and self.output_features != self.embedding_size:
            raise ConfigError(
                f"tied weights need the RNN output size ({self.output_features}) to equal the embedding size "
                f"({self.embedding_size}); set --embedding-size {self.output_features}"
            )

    @property
    def output_features(self) -> int:
        """Feature size F of the RNN's output at each step, what the head reads."""
        return self.rnn.output_features


@register_model
class LanguageModel(EmbeddingRecurrent):
    """Next-token model: ``logits_t = W · dropout(RNN(dropout(E[x_{1..t}]))_t) + c``.

    ``forward(tokens (B, T), state) -> logits (B, T, V), state``; the state is the RNN's, to carry
    across windows in truncated BPTT. The course notes' ``o_t = softmax(W h_t + c)`` is
    ``logits.softmax(-1)``. Its modules (``embedding``, ``rnn``, ``dropout``, ``head``) are
    :class:`~rnnkit.models.common.EmbeddingRecurrent`'s.
    """

    config_class = LanguageModelConfig

    def __init__(self, config: LanguageModelConfig, *, device=None, dtype=None) -> None:
        super().__init__(config, config.output_features, config.vocab_size, device=device, dtype=dtype)
        self.reset_parameters()
        if config.tie_weights:
            self.head.weight = self.embedding.weight

    def reset_parameters(self) -> None:
        r = self.config.init_range
        if r is None:  # the layers keep their own initialisation
            init_uniform([self.head.weight], 0.1)
            if self.config.tie_weights:  # the head's scale: N(0, 1) logits would start far from uniform
                init_uniform([self.embedding.weight], 0.1)
            else:
                # N(0, 1), torch's own: the RNN's input weights are drawn for inputs of unit scale. U(-0.1, 0.1)
                # (std 0.06) left the input's signal below the recurrent one, and a char LM sat at the unigram
                # loss for its first 100+ steps (benchmarks/results/lm_plateau-cpu2.md).
                nn.init.normal_(self.embedding.weight)
            nn.init.zeros_(self.head.bias)
        else:
            init_uniform(self.parameters(), r)

    def forward(self, tokens: Tensor, state: State | None = None) -> tuple[Tensor, State]:
        out, state = self.run(tokens, state)  # (B, T, F)
        return self.head(self.dropout(out)), state  # (B, T, V)
