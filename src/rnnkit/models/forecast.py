r"""The probabilistic forecaster: a recurrent encoder over the last L steps, and H steps ahead at once.

Inputs of one window (see :mod:`rnnkit.data.timeseries`): the past ``inputs`` (B, L, C), channel 0 the scaled
target, channel 1 its missing flag; the ``known`` channels (B, H, K) at the steps forecast (calendar); the
``series`` index (B,) of a global model across series. Two topologies:

- **direct** (many-to-one, ``decoder`` None): the encoder's last output feeds a head that writes all H steps,
  :math:`\theta_{1..H} = W_2\,\phi(W_1 [h_L; s; k_{1..H}])`;
- **encoder-decoder** (many-to-many, ``--decoder``): a decoder RNN, started from the encoder's final state,
  runs over the H steps on :math:`[k_h; s; h/H]` and a head reads each of its outputs,
  :math:`\theta_h = W_2\,\phi(W_1 d_h)`. It never sees its own forecasts, so training and forecasting run alike.

``s`` are the static features of the window: the series' learned embedding (``series_embedding`` > 0) and, with
``window_scaling`` (as DeepAR scales each window, Salinas et al. 2020; RevIN, Kim et al. 2022, normalises it),
the window's location and log scale. With it the target channel of the inputs becomes
:math:`(z - m) / \sigma_w`, :math:`m` and :math:`\sigma_w = \sqrt{\mathrm{var} + 0.01}` the mean and spread of the
window's observed targets, and the head's location and scale are mapped back, :math:`\mu = m + \sigma_w \hat\mu`,
:math:`\sigma = \sigma_w \hat\sigma`: the network sees the shape of the recent past, not its level, which lets it
follow a trend beyond the levels of the training part.

**Likelihoods.** ``gaussian``: :math:`\theta = (\mu, \sigma)`,
:math:`-\log p(y) = \tfrac12\log 2\pi + \log\sigma + \tfrac12 ((y-\mu)/\sigma)^2`. ``student_t``:
:math:`\theta = (\mu, \sigma, \nu)` with :math:`\nu > 2` (a finite variance),
:math:`-\log p(y) = -\log\Gamma(\tfrac{\nu+1}2) + \log\Gamma(\tfrac\nu2) + \tfrac12\log(\nu\pi) + \log\sigma
+ \tfrac{\nu+1}2 \log(1 + ((y-\mu)/\sigma)^2/\nu)`, heavier tails for spiky series. ``quantile``: the
:data:`QUANTILES` directly, non-crossing (the median plus cumulative softplus steps each way), trained by the
pinball loss :math:`\sum_q \max(q\,e, (q-1)\,e)`, :math:`e = y - \hat y_q`. Scales are softplus + 1e-3; the
degrees of freedom :math:`2 + \mathrm{softplus}`. The median is :math:`\mu` (or the 0.5 quantile); the 80% and 95%
intervals are the 0.1/0.9 and 0.025/0.975 quantiles (:func:`quantiles`).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rnnkit.cells import State, as_tuple
from rnnkit.errors import ConfigError
from rnnkit.layers import Recurrent, RecurrentConfig
from rnnkit.models.common import check_batch_first, check_probability, check_rnn_input
from rnnkit.models.registry import ConfiguredModel, register_model

LIKELIHOODS = ("gaussian", "student_t", "quantile")
PARAMETERS = {"gaussian": 2, "student_t": 3}  # per step; "quantile": one per level of QUANTILES
QUANTILES = (0.025, 0.1, 0.5, 0.9, 0.975)  # the median and the ends of the 80% and 95% central intervals
INTERVALS = {80: (0.1, 0.9), 95: (0.025, 0.975)}
MIN_SCALE = 1e-3  # added to each softplus scale: a zero scale is an infinite density
WINDOW_VARIANCE = 0.01  # added to a window's variance: a flat window (a long gap carried forward) does not blow up


@dataclass(frozen=True)
class ForecasterConfig:
    """A recurrent forecaster of ``horizon`` steps from windows of ``input_size`` channels.

    ``rnn`` is the encoder; its ``input_size`` is ``input_size + static_size``. ``decoder`` None: the direct
    multi-horizon head; else the decoder RNN (same cell, layers and sizes as the encoder, one direction) whose
    ``input_size`` is ``known_size + static_size + 1``. ``num_series`` series share the model; each gets a
    learned vector of ``series_embedding`` numbers (0: none). ``head_size`` > 0 puts a hidden layer (ReLU)
    in the head. ``dropout`` acts on what the head reads.
    """

    input_size: int
    known_size: int
    horizon: int
    rnn: RecurrentConfig
    decoder: RecurrentConfig | None = None
    num_series: int = 1
    series_embedding: int = 0
    likelihood: str = "student_t"
    head_size: int = 64
    dropout: float = 0.0
    window_scaling: bool = True

    def __post_init__(self) -> None:
        for name in ("input_size", "horizon", "num_series"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.input_size < 2:
            raise ConfigError(f"input_size must be >= 2 (the target and its missing flag), got {self.input_size}")
        for name in ("known_size", "series_embedding", "head_size"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.likelihood not in LIKELIHOODS:
            raise ConfigError(f"likelihood must be one of {', '.join(LIKELIHOODS)}, got {self.likelihood!r}")
        check_probability("dropout", self.dropout)
        check_batch_first("a forecaster", rnn=self.rnn)
        check_rnn_input(self.rnn, self.input_size + self.static_size,
                        f"input_size + static features ({self.input_size + self.static_size})")  # fmt: skip
        if self.decoder is not None:
            e, d = self.rnn, self.decoder
            check_batch_first("a forecaster", decoder=d)
            check_rnn_input(d, self.known_size + self.static_size + 1,
                            f"known_size + static features + 1 ({self.known_size + self.static_size + 1})",
                            name="decoder")  # fmt: skip
            if d.bidirectional:
                raise ConfigError("the decoder runs forward in time: it cannot be bidirectional")
            if (d.cell, d.num_layers, d.hidden_size, d.proj_size) != (e.cell, e.num_layers, e.hidden_size, e.proj_size):
                raise ConfigError("the decoder must have the encoder's cell, num_layers, hidden_size and proj_size "
                                  "(it starts from the encoder's final state)")  # fmt: skip

    @property
    def static_size(self) -> int:
        """Static features of a window: the series embedding, and location and log scale with window scaling."""
        return self.series_embedding + (2 if self.window_scaling else 0)

    @property
    def outputs(self) -> int:
        """Numbers the head writes per forecast step."""
        return len(QUANTILES) if self.likelihood == "quantile" else PARAMETERS[self.likelihood]


@register_model
class Forecaster(ConfiguredModel):
    """``forward(inputs (B, L, C), known (B, H, K), series (B,)) -> params (B, H, P)``: the distribution of each
    of the H next values of the scaled target, in the units of the inputs' target channel (the scaling of
    :mod:`rnnkit.data.timeseries`): (mu, sigma) for ``gaussian``, (mu, sigma, nu) for ``student_t``, the
    :data:`QUANTILES` for ``quantile``. :func:`forecast_loss` scores them, :func:`quantiles` reads them."""

    config_class = ForecasterConfig

    def __init__(self, config: ForecasterConfig, *, device=None, dtype=None) -> None:
        super().__init__()
        self.config = config
        factory = {"device": device, "dtype": dtype}
        c = config
        self.embedding = nn.Embedding(c.num_series, c.series_embedding, **factory) if c.series_embedding else None
        self.rnn = Recurrent.from_config(c.rnn, **factory)
        self.decoder = None if c.decoder is None else Recurrent.from_config(c.decoder, **factory)
        self.bridge_h = self.bridge_c = None
        if c.decoder is not None and c.rnn.bidirectional:  # [h_fwd; h_bwd] -> h, per layer, as Seq2Seq bridges
            self.bridge_h = nn.Linear(2 * c.rnn.output_size, c.rnn.output_size, **factory)
            if c.rnn.cell == "lstm":
                self.bridge_c = nn.Linear(2 * c.rnn.hidden_size, c.rnn.hidden_size, **factory)
        if c.decoder is None:
            features = c.rnn.output_features + c.static_size + c.horizon * c.known_size
            width = c.horizon * c.outputs
        else:
            features, width = c.decoder.output_features, c.outputs
        self.dropout = nn.Dropout(c.dropout)
        self.hidden = nn.Linear(features, c.head_size, **factory) if c.head_size else None
        self.head = nn.Linear(c.head_size or features, width, **factory)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        # A small last layer starts every window near "the window's mean, unit spread": a forecast no worse
        # than a flat one, from which training moves.
        nn.init.normal_(self.head.weight, std=0.01)
        nn.init.zeros_(self.head.bias)

    def forward(self, inputs: Tensor, known: Tensor, series: Tensor) -> Tensor:
        c = self.config
        B, L, _ = inputs.shape
        location, spread = window_statistics(inputs) if c.window_scaling else (None, None)
        if location is not None:
            target = (inputs[..., :1] - location[:, None, None]) / spread[:, None, None]
            inputs = torch.cat([target, inputs[..., 1:]], dim=-1)
        static = []
        if self.embedding is not None:
            static.append(self.embedding(series))  # (B, E)
        if location is not None:
            static += [location[:, None], spread.log()[:, None]]
        static = torch.cat(static, dim=-1) if static else inputs.new_zeros(B, 0)  # (B, S)
        x = torch.cat([inputs, static[:, None].expand(B, L, static.shape[1])], dim=-1)  # (B, L, C + S)
        out, final = self.rnn(x)  # (B, L, F)
        if self.decoder is None:
            features = torch.cat([out[:, -1], static, known.reshape(B, -1)], dim=-1)  # (B, F + S + H*K)
            raw = self._head(features).view(B, c.horizon, c.outputs)  # (B, H, P)
        else:
            steps = torch.arange(1, c.horizon + 1, device=inputs.device, dtype=inputs.dtype) / c.horizon
            y = torch.cat([known, static[:, None].expand(B, c.horizon, static.shape[1]),
                           steps.view(1, -1, 1).expand(B, -1, 1)], dim=-1)  # (B, H, K + S + 1)  # fmt: skip
            decoded, _ = self.decoder(y, self._bridge(final))  # (B, H, F_dec)
            raw = self._head(decoded)  # (B, H, P)
        return self._params(raw, location, spread)

    def _head(self, features: Tensor) -> Tensor:
        features = self.dropout(features)
        if self.hidden is not None:
            features = F.relu(self.hidden(features))
        return self.head(features)

    def _bridge(self, final: State) -> State:
        """The encoder's final state (L*D, B, H) as the decoder's initial state (L, B, H)."""
        if self.bridge_h is None:
            return final
        layers = self.config.rnn.num_layers
        parts = []
        for s, bridge, squash in zip(as_tuple(final), (self.bridge_h, self.bridge_c), (True, False)):
            B, H = s.shape[1], s.shape[2]
            joined = s.view(layers, 2, B, H).permute(0, 2, 1, 3).reshape(layers, B, 2 * H)  # (L, B, 2H)
            mapped = bridge(joined)
            parts.append(torch.tanh(mapped) if squash else mapped)  # h lives in (-1, 1); c does not
        return tuple(parts) if isinstance(final, tuple) else parts[0]

    def _params(self, raw: Tensor, location: Tensor | None, spread: Tensor | None) -> Tensor:
        """Raw head outputs (B, H, P) -> distribution parameters in the inputs' units."""
        if self.config.likelihood == "quantile":
            median = raw[..., 2:3]
            up = torch.cumsum(F.softplus(raw[..., 3:]), dim=-1)  # 0.9, 0.975 above the median
            down = torch.cumsum(F.softplus(raw[..., [1, 0]]), dim=-1).flip(-1)  # 0.025, 0.1 below it
            values = torch.cat([median - down, median, median + up], dim=-1)  # (B, H, 5), non-decreasing
            if location is not None:
                values = location[:, None, None] + spread[:, None, None] * values
            return values
        mu, sigma = raw[..., 0], F.softplus(raw[..., 1] + 0.5413) + MIN_SCALE  # softplus(0.5413) = 1: unit spread
        if location is not None:
            mu, sigma = location[:, None] + spread[:, None] * mu, spread[:, None] * sigma
        parts = [mu, sigma]
        if self.config.likelihood == "student_t":
            parts.append(2.0 + F.softplus(raw[..., 2] + 2.0))  # starts near nu = 4.1
        return torch.stack(parts, dim=-1)

    def extra_repr(self) -> str:
        kind = "encoder-decoder" if self.config.decoder is not None else "direct"
        return f"{kind}, horizon={self.config.horizon}, likelihood={self.config.likelihood}"


