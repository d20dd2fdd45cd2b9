"""The recurrent forecaster with its default flags against the statistical methods (issue 20), on the four shipped
series with the settings of benchmarks/forecast_baselines.py (horizon, season, the PM2.5 weather features): per
series `rnnkit train forecast ... --time-budget S`, then `rnnkit eval RUN --json`, which scores the model and
naive, seasonal naive, AutoETS and AutoARIMA on the same split (the last H points, forecast from everything before
them). The issue's targets are checked in the table.

    flock /tmp/cpu.lock python benchmarks/forecast.py                    # 4 x 300 s: the measurement
    python benchmarks/forecast.py --quick                                # every step on tiny budgets; writes nothing
    flock /tmp/cpu.lock python benchmarks/forecast.py --series airline --time-budget 60 --flags "--decoder"

Writes benchmarks/results/forecast-cpuN.{md,json} (``--flags`` or a budget other than 300 s add a suffix, so
the default measurement is never overwritten by an exploration).
"""

from __future__ import annotations

import argparse
import json
import math
import shlex
import shutil
import sys
import tempfile
from pathlib import Path

from common import RESULTS, machine, machine_markdown, rnnkit, variant_name, write_results
from forecast_baselines import FOLDER, SERIES

METHODS = ("naive", "seasonal_naive", "ets", "arima")
COLUMNS = (("mae", 3), ("rmse", 3), ("smape", 2), ("mase", 3), ("mape", 2), ("coverage_80", 2), ("coverage_95", 2))


def train_flags(cfg: dict) -> list[str]:
    """The data flags of a series: what the file is and the scoring settings, no model flag."""
    flags = ["--data", str(FOLDER / cfg["file"]), "--target", cfg["target"], "--date", cfg["date"],
             "--horizon", str(cfg["horizon"]), "--season", str(cfg["season"])]  # fmt: skip
    if cfg["features"]:
        flags += ["--features", cfg["features"]]
    return flags


def run_series(name: str, budget: float, extra: list[str], scratch: Path) -> dict:
    cfg = SERIES[name]
    run = scratch / f"forecast-{name}"
    command = ["train", "forecast", *train_flags(cfg), "--time-budget", f"{budget:g}", "--out", str(run), "--quiet"]
    trained = rnnkit(*command, *extra)
    evaluated = rnnkit("eval", str(run))
    summary, details = trained["summary"], evaluated["details"]
    return {
        "command": "rnnkit " + shlex.join(command[:-1] + extra).replace(str(FOLDER) + "/", "timeseries/"),
        "horizon": cfg["horizon"], "season": cfg["season"], "features": cfg["features"],
        "steps": summary["steps"], "seconds": summary["seconds"], "stopped": summary["stopped"],
        "parameters": summary["parameters"], "notes": summary["notes"],
        "best_step": (summary.get("best") or {}).get("step"),
        "chosen_defaults": json.loads((run / "config.json").read_text()).get("chosen_defaults"),
        "model": {**evaluated["metrics"], **details["model"]},
        "baselines": {m: {**scores, **details["baselines"][m]} for m, scores in evaluated["baselines"].items()},
        "forecast": evaluated["forecast"],
    }  # fmt: skip


def targets(result: dict) -> list[dict]:
    """The issue's targets, each with its figures and whether it is met."""
    rows, beats_best = [], []
    for name, r in result["series"].items():
        m, b = r["model"], r["baselines"]
        best = min(("ets", "arima"), key=lambda k: b[k]["mase"] if b[k].get("mase") is not None else math.inf)
        rows.append({"series": name, "target": "MASE below seasonal naive's",
                     "figures": f"{m['mase']:.3f} vs {b['seasonal_naive']['mase']:.3f}",
                     "met": m["mase"] < b["seasonal_naive"]["mase"]})  # fmt: skip
        beats_best.append(m["mase"] < b[best]["mase"])
        rows.append({"series": name, "target": "MASE below the best of AutoETS/AutoARIMA (>= 2 of 4 series)",
                     "figures": f"{m['mase']:.3f} vs {best} {b[best]['mase']:.3f}", "met": beats_best[-1]})  # fmt: skip
        rows.append({"series": name, "target": "80% interval covers 75-85% of the test points",
                     "figures": f"{m['coverage_80']:.2f}", "met": 0.75 <= m["coverage_80"] <= 0.85})  # fmt: skip
        if name == "airline":
            rows.append({"series": name, "target": "MAPE below AutoETS's",
                         "figures": f"{m['mape']:.2f}% vs {b['ets']['mape']:.2f}%",
                         "met": m["mape"] < b["ets"]["mape"]})  # fmt: skip
    if len(result["series"]) == 4:
        rows.append({"series": "all four", "target": "below the best of AutoETS/AutoARIMA on at least two",
                     "figures": f"{sum(beats_best)} of 4", "met": sum(beats_best) >= 2})  # fmt: skip
    return rows


def wins(result: dict) -> list[str]:
    """One line per series where a baseline has a lower MASE than the model, or an 80% interval closer to 0.8."""
    lines = []
    for name, r in result["series"].items():
        m, b = r["model"], r["baselines"]
        better = [f"{k} (MASE {b[k]['mase']:.3f} vs {m['mase']:.3f})" for k in METHODS
                  if b[k].get("mase") is not None and b[k]["mase"] < m["mase"]]  # fmt: skip
        calibrated = [f"{k} (cov 80 {b[k]['coverage_80']:.2f} vs {m['coverage_80']:.2f})" for k in METHODS
                      if b[k].get("coverage_80") is not None
                      and abs(b[k]["coverage_80"] - 0.8) < abs(m["coverage_80"] - 0.8)]  # fmt: skip
        if better:
            lines.append(f"- {name}, point forecast: " + ", ".join(better))
        if calibrated:
            lines.append(f"- {name}, 80% interval: " + ", ".join(calibrated))
    return lines


