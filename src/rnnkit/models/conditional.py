"""One-to-many: the label-conditioned generator of the corpus system (issue 4)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from rnnkit.cells import State
from rnnkit.errors import ConfigError
from rnnkit.layers import Recurrent, RecurrentConfig
from rnnkit.models.common import check_probability, check_rnn_input
from rnnkit.models.registry import ConfiguredModel, register_model


@dataclass(frozen=True)
class ConditionalGeneratorConfig:
    """A language model whose initial state comes from a class label (one-to-many):
    :math:`h_0 = \\tanh(W_h z_y + b_h)` (and :math:`c_0` likewise for the LSTM), :math:`z_y` the
    label's embedding, one (h_0, c_0) per layer; then it runs as :class:`~rnnkit.models.lm.LanguageModel`."""

    vocab_size: int
    embedding_size: int
    num_classes: int
    rnn: RecurrentConfig
    label_size: int = 32
    dropout: float = 0.0

    def __post_init__(self) -> None:
        if min(self.vocab_size, self.embedding_size, self.num_classes, self.label_size) < 1:
            raise ConfigError("vocab_size, embedding_size, num_classes and label_size must be >= 1")
        check_rnn_input(self.rnn, self.embedding_size)
        if not self.rnn.batch_first or self.rnn.bidirectional or self.rnn.proj_size:
            raise ConfigError("a generator's rnn must be batch_first, unidirectional and without projection")
        check_probability("dropout", self.dropout)


class _StartFrom(nn.Module):
    """A recurrent layer whose first call starts from a given state (for rnnkit.decoding)."""

    def __init__(self, rnn: nn.Module, start: State) -> None:
        super().__init__()
        self.rnn, self.start = rnn, start
        self.batch_first = rnn.batch_first

    def forward(self, x: Tensor, state: State | None = None):
        return self.rnn(x, self.start if state is None else state)


@register_model
class ConditionalGenerator(ConfiguredModel):
    """``forward(tokens (B, T), labels (B,), state=None) -> logits (B, T, V), state``; without a state
    the run starts from :meth:`initial_state` of the labels. ``generate`` samples text per label."""

    config_class = ConditionalGeneratorConfig

    def __init__(self, config: ConditionalGeneratorConfig, *, device=None, dtype=None) -> None:
        super().__init__()
        self.config = config
        factory = {"device": device, "dtype": dtype}
        r = config.rnn
        self.state_parts = 2 if r.cell == "lstm" else 1
        self.embedding = nn.Embedding(config.vocab_size, config.embedding_size, **factory)
        self.label_embedding = nn.Embedding(config.num_classes, config.label_size, **factory)
        self.init = nn.Linear(config.label_size, r.num_layers * self.state_parts * r.hidden_size, **factory)
        self.rnn = Recurrent.from_config(r, **factory)
        self.dropout = nn.Dropout(config.dropout)
        self.head = nn.Linear(r.hidden_size, config.vocab_size, **factory)
        with torch.no_grad():
            self.embedding.weight.uniform_(-0.1, 0.1)
            self.head.weight.uniform_(-0.1, 0.1)
            self.head.bias.zero_()

    def initial_state(self, labels: Tensor) -> State:
        """The state each label starts from: (L, B, H), or a pair of them for the LSTM."""
        r = self.config.rnn
        z = self.label_embedding(labels)  # (B, Z)
        s = torch.tanh(self.init(z)).view(-1, r.num_layers, self.state_parts, r.hidden_size)  # (B, L, S, H)
        s = s.permute(2, 1, 0, 3).contiguous()  # (S, L, B, H)
        return (s[0], s[1]) if self.state_parts == 2 else s[0]

    def forward(self, tokens: Tensor, labels: Tensor, state: State | None = None) -> tuple[Tensor, State]:
        if state is None:
            state = self.initial_state(labels)
        x = self.dropout(self.embedding(tokens))  # (B, T, E)
        out, state = self.rnn(x, state)  # (B, T, H)
        return self.head(self.dropout(out)), state  # (B, T, V)

    def generate(self, labels: Tensor, n_tokens: int, *, prime=None, temperature: float = 1.0,
                 top_k: int | None = None, top_p: float | None = None, seed: int | None = None) -> Tensor:  # fmt: skip
        """Sample ``n_tokens`` after ``prime`` for each label of ``labels`` (N,): (N, n_tokens) ids."""
        from rnnkit.decoding import generate

        was_training = self.training
        self.eval()
        try:
            with torch.no_grad():
                start = self.initial_state(labels.to(self.label_embedding.weight.device))
            rnn = _StartFrom(self.rnn, start)
            return generate(self.embedding, rnn, self.head, n_tokens, prime=prime, temperature=temperature,
                            top_k=top_k, top_p=top_p, num_samples=len(labels), seed=seed)  # fmt: skip
        finally:
            self.train(was_training)
