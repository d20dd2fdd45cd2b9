"""Models: what a run directory can rebuild, and how a model is saved into one and loaded back.

Every model class here has ``get_config() -> dict`` (JSON types only) and ``from_config(dict)``;
``config.json`` stores ``{"model": {"type": NAME, "config": {...}}}`` and loading looks ``NAME`` up in
:data:`MODELS`, so a run directory can only ever build classes registered here.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from typing import NamedTuple

import torch
from torch import Tensor, nn

from rnnkit import checkpoint
from rnnkit.cells import State, as_tuple
from rnnkit.config import config_from_dict
from rnnkit.errors import CheckpointError, ConfigError
from rnnkit.layers import GRU, LSTM, RNN, Recurrent, RecurrentConfig

MODELS: dict[str, type[nn.Module]] = {}


def register_model(cls: type[nn.Module]) -> type[nn.Module]:
    """Class decorator: make ``cls`` buildable from a run directory under its class name."""
    name = cls.__name__
    if name in MODELS:
        raise ValueError(f"model {name!r} is already registered")
    MODELS[name] = cls
    return cls


for _layer in (RNN, LSTM, GRU):
    register_model(_layer)


def model_spec(model: nn.Module) -> dict:
    """``{"type": ..., "config": ...}``: what ``config.json`` stores to rebuild ``model``."""
    name = type(model).__name__
    if MODELS.get(name) is not type(model):
        raise ValueError(f"{name} is not a registered model; registered: {', '.join(sorted(MODELS))}")
    return {"type": name, "config": model.get_config()}


def build_model(spec: dict, *, device=None, dtype=None) -> nn.Module:
    """Build an untrained model from a spec written by :func:`model_spec`."""
    if not isinstance(spec, dict) or set(spec) != {"type", "config"}:
        raise ConfigError('model spec must be {"type": NAME, "config": {...}}')
    cls = MODELS.get(spec["type"])
    if cls is None:
        raise ConfigError(f"unknown model type {spec['type']!r}; registered: {', '.join(sorted(MODELS))}")
    return cls.from_config(spec["config"], device=device, dtype=dtype)


def save_model(
    run_dir: str | os.PathLike,
    model: nn.Module,
    *,
    optimizer: torch.optim.Optimizer | None = None,
    config: dict | None = None,
    vocab=None,
) -> None:
    """Save ``model`` (and ``optimizer`` state for resuming) into ``run_dir``; ``config`` adds keys."""
    training_state = None if optimizer is None else {"optimizer": optimizer.state_dict()}
    full_config = {**(config or {}), "model": model_spec(model)}
    checkpoint.save(run_dir, model, full_config, training_state=training_state, vocab=vocab)


def load_model(run_dir: str | os.PathLike, *, device="cpu", task: str | None = None) -> nn.Module:
    """Rebuild the model saved in ``run_dir`` and load its weights; never unpickles anything."""
    config = checkpoint.load_config(run_dir, task=task)
    try:
        model = build_model(config.get("model"), device=device)
    except ConfigError as error:
        raise CheckpointError(f"{os.fspath(run_dir)}/{checkpoint.CONFIG}: {error}") from None
    return checkpoint.load_weights(run_dir, model, device=device)


class ConfiguredModel(nn.Module):
    """A model built from one frozen config dataclass, ``config_class``, which ``config.json`` stores."""

    config_class: type

    def get_config(self) -> dict:
        return dataclasses.asdict(self.config)

    @classmethod
    def from_config(cls, config: dict, *, device=None, dtype=None) -> ConfiguredModel:
        """Rebuild from ``get_config()``'s dict; unknown keys and wrong types are rejected."""
        return cls(config_from_dict(cls.config_class, config), device=device, dtype=dtype)


# -- heads ----------------------------------------------------------------------------------------


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


