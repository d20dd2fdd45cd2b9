"""What a user gets from the defaults: every task trained with nothing but its data and ``--time-budget``.

Issue 17's targets on 2 CPU cores, each run as a user would type it (no model, optimiser or schedule flag),
through the installed command line in a fresh process, so the time counted is the whole command's::

    python benchmarks/defaults.py                       # every target (about two hours)
    python benchmarks/defaults.py --only lm-char-120 sort-600
    python benchmarks/defaults.py --quick               # each target for a few seconds; writes nothing
    python benchmarks/defaults.py --only sst2-150 --extra "--embedding-size 100" --seeds 0 1 2

``--extra`` and ``--seeds`` make a sweep around the defaults: the same commands with more flags (or other
seeds), kept apart in ``benchmarks/results/defaults_sweep-cpu2.{json,md}``, which is how a candidate default
is tried against the current one before it goes into a task's presets.

Each row keeps the command, the wall time of the whole command against its budget, and the validation
(or test, for seq2seq: ``rnnkit eval RUN``) figure against the target. Results accumulate in
``benchmarks/results/defaults-cpu2.{json,md}``: a later run of some rows replaces those rows only.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import DATA, RESULTS, machine, machine_markdown  # noqa: E402

CONLL = DATA / "conll2003"
SST = DATA / "sst" / "sentences"
TREES = DATA / "sst" / "trees"
PTB = DATA / "ptb"


@dataclass(frozen=True)
class Target:
    name: str
    args: list[str]  # after `rnnkit train`, without --time-budget / --out
    budget: float
    metric: str  # a key of the best validation record, or "test:KEY" for a key of `rnnkit eval RUN --json`
    goal: float
    higher: bool  # whether higher is better
    note: str = ""


TARGETS = [
    Target("lm-char-120", ["lm"], 120, "loss", 1.85, False, "tiny Shakespeare, last 10%; nats/char"),
    Target("lm-char-600", ["lm"], 600, "loss", 1.47, False, "tiny Shakespeare, last 10%; nats/char"),
    Target("lm-word-600", ["lm", "--level", "word", "--data", str(PTB / "ptb.train.txt.gz"),
                           "--valid", str(PTB / "ptb.valid.txt")], 600, "perplexity", 150, False, "PTB valid"),
    Target("sort-600", ["seq2seq", "--task", "sort", "--length", "32", "--vocab", "32"], 600, "test:sequence_accuracy",
           0.90, True, "also token accuracy >= 0.99"),
    Target("add-900", ["seq2seq", "--task", "add", "--length", "9"], 900, "test:sequence_accuracy", 0.95, True),
    Target("copy-300", ["seq2seq", "--task", "copy", "--length", "20"], 300, "test:sequence_accuracy", 0.95, True),
    Target("execute-1800", ["seq2seq", "--task", "execute", "--length", "4", "--nesting", "2"], 1800,
           "test:token_accuracy", 0.60, True),
    Target("tag-300", ["tag", "--train", str(CONLL / "eng.train"), "--valid", str(CONLL / "eng.testa")], 300,
           "f1", 0.87, True, "CoNLL-2003 dev (eng.testa)"),
    Target("tag-900", ["tag", "--train", str(CONLL / "eng.train"), "--valid", str(CONLL / "eng.testa")], 900,
           "f1", 0.90, True, "CoNLL-2003 dev (eng.testa)"),
    Target("sst2-150", ["classify", "--train", str(SST / "stsa.binary.train"), "--valid",
                        str(SST / "stsa.binary.dev")], 150, "accuracy", 0.80, True, "SST-2 dev, sentences only"),
    Target("sst2-trees-150", ["classify", "--train", str(TREES / "train.txt"), "--valid", str(TREES / "dev.txt")],
           150, "accuracy", 0.80, True, "SST-2 dev (the 872 sentences of stsa.binary.dev), trained on the "
           "treebank's labelled phrases as in Socher et al. 2013 and Kim 2014"),
    Target("sst2-trees-600", ["classify", "--train", str(TREES / "train.txt"), "--valid", str(TREES / "dev.txt")],
           600, "accuracy", 0.84, True, "as sst2-trees-150, at the hand-tuned benchmark's target"),
    Target("corpora-180", ["classify", "--train", str(DATA / "corpora")], 180, "accuracy", 0.95, True,
           "held-out 50-token windows of the four corpora"),
]


def rnnkit(*argv: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "rnnkit", *argv], capture_output=True, text=True)


@contextlib.contextmanager
def holding(lock: str | None):
    """Hold an flock on ``lock`` (when given), so that nothing else heavy runs beside a timed run."""
    if lock is None:
        yield
        return
    with open(lock, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
    time.sleep(20)  # let the work that waited for the lock take it before the next run


def run_target(target: Target, out: Path, budget: float, extra: list[str] = ()) -> dict:
    run = out / target.name
    if run.exists():
        shutil.rmtree(run)
    argv = ["train", *target.args, *extra, "--time-budget", f"{budget:g}", "--out", str(run), "--json", "--quiet"]
    started = time.perf_counter()
    done = rnnkit(*argv)
    seconds = time.perf_counter() - started  # the whole command, process start and data reading included
    if done.returncode != 0:
        return {"target": target.name, "error": done.stderr.strip().splitlines()[-1:], "command": argv}
    result = json.loads(done.stdout.strip().splitlines()[-1])
    summary = result["summary"]
    row = {"target": target.name, "command": "rnnkit " + " ".join(argv[:-4]), "budget": budget,
           "command_seconds": round(seconds, 1), "train_seconds": summary["seconds"], "steps": summary["steps"],
           "best": result["metrics"],
           "defaults": json.loads((run / "config.json").read_text()).get("defaults")}  # fmt: skip
    if target.metric.startswith("test:"):
        tested = rnnkit("eval", str(run), "--json")
        row["test"] = json.loads(tested.stdout.strip().splitlines()[-1])["metrics"] if tested.returncode == 0 else None
        value = (row["test"] or {}).get(target.metric[5:])
    else:
        value = result["metrics"].get(target.metric)
    row["value"] = value
    row["met"] = value is not None and (value >= target.goal if target.higher else value <= target.goal)
    return row


def machines_markdown(rows: dict) -> tuple[str, dict]:
    """The distinct machines that ran ``rows`` as one header line, and each row's label (A, B, ...) in it."""
    kinds: list[str] = []
    for row in rows.values():
        if machine_markdown(row["machine"]) not in kinds:
            kinds.append(machine_markdown(row["machine"]))
    label = {kind: chr(ord("A") + i) for i, kind in enumerate(kinds)}
    header = "; ".join(f"{label[kind]}: {kind}" for kind in kinds)
    return header, {name: label[machine_markdown(row["machine"])] for name, row in rows.items()}