def fmt(value, digits: int) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def markdown(result: dict) -> str:
    budget = result["time_budget"]
    lines = [
        "# The recurrent forecaster against the statistical methods (issue 20)",
        "",
        f"Machine: {machine_markdown(result['machine'])}",
        "",
        "Command:",
        "",
        f"    {result['command']}",
        "",
        "Each series: `rnnkit train forecast` with the default model flags"
        + (f" plus `{result['flags']}`" if result["flags"] else "")
        + f" and `--time-budget {budget:g}` (the whole command, its last evaluation and save included), then "
        "`rnnkit eval RUN --json`: the forecast from everything before the last H points against them, for the "
        "model and for the baselines fitted on the same history (`rnnkit.baselines.forecast`). H, the season m "
        "(MASE's scale and the seasonal baselines) and the features are those of "
        "benchmarks/results/forecast_baselines-cpu2.md. sMAPE and MAPE in %, coverage as a fraction.",
        "",
        "## Test split",
        "",
        "| series | method | MAE | RMSE | sMAPE | MASE | MAPE | cov 80 | cov 95 |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, r in result["series"].items():
        rows = [("**rnnkit**", r["model"])] + [(m, r["baselines"][m]) for m in METHODS]
        best = min(scores["mase"] for _, scores in rows if scores.get("mase") is not None)
        for label, scores in rows:
            cells = []
            for key, digits in COLUMNS:
                text = fmt(scores.get(key), digits)
                cells.append(f"**{text}**" if key == "mase" and scores["mase"] == best else text)
            lines.append(f"| {name} | {label} | " + " | ".join(cells) + " |")
    lines += ["", "Bold MASE: the lowest of the series.", "", "## The issue's targets", "",
              "| series | target | figures | met |", "|---|---|---|---|"]  # fmt: skip
    for row in result["targets"]:
        lines.append(f"| {row['series']} | {row['target']} | {row['figures']} | {'yes' if row['met'] else '**no**'} |")
    lines += ["", "## Where the statistical methods still win", ""]
    lines += wins(result) or ["- nowhere on these test splits (one window of H points each)"]
    lines += ["", "## The runs", "", "| series | steps | best step | seconds | parameters | command |",
              "|---|---|---|---|---|---|"]  # fmt: skip
    for name, r in result["series"].items():
        lines.append(f"| {name} | {r['steps']} | {r['best_step']} | {r['seconds']:.0f} | {r['parameters']:,} | "
                     f"`{r['command']}` |")  # fmt: skip
    lines += ["", "Notes of the runs:", ""]
    for name, r in result["series"].items():
        lines += [f"- {name}: {note}" for note in r["notes"]]
    lines += ["", "Fitted baselines:", ""]
    for name, r in result["series"].items():
        lines.append(f"- {name}: " + "; ".join(f"{m} {r['baselines'][m]['method']}" for m in METHODS))
    return "\n".join(lines)


def series_names(parser: argparse.ArgumentParser, text: str) -> list[str]:
    """The comma-separated ``--series``, each checked to be one of :data:`SERIES`."""
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in SERIES]
    if unknown:
        parser.error(f"unknown series {unknown[0]!r}; the series are: {', '.join(SERIES)}")
    return names


def run_each(names: list[str], run, what: str) -> dict:
    """``run(name, scratch)`` for each series, its runs in a temporary folder removed at the end."""
    scratch = Path(tempfile.mkdtemp(prefix="rnnkit-forecast-"))
    try:
        out = {}
        for name in names:
            print(f"{name}: {what}", file=sys.stderr)
            out[name] = run(name, scratch)
        return out
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--series", default=",".join(SERIES), help="comma-separated: " + ", ".join(SERIES))
    parser.add_argument("--time-budget", type=float, default=300.0, help="seconds of each training command")
    parser.add_argument("--flags", default="", help="extra `rnnkit train forecast` flags (an exploration, not the "
                        "default measurement)")  # fmt: skip
    parser.add_argument("--quick", action="store_true", help="2 s a series in a temporary folder, removed after: "
                        "a check of the script end to end (under a minute), not a measurement; writes nothing")
    args = parser.parse_args(argv)
    names = series_names(parser, args.series)
    budget = 2.0 if args.quick else args.time_budget
    extra = shlex.split(args.flags)
    command = "flock /tmp/cpu.lock python benchmarks/forecast.py" + "".join([
        f" --series {args.series}" if names != list(SERIES) else "",
        f" --time-budget {args.time_budget:g}" if args.time_budget != 300 else "",
        f" --flags {shlex.quote(args.flags)}" if args.flags else "", " --quick" if args.quick else ""])  # fmt: skip
    result = {"machine": machine("cpu"), "command": command, "time_budget": budget, "flags": args.flags,
              "quick": args.quick, "series": {}}  # fmt: skip
    result["series"] = run_each(names, lambda name, scratch: run_series(name, budget, extra, scratch),
                                f"training for {budget:g} s")  # fmt: skip
    result["targets"] = targets(result)
    text = markdown(result)
    if args.quick:
        print(text)
        print("--quick: nothing written (the figures above come from 2-second runs)", file=sys.stderr)
        return
    default = not args.flags and args.time_budget == 300 and names == list(SERIES)
    label = "" if default else f"{'-'.join(names)} {args.time_budget:g}s {args.flags}"
    write_results(variant_name("forecast", label), result, text, RESULTS)
    print(text)


if __name__ == "__main__":
    main()