def window_statistics(inputs: Tensor) -> tuple[Tensor, Tensor]:
    r"""Location :math:`m` and spread :math:`\sigma_w = \sqrt{\mathrm{var} + 0.01}` (B,) of each window's observed
    targets: ``inputs`` (B, L, C) with the target in channel 0 and its missing flag in channel 1. A window with
    no observed target takes the carried-forward values instead."""
    target, observed = inputs[..., 0], 1.0 - inputs[..., 1]  # (B, L)
    none = observed.sum(-1, keepdim=True) == 0
    weight = torch.where(none, torch.ones_like(observed), observed)
    count = weight.sum(-1)
    mean = (weight * target).sum(-1) / count
    variance = (weight * (target - mean[:, None]) ** 2).sum(-1) / count
    return mean, torch.sqrt(variance + WINDOW_VARIANCE)


# -- likelihoods and what a forecast reads from them ------------------------------------------------


def gaussian_nll(y: Tensor, mu: Tensor, sigma: Tensor) -> Tensor:
    r""":math:`-\log \mathcal N(y; \mu, \sigma^2)`, elementwise."""
    z = (y - mu) / sigma
    return 0.5 * math.log(2 * math.pi) + torch.log(sigma) + 0.5 * z * z


def student_t_nll(y: Tensor, mu: Tensor, sigma: Tensor, nu: Tensor) -> Tensor:
    r""":math:`-\log t_\nu(y; \mu, \sigma)`, the location-scale Student-t, elementwise."""
    z = (y - mu) / sigma
    return (
        torch.lgamma(nu / 2) - torch.lgamma((nu + 1) / 2) + 0.5 * torch.log(nu * math.pi) + torch.log(sigma)
        + (nu + 1) / 2 * torch.log1p(z * z / nu)
    )  # fmt: skip


