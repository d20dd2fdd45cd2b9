"""The statistical forecasters on the four shipped series (issue 20): naive, seasonal naive, AutoETS and
AutoARIMA (statsforecast), read by rnnkit.data.timeseries and scored by rnnkit.metrics on the issue's split
(the last H points; the forecast is made from everything before them), then on a rolling-origin backtest, then
on darts' AirPassengers quickstart hold-out (the last 36 months) next to darts' own two models reproduced here.

    flock /tmp/cpu.lock python benchmarks/forecast_baselines.py [--series airline,melbourne,sunspots,pm25]

Writes benchmarks/results/forecast_baselines-cpuN.{md,json}. The baselines are univariate: PM2.5's weather
features are read (and checked) but only the RNN will use them.
"""

from __future__ import annotations

import argparse
import statistics
import warnings
from importlib.metadata import version

import numpy as np

from common import DATA, machine, machine_markdown, write_results
from rnnkit.baselines.forecast import MAX_HISTORY, MAX_SEASON, auto_arima, forecast_baselines
from rnnkit.data.timeseries import WindowSpec, backtest_sets, prepare, read_series
from rnnkit.metrics import coverage, mae, mape, mase, rmse, smape

FOLDER = DATA / "timeseries"

# horizon H, season m, lookback L (only the length check uses it here), backtest origins K every `step` points
SERIES = {
    "airline": dict(file="airline-passengers.csv", target="Passengers", date="Month", features=None,
                    horizon=24, season=12, lookback=24, folds=5, step=12,
                    why="monthly, yearly season; the issue's 24-month test"),
    "melbourne": dict(file="daily-min-temperatures.csv", target="Temp", date="Date", features=None,
                      horizon=30, season=365, lookback=60, folds=10, step=30,
                      why="daily; the season is the year (365 > 24, so ETS/ARIMA fit non-seasonal models); "
                          "a month ahead"),
    "sunspots": dict(file="monthly-sunspots.csv", target="Sunspots", date="Month", features=None,
                     horizon=24, season=1, lookback=132, folds=10, step=24,
                     why="monthly; the ~11-year solar cycle varies in length (9-14 years) and is a cycle, not a "
                         "season (fpp3), so m = 1: seasonal naive is the naive forecast; two years ahead"),
    "pm25": dict(file="pollution.csv", target="pm2.5", date="year,month,day,hour",
                 features="DEWP,TEMP,PRES,cbwd,Iws,Is,Ir", horizon=24, season=24, lookback=168, folds=10, step=24,
                 why="hourly, daily season; the issue's 24-hour horizon"),
}  # fmt: skip
METHODS = ("naive", "seasonal_naive", "ets", "arima")
SCORES = ("mae", "rmse", "smape", "mase", "mape", "coverage_80", "coverage_95")


def score(forecast, actual, observed, history, season) -> dict:
    kw = {"mask": observed}
    y = np.where(observed, actual, 0.0)  # gaps are masked out; 0 only keeps the array finite
    out = {
        "mae": mae(y, forecast.median, **kw),
        "rmse": rmse(y, forecast.median, **kw),
        "smape": smape(y, forecast.median, **kw),
        "mase": mase(y, forecast.median, history, season, **kw),
        "coverage_80": coverage(y, forecast.lo80, forecast.hi80, **kw),
        "coverage_95": coverage(y, forecast.lo95, forecast.hi95, **kw),
    }
    try:
        out["mape"] = mape(y, forecast.median, **kw)
    except ValueError:  # a true value of 0 (sunspots, temperatures): MAPE is undefined
        out["mape"] = None
    return out


def evaluate(prepared, season) -> tuple[dict, dict, int]:
    """Forecast the test part of the (one) series from everything before it; scores and fitted methods."""
    s = prepared.series[0]
    actual, observed = s.actual("test")
    first, _ = s.split.bounds("test")
    forecasts = forecast_baselines(s.history("test"), prepared.spec.horizon, season)
    scores = {name: score(f, actual, observed, s.raw[:first], season) for name, f in forecasts.items()}
    return scores, {name: f.method for name, f in forecasts.items()}, int(observed.sum())


