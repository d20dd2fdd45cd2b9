"""Encoder-decoder benchmarks on the algorithmic tasks (issue 5): sort, add, copy, execute.

Each configuration is one ``rnnkit train seq2seq`` run under a time budget, then ``rnnkit eval RUN``
on the task's held-out test set (teacher-forced token accuracy and free-running exact match). Results
go to ``benchmarks/results/seq2seq_<name>.json`` and ``.md`` with the machine they ran on.

    python benchmarks/seq2seq.py sort      --device cuda --budget 1800   # with and without attention
    python benchmarks/seq2seq.py add       --device cuda --budget 1800   # 9-digit addition: baseline, combined
    python benchmarks/seq2seq.py copy      --device cuda --budget 300    # accuracy against length
    python benchmarks/seq2seq.py execute   --device cuda --budget 600    # (length, nesting) x curriculum
    python benchmarks/seq2seq.py all       --device cuda
    python benchmarks/seq2seq.py sort --smoke --results /tmp/smoke       # seconds: checks the script only

``--budget`` is the training time of each configuration in seconds (evaluation comes on top);
``--set "--lr 1e-3 --batch-size 64"`` appends options to every training run (later options win).
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from pathlib import Path

import torch

from common import RESULTS, ROOT, machine, machine_markdown, rnnkit, write_results
from rnnkit.checkpoint import read_metrics

RUNS = ROOT / "benchmarks" / "runs"  # ignored by git

# Defaults chosen for learning quickly. Attention lets the decoder look up the next number directly;
# without it the whole multiset must pass through the state, hence a bidirectional encoder and a
# wider state. Luong attention without input feeding lets teacher forcing run the decoder in one call:
# on 2 CPU cores a sort training step (B=128) takes half the time of input feeding's at H=256, and
# H=128 without feeding takes 1/4.7 of it, which buys more than the feedback and the width do within a
# time budget (valid token accuracy 0.84 after 4 minutes, against 0.81 after 15 with feeding at H=256).
# The cosine schedule decays the rate to 0 at the end.
COMMON = ["--schedule", "cosine", "--lr", "2e-3", "--batch-size", "128", "--clip-norm", "5"]
SORT = {
    "attention": "--attention luong --no-input-feeding --bidirectional --hidden-size 128 --embedding-size 64".split(),
    "no-attention": "--bidirectional --hidden-size 512 --embedding-size 64".split(),
}
# Addition is learnt at once for short numbers (3 digits: exact in about a minute) and slowly for long ones, the
# decoder has to find digit i of both numbers by position; the curriculum is what helps, and it helps more when
# it moves on sooner (advance at 0.9 reached 9 digits in 8 minutes, against 7 digits in 20 at 0.95 and H=256).
ADD = ["--attention", "luong", "--no-input-feeding", "--bidirectional", "--hidden-size", "128", "--embedding-size",
       "32", "--epoch-size", "100", "--advance-at", "0.9"]  # fmt: skip
COPY = ["--num-layers", "2", "--hidden-size", "256", "--embedding-size", "32"]  # no attention: memorization
COPY_VARIANTS = {"plain": [], "reverse": ["--reverse-input"], "double": ["--double-input"]}
# The paper's model: 2 layers of 400 LSTM units, no attention, weights from U(-0.08, 0.08).
EXECUTE = ["--num-layers", "2", "--hidden-size", "400", "--embedding-size", "64", "--init-range", "0.08",
           "--epoch-size", "250"]  # fmt: skip
STRATEGIES = ["baseline", "naive", "mix", "combined"]
EXECUTE_LEVELS = [(4, 1), (4, 2), (6, 2)]


def run_config(name: str, train_args: list[str], args: argparse.Namespace) -> dict:
    """Train one configuration under the budget, evaluate it on the test set, return one result row."""
    out = args.runs / f"{args.tag}-{name}"
    if out.exists():
        raise SystemExit(f"{out} exists; remove it or pass another --tag")
    budget = ["--time-budget", str(args.budget)]
    started = time.perf_counter()
    trained = rnnkit("train", "seq2seq", *train_args, *COMMON, *budget, *shlex.split(args.set),
                     "--device", args.device, "--seed", str(args.seed), "--out", str(out), "--quiet")  # fmt: skip
    tested = rnnkit("eval", str(out), "--device", args.device, "--batch-size", "256")
    summary = trained["summary"]
    row = {
        "name": name,
        "train_args": train_args,
        "test_token_accuracy": tested["metrics"]["token_accuracy"],
        "test_sequence_accuracy": tested["metrics"]["sequence_accuracy"],
        "test_examples": tested["metrics"]["examples"],
        "best_valid": {k: v for k, v in (summary.get("best") or {}).items() if k not in ("split", "best")},
        "steps": summary["steps"],
        "train_seconds": summary["seconds"],
        "wall_seconds": round(time.perf_counter() - started, 1),
        "parameters": summary["parameters"],
        "valid_token_accuracy_0.99_at_s": seconds_to_reach(out, "token_accuracy", 0.99),
        "run": str(out),
    }
    print(f"{name}: token {row['test_token_accuracy']:.4f}, sequence {row['test_sequence_accuracy']:.4f} "
          f"({row['steps']} steps, {row['train_seconds']:.0f} s)", file=sys.stderr, flush=True)  # fmt: skip
    return row


def seconds_to_reach(run: Path, metric: str, level: float) -> float | None:
    """Training seconds at the first validation whose ``metric`` reached ``level`` (None: never)."""
    for record in read_metrics(run):
        if record["split"] == "valid" and record.get(metric, 0.0) >= level:
            return record["elapsed"]
    return None


def write_table(bench: str, rows: list[dict], args: argparse.Namespace, notes: str) -> None:
    info = machine(args.device)
    record = {"benchmark": f"seq2seq_{bench}", "machine": info, "device": args.device, "budget_s": args.budget,
              "seed": args.seed, "common_args": COMMON + shlex.split(args.set), "smoke": args.smoke,
              "results": rows}  # fmt: skip
    lines = [f"# seq2seq {bench}", "", notes, "",
             f"Machine: {machine_markdown(info)}; device {args.device}; {args.budget:g} s of training per "
             f"configuration; seed {args.seed}." + (" SMOKE SETTINGS: not a result." if args.smoke else ""), "",
             "| configuration | test token accuracy | test exact match | valid token accuracy >= 0.99 after | steps "
             "| train s | parameters |", "|---|---|---|---|---|---|---|"]  # fmt: skip
    for r in rows:
        reached = r.get("valid_token_accuracy_0.99_at_s")
        reached = "never" if reached is None else f"{reached:.0f} s"
        lines.append(f"| {r['name']} | {r['test_token_accuracy']:.4f} | {r['test_sequence_accuracy']:.4f} | "
                     f"{reached} | {r['steps']} | {r['train_seconds']:.0f} | {r['parameters']:,} |")  # fmt: skip
    write_results(f"seq2seq_{bench}", record, "\n".join(lines), args.results)


# -- the benchmarks -------------------------------------------------------------------------------


def bench_sort(args) -> None:
    L, V = (5, 9) if args.smoke else (32, 32)
    task = ["--task", "sort", "--length", str(L), "--vocab", str(V)]
    rows = [run_config(f"sort-L{L}-V{V}-{name}", task + model, args) for name, model in models(SORT, args).items()
            if name in args.models]  # fmt: skip
    write_table("sort", rows, args, f"Sorting {L} integers from 1..{V}. Target: token accuracy >= 0.99 within 30 "
                  "minutes; the course notes report ~0.95 after six days without attention.")  # fmt: skip


def bench_add(args) -> None:
    k = 2 if args.smoke else 9
    rows = []
    for strategy in [s for s in ("baseline", "combined") if s in args.strategies]:
        train = ["--task", "add", "--length", str(k), "--curriculum", strategy, *small(ADD, args)]
        rows.append(run_config(f"add-{k}digits-{strategy}", train, args))
    write_table("add", rows, args, f"Adding two {k}-digit numbers. Target: exact match >= 0.99 (Zaremba & "
                  "Sutskever 2014: 99% with the combined curriculum).")  # fmt: skip


def bench_copy(args) -> None:
    lengths = [3, 5] if args.smoke else args.lengths
    rows = []
    for variant, extra in COPY_VARIANTS.items():
        if variant not in args.variants:
            continue
        for length in lengths:
            train = ["--task", "copy", "--length", str(length), *extra, *small(COPY, args)]
            rows.append(run_config(f"copy-{variant}-L{length}", train, args))
    write_table("copy", rows, args, "Copying random digits (memorization) against length, plain, with the input "
                  "reversed, and with the input presented twice, by an encoder-decoder without attention.")  # fmt: skip


def bench_execute(args) -> None:
    levels = [(2, 1)] if args.smoke else EXECUTE_LEVELS
    strategies = STRATEGIES[:2] if args.smoke else STRATEGIES
    rows = []
    for length, nesting in levels:
        for strategy in [s for s in strategies if s in args.strategies]:
            train = ["--task", "execute", "--length", str(length), "--nesting", str(nesting), "--curriculum",
                     strategy, *small(EXECUTE, args)]  # fmt: skip
            rows.append(run_config(f"execute-L{length}-N{nesting}-{strategy}", train, args))
    write_table("execute", rows, args, "Learning to Execute (Zaremba & Sutskever 2014): programs read character by "
                  "character; the paper reports teacher-forced character accuracy (our token accuracy).")  # fmt: skip


def models(table: dict, args) -> dict:
    return {name: small(model, args) for name, model in table.items()}


def small(model: list[str], args) -> list[str]:
    """In smoke mode, shrink the model so a configuration runs in seconds."""
    if not args.smoke:
        return model
    return [*model, "--hidden-size", "32", "--embedding-size", "16", "--num-layers", "1", "--epoch-size", "20",
            "--valid-size", "100", "--test-size", "100"]  # fmt: skip


BENCHES = {"sort": bench_sort, "add": bench_add, "copy": bench_copy, "execute": bench_execute}
DEFAULT_BUDGETS = {"sort": 1800, "add": 1800, "copy": 300, "execute": 600}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("bench", choices=[*BENCHES, "all"])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--budget", type=float, help="training seconds per configuration (default: per benchmark)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--set", default="", help="extra options for every training run, as one string")
    parser.add_argument("--lengths", type=int, nargs="+", default=[5, 10, 20, 40], help="copy: lengths")
    parser.add_argument("--variants", nargs="+", default=list(COPY_VARIANTS), help="copy: plain reverse double")
    parser.add_argument("--models", nargs="+", default=list(SORT), help="sort: attention no-attention")
    parser.add_argument("--strategies", nargs="+", default=STRATEGIES, help="add, execute: curricula to run")
    parser.add_argument("--results", type=Path, default=RESULTS)
    parser.add_argument("--runs", type=Path, default=RUNS)
    parser.add_argument("--tag", default=time.strftime("%Y%m%d-%H%M%S"), help="prefix of the run directories")
    parser.add_argument("--smoke", action="store_true", help="tiny settings to check the script (5 s budgets)")
    args = parser.parse_args(argv)
    for bench in BENCHES if args.bench == "all" else [args.bench]:
        budget = args.budget
        args.budget = 5.0 if args.smoke else (budget or DEFAULT_BUDGETS[bench])
        BENCHES[bench](args)
        args.budget = budget


if __name__ == "__main__":
    main()