def pinball_loss(y: Tensor, predicted: Tensor, levels: tuple[float, ...] = QUANTILES) -> Tensor:
    r""":math:`\sum_q \max(q\,e_q, (q-1)\,e_q)`, :math:`e_q = y - \hat y_q`: ``y`` (...), ``predicted`` (..., Q)."""
    q = torch.tensor(levels, dtype=predicted.dtype, device=predicted.device)
    error = y.unsqueeze(-1) - predicted
    return torch.maximum(q * error, (q - 1) * error).sum(-1)


def forecast_loss(likelihood: str, params: Tensor, targets: Tensor, mask: Tensor) -> Tensor:
    """The mean loss per observed target: ``params`` (B, H, P), ``targets`` (B, H), ``mask`` (B, H) bool
    (false at a gap, which adds nothing). The negative log-likelihood in nats, or the pinball loss."""
    if likelihood == "gaussian":
        losses = gaussian_nll(targets, params[..., 0], params[..., 1])
    elif likelihood == "student_t":
        losses = student_t_nll(targets, params[..., 0], params[..., 1], params[..., 2])
    elif likelihood == "quantile":
        losses = pinball_loss(targets, params)
    else:
        raise ConfigError(f"likelihood must be one of {', '.join(LIKELIHOODS)}, got {likelihood!r}")
    weight = mask.to(losses.dtype)
    return (losses * weight).sum() / weight.sum().clamp_min(1.0)