def darts_airpassengers(data) -> dict:
    """darts' quickstart: train before 1958-01, forecast the 36 months after. darts' ExponentialSmoothing() is
    statsmodels' Holt-Winters (additive trend and season, m = 12); its AutoARIMA() is statsforecast's with the
    default season_length = 1. Both are rerun here, then our AutoETS and AutoARIMA with m = 12."""
    from statsforecast.models import AutoETS
    from statsmodels.tsa.holtwinters import ExponentialSmoothing

    s = data.series[0]
    cut = int(np.flatnonzero(s.dates == np.datetime64("1958-01-01"))[0])
    train, test = s.target[:cut], s.target[cut:]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # statsmodels' convergence chatter
        hw = ExponentialSmoothing(train, trend="add", damped_trend=False, seasonal="add", seasonal_periods=12).fit()
    ets = AutoETS(season_length=12).fit(train)
    rows = {
        "darts ExponentialSmoothing() (statsmodels Holt-Winters A,A m=12), rerun": (hw.forecast(len(test)), 5.11),
        "darts AutoARIMA() (statsforecast, season_length=1), rerun": (
            auto_arima(train, len(test), 1).median, 12.70),
        f"rnnkit ets: statsforecast AutoETS m=12 -> {ets.model_['method']}": (
            ets.predict(h=len(test))["mean"], None),
    }  # fmt: skip
    arima = auto_arima(train, len(test), 12)
    rows[f"rnnkit arima: statsforecast AutoARIMA m=12 -> {arima.method}"] = (arima.median, None)
    return {
        "train": f"{_month(s.dates[0])} .. {_month(s.dates[cut - 1])} ({cut} months)",
        "test": f"{_month(s.dates[cut])} .. {_month(s.dates[-1])} ({len(test)} months)",
        "rows": [{"model": name, "mape": mape(test, f), "darts_quotes": quoted} for name, (f, quoted) in rows.items()],
    }


def _month(d) -> str:
    return str(d)[:7]


def _stamp(d, frequency) -> str:
    hourly = 0 < frequency.nanoseconds < 86400 * 10**9
    return str(d)[:16].replace("T", " ") if hourly else str(d)[:10]


def reading(result: dict) -> list[str]:
    """What the tables say, worked out from the numbers so that a rerun keeps it true."""
    out = []
    for name, r in result["series"].items():
        test = {m: r["test_scores"][m]["mase"] for m in METHODS}
        back = {m: r["backtest"][m]["mase"]["mean"] for m in METHODS}
        cov = {m: r["backtest"][m]["coverage_80"]["mean"] for m in METHODS}
        calibrated = ", ".join(m for m in METHODS if 0.75 <= cov[m] <= 0.85) or "none"
        best_test, best_back = min(test, key=test.get), min(back, key=back.get)
        out.append(
            f"- {name}: lowest MASE on the test split: {best_test} ({test[best_test]:.3f}); over the backtest: "
            f"{best_back} ({back[best_back]:.3f}). Seasonal naive {test['seasonal_naive']:.3f} (backtest "
            f"{back['seasonal_naive']:.3f}); best of ETS/ARIMA {min(test['ets'], test['arima']):.3f} (backtest "
            f"{min(back['ets'], back['arima']):.3f}). 80% intervals covering 75-85% over the backtest: {calibrated} "
            "(" + ", ".join(f"{m} {cov[m]:.2f}" for m in METHODS) + ")."
        )
    if "darts" in result:
        rows = result["darts"]["rows"]
        reruns = ", ".join(f"{row['mape']:.2f}%" for row in rows if row["darts_quotes"] is not None)
        ets, arima = (next(row for row in rows if row["model"].startswith(f"rnnkit {m}")) for m in ("ets", "arima"))
        chosen = ets["model"].split("-> ")[-1]  # e.g. ETS(M,N,M): error, trend, season
        no_trend = " (no trend)" if chosen.startswith("ETS(") and chosen[4:-1].split(",")[1] == "N" else ""
        out.append(
            f"- darts' hold-out: rerunning darts' two models gives {reruns}, its quoted figures. Our AutoETS scores "
            f"{ets['mape']:.2f}% there against darts' ExponentialSmoothing 5.11%: statsforecast's AICc chooses "
            f"{chosen}{no_trend}, where darts fixes an additive trend and season. Our seasonal AutoARIMA scores "
            f"{arima['mape']:.2f}%; darts' 12.70% AutoARIMA is non-seasonal (its season_length defaults to 1)."
        )
    if "airline" in result["series"]:
        a = result["series"]["airline"]["test_scores"]
        out.append(
            f"- The issue's airline target (24-month test, MAPE below AutoETS's) asks an RNN for a MAPE below "
            f"{a['ets']['mape']:.2f}%; AutoARIMA has {a['arima']['mape']:.2f}%, the seasonal naive "
            f"{a['seasonal_naive']['mape']:.2f}%."
        )
    return out


