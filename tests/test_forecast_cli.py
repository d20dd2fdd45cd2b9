"""`rnnkit train forecast`, `rnnkit eval` and `rnnkit predict` on forecast runs, end to end on small synthetic
series: the JSON the issue names, the baselines on the same split, a forecast that no later value changes, the
rolling-origin backtest, a global model over stacked series, resuming, and one clear line for bad input."""

import csv
import json
import math

import numpy as np
import pytest

from rnnkit.cli import main

TINY = ["--hidden-size", "8", "--head-size", "8", "--max-steps", "12"]


def monthly(tmp_path, n=72, name="m.csv", *, change=None, text=None):
    rng = np.random.default_rng(0)
    rows = ["month,sales,price"]
    for t in range(n):
        y, m = divmod(t, 12)
        value = 100 + t + 10 * math.sin(2 * math.pi * t / 12) + rng.standard_normal()
        if change is not None and t == change:
            value += 40.0
        rows.append(f"{2000 + y}-{m + 1:02d},{value:.3f},{5 + 0.1 * t:.2f}")
    path = tmp_path / name
    path.write_text(text if text is not None else "\n".join(rows) + "\n")
    return path


def run(capsys, *argv):
    try:
        code = main([str(a) for a in argv])
    except SystemExit as stop:  # argparse refusing a flag
        code = stop.code
    out, err = capsys.readouterr()
    return code, out, err


def train(capsys, tmp_path, data, *extra, out="run"):
    code, _, err = run(capsys, "train", "forecast", "--data", data, "--target", "sales", "--date", "month",
                       "--features", "price", "--horizon", 6, "--out", tmp_path / out, "--quiet", *TINY,
                       *extra)  # fmt: skip
    assert code == 0, err
    return tmp_path / out


def test_eval_reports_the_model_the_baselines_and_the_forecast(tmp_path, capsys):
    data = monthly(tmp_path)
    run_dir = train(capsys, tmp_path, data, "--decoder")
    code, out, err = run(capsys, "eval", run_dir, "--json")
    assert code == 0, err
    result = json.loads(out)
    assert result["task"] == "forecast"
    wanted = {"mae", "rmse", "smape", "mase", "coverage_80", "coverage_95"}  # exactly the keys
    assert set(result["metrics"]) == wanted
    assert set(result["baselines"]) == {"naive", "seasonal_naive", "ets", "arima"}
    for name, scores in result["baselines"].items():
        assert set(scores) == wanted and all(isinstance(v, float) for v in scores.values())
        assert result["details"]["baselines"][name]["method"]
    assert result["details"]["baselines"]["arima"]["method"].startswith("ARIMA")
    rows = result["forecast"]
    assert [r["date"] for r in rows] == [f"2005-{m:02d}-01" for m in range(7, 13)]  # the last 6 months
    for r in rows:
        assert set(r) == {"date", "median", "lo80", "hi80", "lo95", "hi95"}
        assert r["lo95"] <= r["lo80"] <= r["median"] <= r["hi80"] <= r["hi95"]
    # the seasonal naive repeats the season before the test: its MAE, computed here, is what eval reports
    values = np.array([float(line.split(",")[1]) for line in data.read_text().splitlines()[1:]])
    test, history = values[-6:], values[:-6]
    expected = np.mean(np.abs(test - values[-18:-12]))
    assert result["baselines"]["seasonal_naive"]["mae"] == pytest.approx(expected)
    # MASE as Hyndman defines it: the MAE over the in-sample MAE of the seasonal naive (m = 12) on the history
    scale = np.mean(np.abs(history[12:] - history[:-12]))
    median = np.array([r["median"] for r in rows])
    assert result["metrics"]["mase"] == pytest.approx(np.mean(np.abs(test - median)) / scale)
    assert result["baselines"]["seasonal_naive"]["mase"] == pytest.approx(expected / scale)
    inside = [r["lo80"] <= y <= r["hi80"] for r, y in zip(rows, test)]
    assert result["metrics"]["coverage_80"] == pytest.approx(np.mean(inside))


