"""Why the sentences-only SST-2 row of the defaults table misses 0.80: the learning curves (issue 17).

Runs the two SST-2 rows of ``benchmarks/defaults.py`` at 150 s with the defaults only (no flag but the data
and ``--time-budget``), one fresh ``rnnkit train classify`` process each, and plots what their
``metrics.jsonl`` logged against the seconds of the run: training loss, dev loss and dev accuracy.

- sentences only: ``stsa.binary.train`` (6 920 sentences, one label each);
- treebank: ``trees/train.txt``, every labelled phrase of the same 6 920 training trees (Socher et al. 2013),
  scored on the same 872 dev sentences.

The table gives, for each epoch of a run, the mean training loss over the epoch and the dev figures of the
last evaluation inside it: the sentences-only run's dev loss turns up while its training loss keeps falling.

    python benchmarks/sst_curve.py            # about 4 minutes; writes sst_curve-cpu2.{json,md,png}
    python benchmarks/sst_curve.py --quick    # 10 s a run; writes nothing
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import RESULTS, machine, machine_markdown, machine_tag, write_results  # noqa: E402
from defaults import TARGETS, rnnkit  # noqa: E402

NAME = "sst_curve"
# The commands of the defaults table's two SST-2 rows, so the curves are of exactly what that table measures.
ROWS = {target.name: target for target in TARGETS}
RUNS = {
    "sentences": ("sentences only (stsa.binary.train)", ROWS["sst2-150"].args),
    "trees": ("treebank phrases (trees/train.txt)", ROWS["sst2-trees-150"].args),
}


def train(args: list[str], budget: float, out: Path) -> dict:
    """One fresh ``rnnkit train ARGS`` process; its logged records and summary."""
    argv = ["train", *args, "--time-budget", f"{budget:g}", "--out", str(out), "--quiet"]
    done = rnnkit(*argv)
    if done.returncode != 0:
        raise SystemExit(f"rnnkit {' '.join(argv)} failed: {done.stderr.strip().splitlines()[-1:]}")
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines() if line.strip()]

    def logged(split: str, keys: tuple[str, ...]) -> list[dict]:
        return [{k: r[k] for k in keys} for r in records if r["split"] == split]

    return {
        "command": "rnnkit " + " ".join(argv[:-3]),
        "train": logged("train", ("step", "epoch", "loss", "elapsed")),
        "valid": logged("valid", ("step", "epoch", "loss", "accuracy", "elapsed")),
        "summary": json.loads((out / "summary.json").read_text()),
    }


def by_epoch(run: dict) -> list[dict]:
    """Per epoch: the mean logged training loss in it, and the last dev evaluation inside it."""
    rows = []
    for epoch in range(math.ceil(run["summary"]["epochs"])):
        train = [r["loss"] for r in run["train"] if epoch < r["epoch"] <= epoch + 1]
        valid = [r for r in run["valid"] if epoch < r["epoch"] <= epoch + 1]
        if train and valid:
            rows.append({"epoch": epoch + 1, "train_loss": sum(train) / len(train), "valid_loss": valid[-1]["loss"],
                         "accuracy": valid[-1]["accuracy"], "elapsed": valid[-1]["elapsed"]})  # fmt: skip
    return rows


def markdown(result: dict, png: str) -> str:
    lines = [
        "# SST-2 dev under the defaults: sentences only against the treebank's phrases (issue 17)",
        "",
        f"Machine: {machine_markdown(result['machine'])}. Command: `python benchmarks/sst_curve.py`; "
        f"each run is one fresh process with the defaults only. Plot: {png}",
        "",
    ]
    for run in result["runs"].values():
        s = run["summary"]
        best = s["best"]
        lines += [
            f"## {run['label']}",
            "",
            f"`{run['command']}`: {s['steps']} steps, {s['epochs']:.2f} epochs in {s['seconds']:.0f} s, "
            f"stopped by {s['stopped']}; best dev loss {best['loss']:.4f} at step {best['step']} "
            f"(epoch {best['epoch']:.2f}), dev accuracy there {best['accuracy']:.4f}.",
            "",
            "| epoch | mean training loss | dev loss (last evaluation in the epoch) | dev accuracy | seconds |",
            "|---|---|---|---|---|",
        ]
        lines += [f"| {r['epoch']} | {r['train_loss']:.4f} | {r['valid_loss']:.4f} | {r['accuracy']:.4f} | "
                  f"{r['elapsed']:.0f} |" for r in run["epochs"]]  # fmt: skip
        lines.append("")
    return "\n".join(lines)


def plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (axl, axa) = plt.subplots(1, 2, figsize=(13, 5))
    colors = {"sentences": "tab:red", "trees": "tab:blue"}
    for key, run in result["runs"].items():
        color = colors[key]
        axl.plot([r["elapsed"] for r in run["train"]], [r["loss"] for r in run["train"]], color=color,
                 linewidth=0.8, alpha=0.6, label=f"training loss, {run['label']}")  # fmt: skip
        axl.plot([r["elapsed"] for r in run["valid"]], [r["loss"] for r in run["valid"]], color=color,
                 linestyle="--", marker=".", label=f"dev loss, {run['label']}")  # fmt: skip
        axa.plot([r["elapsed"] for r in run["valid"]], [r["accuracy"] for r in run["valid"]], color=color,
                 marker=".", label=run["label"])  # fmt: skip
        best = run["summary"]["best"]
        axa.plot([best["elapsed"]], [best["accuracy"]], color=color, marker="*", markersize=14, linestyle="none")
    for r in result["runs"]["sentences"]["epochs"]:
        for ax in (axl, axa):
            ax.axvline(r["elapsed"], color="tab:red", linewidth=0.5, linestyle=":")
    axl.set(xlabel="seconds of the run", ylabel="cross-entropy (nats)", ylim=(0, 0.8),
            title="SST-2, defaults, 150 s: loss (dotted: the sentences run's epochs)")  # fmt: skip
    axl.legend(fontsize=8)
    axa.axhline(0.80, color="black", linestyle="--", linewidth=1, label="target 0.80")
    axa.set(xlabel="seconds of the run", ylabel="dev accuracy (872 sentences)", ylim=(0.5, 0.9),
            title="dev accuracy (star: the kept model, best dev loss)")  # fmt: skip
    axa.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--budget", type=float, default=150.0)
    parser.add_argument("--quick", action="store_true", help="10 s a run; writes nothing")
    args = parser.parse_args(argv)
    if args.budget <= 0:
        print(f"sst_curve: error: --budget must be > 0, got {args.budget:g}", file=sys.stderr)
        return 2
    budget = 10.0 if args.quick else args.budget
    result = {"budget": budget, "runs": {}}
    with tempfile.TemporaryDirectory() as scratch:
        for key, (label, data) in RUNS.items():
            print(f"sst_curve: {label}, {budget:g} s", file=sys.stderr, flush=True)
            run = train(data, budget, Path(scratch) / key)
            run["label"], run["epochs"] = label, by_epoch(run)
            result["runs"][key] = run
    result["machine"] = machine("cpu")
    if args.quick:
        print(markdown(result, "(not written)"))
        return 0
    png = f"{NAME}-{machine_tag(result['machine'])}.png"
    write_results(NAME, result, markdown(result, png))
    plot(result, RESULTS / png)
    return 0


if __name__ == "__main__":
    sys.exit(main())
