"""Forecast baselines: naive and seasonal naive against hand-worked values and against statsforecast's own
Naive / SeasonalNaive (the outside reference), AutoETS / AutoARIMA on series whose answer is known."""

import json
import math

import numpy as np
import pytest

from rnnkit.baselines.forecast import (
    BASELINES,
    auto_arima,
    auto_ets,
    forecast_baselines,
    naive,
    seasonal_naive,
)
from rnnkit.metrics import coverage, mase

Z80, Z95 = 1.2815515655446004, 1.959963984540054


def seasonal_series(n, *, season=12, noise=1.0, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    return 50 + 0.3 * t + 8 * np.sin(2 * np.pi * t / season) + noise * rng.normal(size=n)


def test_naive_by_hand():
    f = naive([1.0, 2.0, 4.0, 7.0], 4)
    sigma = math.sqrt((1 + 4 + 9) / 3)  # root mean square of the one-step changes
    assert f.median.tolist() == [7.0] * 4 and f.method == "naive"
    assert f.lo80 == pytest.approx(7 - Z80 * sigma * np.sqrt([1, 2, 3, 4]))
    assert f.hi95[3] == pytest.approx(7 + Z95 * sigma * 2)  # sqrt(h) growth: h = 4 doubles sigma


def test_seasonal_naive_by_hand():
    f = seasonal_naive([1.0, 5.0, 2.0, 6.0, 3.0, 7.0], 5, season=2)
    assert f.median.tolist() == [3.0, 7.0, 3.0, 7.0, 3.0]
    # residuals y_t - y_{t-2} are all 1, so sigma = 1; it grows as sqrt(k + 1), k = floor((h - 1) / m)
    assert f.hi80 - f.median == pytest.approx(Z80 * np.sqrt([1, 1, 2, 2, 3]))
    assert f.method == "seasonal naive (m=2)"


@pytest.mark.parametrize("season", [1, 4, 7])
def test_naive_forecasts_match_statsforecast(season):
    from statsforecast.models import Naive, SeasonalNaive

    y = seasonal_series(60, season=max(season, 2), noise=2.0, seed=season)
    ours = seasonal_naive(y, 10, season) if season > 1 else naive(y, 10)
    reference = (SeasonalNaive(season) if season > 1 else Naive()).forecast(y=y, h=10, level=[80, 95])
    names = {"median": "mean", "lo80": "lo-80", "hi80": "hi-80", "lo95": "lo-95", "hi95": "hi-95"}
    for mine, theirs in names.items():
        assert getattr(ours, mine) == pytest.approx(reference[theirs], rel=1e-12, abs=1e-12)


def test_ets_and_arima_beat_the_naive_forecasts_on_a_seasonal_trend():
    y = seasonal_series(120, noise=0.5)
    history, truth = y[:96], y[96:]
    scores = {}
    for name, f in forecast_baselines(history, 24, 12).items():
        assert (f.lo95 <= f.lo80).all() and (f.lo80 <= f.median).all() and (f.median <= f.hi80).all()
        assert (f.hi80 <= f.hi95).all()
        scores[name] = mase(truth, f.median, history, season=12)
    assert list(scores) == ["naive", "seasonal_naive", "ets", "arima"]
    assert scores["ets"] < scores["seasonal_naive"] < scores["naive"]
    assert scores["arima"] < scores["seasonal_naive"]
    assert "A" in forecast_baselines(history, 24, 12, methods=["ets"])["ets"].method.split(",")[2]  # a season


def test_arima_on_white_noise_forecasts_the_mean_with_calibrated_intervals():
    rng = np.random.default_rng(3)
    y = 10 + rng.normal(size=400)
    f = auto_arima(y[:300], 100)
    assert f.method.startswith("ARIMA(0,0,0)")
    assert f.median == pytest.approx(np.full(100, y[:300].mean()), abs=1e-6)
    assert 0.85 <= coverage(y[300:], f.lo95, f.hi95) <= 1.0
    assert 0.65 <= coverage(y[300:], f.lo80, f.hi80) <= 0.92


def test_long_seasons_and_long_histories_are_limited_and_said():
    y = seasonal_series(150, season=30)
    assert auto_ets(y, 5, 30).method.endswith("(season 30 > 24: non-seasonal)")
    f = auto_arima(y, 5, 6, max_history=80)
    assert "(last 80 points)" in f.method and f.median.shape == (5,)
    assert auto_arima(y, 5, 6, max_history=80).median == pytest.approx(auto_arima(y[-80:], 5, 6).median)


def test_baselines_refuse_bad_input_and_give_json():
    with pytest.raises(ValueError, match="NaN or inf"):
        naive([1.0, float("nan"), 2.0], 3)
    with pytest.raises(ValueError, match="at least 13"):
        seasonal_naive(np.ones(12), 3, 12)
    with pytest.raises(ValueError, match="horizon must be a positive integer"):
        naive([1.0, 2.0], 0)
    with pytest.raises(ValueError, match="unknown baseline 'theta'; the baselines are: naive, seasonal_naive"):
        forecast_baselines([1.0, 2.0, 3.0], 2, methods=["naive", "theta"])
    d = json.loads(json.dumps(naive([1.0, 2.0, 4.0], 2).to_dict()))
    assert set(d) == {"method", "median", "lo80", "hi80", "lo95", "hi95"} and d["median"] == [4.0, 4.0]
    assert set(BASELINES) == {"naive", "seasonal_naive", "ets", "arima"}


def test_interval_scales_are_the_conformal_rank_of_residuals_in_half_widths(tmp_path):
    from rnnkit.baselines.forecast import Forecast
    from rnnkit.baselines.scoring import interval_scales, widen
    from rnnkit.data.timeseries import WindowSpec, prepare, read_series

    rows = ["t,y"] + [f"{t},{seasonal_series(80)[t]:.4f}" for t in range(80)]
    (tmp_path / "s.csv").write_text("\n".join(rows) + "\n")
    H = 12
    prepared = prepare(read_series(tmp_path / "s.csv", "y"), WindowSpec(horizon=H, lookback=24))
    y, observed = prepared.series[0].actual("val")
    assert observed.all() and len(y) == H
    # residuals 1..12 in units of a half-width of 2 above the median, 4 below (alternating sides)
    r = np.arange(1, H + 1, dtype=float)
    side = np.where(np.arange(H) % 2 == 0, 1.0, -1.0)
    median = y - side * r * np.where(side > 0, 2.0, 4.0)  # y above the median on even steps
    f = Forecast("model", median, median - 4.0, median + 2.0, median - 8.0, median + 4.0)
    scales = interval_scales([f], [prepared.series[0].actual("val")])
    # 80%: the ceil(13 * 0.8) = 11th smallest of the scores r (80% half-widths 2 and 4); 95%: the 12th, in
    # units of the 95% half-widths (4 and 8), so r / 2
    assert scales == {80: 11.0, 95: 6.0}
    wide = widen(f, scales)
    inside = (wide.lo80 <= y) & (y <= wide.hi80)
    assert inside.mean() == pytest.approx(11 / 12)  # covers at least 80% of the points it was calibrated on
    assert (wide.lo95 <= wide.lo80).all() and (wide.hi80 <= wide.hi95).all() and (wide.median == f.median).all()
    half = widen(f, {80: 5.5, 95: 3.0})
    assert ((half.lo80 <= y) & (y <= half.hi80)).mean() == pytest.approx(5 / 12)  # narrower: fewer inside
    assert interval_scales([f], [prepared.series[0].actual("test")])[80] != scales[80]  # other points, other residuals


def test_widen_clips_the_median_and_every_bound_at_the_floor():
    from rnnkit.baselines.forecast import Forecast
    from rnnkit.baselines.scoring import widen

    median = np.array([0.5, 3.0, 10.0])
    f = Forecast("model", median, median - 2.0, median + 2.0, median - 4.0, median + 4.0)
    free = widen(f, {80: 1.0, 95: 1.0})
    assert free.lo80[0] == -1.5 and free.lo95[1] == -1.0  # below 0 without a floor
    floored = widen(f, {80: 1.0, 95: 1.0}, floor=0.0)
    for name in ("median", "lo80", "hi80", "lo95", "hi95"):
        assert (getattr(floored, name) == np.maximum(getattr(free, name), 0.0)).all(), name
    assert floored.lo80.tolist() == [0.0, 1.0, 8.0] and (floored.hi95 == free.hi95).all()  # only what was below
    below = median - 11  # a median below the floor everywhere: all of it at the floor
    assert (widen(Forecast("model", below, *[below] * 4), {80: 1.0, 95: 1.0}, 0.0).median == 0).all()
