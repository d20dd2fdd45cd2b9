"""Many-to-many (aligned): the sequence tagger (issue 4) and its character-level word features."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from rnnkit.errors import ConfigError
from rnnkit.layers import LSTM, Recurrent, RecurrentConfig
from rnnkit.models.common import check_batch_first, check_probability, check_rnn_input, length_mask
from rnnkit.models.registry import ConfiguredModel, register_model

CHAR_FEATURES = ("lstm", "cnn")


@dataclass(frozen=True)
class CharFeaturesConfig:
    """Character-level word features: a char BiLSTM's two final states (Lample et al. 2016: 25 + 25)
    or a char CNN's max-pooled filters (Ma & Hovy 2016: 30 filters of width 3)."""

    kind: str
    vocab_size: int
    embedding_size: int = 25
    hidden_size: int = 25  # lstm: per direction; cnn: number of filters
    kernel_size: int = 3  # cnn only
    backend: str = "auto"

    def __post_init__(self) -> None:
        if self.kind not in CHAR_FEATURES:
            raise ConfigError(f"char features must be one of {', '.join(CHAR_FEATURES)}, got {self.kind!r}")
        if min(self.vocab_size, self.embedding_size, self.hidden_size, self.kernel_size) < 1:
            raise ConfigError("char vocab_size, embedding_size, hidden_size and kernel_size must be >= 1")

    @property
    def output_size(self) -> int:
        return 2 * self.hidden_size if self.kind == "lstm" else self.hidden_size


