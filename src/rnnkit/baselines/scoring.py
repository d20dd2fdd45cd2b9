r"""Forecasts scored on a part of prepared series, and the statistical baselines forecast and scored on the same
part: what ``rnnkit eval`` reports for a forecast run, what its training log shows, and the rows a forecast is
written as.

A part is ``"val"``, ``"test"`` or ``"future"`` of :mod:`rnnkit.data.timeseries`' split; every forecast of it
is made from the rows before it only (the baselines are fitted on them, gaps carried forward). The metrics are
:mod:`rnnkit.metrics`': MAE, RMSE, sMAPE, MASE (Hyndman & Koehler 2006: scaled by the in-sample MAE of the
seasonal naive forecast on the history the forecast was made from), MAPE, the coverage of the 80% and 95%
intervals, and ``spl``, M5's scaled pinball loss over the five quantiles (the median and both intervals' ends).
Each is computed per series on its observed points, then averaged over the series observed in the part.

:func:`interval_scales` and :func:`widen` calibrate a model's intervals on a part it was not trained on (split
conformal prediction, with each point's residual measured in units of its own predicted half-width, so the
intervals keep the shape the model gives them and only their width is corrected).
"""

from __future__ import annotations

import csv
import io
import math
import statistics

import numpy as np

from rnnkit.baselines.forecast import LEVELS, Forecast, forecast_baselines
from rnnkit.data.timeseries import Prepared
from rnnkit.errors import DataError
from rnnkit.metrics import coverage, mae, mape, mase, rmse, smape

REPORTED = ("mae", "rmse", "smape", "mase", "coverage_80", "coverage_95")  # the keys of eval's "metrics" (issue 20)
METRICS = (*REPORTED, "mape", "spl")  # also in eval's "details", the training log and the backtest
BASELINES = ("naive", "seasonal_naive", "ets", "arima")
QUANTILES = (0.025, 0.1, 0.5, 0.9, 0.975)  # the levels of (lo95, lo80, median, hi80, hi95)


def score(forecast: Forecast, actual: np.ndarray, observed: np.ndarray, history: np.ndarray, season: int) -> dict:
    r"""The metrics of one forecast against the observed points of ``actual``: MAE, RMSE, sMAPE, MASE (scaled
    by the in-sample seasonal-naive MAE of ``history``), MAPE (None where a true value is 0), the coverage of
    both intervals, and ``spl``, the mean pinball loss of the five quantiles divided by the same scale as
    MASE (M5's scaled pinball loss; at the median alone it is MASE / 2)."""
    y = np.where(observed, actual, 0.0)  # gaps are masked out; 0 only keeps the array finite
    kw = {"mask": observed}
    out = {
        "mae": mae(y, forecast.median, **kw),
        "rmse": rmse(y, forecast.median, **kw),
        "smape": smape(y, forecast.median, **kw),
        "mase": _mase(y, forecast.median, history, season, observed),
        "coverage_80": coverage(y, forecast.lo80, forecast.hi80, **kw),
        "coverage_95": coverage(y, forecast.lo95, forecast.hi95, **kw),
    }
    try:
        out["mape"] = mape(y, forecast.median, **kw)
    except ValueError:  # a true value of 0: MAPE is undefined
        out["mape"] = None
    scale = mae(y, forecast.median, **kw) / out["mase"] if out["mase"] > 0 else None
    bounds = (forecast.lo95, forecast.lo80, forecast.median, forecast.hi80, forecast.hi95)
    if scale:
        e = (y - np.stack(bounds))[:, observed]  # (5, n)
        q = np.asarray(QUANTILES)[:, None]
        out["spl"] = float(np.mean(np.maximum(q * e, (q - 1) * e))) / scale
    else:
        out["spl"] = 0.0
    return out


def _mase(y: np.ndarray, median: np.ndarray, history: np.ndarray, season: int, observed: np.ndarray) -> float:
    try:
        return mase(y, median, history, season, mask=observed)
    except ValueError as error:  # a history too short for the season, or one that repeats itself exactly
        raise DataError(str(error)) from None


def mean_scores(per_series: list[dict]) -> dict:
    """Each metric's mean over the series (a metric that is None for one series is None)."""
    if not per_series:
        return {}
    out = {}
    for key in per_series[0]:
        values = [s[key] for s in per_series]
        out[key] = None if any(v is None for v in values) else float(statistics.fmean(values))
    return out


def observed_series(prepared: Prepared, part: str) -> list[int]:
    """Indices of the series with at least one observed target in ``part``."""
    return [k for k, s in enumerate(prepared.series) if s.actual(part)[1].any()]


def score_part(forecasts: list[Forecast], prepared: Prepared, part: str, season: int) -> dict:
    """Metrics of ``forecasts`` (one per series) on ``part``, averaged over the series observed there."""
    scores = []
    for k in observed_series(prepared, part):
        s = prepared.series[k]
        first, _ = s.split.bounds(part)
        scores.append(score(forecasts[k], *s.actual(part), s.raw[:first], season))
    return mean_scores(scores)