def fmt(value, digits=3) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def markdown(result: dict) -> str:
    lines = [
        "# Forecast baselines on the shipped series (issue 20)",
        "",
        f"Machine: {machine_markdown(result['machine'])}; statsforecast {result['versions']['statsforecast']}, "
        f"statsmodels {result['versions']['statsmodels']}, pandas {result['versions']['pandas']}",
        "",
        "Command:",
        "",
        f"    {result['command']}",
        "",
        "Data read by `rnnkit.data.timeseries.read_series`, split by `prepare` (the last H points are the test, "
        "the H before them validation); each baseline is fitted on everything before the test (training + "
        "validation, gaps carried forward) and scored on the test points whose target is observed. MASE is "
        "scaled by the in-sample seasonal-naive MAE with the season m below (m = 1: naive). Intervals: naive "
        "and seasonal naive from the residual RMS (sqrt(h) and sqrt(k+1) growth, fpp3 5.5), ETS/ARIMA "
        f"statsforecast's. ETS/ARIMA model no season above m = {MAX_SEASON} and see at most the last "
        f"{MAX_HISTORY} points (rnnkit.baselines.forecast defaults). Coverage is a fraction (0.8 = calibrated "
        "80% interval); sMAPE and MAPE in %.",
        "",
        "## The series and the settings chosen",
        "",
        "| series | file | points | frequency | target | features | H | m | test part | why |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, r in result["series"].items():
        lines.append(f"| {name} | {r['file']} | {r['points']} | {r['frequency']} | {r['target']} | "
                     f"{r['features'] or '—'} | {r['horizon']} | {r['season']} | {r['test']} | {r['why']} |")
    lines += ["", "Reader notes:", ""]
    for name, r in result["series"].items():
        for note in r["notes"] or ["(none)"]:
            lines.append(f"- {name}: {note}")
    lines += [
        "",
        "## The issue's split: the last H points",
        "",
        "| series | method | fitted | MAE | RMSE | sMAPE % | MASE | MAPE % | cov 80 | cov 95 |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, r in result["series"].items():
        best = min(r["test_scores"][m]["mase"] for m in METHODS)
        for m in METHODS:
            sc = r["test_scores"][m]
            mase_text = f"**{sc['mase']:.3f}**" if sc["mase"] == best else f"{sc['mase']:.3f}"
            lines.append(f"| {name} | {m} | {r['methods'][m]} | {fmt(sc['mae'])} | {fmt(sc['rmse'])} | "
                         f"{fmt(sc['smape'], 2)} | {mase_text} | {fmt(sc['mape'], 2)} | {fmt(sc['coverage_80'], 2)} | "
                         f"{fmt(sc['coverage_95'], 2)} |")  # fmt: skip
    lines += [
        "",
        "Bold: the lowest MASE of the series. A single test window of H points is a noisy estimate (PM2.5: one "
        "day), hence the backtest below.",
        "",
        "## Rolling-origin backtest: mean (std) over K origins",
        "",
        "Fold k forecasts the H points ending `(K-1-k) x step` points before the end of the file, fitted on "
        "everything before them (`rnnkit.data.timeseries.backtest_sets`); the last fold is the split above.",
        "",
        "| series | K x step | method | MAE | sMAPE % | MASE | cov 80 | cov 95 |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, r in result["series"].items():
        for m in METHODS:
            b = r["backtest"][m]
            cells = " | ".join(f"{b[k]['mean']:.{d}f} ({b[k]['std']:.{d}f})"
                               for k, d in (("mae", 3), ("smape", 2), ("mase", 3), ("coverage_80", 2),
                                            ("coverage_95", 2)))  # fmt: skip
            lines.append(f"| {name} | {r['folds']} x {r['step']} | {m} | {cells} |")
    if "darts" in result:
        d = result["darts"]
        lines += [
            "",
            "## darts' AirPassengers quickstart hold-out",
            "",
            f"darts' quickstart (examples/00-quickstart.ipynb) trains on {d['train']} and forecasts {d['test']} "
            "(`series.split_before(pd.Timestamp('19580101'))`), quoting MAPE 5.11% for `ExponentialSmoothing()` "
            "and 12.70% for `AutoARIMA()`. The same hold-out here:",
            "",
            "| model | MAPE % | darts quotes |",
            "|---|---|---|",
        ]
        for row in d["rows"]:
            quoted = f"{row['darts_quotes']:.2f}" if row["darts_quotes"] is not None else "—"
            lines.append(f"| {row['model']} | {row['mape']:.2f} | {quoted} |")
    lines += ["", "## Reading", "", *reading(result)]
    return "\n".join(lines)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--series", default=",".join(SERIES), help="comma-separated: " + ", ".join(SERIES))
    args = parser.parse_args(argv)
    names = [n.strip() for n in args.series.split(",") if n.strip()]
    command = "flock /tmp/cpu.lock python benchmarks/forecast_baselines.py" + (
        f" --series {args.series}" if names != list(SERIES) else "")  # fmt: skip
    result = {
        "machine": machine("cpu"),
        "versions": {p: version(p) for p in ("statsforecast", "statsmodels", "pandas")},
        "command": command,
        "series": {},
    }
    for name in names:
        cfg = SERIES[name]
        data = read_series(FOLDER / cfg["file"], cfg["target"], date=cfg["date"], features=cfg["features"])
        spec = WindowSpec(horizon=cfg["horizon"], lookback=cfg["lookback"])
        prepared = prepare(data, spec)
        s = prepared.series[0]
        test_scores, methods, observed = evaluate(prepared, cfg["season"])
        first, stop = s.split.bounds("test")
        folds = []
        for fold_data in backtest_sets(data, spec, cfg["folds"], cfg["step"]):
            folds.append(evaluate(prepare(fold_data, spec), cfg["season"])[0])
        backtest = {
            m: {k: {"mean": statistics.fmean(f[m][k] for f in folds), "std": statistics.pstdev(f[m][k] for f in folds)}
                for k in SCORES if k != "mape" or all(f[m]["mape"] is not None for f in folds)}
            for m in METHODS
        }  # fmt: skip
        result["series"][name] = {
            "file": cfg["file"], "target": cfg["target"], "features": cfg["features"], "horizon": cfg["horizon"],
            "season": cfg["season"], "folds": cfg["folds"], "step": cfg["step"], "why": cfg["why"],
            "points": len(s.raw), "frequency": data.frequency.name, "channels": list(prepared.channels),
            "test": f"{_stamp(s.dates[first], data.frequency)} .. {_stamp(s.dates[stop - 1], data.frequency)} "
                    f"({observed} of {stop - first} observed)",
            "notes": list(data.notes + prepared.notes),
            "test_scores": test_scores, "methods": methods, "backtest": backtest,
            "backtest_folds": folds,
        }  # fmt: skip
        if name == "airline":
            result["darts"] = darts_airpassengers(data)
    write_results("forecast_baselines", result, markdown(result))


if __name__ == "__main__":
    main()
