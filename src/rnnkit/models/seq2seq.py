"""Seq2Seq: encoder-decoder with optional attention (issue 5).

The encoder reads the whole source into its state (many-to-one); the decoder writes the target from
it (one-to-many). Decoding (greedy, beam search) lives in :mod:`rnnkit.decoding` and talks to the model
only through ``start`` and ``step``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import NamedTuple

import torch
from torch import Tensor, nn

from rnnkit.cells import State, as_tuple
from rnnkit.errors import ConfigError
from rnnkit.layers import Recurrent, RecurrentConfig
from rnnkit.models.common import check_batch_first, check_probability, check_rnn_input, init_uniform, length_mask
from rnnkit.models.registry import ConfiguredModel, register_model

ATTENTIONS = ("none", "bahdanau", "luong")


class EncoderMemory(NamedTuple):
    """What the decoder may attend to: encoder outputs ``values`` (B, S, F), their precomputed attention
    ``keys`` (B, S, K) or None without attention, and ``mask`` (B, S), True at real (unpadded) positions."""

    values: Tensor
    keys: Tensor | None
    mask: Tensor

    def select(self, index: Tensor) -> EncoderMemory:
        """The rows ``index`` (N,) of the batch (to expand for beam search)."""
        return EncoderMemory(
            self.values.index_select(0, index),
            None if self.keys is None else self.keys.index_select(0, index),
            self.mask.index_select(0, index),
        )


class DecoderCarry(NamedTuple):
    """What one decoder step hands to the next: the RNN ``state`` (each tensor (L, B, H)) and, for Luong
    attention with input feeding, the last attentional vector ``feed`` (B, H) (None otherwise)."""

    state: State
    feed: Tensor | None

    def select(self, index: Tensor) -> DecoderCarry:
        """The rows ``index`` (N,) of the batch (to reorder beams)."""
        state = tuple(s.index_select(1, index) for s in as_tuple(self.state))
        return DecoderCarry(
            state if isinstance(self.state, tuple) else state[0],
            None if self.feed is None else self.feed.index_select(0, index),
        )


def _masked_softmax(scores: Tensor, mask: Tensor) -> Tensor:
    """softmax over the last axis of ``scores`` (B, [T,] S) restricted to ``mask`` (broadcast against it)."""
    return scores.masked_fill(~mask, float("-inf")).softmax(dim=-1)


class BahdanauAttention(nn.Module):
    r"""Additive attention (Bahdanau, Cho & Bengio 2015).

    For the query q (the decoder state before the step, s_{t-1}) and the encoder outputs h_j:

    .. math::
        e_{tj} = v^\top \tanh(W_q q_t + W_k h_j + b), \quad
        \alpha_{tj} = \frac{\exp e_{tj}}{\sum_{k < S_b} \exp e_{tk}}, \quad
        c_t = \sum_j \alpha_{tj} h_j

    ``keys(values (B, S, F)) -> (B, S, A)`` computes ``W_k h_j + b`` once per source;
    ``forward(query (B, Q), memory) -> context (B, F), weights (B, S)``.
    """

    def __init__(self, query_size: int, value_size: int, attention_size: int, *, device=None, dtype=None) -> None:
        super().__init__()
        factory = {"device": device, "dtype": dtype}
        self.query = nn.Linear(query_size, attention_size, bias=False, **factory)
        self.key = nn.Linear(value_size, attention_size, **factory)
        self.v = nn.Linear(attention_size, 1, bias=False, **factory)

    def keys(self, values: Tensor) -> Tensor:
        return self.key(values)  # (B, S, A)

    def forward(self, query: Tensor, memory: EncoderMemory) -> tuple[Tensor, Tensor]:
        energy = torch.tanh(self.query(query).unsqueeze(1) + memory.keys)  # (B, S, A)
        weights = _masked_softmax(self.v(energy).squeeze(-1), memory.mask)  # (B, S)
        return torch.bmm(weights.unsqueeze(1), memory.values).squeeze(1), weights  # (B, F), (B, S)


class LuongAttention(nn.Module):
    r"""Multiplicative ("general") attention (Luong, Pham & Manning 2015).

    For the query q (the decoder's new top-layer output h_t) and the encoder outputs h_j:

    .. math::
        \mathrm{score}(q_t, h_j) = q_t^\top W_a h_j, \quad
        \alpha_{tj} = \operatorname{softmax}_j \mathrm{score}(q_t, h_j), \quad
        c_t = \sum_j \alpha_{tj} h_j

    ``keys(values (B, S, F)) -> (B, S, Q)`` computes ``W_a h_j`` once per source;
    ``forward(query (B, Q), memory) -> context (B, F), weights (B, S)``; a query (B, T, Q) attends
    for T steps at once: context (B, T, F), weights (B, T, S).
    """

    def __init__(self, query_size: int, value_size: int, *, device=None, dtype=None) -> None:
        super().__init__()
        self.weight = nn.Linear(value_size, query_size, bias=False, device=device, dtype=dtype)  # W_a

    def keys(self, values: Tensor) -> Tensor:
        return self.weight(values)  # (B, S, Q)

    def forward(self, query: Tensor, memory: EncoderMemory) -> tuple[Tensor, Tensor]:
        one_step = query.dim() == 2  # (B, Q); else (B, T, Q), every step of a teacher-forced decoder at once
        q = query.unsqueeze(1) if one_step else query  # (B, T, Q)
        scores = torch.bmm(q, memory.keys.transpose(1, 2))  # (B, T, S)
        weights = _masked_softmax(scores, memory.mask.unsqueeze(1))  # (B, T, S)
        context = torch.bmm(weights, memory.values)  # (B, T, F)
        return (context.squeeze(1), weights.squeeze(1)) if one_step else (context, weights)


@dataclass(frozen=True)
class Seq2SeqConfig:
    """An encoder RNN, a decoder RNN started from the encoder's final state, optional attention.

    Source and target share one vocabulary (``vocab_size`` ids, with ``pad_id``, ``go_id`` that starts
    every decoded sequence, and ``end_id`` that ends it) but have their own embeddings. ``encoder`` and
    ``decoder`` must use the same cell and number of layers, since decoder layer l starts from encoder
    layer l's final state; when the encoder is bidirectional or its sizes differ from the decoder's, a
    learned bridge maps the states across. ``attention`` is ``none``, ``bahdanau`` or ``luong``; the
    decoder's input size is ``embedding_size`` plus :attr:`feed_size`. ``input_feeding`` (luong only)
    feeds the last attentional vector back into the decoder; without it the decoder does not depend on
    its own attention, so teacher forcing runs it over the whole target in one call (much faster, the
    form of Luong et al.'s base model). ``attention_size`` is the width of
    Bahdanau's scoring layer (0: the decoder's output size). ``dropout`` acts on the embeddings and
    before the output layer; ``init_range`` r draws every parameter from U(-r, r) (Sutskever et al. 2014
    and Zaremba & Sutskever 2014 use 0.08).
    """

    vocab_size: int
    embedding_size: int
    encoder: RecurrentConfig
    decoder: RecurrentConfig
    attention: str = "none"
    attention_size: int = 0
    input_feeding: bool = True
    dropout: float = 0.0
    init_range: float | None = None
    pad_id: int = 0
    go_id: int = 1
    end_id: int = 2

    def __post_init__(self) -> None:
        e, d = self.encoder, self.decoder
        if self.vocab_size < 3 or self.embedding_size < 1:
            raise ConfigError(f"vocab_size must be >= 3 and embedding_size >= 1, got {self.vocab_size}, "
                              f"{self.embedding_size}")  # fmt: skip
        if len({self.pad_id, self.go_id, self.end_id}) != 3 or not all(
            0 <= i < self.vocab_size for i in (self.pad_id, self.go_id, self.end_id)
        ):
            raise ConfigError("pad_id, go_id and end_id must be distinct ids inside the vocabulary")
        if self.attention not in ATTENTIONS:
            raise ConfigError(f"attention must be one of {', '.join(ATTENTIONS)}, got {self.attention!r}")
        if self.attention_size < 0:
            raise ConfigError(f"attention_size must be >= 0, got {self.attention_size}")
        if not self.input_feeding and self.attention == "bahdanau":
            raise ConfigError("input_feeding=False (--no-input-feeding) needs attention 'luong'")
        check_batch_first("a Seq2Seq model", encoder=e, decoder=d)
        if e.cell != d.cell or e.num_layers != d.num_layers:
            raise ConfigError(
                f"encoder and decoder must have the same cell and number of layers (the decoder starts from the "
                f"encoder's final state), got {e.cell} x {e.num_layers} and {d.cell} x {d.num_layers}"
            )
        if d.bidirectional or d.skip_connections:
            raise ConfigError("the decoder generates left to right: it cannot be bidirectional or use skip_connections")
        check_rnn_input(e, self.embedding_size, name="encoder")
        if d.input_size != self.embedding_size + self.feed_size:
            raise ConfigError(
                f"decoder.input_size ({d.input_size}) must be embedding_size + {self.feed_size} for attention "
                f"{self.attention!r}: {self.embedding_size + self.feed_size}"
            )
        check_probability("dropout", self.dropout)

    @classmethod
    def sized(cls, *, embedding_size: int, decoder: RecurrentConfig, **fields) -> Seq2SeqConfig:
        """The config with the decoder's ``input_size`` worked out (``embedding_size`` + :attr:`feed_size`),
        so a caller cannot get it wrong; ``decoder``'s own ``input_size`` is ignored."""
        options = {**{f.name: f.default for f in dataclasses.fields(cls)}, **fields}  # the defaults stay in one place
        feed = _feed_size(options["attention"], options["input_feeding"], fields["encoder"], decoder)
        decoder = dataclasses.replace(decoder, input_size=embedding_size + feed)
        return cls(embedding_size=embedding_size, decoder=decoder, **fields)

    @property
    def memory_features(self) -> int:
        """Feature size F of the encoder outputs (what attention reads)."""
        return self.encoder.output_features

    @property
    def feed_size(self) -> int:
        """What the decoder reads besides the embedding: Bahdanau's context c_t, or Luong's h~_{t-1}."""
        return _feed_size(self.attention, self.input_feeding, self.encoder, self.decoder)

    @property
    def feeds_back(self) -> bool:
        """Whether a decoder step reads something computed from the previous step's attention."""
        return self.attention == "bahdanau" or (self.attention == "luong" and self.input_feeding)

    @property
    def needs_bridge(self) -> bool:
        e, d = self.encoder, self.decoder
        return e.bidirectional or e.output_size != d.output_size or e.hidden_size != d.hidden_size


def _feed_size(attention: str, input_feeding: bool, encoder: RecurrentConfig, decoder: RecurrentConfig) -> int:
    """Size of what a decoder step reads besides the embedding (0 for an unknown attention: the config's
    own check names it)."""
    if attention == "luong":
        return decoder.output_size if input_feeding else 0
    return encoder.output_features if attention == "bahdanau" else 0


@register_model
class Seq2Seq(ConfiguredModel):
    r"""Encoder-decoder (Sutskever, Vinyals & Le 2014; Cho et al. 2014), optionally with attention.

    The encoder reads the source x_1..x_S; its final state (bridged when shapes differ,
    ``h = tanh(W_h [h_fwd; h_bwd] + b_h)``, ``c = W_c [c_fwd; c_bwd] + b_c``) starts the decoder, which
    models :math:`p(y_t \mid y_{<t}, x)` with :math:`y_0` = ``go`` and stops at ``end``:

    - ``none``:  :math:`s_t = \mathrm{RNN}(s_{t-1}, E y_{t-1})`, logits :math:`= W_o s_t + b_o`.
    - ``bahdanau``: :math:`c_t = \mathrm{attn}(s_{t-1}, h)`, :math:`s_t = \mathrm{RNN}(s_{t-1}, [E y_{t-1}; c_t])`,
      logits :math:`= W_o \tanh(W_r [s_t; c_t; E y_{t-1}])` (a tanh layer in place of their maxout).
    - ``luong``: :math:`s_t = \mathrm{RNN}(s_{t-1}, [E y_{t-1}; \tilde h_{t-1}])` (input feeding; without
      it :math:`s_t = \mathrm{RNN}(s_{t-1}, E y_{t-1})`), :math:`c_t = \mathrm{attn}(s_t, h)`,
      :math:`\tilde h_t = \tanh(W_c [c_t; s_t])`, logits :math:`= W_o \tilde h_t`.

    ``forward(source (B, S), source_lengths (B,), target_input (B, T)) -> logits (B, T, V)`` is teacher
    forcing (``target_input`` = go, y_1, ..., y_{T-1}); ``sampling_prob`` p > 0 is scheduled sampling
    (Bengio et al. 2015): from step 2 on each input is, with probability p, a token drawn from the
    model's own previous output distribution instead of the true one. ``start`` and ``step`` are the
    decoding interface (see :mod:`rnnkit.decoding`). In the step-by-step path (attention fed back, or scheduled
    sampling) the decoder RNN is called once per step, so recurrent dropout masks are redrawn per step.
    """

    config_class = Seq2SeqConfig

    def __init__(self, config: Seq2SeqConfig, *, device=None, dtype=None) -> None:
        super().__init__()
        self.config = config
        factory = {"device": device, "dtype": dtype}
        e, d = config.encoder, config.decoder
        self.source_embedding = nn.Embedding(config.vocab_size, config.embedding_size, **factory)
        self.target_embedding = nn.Embedding(config.vocab_size, config.embedding_size, **factory)
        self.encoder = Recurrent.from_config(e, **factory)
        self.decoder = Recurrent.from_config(d, **factory)
        self.bridge_h = self.bridge_c = None
        if config.needs_bridge:
            self.bridge_h = nn.Linear(e.num_directions * e.output_size, d.output_size, **factory)
            if e.cell == "lstm":
                self.bridge_c = nn.Linear(e.num_directions * e.hidden_size, d.hidden_size, **factory)
        M, H = config.memory_features, d.output_size
        self.attention: nn.Module | None = None
        self.readout: nn.Linear | None = None
        if config.attention == "bahdanau":
            self.attention = BahdanauAttention(H, M, config.attention_size or H, **factory)
            self.readout = nn.Linear(H + M + config.embedding_size, H, **factory)
        elif config.attention == "luong":
            self.attention = LuongAttention(H, M, **factory)
            self.readout = nn.Linear(M + H, H, **factory)
        self.dropout = nn.Dropout(config.dropout)
        self.head = nn.Linear(H, config.vocab_size, **factory)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        r = self.config.init_range
        if r is None:  # the layers keep their own initialisation
            init_uniform([self.source_embedding.weight, self.target_embedding.weight], 0.1)
        else:
            init_uniform(self.parameters(), r)

    @property
    def go_id(self) -> int:
        return self.config.go_id

    @property
    def end_id(self) -> int:
        return self.config.end_id

    # -- encoding ---------------------------------------------------------------------------------

    def start(self, source: Tensor, source_lengths: Tensor | None = None) -> tuple[EncoderMemory, DecoderCarry]:
        """Encode ``source`` (B, S) of true lengths (B,) (all S if None): the memory and the first carry."""
        B, S = source.shape
        if source_lengths is None:
            source_lengths = torch.full((B,), S, dtype=torch.long, device=source.device)
        x = self.dropout(self.source_embedding(source))  # (B, S, E)
        values, final = self.encoder(x, lengths=source_lengths)  # (B, S, F)
        mask = length_mask(source_lengths.to(source.device), S)  # (B, S)
        keys = None if self.attention is None else self.attention.keys(values)
        state = self._bridge(final)
        feed = None
        if self.config.attention == "luong" and self.config.input_feeding:
            feed = values.new_zeros(B, self.config.decoder.output_size)
        return EncoderMemory(values, keys, mask), DecoderCarry(state, feed)

    def _bridge(self, final: State) -> State:
        """The encoder's final state (L*D, B, H) as the decoder's initial state (L, B, H_dec)."""
        if self.bridge_h is None:
            return final
        L, D = self.config.encoder.num_layers, self.config.encoder.num_directions
        parts = []
        for s, bridge, squash in zip(as_tuple(final), (self.bridge_h, self.bridge_c), (True, False)):
            B, H = s.shape[1], s.shape[2]
            joined = s.view(L, D, B, H).permute(0, 2, 1, 3).reshape(L, B, D * H)  # (L, B, D*H): [fwd; bwd]
            mapped = bridge(joined)
            parts.append(torch.tanh(mapped) if squash else mapped)  # h lives in (-1, 1); c does not
        return tuple(parts) if isinstance(final, tuple) else parts[0]

    # -- decoding ---------------------------------------------------------------------------------

    def step(self, tokens: Tensor, carry: DecoderCarry, memory: EncoderMemory) -> tuple[Tensor, DecoderCarry]:
        """One decoder step: the previous tokens (B,) -> logits (B, V) for the next one, and the new carry."""
        kind = self.config.attention
        e = self.dropout(self.target_embedding(tokens))  # (B, E)
        state, feed = carry
        if kind == "bahdanau":
            query = as_tuple(state)[0][-1]  # s_{t-1}: top layer's h, (B, H)
            context, _ = self.attention(query, memory)  # (B, F)
            x = torch.cat([e, context], dim=-1)
        elif feed is not None:  # luong with input feeding
            x = torch.cat([e, feed], dim=-1)
        else:
            x = e
        out, state = self.decoder(x.unsqueeze(1), state)  # (B, 1, H)
        s = out[:, 0]
        if kind == "bahdanau":
            r = torch.tanh(self.readout(torch.cat([s, context, e], dim=-1)))
        elif kind == "luong":
            r = self._luong_readout(s, memory)  # h~_t, (B, H)
            feed = r if feed is not None else None
        else:
            r = s
        return self.head(self.dropout(r)), DecoderCarry(state, feed)  # (B, V)

    def _luong_readout(self, s: Tensor, memory: EncoderMemory) -> Tensor:
        """h~ = tanh(W_c [c; s]) for decoder outputs s of shape (B, H) or (B, T, H)."""
        context, _ = self.attention(s, memory)
        return torch.tanh(self.readout(torch.cat([context, s], dim=-1)))

    def forward(
        self,
        source: Tensor,
        source_lengths: Tensor | None,
        target_input: Tensor,
        *,
        sampling_prob: float = 0.0,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """Teacher-forced logits (B, T, V) for ``target_input`` (B, T) = go, y_1, ..., y_{T-1}."""
        memory, carry = self.start(source, source_lengths)
        if not self.config.feeds_back and sampling_prob == 0.0:
            # No step reads the step before's outputs: run the decoder over the whole target at once.
            x = self.dropout(self.target_embedding(target_input))  # (B, T, E)
            out, _ = self.decoder(x, carry.state)  # (B, T, H)
            if self.attention is not None:
                out = self._luong_readout(out, memory)  # (B, T, H)
            return self.head(self.dropout(out))
        logits, tokens = [], target_input[:, 0]
        for t in range(target_input.shape[1]):
            if t > 0 and sampling_prob > 0.0:
                drawn = torch.multinomial(logits[-1].detach().softmax(-1), 1, generator=generator).squeeze(1)
                use = torch.rand(tokens.shape, device=tokens.device, generator=generator) < sampling_prob
                tokens = torch.where(use, drawn, target_input[:, t])
            elif t > 0:
                tokens = target_input[:, t]
            step_logits, carry = self.step(tokens, carry, memory)
            logits.append(step_logits)
        return torch.stack(logits, dim=1)  # (B, T, V)