def test_no_later_value_changes_the_evaluated_forecast(tmp_path, capsys):
    """The forecast is made from everything before the last H rows: changing a value among them changes
    nothing; changing the row just before them changes the forecast (so the check can fail)."""
    run_dir = train(capsys, tmp_path, monthly(tmp_path))

    def forecast(data):
        code, out, err = run(capsys, "eval", run_dir, "--data", data, "--json")
        assert code == 0, err
        return [(r["median"], r["lo80"], r["hi95"]) for r in json.loads(out)["forecast"]]

    plain = forecast(monthly(tmp_path, name="a.csv"))
    assert forecast(monthly(tmp_path, name="b.csv", change=69)) == plain  # inside the last 6 rows
    assert forecast(monthly(tmp_path, name="c.csv", change=65)) != plain  # the row before them
    # the same rows in another order: sorted by date (and said so), the same forecast
    lines = monthly(tmp_path, name="d.csv").read_text().splitlines()
    shuffled = tmp_path / "shuffled.csv"
    shuffled.write_text("\n".join([lines[0], *np.random.default_rng(1).permutation(lines[1:])]) + "\n")
    assert forecast(shuffled) == plain
    code, out, _ = run(capsys, "eval", run_dir, "--data", shuffled, "--json")
    assert "rows were not in date order in 1 series: sorted by date" in json.loads(out)["details"]["notes"]


def test_backtest_gives_mean_and_spread_for_the_model_and_each_baseline(tmp_path, capsys):
    run_dir = train(capsys, tmp_path, monthly(tmp_path))
    longer = monthly(tmp_path, n=84, name="longer.csv")  # a year past the training file
    code, out, err = run(capsys, "eval", run_dir, "--data", longer, "--backtest", 5, "--json")
    assert code == 0, err
    backtest = json.loads(out)["backtest"]
    assert backtest["folds"] == 5 and len(backtest["per_fold"]) == 5
    for scores in [backtest["model"], *backtest["baselines"].values()]:
        assert {"mean", "std"} <= set(scores["mase"]) and scores["mase"]["std"] >= 0
    per_fold = [f["model"]["mase"] for f in backtest["per_fold"]]
    assert backtest["model"]["mase"]["mean"] == pytest.approx(np.mean(per_fold))
    # the run trained on targets before row 60 of its file: only the oldest fold (test rows 54..59) saw them
    assert [f["in_training"] for f in backtest["per_fold"]] == [True, False, False, False, False]
    assert backtest["out_of_sample_folds"] == 4
    # 40 points hold lookback 24 + 2 x 6 and 4 more: 3 origins fit 2 apart, not 6
    code, out, err = run(capsys, "eval", run_dir, "--data", monthly(tmp_path, n=40, name="short.csv"),
                         "--backtest", 3, "--json")  # fmt: skip
    assert code == 0, err
    backtest = json.loads(out)["backtest"]
    assert backtest["step"] == 2 and len(backtest["per_fold"]) == 3
    code, _, err = run(capsys, "eval", run_dir, "--data", monthly(tmp_path, n=40, name="short.csv"), "--backtest", 6)
    assert code == 2 and err.count("\n") == 1 and "a 6-fold backtest with step 1 needs series of at least 41" in err


def test_predict_writes_the_csv_and_the_plot_past_the_end(tmp_path, capsys):
    data = monthly(tmp_path)
    run_dir = train(capsys, tmp_path, data)
    out_csv, plot = tmp_path / "f.csv", tmp_path / "f.png"
    code, out, err = run(capsys, "predict", run_dir, "--data", data, "--horizon", 4, "--csv", out_csv,
                         "--plot", plot)  # fmt: skip
    assert code == 0, err
    rows = list(csv.DictReader(out_csv.open()))
    assert [r["date"] for r in rows] == ["2006-01-01", "2006-02-01", "2006-03-01", "2006-04-01"]
    assert out.strip() == out_csv.read_text().strip()
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    code, _, err = run(capsys, "predict", run_dir, "--data", data, "--horizon", 7)
    assert code == 2 and "at most 6 steps" in err