class CharFeatures(nn.Module):
    """``(chars (N, L), lengths (N,)) -> (N, F)``: one feature vector per word from its characters.

    LSTM: :math:`[\\overrightarrow{h}_{n}; \\overleftarrow{h}_{1}]` of a BiLSTM over the characters.
    CNN: :math:`\\max_t \\mathrm{conv}(E[c])_t` over the word's characters (padding excluded).
    """

    def __init__(self, config: CharFeaturesConfig, *, device=None, dtype=None) -> None:
        super().__init__()
        self.config = config
        factory = {"device": device, "dtype": dtype}
        self.embedding = nn.Embedding(config.vocab_size, config.embedding_size, **factory)
        if config.kind == "lstm":
            self.encoder = LSTM(config.embedding_size, config.hidden_size, batch_first=True, bidirectional=True,
                                backend=config.backend, **factory)  # fmt: skip
        else:
            self.encoder = nn.Conv1d(config.embedding_size, config.hidden_size, config.kernel_size,
                                     padding=config.kernel_size // 2, **factory)  # fmt: skip

    def forward(self, chars: Tensor, lengths: Tensor) -> Tensor:
        x = self.embedding(chars)  # (N, L, E)
        if self.config.kind == "lstm":
            _, (h, _) = self.encoder(x, lengths=lengths)  # h: (2, N, H)
            return torch.cat([h[0], h[1]], dim=-1)  # (N, 2H)
        mask = length_mask(lengths, chars.shape[1]).unsqueeze(1)  # (N, 1, L)
        # zeros past the word's end, as the convolution's own zero padding, so a word's features do not
        # depend on how long the longest word of its batch is
        x = x.transpose(1, 2) * mask  # (N, E, L)
        y = self.encoder(x)[:, :, : chars.shape[1]]  # (N, F, L)
        return y.masked_fill(~mask, float("-inf")).amax(2)  # (N, F)


@dataclass(frozen=True)
class SequenceTaggerConfig:
    """Word embedding (+ char features, + casing embedding) -> dropout -> BiLSTM -> dropout -> tag scores,
    then a softmax per word or a linear-chain CRF over the sentence (Huang et al. 2015; Lample et al. 2016).

    ``tags`` and ``scheme`` name the tag set; with ``crf`` and ``constrain`` the CRF forbids the
    transitions the scheme rules out (see :func:`rnnkit.crf.allowed_transitions`).
    """

    vocab_size: int
    embedding_size: int
    tags: list[str]
    rnn: RecurrentConfig
    chars: CharFeaturesConfig | None = None
    casing_size: int = 0  # embedding size of the word's casing class; 0 = off
    num_casings: int = 8
    dropout: float = 0.5
    crf: bool = True
    scheme: str = "bio"
    constrain: bool = True

    def __post_init__(self) -> None:
        if min(self.vocab_size, self.embedding_size) < 1 or len(self.tags) < 2 or len(set(self.tags)) != len(self.tags):
            raise ConfigError("vocab_size and embedding_size must be >= 1 and tags must list >= 2 distinct tags")
        chars = self.chars.output_size if self.chars else 0
        check_rnn_input(self.rnn, self.input_features, f"the word features ({self.input_features} = embedding "
                        f"{self.embedding_size} + chars {chars} + casing {self.casing_size})")  # fmt: skip
        check_batch_first("a tagger", rnn=self.rnn)
        check_probability("dropout", self.dropout)
        if self.casing_size < 0:
            raise ConfigError(f"casing_size must be >= 0, got {self.casing_size}")

    @property
    def input_features(self) -> int:
        return self.embedding_size + (self.chars.output_size if self.chars else 0) + self.casing_size

    @property
    def output_features(self) -> int:
        """Feature size F of the RNN's output for each word, what the tag scores read."""
        return self.rnn.output_features


@register_model
class SequenceTagger(ConfiguredModel):
    """Many-to-many (aligned): one tag per word.

    ``emissions = forward(words (B, T), lengths (B,), chars (B, T, L), char_lengths (B, T), casing (B, T))``
    gives tag scores (B, T, K); ``loss(emissions, tags, lengths)`` is the mean negative log-likelihood
    per word (CRF: of whole sentences, divided by their words); ``decode(emissions, lengths)`` gives the
    tag ids of each sentence (CRF: Viterbi; softmax: argmax per word).
    """

    config_class = SequenceTaggerConfig

    def __init__(self, config: SequenceTaggerConfig, *, device=None, dtype=None) -> None:
        super().__init__()
        from rnnkit.crf import CRF, allowed_transitions

        self.config = config
        factory = {"device": device, "dtype": dtype}
        self.embedding = nn.Embedding(config.vocab_size, config.embedding_size, **factory)
        self.chars = CharFeatures(config.chars, **factory) if config.chars else None
        self.casing = nn.Embedding(config.num_casings, config.casing_size, **factory) if config.casing_size else None
        self.dropout = nn.Dropout(config.dropout)
        self.rnn = Recurrent.from_config(config.rnn, **factory)
        self.head = nn.Linear(config.output_features, len(config.tags), **factory)
        constraints = allowed_transitions(config.tags, config.scheme) if config.constrain else None
        self.crf = CRF(len(config.tags), constraints, **factory) if config.crf else None
        with torch.no_grad():
            # U(-sqrt(3/E), sqrt(3/E)) as Lample et al. and Ma & Hovy initialise embeddings: unit variance per row
            bound = (3.0 / config.embedding_size) ** 0.5
            self.embedding.weight.uniform_(-bound, bound)

    def forward(self, words: Tensor, lengths: Tensor, chars: Tensor | None = None, char_lengths: Tensor | None = None,
                casing: Tensor | None = None) -> Tensor:  # fmt: skip
        B, T = words.shape
        parts = [self.embedding(words)]  # (B, T, E)
        if self.chars is not None:
            if chars is None or char_lengths is None:
                raise ValueError("this tagger reads characters: pass chars (B, T, L) and char_lengths (B, T)")
            mask = length_mask(lengths.to(words.device), T)  # (B, T)
            features = self.chars(chars[mask], char_lengths[mask].clamp(min=1))  # (N words, F)
            full = features.new_zeros(B, T, features.shape[-1])
            full[mask] = features
            parts.append(full)
        if self.casing is not None:
            if casing is None:
                raise ValueError("this tagger reads casing classes: pass casing (B, T)")
            parts.append(self.casing(casing))
        x = self.dropout(torch.cat(parts, dim=-1))  # (B, T, I)
        out, _ = self.rnn(x, lengths=lengths)  # (B, T, F)
        return self.head(self.dropout(out))  # (B, T, K)

    def loss(self, emissions: Tensor, tags: Tensor, lengths: Tensor) -> Tensor:
        mask = length_mask(lengths.to(emissions.device), emissions.shape[1])
        if self.crf is not None:
            return self.crf(emissions, tags, mask).sum() / mask.sum()
        return nn.functional.cross_entropy(emissions[mask], tags[mask])

    def decode(self, emissions: Tensor, lengths: Tensor) -> list[list[int]]:
        mask = length_mask(lengths.to(emissions.device), emissions.shape[1])
        if self.crf is not None:
            return self.crf.decode(emissions, mask)
        best = emissions.argmax(-1).tolist()
        return [row[:n] for row, n in zip(best, lengths.tolist())]
