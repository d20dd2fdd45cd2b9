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
    wanted = {"mae", "rmse", "smape", "mase", "coverage_80", "coverage_95"}
    assert wanted <= set(result["metrics"])
    assert set(result["baselines"]) == {"naive", "seasonal_naive", "ets", "arima"}
    for scores in result["baselines"].values():
        assert wanted <= set(scores) and scores["method"]
    rows = result["forecast"]
    assert [r["date"] for r in rows] == [f"2005-{m:02d}-01" for m in range(7, 13)]  # the last 6 months
    for r in rows:
        assert set(r) == {"date", "median", "lo80", "hi80", "lo95", "hi95"}
        assert r["lo95"] <= r["lo80"] <= r["median"] <= r["hi80"] <= r["hi95"]
    # the seasonal naive repeats the season before the test: its MAE, computed here, is what eval reports
    values = [float(line.split(",")[1]) for line in data.read_text().splitlines()[1:]]
    expected = np.mean(np.abs(np.array(values[-6:]) - np.array(values[-18:-12])))
    assert result["baselines"]["seasonal_naive"]["mae"] == pytest.approx(expected)


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
    ("text target", "month,sales\n2000-01,1\n2000-02,lots\n", [], "target column 'sales' is not numeric"),
    ("ragged rows", "month,sales\n2000-01,1\n2000-02,2,3\n", [], "ragged rows"),
    ("all missing", "month,sales\n" + "".join(f"2000-{m:02d},NA\n" for m in range(1, 13)), [], "has no value"),
]


@pytest.mark.parametrize("text,extra,message", [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_bad_input_is_one_line_and_a_failure(tmp_path, capsys, text, extra, message):
    data = monthly(tmp_path, text=text)
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
