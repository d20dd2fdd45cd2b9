"""How often the default forecaster's intervals cover, measured on K unseen windows rather than one (issue 20).

benchmarks/forecast.py scores one test window per series: 24 or 30 points, so an 80% interval's coverage moves
in steps of 1/24 and a calibrated interval lands outside 75-85% often (binomial sd about 0.08, more for
autocorrelated points). Here each series' file is cut K x H rows short, `rnnkit train forecast` runs on the cut
file with the default flags, and `rnnkit eval RUN --data FULL.csv --backtest K` scores the K windows of H points
that were cut off: none of them trained on, calibrated on or chosen on. The table gives the coverage pooled over
the K windows, its spread across them, and the MASE of the model and the baselines over the same windows.

    flock /tmp/cpu.lock python benchmarks/forecast_coverage.py                 # 3 series x 300 s, K = 10
    python benchmarks/forecast_coverage.py --quick                             # 2 s a series; writes nothing

Airline (144 months) has no room for ten unseen 24-month windows and is left out by default.
Writes benchmarks/results/forecast_coverage-cpuN.{md,json}.
"""

from __future__ import annotations

import argparse
import shlex
import statistics
import sys
from pathlib import Path

from common import RESULTS, machine, machine_markdown, rnnkit, variant_name, write_results
from forecast import METHODS, run_each, series_names, train_flags
from forecast_baselines import FOLDER, SERIES

DEFAULT_SERIES = ("melbourne", "sunspots", "pm25")
LEVELS = (80, 95)


def cut(source: Path, rows: int, target: Path) -> Path:
    """``source`` without its last ``rows`` data rows (the header kept)."""
    lines = source.read_text(encoding="utf-8").splitlines(keepends=True)
    while lines and not lines[-1].strip():
        lines.pop()
    if len(lines) - 1 <= rows:
        raise SystemExit(f"{source.name} has {len(lines) - 1} rows; cannot hold out {rows}")
    target.write_text("".join(lines[: len(lines) - rows]), encoding="utf-8")
    return target


def run_series(name: str, budget: float, folds: int, extra: list[str], scratch: Path) -> dict:
    cfg = SERIES[name]
    full = FOLDER / cfg["file"]
    held = folds * cfg["horizon"]
    short = cut(full, held, scratch / f"{name}-cut.csv")
    run = scratch / f"forecast-{name}"
    flags = train_flags(cfg)
    flags[flags.index("--data") + 1] = str(short)
    command = ["train", "forecast", *flags, *extra, "--time-budget", f"{budget:g}", "--out", str(run), "--quiet"]
    trained = rnnkit(*command)
    evaluated = rnnkit("eval", str(run), "--data", str(full), "--backtest", str(folds))
    backtest = evaluated.get("backtest") or evaluated["details"]["backtest"]
    unseen = [f for f in backtest["per_fold"] if not f["in_training"]]
    if len(unseen) != folds:
        raise SystemExit(f"{name}: {folds - len(unseen)} of the {folds} folds overlap the training rows")
    model = [f["model"] for f in unseen]
    coverage = {}
    for level in LEVELS:
        per = [m[f"coverage_{level}"] for m in model if isinstance(m.get(f"coverage_{level}"), float)]
        coverage[level] = {"pooled": statistics.fmean(per), "min": min(per), "max": max(per),
                           "folds_in_range": sum(level - 5 <= 100 * c <= level + 5 for c in per) if level == 80
                           else None, "per_fold": per}  # fmt: skip
    return {
        "command": "rnnkit " + shlex.join(command[:-1]).replace(str(scratch) + "/", "").replace(
            str(FOLDER) + "/", "timeseries/"),
        "held_out_rows": held, "folds": folds, "horizon": cfg["horizon"], "step": backtest["step"],
        "steps": trained["summary"]["steps"], "seconds": trained["summary"]["seconds"],
        "coverage": coverage,
        "mase": {"rnnkit": backtest["model"].get("mase"),
                 **{m: backtest["baselines"][m].get("mase") for m in METHODS}},
        "coverage_baselines": {m: backtest["baselines"][m].get("coverage_80") for m in METHODS},
    }  # fmt: skip


