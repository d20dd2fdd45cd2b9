"""Training on several processes (issue 23): N torchrun processes x T threads against one process, same global batch.

Each row trains one task for ``--steps`` steps from its defaults (the preset for a 600 s budget, so the model is the
one a user gets) with the same global ``--batch-size``, once as one process with ``--threads`` threads and once per
entry of ``--processes`` under torchrun (gloo on the CPU, NCCL on GPUs), each process with
``threads / processes`` threads (at least one). The figure is the training speed, read from the run's own
metrics.jsonl: the median of the logged train windows' tokens/s after the first (warm-up) window, global over all
processes. Wall time (start to exit, evaluations and torchrun's start included) is reported beside it. ::

    flock /tmp/cpu.lock python benchmarks/ddp.py        # 2 CPU cores: 1 x 2 against 2 x 1, lm and classify
    python benchmarks/ddp.py --device cuda --processes 1 2 4 8 --threads 8  # a GPU machine: one process per GPU
    python benchmarks/ddp.py --quick                                      # a few steps of each: the script runs

Writes benchmarks/results/ddp-cpuN.{json,md} (ddp-gpu on GPUs); ``--quick`` writes nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import DATA, machine, machine_markdown, write_results
from rnnkit import checkpoint

TASKS = {  # the data and the few flags that make a row comparable (the rest are the preset's)
    "lm": ["train", "lm", "--level", "char", "--batch-size", "64"],  # the built-in corpus
    "classify": ["train", "classify", "--train", str(DATA / "corpora"), "--batch-size", "64"],
}


def train(argv: list[str], run: Path, processes: int, threads: int, device: str) -> dict:
    """One training run; its speed from metrics.jsonl and its wall time."""
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    rnnkit = ["-m", "rnnkit", *argv, "--out", str(run), "--device", device, "--quiet"]
    if processes == 1:
        command = [sys.executable, *rnnkit]
    else:
        command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node",
                   str(processes), *rnnkit]  # fmt: skip
    started = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{done.stderr[-2000:]}")
    records = checkpoint.read_metrics(run)
    speeds = [r["tokens_per_s"] for r in records if r.get("split") == "train" and r.get("tokens_per_s")]
    summary = json.loads((run / "summary.json").read_text())
    return {
        "processes": processes,
        "threads_per_process": threads,
        "tokens_per_s": statistics.median(speeds[1:] or speeds),
        "windows": len(speeds),
        "steps": summary["steps"],
        "wall_s": round(wall, 1),
        "final_train_loss": next(r["loss"] for r in reversed(records) if r.get("split") == "train"),
    }


def markdown(result: dict) -> str:
    a = result["args"]
    lines = [
        "# Training on several processes (benchmarks/ddp.py)",
        "",
        f"Machine: {machine_markdown(result['machine'])}.",
        f"Each run: {a['steps']} steps of the task's defaults (600 s preset), global batch 64, device {a['device']}; "
        "tokens/s is the median logged training window after the first, summed over processes; wall time includes "
        "start-up, the final evaluation and (under torchrun) the launcher.",
        "",
        "| task | processes x threads | tokens/s | ratio to 1 process | wall s |",
        "|---|---|---|---|---|",
    ]
    for task, rows in result["tasks"].items():
        base = rows[0]["tokens_per_s"]
        for row in rows:
            lines.append(f"| {task} | {row['processes']} x {row['threads_per_process']} | {row['tokens_per_s']:,.0f} | "
                         f"{row['tokens_per_s'] / base:.2f} | {row['wall_s']} |")  # fmt: skip
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", nargs="+", default=list(TASKS), choices=list(TASKS))
    parser.add_argument("--processes", nargs="+", type=int, default=[2], help="process counts besides 1")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="threads of the one process")
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    steps = 6 if args.quick else args.steps
    result = {"machine": machine(args.device), "args": {**vars(args), "steps": steps}, "tasks": {}}
    with tempfile.TemporaryDirectory(prefix="rnnkit-ddp-") as scratch:
        for task in args.tasks:
            argv = [*TASKS[task], "--time-budget", "600", "--max-steps", str(steps), "--log-every", "5" if not
                    args.quick else "2", "--eval-every", str(10 * steps)]  # fmt: skip
            rows = []
            for processes in [1, *[p for p in args.processes if p != 1]]:
                threads = args.threads if processes == 1 else max(1, args.threads // processes)
                run = Path(scratch) / f"{task}-{processes}"
                rows.append(train(argv, run, processes, threads, args.device))
                print(json.dumps({"task": task, **rows[-1]}), file=sys.stderr)
            result["tasks"][task] = rows
    print(markdown(result))
    if not args.quick:
        write_results("ddp", result, markdown(result))


if __name__ == "__main__":
    main()
