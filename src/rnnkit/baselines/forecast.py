r"""Statistical forecasters, the peers a recurrent forecaster must beat: naive, seasonal naive, AutoETS, AutoARIMA.

Each takes a history :math:`y_1..y_n` (1-D, no NaN: carry gaps forward first, as
:meth:`rnnkit.data.timeseries.PreparedSeries.history` does) and a horizon H, and returns a :class:`Forecast`:
the point forecast as the median and the 80% and 95% prediction intervals, each of shape (H,).

- **naive** (random walk): :math:`\hat y_{n+h} = y_n`, with :math:`\hat\sigma_h = \hat\sigma \sqrt h`;
- **seasonal naive** with season m: :math:`\hat y_{n+h} = y_{n+h-m(k+1)}`, :math:`k = \lfloor (h-1)/m \rfloor`,
  with :math:`\hat\sigma_h = \hat\sigma \sqrt{k+1}`;

where :math:`\hat\sigma` is the root mean square of the in-sample one-step residuals (:math:`y_t - y_{t-1}`, or
:math:`y_t - y_{t-m}`), and the interval is :math:`\hat y \pm z \hat\sigma_h` with z the normal quantile
(Hyndman & Athanasopoulos, *Forecasting: Principles and Practice*, 3rd ed., section 5.5). These two need numpy only.

- **AutoETS** and **AutoARIMA** are statsforecast's (Nixtla), ports of R forecast's ``ets()`` and
  ``auto.arima()``: the ETS model (error, trend, season each none/additive/multiplicative, damped or not) or the
  ARIMA orders are chosen by AICc, with their analytic intervals. statsforecast was chosen over statsmodels
  because it is the reference the forecasting literature and the libraries rnnkit is compared with (darts,
  NeuralForecast) use, and its model search is the R one rather than a hand-written order search.

Two limits, both recorded in :attr:`Forecast.method`: a season above :data:`MAX_SEASON` (24) is not modelled by
ETS or ARIMA (R's ``ets`` refuses it, and seasonal ARIMA with a long season is impractically slow), so they
fit a non-seasonal model; and they are fitted on the last ``max_history`` points (default
:data:`MAX_HISTORY`), because statsforecast's seasonal ARIMA slows down steeply on long series (tens of thousands
of hourly points) while points that old say little about the next H. statsforecast is imported on first use.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

LEVELS = (80, 95)
MAX_SEASON = 24
MAX_HISTORY = 2000
# z of the central interval: NormalDist().inv_cdf(0.5 + level / 200)
_Z = {80: 1.2815515655446004, 95: 1.959963984540054}


@dataclass(frozen=True, eq=False)
class Forecast:
    """A forecast of H steps: ``median`` and the bounds ``lo80, hi80, lo95, hi95``, each (H,) float64;
    ``method`` names what was fitted (``"naive"``, ``"seasonal naive (m=12)"``, ``"ETS(M,A,M)"``,
    ``"ARIMA(0,1,1)(0,1,1)[12]"``...)."""

    method: str
    median: np.ndarray
    lo80: np.ndarray
    hi80: np.ndarray
    lo95: np.ndarray
    hi95: np.ndarray

    def interval(self, level: int) -> tuple[np.ndarray, np.ndarray]:
        """``(lower, upper)`` of the 80% or 95% interval."""
        if level not in LEVELS:
            raise ValueError(f"level must be one of {LEVELS}, got {level!r}")
        return getattr(self, f"lo{level}"), getattr(self, f"hi{level}")

    def to_dict(self) -> dict:
        """JSON-ready: ``{"method", "median", "lo80", "hi80", "lo95", "hi95"}`` with lists of floats."""
        out: dict = {"method": self.method}
        for name in ("median", "lo80", "hi80", "lo95", "hi95"):
            out[name] = [float(v) for v in getattr(self, name)]
        return out


def _history(history, horizon: int, need: int = 1) -> np.ndarray:
    y = np.asarray(history, dtype=np.float64)
    if y.ndim != 1:
        raise ValueError(f"history must be 1-D, got shape {y.shape}")
    if not np.isfinite(y).all():
        raise ValueError("history holds NaN or inf: carry the gaps forward (PreparedSeries.history does) first")
    if y.size < need:
        raise ValueError(f"history has {y.size} points; this forecaster needs at least {need}")
    if isinstance(horizon, bool) or int(horizon) != horizon or horizon < 1:
        raise ValueError(f"horizon must be a positive integer, got {horizon!r}")
    return y


def _gaussian(method: str, median: np.ndarray, sigma_h: np.ndarray) -> Forecast:
    bounds = {level: (median - _Z[level] * sigma_h, median + _Z[level] * sigma_h) for level in LEVELS}
    return Forecast(method, median, bounds[80][0], bounds[80][1], bounds[95][0], bounds[95][1])


def naive(history, horizon: int) -> Forecast:
    """The last value, with intervals widening as :math:`\\sqrt h` (random walk)."""
    y = _history(history, horizon, need=2)
    sigma = math.sqrt(float(np.mean(np.diff(y) ** 2)))
    steps = np.arange(1, horizon + 1)
    return _gaussian("naive", np.full(horizon, y[-1]), sigma * np.sqrt(steps))


def seasonal_naive(history, horizon: int, season: int) -> Forecast:
    """The value one season back (the last observed season repeated), intervals widening each full season."""
    if isinstance(season, bool) or int(season) != season or season < 1:
        raise ValueError(f"season must be a positive integer, got {season!r}")
    season = int(season)
    y = _history(history, horizon, need=season + 1)
    sigma = math.sqrt(float(np.mean((y[season:] - y[:-season]) ** 2)))
    h = np.arange(horizon)  # h - 1 for steps 1..H
    median = y[len(y) - season + h % season]
    method = f"seasonal naive (m={season})" if season > 1 else "naive"
    return _gaussian(method, median, sigma * np.sqrt(h // season + 1))


def _statsforecast(model, y: np.ndarray, horizon: int, method: Callable[[object], str]) -> Forecast:
    model.fit(y)
    out = model.predict(h=horizon, level=list(LEVELS))
    arrays = [np.asarray(out[key], dtype=np.float64) for key in ("mean", "lo-80", "hi-80", "lo-95", "hi-95")]
    return Forecast(method(model), *arrays)


def _fitted_part(history, horizon: int, season: int, max_history: int | None) -> tuple[np.ndarray, int, str]:
    y = _history(history, horizon, need=2)
    if isinstance(season, bool) or int(season) != season or season < 1:
        raise ValueError(f"season must be a positive integer, got {season!r}")
    season, note = int(season), ""
    if season > MAX_SEASON:
        season, note = 1, f" (season {season} > {MAX_SEASON}: non-seasonal)"
    if max_history is not None:
        if max_history < 2:
            raise ValueError(f"max_history must be at least 2, got {max_history}")
        if y.size > max_history:
            y = y[-max_history:]
            note += f" (last {max_history} points)"
    return y, season, note


def auto_ets(history, horizon: int, season: int = 1, *, max_history: int | None = MAX_HISTORY) -> Forecast:
    """statsforecast's AutoETS: the ETS model with the lowest AICc (R's ``ets(y, model="ZZZ")``)."""
    from statsforecast.models import AutoETS

    y, season, note = _fitted_part(history, horizon, season, max_history)
    return _statsforecast(AutoETS(season_length=season), y, horizon, lambda m: str(m.model_["method"]) + note)


def auto_arima(history, horizon: int, season: int = 1, *, max_history: int | None = MAX_HISTORY) -> Forecast:
    """statsforecast's AutoARIMA: the (seasonal) ARIMA orders chosen as R's ``auto.arima`` chooses them."""
    from statsforecast.arima import arima_string
    from statsforecast.models import AutoARIMA

    y, season, note = _fitted_part(history, horizon, season, max_history)
    return _statsforecast(AutoARIMA(season_length=season), y, horizon, lambda m: arima_string(m.model_).strip() + note)


BASELINES: dict[str, Callable[..., Forecast]] = {
    "naive": lambda y, h, m, max_history: naive(y, h),
    "seasonal_naive": lambda y, h, m, max_history: seasonal_naive(y, h, m),
    "ets": lambda y, h, m, max_history: auto_ets(y, h, m, max_history=max_history),
    "arima": lambda y, h, m, max_history: auto_arima(y, h, m, max_history=max_history),
}


def forecast_baselines(
    history,
    horizon: int,
    season: int = 1,
    *,
    methods: Sequence[str] = tuple(BASELINES),
    max_history: int | None = MAX_HISTORY,
) -> dict[str, Forecast]:
    """``{name: Forecast}`` for each of ``methods`` (default: all of :data:`BASELINES`, in the order
    ``naive, seasonal_naive, ets, arima``, the keys ``rnnkit eval`` reports)."""
    unknown = [name for name in methods if name not in BASELINES]
    if unknown:
        raise ValueError(f"unknown baseline {unknown[0]!r}; the baselines are: {', '.join(BASELINES)}")
    return {name: BASELINES[name](history, horizon, season, max_history) for name in methods}
