"""Polyphonic music: a recurrent stack over piano-roll frames that predicts the next frame.

The frame at step t is a binary vector v_t of K keys (88: MIDI 21-108). The model reads the frames before
t, ``h_t = RNN(v_0, v_1, ..., v_{t-1})`` with v_0 = 0 (a silent start frame, so that the first frame of a
piece is predicted too), and gives p(v_t | v_<t) = p(v_t | h_t) by one of two outputs:

- ``"sigmoid"``: the keys independent given h_t, ``p(v_t,k = 1) = σ(b + W h_t)_k`` (Chung et al. 2014's
  setting, and Boulanger-Lewandowski et al. 2012's "RNN" row);
- ``"nade"``: the keys one after another, low to high pitch, each conditioned on the keys below it in the
  same frame through a NADE (Larochelle & Murray 2011) whose biases the RNN sets (Boulanger-Lewandowski et
  al. 2012's RNN-NADE)::

      a_k = c(t) + Σ_{j<k} W[:, j] v_j          c(t) = c + U_c h_t       (the NADE's hidden pre-activation)
      p(v_k = 1 | v_<k, h_t) = σ(b_k(t) + V[k] · σ(a_k))      b(t) = b + U_b h_t

  Why a NADE rather than a plain autoregressive logistic layer (``σ(b_k(t) + Σ_{j<k} A[k, j] v_j)``): the
  chorales are chords, and whether a key sounds depends on which combination of the keys below sounds (a
  third above a root, a fifth above both), an interaction a hidden layer can represent and a sum of
  pairwise terms cannot; training stays parallel, since all K pre-activations are one cumulative sum
  over the keys, and only sampling walks the keys one by one.

Both are normalised distributions over the 2^K frames, so the negative log-likelihood of a piece is
``-Σ_t log p(v_t | v_<t)`` in nats; its mean over all the time steps of a split is the "NLL per time step"
that Chung et al. (2014) and Boulanger-Lewandowski et al. (2012) report.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rnnkit.cells import State
from rnnkit.errors import ConfigError
from rnnkit.layers import Recurrent, RecurrentConfig
from rnnkit.models.common import check_batch_first, check_probability, check_rnn_input, length_mask
from rnnkit.models.registry import ConfiguredModel, register_model

OUTPUTS = ("sigmoid", "nade")


@dataclass(frozen=True)
class MusicModelConfig:
    """A recurrent stack over K-key frames and an output over the next frame.

    ``output``: ``"sigmoid"`` (independent keys) or ``"nade"`` (keys low to high, ``nade_hidden`` units).
    ``dropout`` acts on the RNN's output (what the output layer reads); ``rnn.dropout`` between layers.
    The RNN must read forward only: a bidirectional stack would see the frame it predicts.
    """

    rnn: RecurrentConfig
    num_keys: int = 88
    output: str = "sigmoid"
    nade_hidden: int = 128
    dropout: float = 0.0

    def __post_init__(self) -> None:
        if isinstance(self.num_keys, bool) or not isinstance(self.num_keys, int) or self.num_keys < 1:
            raise ConfigError(f"num_keys must be an integer >= 1, got {self.num_keys!r}")
        if self.output not in OUTPUTS:
            raise ConfigError(f"output must be one of {', '.join(OUTPUTS)}, got {self.output!r}")
        if isinstance(self.nade_hidden, bool) or not isinstance(self.nade_hidden, int) or self.nade_hidden < 1:
            raise ConfigError(f"nade_hidden must be an integer >= 1, got {self.nade_hidden!r}")
        check_rnn_input(self.rnn, self.num_keys, f"num_keys ({self.num_keys})")
        check_batch_first("a music model", rnn=self.rnn)
        check_probability("dropout", self.dropout)
        if self.rnn.bidirectional:
            raise ConfigError("a music model predicts the next frame from the past: its rnn cannot be bidirectional")


@register_model
class MusicModel(ConfiguredModel):
    """Next-frame model of piano rolls (see the module's docstring for the equations).

    ``forward(inputs (B, T, K), state) -> features (B, T, F), state`` runs the RNN; :meth:`log_prob` scores
    frames against features, :meth:`log_likelihood` scores whole rolls (the shift by one frame included),
    :meth:`generate` writes new frames one at a time, each fed back as the next input (one-to-many).
    """

    config_class = MusicModelConfig

    def __init__(self, config: MusicModelConfig, *, device=None, dtype=None) -> None:
        super().__init__()
        self.config = config
        factory = {"device": device, "dtype": dtype}
        K, F_ = config.num_keys, config.rnn.output_features
        self.rnn = Recurrent.from_config(config.rnn, **factory)
        self.dropout = nn.Dropout(config.dropout)
        self.head = nn.Linear(F_, K, **factory)  # b(t) = b + U_b h_t: the keys' logits (sigmoid), NADE's b(t)
        if config.output == "nade":
            H = config.nade_hidden
            self.nade_bias = nn.Linear(F_, H, **factory)  # c(t) = c + U_c h_t
            self.nade_in = nn.Parameter(torch.empty(H, K, **factory))  # W: key j -> NADE hidden
            self.nade_out = nn.Parameter(torch.empty(K, H, **factory))  # V: NADE hidden -> key k
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """The RNN keeps its own initialisation; the output layers start small, so that the first
        predictions are the output biases (which :meth:`set_key_rates` can set to the data's rates)."""
        nn.init.uniform_(self.head.weight, -0.01, 0.01)
        nn.init.zeros_(self.head.bias)
        if self.config.output == "nade":
            nn.init.uniform_(self.nade_bias.weight, -0.01, 0.01)
            nn.init.zeros_(self.nade_bias.bias)
            r = 1.0 / math.sqrt(self.config.num_keys)
            nn.init.uniform_(self.nade_in, -r, r)
            nn.init.uniform_(self.nade_out, -0.01, 0.01)

    @torch.no_grad()
    def set_key_rates(self, rates: np.ndarray | Tensor, floor: float = 1e-4) -> None:
        """Start the output bias at each key's log-odds in the training data, log(r / (1 - r)): before it
        has learnt anything the model predicts the keys' marginal rates, not a coin toss for all 88."""
        r = torch.as_tensor(rates, dtype=self.head.bias.dtype).clamp(floor, 1 - floor)
        self.head.bias.copy_(torch.log(r) - torch.log1p(-r))

    # -- the recurrence -------------------------------------------------------------------------------

    def forward(self, inputs: Tensor, state: State | None = None) -> tuple[Tensor, State]:
        out, state = self.rnn(inputs, state)  # (B, T, F)
        return self.dropout(out), state

    @staticmethod
    def shift(frames: Tensor) -> Tensor:
        """The inputs that predict ``frames`` (B, T, K): the silent frame, then frames 1..T-1."""
        return F.pad(frames, (0, 0, 1, 0))[:, :-1]  # (B, T, K)

    # -- the output distribution --------------------------------------------------------------------

    def log_prob(self, features: Tensor, frames: Tensor) -> Tensor:
        """log p(frame | features), summed over the keys: features (..., F), frames (..., K) -> (...)."""
        logits = self.key_logits(features, frames)  # (..., K)
        return -F.binary_cross_entropy_with_logits(logits, frames, reduction="none").sum(-1)

    def key_logits(self, features: Tensor, frames: Tensor) -> Tensor:
        """The logit of p(v_k = 1 | ...) of every key (..., K): given h_t alone (sigmoid) or given h_t and
        the keys of ``frames`` below k (nade; all K at once, the teacher-forced conditionals)."""
        b = self.head(features)  # (..., K)
        if self.config.output == "sigmoid":
            return b
        c = self.nade_bias(features)  # (..., H)
        contrib = frames.unsqueeze(-1) * self.nade_in.t()  # (..., K, H): v_j W[:, j]
        a = c.unsqueeze(-2) + contrib.cumsum(-2) - contrib  # (..., K, H): c + Σ_{j<k} v_j W[:, j]
        return b + (torch.sigmoid(a) * self.nade_out).sum(-1)  # (..., K)

    def log_likelihood(self, frames: Tensor, lengths: Tensor | None = None) -> Tensor:
        """log p(v_t | v_<t) of every step of padded rolls (B, T, K), 0 after each roll's length: (B, T).

        The RNN runs over the padding too (it reads forward only, so padding after a piece cannot change
        the steps inside it) and the mask removes those steps."""
        features, _ = self(self.shift(frames))
        logp = self.log_prob(features, frames)  # (B, T)
        if lengths is not None:
            logp = logp * length_mask(lengths.to(logp.device), frames.shape[1])
        return logp

    @torch.no_grad()
    def sample_keys(self, features: Tensor, temperature: float = 1.0, generator: torch.Generator | None = None,
                    threshold: bool = False) -> Tensor:  # fmt: skip
        """A frame (..., K) of 0/1 from p(v | features): each key drawn with probability σ(logit / temperature),
        or, with ``threshold`` (or temperature 0), set where that probability is above 1/2 (for the nade,
        key by key low to high, each decision fed to the keys above: a greedy frame)."""
        greedy = threshold or temperature == 0

        def draw(logits: Tensor) -> Tensor:
            if greedy:
                return (logits > 0).to(features.dtype)
            p = torch.sigmoid(logits / temperature)
            u = torch.rand(p.shape, generator=generator, device=p.device, dtype=p.dtype)
            return (u < p).to(features.dtype)

        b = self.head(features)  # (..., K)
        if self.config.output == "sigmoid":
            return draw(b)
        a = self.nade_bias(features)  # (..., H)
        keys = []
        for k in range(self.config.num_keys):
            v = draw(b[..., k] + (torch.sigmoid(a) * self.nade_out[k]).sum(-1))  # (...)
            a = a + v.unsqueeze(-1) * self.nade_in[:, k]
            keys.append(v)
        return torch.stack(keys, dim=-1)  # (..., K)

    @torch.no_grad()
    def generate(self, steps: int, prime: Tensor | None = None, *, temperature: float = 1.0,
                 seed: int | None = None) -> Tensor:  # fmt: skip
        """One-to-many: ``steps`` new frames after ``prime`` (P, K) (none: from the silent start frame), each
        drawn from p(v_t | v_<t) and fed back as the next input. Returns (P + steps, K): prime, then new."""
        if steps < 1:
            raise ConfigError(f"steps must be >= 1, got {steps}")
        if temperature < 0:
            raise ConfigError(f"temperature must be >= 0, got {temperature}")
        device = self.head.weight.device
        K = self.config.num_keys
        generator = torch.Generator(device=device)
        if seed is not None:
            generator.manual_seed(seed)
        else:
            generator.seed()
        prime = torch.zeros(0, K, device=device) if prime is None else torch.as_tensor(prime).to(device).float()
        if prime.dim() != 2 or prime.shape[1] != K:
            raise ConfigError(f"the prime must be (frames, {K}), got {tuple(prime.shape)}")
        was_training = self.training
        self.eval()
        try:
            inputs = torch.cat([torch.zeros(1, K, device=device), prime]).unsqueeze(0)  # (1, 1 + P, K)
            features, state = self(inputs)
            frames = [prime]
            h = features[:, -1]  # (1, F)
            for _ in range(steps):
                frame = self.sample_keys(h, temperature, generator)  # (1, K)
                frames.append(frame)
                features, state = self(frame.unsqueeze(1), state)  # one step: (1, 1, F)
                h = features[:, -1]
        finally:
            self.train(was_training)
        return torch.cat(frames).cpu()
