"""What the model families share: the checks their configs make, written once, and the pieces of body they
have in common (the padding mask, uniform initialisation, pretrained word vectors, the embedding -> RNN -> head
trunk).

Each check raises :class:`~rnnkit.errors.ConfigError` with one line that names the field and the bad value;
the configs call them in ``__post_init__`` so that a bad ``config.json`` is refused before any weight exists.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import torch
from torch import Tensor, nn

from rnnkit.cells import State
from rnnkit.data.embeddings import WordVectors
from rnnkit.errors import ConfigError
from rnnkit.layers import Recurrent, RecurrentConfig
from rnnkit.models.registry import ConfiguredModel

# -- config checks --------------------------------------------------------------------------------


def check_probability(name: str, p: float) -> None:
    """``p`` must lie in [0, 1): a dropout rate of 1 would zero every activation."""
    if not 0.0 <= p < 1.0:
        raise ConfigError(f"{name} must be a probability in [0, 1), got {p}")


def check_batch_first(owner: str, **rnns: RecurrentConfig) -> None:
    """Every recurrent config in ``rnns`` (by field name) reads (B, T, I), as the model's inputs are laid out."""
    if not all(rnn.batch_first for rnn in rnns.values()):
        raise ConfigError(f"{owner}'s {' and '.join(rnns)} must be batch_first")


def check_rnn_input(rnn: RecurrentConfig, size: int, what: str | None = None, *, name: str = "rnn") -> None:
    """``rnn.input_size`` must equal ``size``, the features the model feeds it (``what`` says which;
    by default the embedding's)."""
    if rnn.input_size != size:
        what = f"embedding_size ({size})" if what is None else what
        raise ConfigError(f"{name}.input_size ({rnn.input_size}) must equal {what}")


# -- shared pieces of the models ------------------------------------------------------------------


def length_mask(lengths: Tensor, steps: int) -> Tensor:
    """``mask[b, t]`` = t < lengths[b]: (B, T) bool."""
    return torch.arange(steps, device=lengths.device).unsqueeze(0) < lengths.unsqueeze(1)


def init_uniform(tensors: Iterable[Tensor], r: float) -> None:
    """Draw each of ``tensors`` from U(-r, r), in order: a model's ``parameters()`` when its config sets
    ``init_range`` (as Zaremba et al. 2014 and Sutskever et al. 2014 initialise), else its embeddings."""
    with torch.no_grad():
        for p in tensors:
            p.uniform_(-r, r)


def load_pretrained(embedding: nn.Embedding, vectors: WordVectors, vocab: Sequence[str]) -> dict[str, int]:
    """Copy pretrained word vectors into the rows of ``embedding``: ``E[i] = vectors[vocab[i]]`` for each token
    of the vocabulary found in ``vectors`` (exactly, else lowercased: ``vectors.lookup``); the other rows keep
    their initialisation. ``embedding`` is (V, D) with V = len(vocab) and D the vectors' size.

    Returns the counts ``{"words": V, "exact": ..., "lowercase": ..., "missing": ...}``."""
    if embedding.num_embeddings != len(vocab):
        raise ConfigError(f"the embedding has {embedding.num_embeddings} rows for a vocabulary of {len(vocab)} words")
    if embedding.embedding_dim != vectors.dim:
        raise ConfigError(f"the embedding size ({embedding.embedding_dim}) must equal the vectors' ({vectors.dim})")
    rows, sources, lowered = [], [], 0
    for i, token in enumerate(vocab):
        row, by_lowercase = vectors.lookup(token)
        if row is not None:
            rows.append(i)
            sources.append(row)
            lowered += by_lowercase
    if rows:
        weight = embedding.weight
        with torch.no_grad():
            weight[rows] = torch.from_numpy(vectors.vectors[sources]).to(weight.device, weight.dtype)
    return {"words": len(vocab), "exact": len(rows) - lowered, "lowercase": lowered, "missing": len(vocab) - len(rows)}


class EmbeddingRecurrent(ConfiguredModel):
    """The trunk of a model over token ids: ``embedding`` E, ``rnn``, ``dropout`` and a linear ``head``.

    :meth:`run` computes ``RNN(dropout(E[x]))``: tokens (B, T) -> outputs (B, T, F), state; the subclass
    decides what reaches ``head`` (``head_features`` -> ``head_size``). ``config`` needs ``vocab_size``,
    ``embedding_size``, ``rnn`` and ``dropout``. The modules are made in the order above, which fixes the
    order of ``parameters()`` (and so of U(-r, r) draws and of the optimizer state a run resumes from).
    """

    def __init__(self, config, head_features: int, head_size: int, *, device=None, dtype=None) -> None:
        super().__init__()
        self.config = config
        factory = {"device": device, "dtype": dtype}
        self.embedding = nn.Embedding(config.vocab_size, config.embedding_size, **factory)
        self.rnn = Recurrent.from_config(config.rnn, **factory)
        self.dropout = nn.Dropout(config.dropout)
        self.head = nn.Linear(head_features, head_size, **factory)

    def run(self, tokens: Tensor, state: State | None = None, lengths: Tensor | None = None) -> tuple[Tensor, State]:
        x = self.dropout(self.embedding(tokens))  # (B, T, E)
        return self.rnn(x, state, lengths=lengths)  # (B, T, F), state