def markdown(result: dict) -> str:
    lines = [
        "# Interval coverage of the default forecaster on unseen windows (issue 20)", "",
        f"Machine: {machine_markdown(result['machine'])}", "", "Command:", "", f"    {result['command']}", "",
        __doc__.split("\n\n")[1].replace("\n", " "), "",
        "| series | unseen windows x H | 80% coverage, pooled | per window: min-max | windows in 75-85% | "
        "95% coverage, pooled | MASE rnnkit | naive | seasonal naive | ets | arima |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]  # fmt: skip
    for name, r in result["series"].items():
        c80, c95, mase = r["coverage"][80], r["coverage"][95], r["mase"]
        cells = [f"{mase[k]['mean']:.3f} ± {mase[k]['std']:.3f}" if mase.get(k) else "-"
                 for k in ("rnnkit", *METHODS)]  # fmt: skip
        lines.append(f"| {name} | {r['folds']} x {r['horizon']} | {c80['pooled']:.3f} | {c80['min']:.2f}-"
                     f"{c80['max']:.2f} | {c80['folds_in_range']} of {r['folds']} | {c95['pooled']:.3f} | "
                     + " | ".join(cells) + " |")  # fmt: skip
    lines += ["", "MASE: mean ± spread (population std) over the windows; the baselines refitted before each.", "",
              "The runs:", ""]  # fmt: skip
    for name, r in result["series"].items():
        lines.append(
            f"- {name}: `{r['command']}` ({r['steps']} steps, {r['seconds']:.0f} s), then "
            f"`rnnkit eval RUN --data {SERIES[name]['file']} --backtest {r['folds']}`"
        )
    return "\n".join(lines) + "\n"


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--series", default=",".join(DEFAULT_SERIES), help="comma-separated: " + ", ".join(SERIES))
    parser.add_argument("--time-budget", type=float, default=300.0, help="seconds of each training command")
    parser.add_argument("--folds", type=int, default=10, help="unseen windows of H points per series")
    parser.add_argument("--flags", default="", help="extra `rnnkit train forecast` flags (an exploration, not the "
                        "default measurement; its results get a suffix)")  # fmt: skip
    parser.add_argument("--quick", action="store_true", help="2 s a series, 2 windows; writes nothing")
    args = parser.parse_args(argv)
    extra = shlex.split(args.flags)
    names = series_names(parser, args.series)
    budget, folds = (2.0, 2) if args.quick else (args.time_budget, args.folds)
    command = "flock /tmp/cpu.lock python benchmarks/forecast_coverage.py" + "".join([
        f" --series {args.series}" if names != list(DEFAULT_SERIES) else "",
        f" --time-budget {args.time_budget:g}" if args.time_budget != 300 else "",
        f" --folds {args.folds}" if args.folds != 10 else "",
        f" --flags {shlex.quote(args.flags)}" if args.flags else "", " --quick" if args.quick else ""])  # fmt: skip
    result = {"machine": machine("cpu"), "command": command, "time_budget": budget, "flags": args.flags,
              "series": {}}  # fmt: skip
    result["series"] = run_each(names, lambda name, scratch: run_series(name, budget, folds, extra, scratch),
                                f"training for {budget:g} s on all but the last {folds} windows")  # fmt: skip
    text = markdown(result)
    if args.quick:
        print(text)
        print("--quick: nothing written (2-second runs)", file=sys.stderr)
        return
    default = not args.flags and args.time_budget == 300 and args.folds == 10 and names == list(DEFAULT_SERIES)
    label = "" if default else f"{'-'.join(names)} {args.time_budget:g}s {args.folds} {args.flags}"
    write_results(variant_name("forecast_coverage", label), result, text, RESULTS)
    print(text)


if __name__ == "__main__":
    main()