def test_global_model_over_stacked_series_and_resume(tmp_path, capsys):
    rows = ["shop,step,units"]
    for shop, level in (("a", 10.0), ("b", 50.0)):
        for t in range(60):
            rows.append(f"{shop},{t},{level + 5 * math.sin(t / 3):.3f}")
    data = tmp_path / "long.csv"
    data.write_text("\n".join(rows) + "\n")
    argv = ["train", "forecast", "--data", data, "--target", "units", "--id", "shop", "--horizon", 5,
            "--lookback", 10, "--out", tmp_path / "g", "--quiet", *TINY]  # fmt: skip
    code, _, err = run(capsys, *argv)
    assert code == 0, err
    config = json.loads((tmp_path / "g" / "config.json").read_text())
    assert config["series"] == ["a", "b"] and config["model"]["config"]["series_embedding"] == 1
    code, _, err = run(capsys, "train", "forecast", "--resume", tmp_path / "g", "--max-steps", 20, "--quiet")
    assert code == 0, err
    assert json.loads((tmp_path / "g" / "summary.json").read_text())["steps"] == 20
    code, out, err = run(capsys, "eval", tmp_path / "g", "--json")
    assert code == 0, err
    forecast = json.loads(out)["forecast"]
    assert [r["id"] for r in forecast] == ["a"] * 5 + ["b"] * 5 and [r["date"] for r in forecast[:2]] == [55, 56]


BAD = [
    ("no target column", "month,sales\n2000-01,1\n", ["--target", "units"], "no target column 'units'"),
    ("irregular dates", "month,sales\n" + "".join(f"2000-{m:02d},{m}\n" for m in range(1, 13)) + "2000-02-15,2\n",
     [], "irregular timestamps in the series: 2000-02-15 is off the monthly grid"),
    ("a season longer than the history", None, ["--season", "70"], "--season 70: the training part of the series"),
    ("a history that repeats itself", "month,sales\n" + "".join(f"{2000 + t // 12}-{t % 12 + 1:02d},{t % 12}\n"
                                                               for t in range(48)),
     [], "repeats itself every 12 steps"),
    ("text target", "month,sales\n2000-01,1\n2000-02,lots\n", [], "target column 'sales' is not numeric"),
    ("ragged rows", "month,sales\n2000-01,1\n2000-02,2,3\n", [], "ragged rows"),
    ("all missing", "month,sales\n" + "".join(f"2000-{m:02d},NA\n" for m in range(1, 13)), [], "has no value"),
]