def quantiles(likelihood: str, params: Tensor, levels: tuple[float, ...] = QUANTILES) -> Tensor:
    r"""The ``levels`` quantiles (..., len(levels)) of the forecast distributions ``params`` (..., P):
    :math:`\mu + \sigma\,\Phi^{-1}(p)` (Gaussian), :math:`\mu + \sigma\,t_\nu^{-1}(p)` (Student-t, scipy's
    ``stdtrit``), or the predicted quantiles themselves (``quantile``: ``levels`` must be among
    :data:`QUANTILES`)."""
    p = torch.tensor(levels, dtype=torch.float64)
    if not ((p > 0) & (p < 1)).all():
        raise ValueError(f"quantile levels must lie in (0, 1), got {levels}")
    if likelihood == "quantile":
        missing = [q for q in levels if q not in QUANTILES]
        if missing:
            raise ValueError(f"a quantile forecaster predicts the levels {QUANTILES}, not {missing[0]}")
        return params[..., [QUANTILES.index(q) for q in levels]]
    mu, sigma = params[..., :1].double(), params[..., 1:2].double()
    if likelihood == "gaussian":
        factor = torch.special.ndtri(p)
    elif likelihood == "student_t":
        from scipy.special import stdtrit  # the t distribution's inverse CDF; torch has none

        nu = params[..., 2:3].double().cpu().numpy()
        factor = torch.from_numpy(stdtrit(nu, p.numpy())).to(mu.device)
    else:
        raise ConfigError(f"likelihood must be one of {', '.join(LIKELIHOODS)}, got {likelihood!r}")
    return (mu + sigma * factor.to(mu.device)).to(params.dtype)


def decoder_config(encoder: RecurrentConfig, input_size: int) -> RecurrentConfig:
    """The decoder that matches ``encoder`` (one direction, reading ``input_size`` features)."""
    return dataclasses.replace(encoder, input_size=input_size, bidirectional=False)