# == Seq2Seq: encoder-decoder with optional attention (issue 5) ====================================
# The encoder reads the whole source into its state (many-to-one); the decoder writes the target from
# it (one-to-many). Decoding (greedy, beam search) lives in rnnkit.decoding and talks to the model only
# through ``start`` and ``step``.

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
        if not (e.batch_first and d.batch_first):
            raise ConfigError("a Seq2Seq model's encoder and decoder must be batch_first")
        if e.cell != d.cell or e.num_layers != d.num_layers:
            raise ConfigError(
                f"encoder and decoder must have the same cell and number of layers (the decoder starts from the "
                f"encoder's final state), got {e.cell} x {e.num_layers} and {d.cell} x {d.num_layers}"
            )
        if d.bidirectional or d.skip_connections:
            raise ConfigError("the decoder generates left to right: it cannot be bidirectional or use skip_connections")
        if e.input_size != self.embedding_size:
            raise ConfigError(f"encoder.input_size ({e.input_size}) must equal embedding_size ({self.embedding_size})")
        if d.input_size != self.embedding_size + self.feed_size:
            raise ConfigError(
                f"decoder.input_size ({d.input_size}) must be embedding_size + {self.feed_size} for attention "
                f"{self.attention!r}: {self.embedding_size + self.feed_size}"
            )
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"dropout must be a probability in [0, 1), got {self.dropout}")

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
        return _memory_features(self.encoder)

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


def _memory_features(encoder: RecurrentConfig) -> int:
    return encoder.num_directions * encoder.output_size * (encoder.num_layers if encoder.skip_connections else 1)


def _feed_size(attention: str, input_feeding: bool, encoder: RecurrentConfig, decoder: RecurrentConfig) -> int:
    """Size of what a decoder step reads besides the embedding (0 for an unknown attention: the config's
    own check names it)."""
    if attention == "luong":
        return decoder.output_size if input_feeding else 0
    return _memory_features(encoder) if attention == "bahdanau" else 0


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
        with torch.no_grad():
            if r is not None:
                for p in self.parameters():
                    p.uniform_(-r, r)
                return
            self.source_embedding.weight.uniform_(-0.1, 0.1)
            self.target_embedding.weight.uniform_(-0.1, 0.1)

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
        mask = torch.arange(S, device=source.device) < source_lengths.to(source.device).unsqueeze(1)  # (B, S)
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


# == many-to-one and many-to-many: classifier, tagger, conditional generator (issue 4) =============
# This section holds the heads of the classify and tag tasks and the label-conditioned generator of
# the corpus system; each follows LanguageModel: a frozen config dataclass, get_config/from_config.

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
        if self.rnn.input_size != self.input_features:
            raise ConfigError(
                f"rnn.input_size ({self.rnn.input_size}) must equal the word features ({self.input_features} = "
                f"embedding {self.embedding_size} + chars {self.chars.output_size if self.chars else 0} + "
                f"casing {self.casing_size})"
            )
        if not self.rnn.batch_first:
            raise ConfigError("a tagger's rnn must be batch_first")
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"dropout must be a probability in [0, 1), got {self.dropout}")
        if self.casing_size < 0:
            raise ConfigError(f"casing_size must be >= 0, got {self.casing_size}")

    @property
    def input_features(self) -> int:
        return self.embedding_size + (self.chars.output_size if self.chars else 0) + self.casing_size

    @property
    def output_features(self) -> int:
        return _pooled_features(self.rnn, "mean")


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


@dataclass(frozen=True)
class ConditionalGeneratorConfig:
    """A language model whose initial state comes from a class label (one-to-many):
    :math:`h_0 = \\tanh(W_h z_y + b_h)` (and :math:`c_0` likewise for the LSTM), :math:`z_y` the
    label's embedding, one (h_0, c_0) per layer; then it runs as :class:`LanguageModel`."""

    vocab_size: int
    embedding_size: int
    num_classes: int
    rnn: RecurrentConfig
    label_size: int = 32
    dropout: float = 0.0

    def __post_init__(self) -> None:
        if min(self.vocab_size, self.embedding_size, self.num_classes, self.label_size) < 1:
            raise ConfigError("vocab_size, embedding_size, num_classes and label_size must be >= 1")
        if self.rnn.input_size != self.embedding_size:
            raise ConfigError(
                f"rnn.input_size ({self.rnn.input_size}) must equal embedding_size ({self.embedding_size})"
            )
        if not self.rnn.batch_first or self.rnn.bidirectional or self.rnn.proj_size:
            raise ConfigError("a generator's rnn must be batch_first, unidirectional and without projection")
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"dropout must be a probability in [0, 1), got {self.dropout}")


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