def interval_scales(forecasts: list[Forecast], actuals: list[tuple[np.ndarray, np.ndarray]]) -> dict[int, float]:
    r"""For each interval level :math:`\alpha` (80, 95), the factor :math:`s_\alpha` by which the half-widths of
    ``forecasts``' intervals must be multiplied to cover :math:`\alpha`% of the observed points of ``actuals``
    (per forecast, ``(values, observed)`` as :meth:`PreparedSeries.actual` gives them), pooled.

    Each observed point :math:`y` with median :math:`m` and bounds :math:`l, u` scores
    :math:`r = (y - m) / (u - m)` above the median, :math:`(m - y) / (m - l)` below; :math:`s_\alpha` is the
    :math:`\lceil (n + 1)\alpha \rceil`-th smallest of the n scores (split conformal prediction: for
    exchangeable points the widened interval covers at least :math:`\alpha`; the largest score when n is too
    small for that). 1 where no point is observed. Why: a network's likelihood is fitted to the training
    windows it has learned, so its intervals come out narrow on points it has not seen."""
    scores: dict[int, list[np.ndarray]] = {level: [] for level in LEVELS}
    for f, (y, observed) in zip(forecasts, actuals, strict=True):
        if not observed.any():
            continue
        y, m = y[observed], f.median[observed]
        for level in LEVELS:
            lo, hi = (b[observed] for b in f.interval(level))
            half = np.where(y >= m, hi - m, m - lo)
            gap = np.abs(y - m)
            scores[level].append(np.where(gap == 0, 0.0, gap / np.maximum(half, 1e-12 * (np.abs(m) + 1))))
    out = {}
    for level in LEVELS:
        r = np.sort(np.concatenate(scores[level])) if scores[level] else np.zeros(0)
        if not len(r):
            out[level] = 1.0
            continue
        rank = min(len(r), math.ceil((len(r) + 1) * level / 100))
        out[level] = float(r[rank - 1])
    return out


def widen(forecast: Forecast, scales: dict[int, float], floor: float = -math.inf) -> Forecast:
    """``forecast`` with each interval's half-widths multiplied by its level's scale (:func:`interval_scales`);
    the 95% interval is kept at least as wide as the 80% one, and nothing (median or bound) below ``floor``
    (a series never negative in training is not forecast negative: a symmetric likelihood around a low median
    would otherwise put its lower bounds, even its median, below 0)."""
    m = forecast.median
    bounds = {}
    for level in LEVELS:
        lo, hi = forecast.interval(level)
        bounds[level] = (m - scales[level] * (m - lo), m + scales[level] * (hi - m))
    lo95, hi95 = np.minimum(bounds[95][0], bounds[80][0]), np.maximum(bounds[95][1], bounds[80][1])
    return Forecast(forecast.method, *(np.maximum(a, floor) for a in (m, *bounds[80], lo95, hi95)))


def baseline_forecasts(prepared: Prepared, part: str, season: int, methods: tuple[str, ...] = BASELINES
                       ) -> tuple[dict[str, list[Forecast | None]], dict[str, str]]:  # fmt: skip
    """Each baseline's forecast of ``part`` per series (fitted on everything before it), and what was fitted
    (or why it could not be: a history shorter than the season)."""
    out: dict[str, list[Forecast | None]] = {m: [] for m in methods}
    fitted: dict[str, str] = {}
    for s in prepared.series:
        history = s.history(part)
        for m in methods:
            try:
                f = forecast_baselines(history, prepared.spec.horizon, season, methods=(m,))[m]
            except ValueError as error:
                out[m].append(None)
                fitted.setdefault(m, f"not fitted: {error}")
                continue
            out[m].append(f)
            fitted.setdefault(m, f.method)
    return out, fitted


def score_baselines(prepared: Prepared, part: str, season: int) -> dict[str, dict]:
    """``{name: {metrics..., "method": what was fitted}}`` of every baseline on ``part``."""
    forecasts, fitted = baseline_forecasts(prepared, part, season)
    result = {}
    for name, per_series in forecasts.items():
        if any(f is None for f in per_series):
            result[name] = {"method": fitted[name]}
            continue
        result[name] = {**score_part(per_series, prepared, part, season), "method": fitted[name]}
    return result


def forecast_rows(forecasts: list[Forecast], prepared: Prepared, part: str, steps: int | None = None) -> list[dict]:
    """``[{"date", "median", "lo80", "hi80", "lo95", "hi95"} ...]`` of ``part`` (``"id"`` too with several series);
    ``date`` is the row number in the series when the data have no dates."""
    rows = []
    several = len(prepared.series) > 1
    for f, s in zip(forecasts, prepared.series):
        first, _ = s.split.bounds(part)
        H = len(f.median) if steps is None else steps
        for h in range(H):
            if part == "future":
                date = None if s.future_dates is None else s.future_dates[h]
            else:
                date = None if s.dates is None else s.dates[first + h]
            row = {"id": s.id} if several else {}
            row["date"] = first + h if date is None else _stamp(date)
            for name in ("median", "lo80", "hi80", "lo95", "hi95"):
                row[name] = float(getattr(f, name)[h])
            rows.append(row)
    return rows


def _stamp(date: np.datetime64) -> str:
    text = str(np.datetime_as_string(date, unit="s"))
    return text.replace("T00:00:00", "").replace("T", " ")


# -- the task ----------------------------------------------------------------------------------------


def reported(scores: dict) -> dict:
    """Exactly the metrics the issue names for ``rnnkit eval --json`` (None where they could not be computed)."""
    return {k: scores.get(k) for k in REPORTED}


def rows_csv(rows: list[dict]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: f"{v:.6g}" if isinstance(v, float) else v for k, v in row.items()})
    return out.getvalue()