@pytest.mark.parametrize("text,extra,message", [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_bad_input_is_one_line_and_a_failure(tmp_path, capsys, text, extra, message):
    data = monthly(tmp_path, text=text)  # text None: the good 72-month file
    argv = ["train", "forecast", "--data", data, "--target", "sales", "--date", "month", "--horizon", 3,
            "--out", tmp_path / "bad", "--quiet", *TINY, *extra]  # fmt: skip
    code, _, err = run(capsys, *argv)
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("rnnkit: error:") and message in err
    assert not (tmp_path / "bad").exists()


def test_too_few_rows_and_a_horizon_below_one(tmp_path, capsys):
    data = monthly(tmp_path, n=30)
    base = ["train", "forecast", "--data", data, "--target", "sales", "--date", "month", "--out", tmp_path / "bad",
            "--quiet", *TINY]  # fmt: skip
    code, _, err = run(capsys, *base, "--horizon", 6, "--lookback", 24)
    assert code == 2 and err.count("\n") == 1 and "lookback 24 + 2 x horizon 6 needs at least 36" in err
    code, _, err = run(capsys, *base, "--horizon", 0)
    assert code == 2 and err.count("\n") == 1 and "--horizon" in err
    assert not (tmp_path / "bad").exists()


def test_defaults_are_chosen_from_the_data_and_flags_win(tmp_path, capsys):
    """No --season, --lookback or --hidden-size: the frequency's season, max(2H, 2m) shortened to leave H
    training windows, and the small model for a short series; all recorded. A flag given wins."""
    data = monthly(tmp_path)  # 72 months
    code, _, err = run(capsys, "train", "forecast", "--data", data, "--target", "sales", "--date", "month",
                       "--horizon", 6, "--max-steps", 2, "--out", tmp_path / "d", "--quiet")  # fmt: skip
    assert code == 0, err
    config = json.loads((tmp_path / "d" / "config.json").read_text())
    assert (config["data"]["season"], config["data"]["lookback"]) == (12, 24)  # max(2 x 6, 2 x 12)
    model = config["model"]["config"]
    assert (model["rnn"]["hidden_size"], model["head_size"]) == (32, 32)  # 72 - 3 x 6 - 24 + 1 = 31 windows
    assert model["dropout"] == 0.3 and set(config["chosen_defaults"]) == {"season", "lookback", "hidden_size",
                                                                            "dropout", "calibration"}  # fmt: skip
    assert config["data"]["calibration"] == 0  # 5% of 60 training rows holds no window of 6
    notes = json.loads((tmp_path / "d" / "summary.json").read_text())["notes"]
    assert any(n.startswith("defaults chosen from the data: season 12 (monthly)") for n in notes)
    code, _, err = run(capsys, "train", "forecast", "--data", data, "--target", "sales", "--date", "month",
                       "--horizon", 20, "--hidden-size", 8, "--season", 3, "--max-steps", 2, "--out", tmp_path / "e",
                       "--quiet")  # fmt: skip
    assert code == 0, err
    config = json.loads((tmp_path / "e" / "config.json").read_text())
    # 72 points, H = 20: too short for max(40, 24) and 20 windows; lookback and windows share 72 - 60 + 1 rows
    assert config["data"]["lookback"] == 6 and config["data"]["season"] == 3
    assert config["model"]["config"]["rnn"]["hidden_size"] == 8
    assert set(config["chosen_defaults"]) == {"lookback", "dropout", "calibration"}


def test_eval_widens_the_intervals_by_factors_calibrated_on_the_held_out_parts(tmp_path, capsys):
    from rnnkit.baselines.scoring import interval_scales, widen
    from rnnkit.data.timeseries import window_origins
    from rnnkit.tasks.forecast import load_parts, model_forecasts, prepare_like

    run_dir = train(capsys, tmp_path, monthly(tmp_path), "--calibration", 2)
    code, out, err = run(capsys, "eval", run_dir, "--json")
    assert code == 0, err
    result = json.loads(out)
    config = json.loads((run_dir / "config.json").read_text())
    model, data, stats, index = load_parts(run_dir, config, "cpu")
    prepared = prepare_like(data.read(), data, stats, config)
    s = prepared.series[0]
    assert s.split.bounds("calibration") == (48, 60) and s.split.bounds("val") == (60, 66)  # 72 rows, H = 6, K = 2
    which, origins = window_origins(prepared, "train")
    assert origins.max() + 6 <= 48  # no training target inside the calibration part
    assert window_origins(prepared, "calibration")[1].tolist() == [48, 54]
    held, _ = model_forecasts(model, prepared, "calibration", "cpu", series_index=index)
    val, _ = model_forecasts(model, prepared, "val", "cpu", series_index=index)
    actuals = [s.actual_from(48), s.actual_from(54), s.actual("val")]
    assert all(len(y) == 6 for y, _ in actuals) and (actuals[1][0] == s.raw[54:60]).all()
    scales = interval_scales([*held, *val], actuals)
    assert scales != interval_scales(val, actuals[2:])  # the calibration windows count
    assert result["details"]["interval_scales"] == {str(k): pytest.approx(v) for k, v in scales.items()}
    assert scales[80] != pytest.approx(1.0)  # a tiny model: its own intervals are off, so the check can fail
    raw, _ = model_forecasts(model, prepared, "test", "cpu", series_index=index)
    wide = widen(raw[0], scales)
    for r, lo, hi in zip(result["forecast"], wide.lo80, wide.hi80):
        assert (r["lo80"], r["hi80"]) == (pytest.approx(lo), pytest.approx(hi))
    assert set(result["details"]["uncalibrated"]) == {"coverage_80", "coverage_95", "spl"}


def test_the_default_calibration_part_is_a_share_of_the_training_rows():
    from rnnkit.tasks.forecast import default_calibration

    # the shipped series: airline 144 months and sunspots 2820 (H = 24), Melbourne 3650 days (H = 30), PM2.5
    # 43824 hours (H = 24)
    assert [default_calibration(24, 144), default_calibration(24, 2820), default_calibration(30, 3650),
            default_calibration(24, 43824)] == [0, 5, 5, 10]  # fmt: skip
    assert default_calibration(6, 72) == 0 and default_calibration(1, 10) == 0
    # with their benchmarks' seasons: a year of daily data is 13 windows of 30, within 15% of Melbourne's rows;
    # airline's 12 months would take a quarter of its 96 training rows, and a season shorter than H changes nothing
    assert [default_calibration(24, 144, 12), default_calibration(30, 3650, 365), default_calibration(24, 43824, 24),
            default_calibration(30, 3650, 7)] == [0, 13, 10, 5]  # fmt: skip
    assert default_calibration(30, 1000, 365) == default_calibration(30, 1000) == 1  # a year would take 39%


def test_a_calibration_part_too_long_for_the_series_is_one_clear_error(tmp_path, capsys):
    code, _, err = run(capsys, "train", "forecast", "--data", monthly(tmp_path), "--target", "sales", "--date",
                       "month", "--horizon", 6, "--calibration", 9, "--max-steps", 2, "--out", tmp_path / "c",
                       "--quiet")  # fmt: skip
    assert code != 0 and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "c" / "model.safetensors").exists()


def low_counts(n=72, *, negative_at=None):
    """A monthly series of small values, often 0 and never negative (unless ``negative_at``): the kind whose
    forecast intervals would reach below 0."""
    rng = np.random.default_rng(1)
    rows = ["month,sales,price"]
    for t in range(n):
        y, m = divmod(t, 12)
        value = max(0.0, 0.3 + math.sin(2 * math.pi * t / 12) + rng.standard_normal())
        rows.append(f"{2000 + y}-{m + 1:02d},{-3.0 if t == negative_at else value:.3f},{5 + 0.1 * t:.2f}")
    return "\n".join(rows) + "\n"


def test_a_series_never_negative_in_training_is_never_forecast_negative(tmp_path, capsys):
    data = monthly(tmp_path, text=low_counts())
    floored = train(capsys, tmp_path, data, out="floored")
    assert json.loads((floored / "config.json").read_text())["stats"]["floor"] == {"": 0.0}
    free = train(capsys, tmp_path, data, "--no-floor", out="free")
    rows = {}
    for name, run_dir in (("floored", floored), ("free", free)):
        code, out, err = run(capsys, "eval", run_dir, "--json")
        assert code == 0, err
        rows[name] = json.loads(out)["forecast"]
    bounds = ("median", "lo80", "hi80", "lo95", "hi95")
    assert min(r["lo95"] for r in rows["free"]) < 0  # a tiny model's 95% interval reaches below 0 unclipped
    assert all(r[b] >= 0 for r in rows["floored"] for b in bounds)
    for a, b in zip(rows["floored"], rows["free"]):  # the same model (same seed): only the clipping differs
        assert all(a[k] == pytest.approx(max(b[k], 0.0)) for k in bounds)
    code, _, err = run(capsys, "predict", floored, "--data", data, "--csv", tmp_path / "f.csv")
    assert code == 0, err
    with open(tmp_path / "f.csv") as handle:
        assert all(float(r[b]) >= 0 for r in csv.DictReader(handle) for b in bounds)


def test_a_series_negative_somewhere_in_training_has_no_floor(tmp_path, capsys):
    data = monthly(tmp_path, text=low_counts(negative_at=5))
    run_dir = train(capsys, tmp_path, data)
    assert json.loads((run_dir / "config.json").read_text())["stats"]["floor"] == {}