def markdown(rows: dict) -> str:
    machines, label = machines_markdown(rows)
    lines = ["# The defaults: every task with nothing but its data and --time-budget", "",
             f"Machines: {machines}. Command: `python benchmarks/defaults.py [--only NAME ...]`; "
             "each row is one fresh `rnnkit train` process; its wall time counts everything from the start "
             "of the command.", "",
             "| target | command | budget | wall s | steps | result | goal | met | machine |",
             "|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for target in TARGETS:
        row = rows.get(target.name)
        if row is None:
            lines.append(f"| {target.name} | | {target.budget:g} | | | not run | {target.goal:g} | | |")
            continue
        if "error" in row:
            lines.append(f"| {target.name} | | {target.budget:g} | | | error: {row['error']} | {target.goal:g} | no "
                         f"| {label[target.name]} |")
            continue
        metric = target.metric.removeprefix("test:")
        extra = ""
        if row.get("test"):
            extra = f" (test token {row['test'].get('token_accuracy', float('nan')):.4f})"
        lines.append(f"| {target.name} | `{row['command']}` | {row['budget']:g} | {row['command_seconds']:.0f} | "
                     f"{row['steps']} | {metric} {row['value']:.4f}{extra} | {'<=' if not target.higher else '>='} "
                     f"{target.goal:g} | {'yes' if row['met'] else 'no'} | {label[target.name]} |")  # fmt: skip
    notes = [f"- {t.name}: {t.note}" for t in TARGETS if t.note]
    return "\n".join(lines + ["", *notes, ""])


def sweep_markdown(rows: dict) -> str:
    machines, label = machines_markdown(rows)
    lines = ["# Sweeps around the defaults", "",
             f"Machines: {machines}. Command: `python benchmarks/defaults.py --only NAME "
             "--extra FLAGS --seeds N ...`; each row is one fresh `rnnkit train` process with the target's "
             "command and the flags shown (none: the defaults).", "",
             "| target | flags | seed | wall s | steps | result | machine |",
             "|---|---|---|---|---|---|---|"]  # fmt: skip
    for name, row in rows.items():
        value = "error" if "error" in row else f"{row['value']:.4f}"
        lines.append(f"| {row['target']} | `{row['extra'] or '(defaults)'}` | {row['seed']} | "
                     f"{row.get('command_seconds', 0):.0f} | {row.get('steps', '')} | {value} | "
                     f"{label[name]} |")  # fmt: skip
    return "\n".join(lines + [""])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", nargs="+", metavar="NAME", help=" ".join(t.name for t in TARGETS))
    parser.add_argument("--out", type=Path, default=Path("runs/bench-defaults"), help="run directories")
    parser.add_argument("--lock", help="hold this flock file around each process (others wait between runs)")
    parser.add_argument("--quick", action="store_true", help="every target for 5 s; writes no results")
    parser.add_argument("--extra", default="", help="flags added to every command (a sweep around the defaults)")
    parser.add_argument("--seeds", nargs="+", type=int, help="run each target once per seed (a sweep)")
    args = parser.parse_args()
    chosen = [t for t in TARGETS if args.only is None or t.name in args.only]
    if args.only and len(chosen) != len(args.only):
        parser.error(f"unknown target among {args.only}; known: {' '.join(t.name for t in TARGETS)}")
    os.environ.setdefault("PYTHONPATH", str(Path(__file__).resolve().parent.parent / "src"))
    info = machine("cpu")
    sweep = bool(args.extra or args.seeds)
    stem = RESULTS / ("defaults_sweep-cpu2" if sweep else "defaults-cpu2")
    for target in chosen:
        for seed in args.seeds or [None]:
            extra = args.extra.split() + ([] if seed is None else ["--seed", str(seed)])
            with holding(args.lock):
                row = run_target(target, args.out, 5 if args.quick else target.budget, extra)
            row["machine"] = info
            print(json.dumps(row), flush=True)
            if args.quick:
                continue
            if sweep:
                row.update(extra=args.extra, seed=seed or 0)
            key = f"{target.name} [{args.extra}] {seed or 0}" if sweep else target.name
            # Read the file just before writing it: another run may have added rows while this one trained.
            saved = stem.with_suffix(".json")
            rows = {**(json.loads(saved.read_text())["rows"] if saved.exists() else {}), key: row}
            stem.with_suffix(".json").write_text(json.dumps({"rows": rows}, indent=1))
            stem.with_suffix(".md").write_text((sweep_markdown if sweep else markdown)(rows))


if __name__ == "__main__":
    main()
