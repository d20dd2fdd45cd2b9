"""Stanford Sentiment Treebank: dev accuracy of SST-2 (binary) and SST-5 (fine-grained), no pretrained embeddings.

Targets: SST-2 dev >= 0.84, SST-5 dev >= 0.42. As in Socher et al. 2013, Kim 2014 and Tai et al. 2015 the
model trains on every labelled phrase of the training trees (SST-2: 77k distinct non-neutral phrases;
SST-5: 157k) and is scored on the dev sentences (sentences/stsa.*.dev). Model: a bidirectional GRU over
300-dimensional word embeddings learnt from scratch, max pooling over time, dropout 0.5, Adam with a
cosine schedule over 3 epochs; the weights with the best dev accuracy (checked every 200 steps) are kept.

    PYTHONPATH=src python benchmarks/classify_sst.py              # both tasks, about 30 minutes on 2 CPU cores
    PYTHONPATH=src python benchmarks/classify_sst.py --tasks sst2
    PYTHONPATH=src python benchmarks/classify_sst.py --smoke      # a few steps, seconds

Writes benchmarks/results/classify_sst.json and .md (a smoke run writes to a temporary folder).
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from common import DATA, RESULTS, machine, machine_markdown, rnnkit, write_results
from rnnkit.data.sst import labelled_phrases

TASKS = {"sst2": ("binary", True, 0.84), "sst5": ("fine", False, 0.42)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DATA / "sst")
    parser.add_argument("--tasks", default="sst2,sst5")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--time-budget", type=float, default=1200.0, help="training seconds per task")
    parser.add_argument("--epochs", type=int, default=3, help="the cosine schedule spans them")
    parser.add_argument("--eval-every", type=int, default=200)
    parser.add_argument("--patience", type=int, default=20, help="evaluations without a better dev accuracy")
    parser.add_argument("--cell", choices=["gru", "lstm"], default="gru")
    parser.add_argument("--pooling", choices=["last", "mean", "max"], default="max")
    parser.add_argument("--embedding-size", type=int, default=300)
    parser.add_argument("--hidden-size", type=int, default=150)
    parser.add_argument("--dropout", type=float, default=0.5)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--out", type=Path, default=Path("runs/bench-sst"), help="run directories")
    parser.add_argument("--results", type=Path, help=f"default: {RESULTS}")
    parser.add_argument("--smoke", action="store_true", help="a tiny check that the script works")
    args = parser.parse_args()

    limits = ["--epochs", str(args.epochs), "--time-budget", str(args.time_budget), "--eval-every",
              str(args.eval_every), "--patience", str(args.patience)]  # fmt: skip
    results_dir = args.results or RESULTS
    if args.smoke:
        tmp = Path(tempfile.mkdtemp(prefix="sst-smoke-"))
        limits = ["--max-steps", "5"]
        args.out, results_dir = tmp / "runs", args.results or tmp / "results"
    model = ["--level", "word", "--cell", args.cell, "--bidirectional", "--pooling", args.pooling,
             "--embedding-size", str(args.embedding_size), "--hidden-size", str(args.hidden_size), "--dropout",
             str(args.dropout), "--batch-size", str(args.batch_size), "--lr", str(args.lr),
             "--schedule", "cosine"]  # fmt: skip
    report = {"benchmark": "sst", "machine": machine(), "runs": {}}
    for name in args.tasks.split(","):
        kind, binary, target = TASKS[name]
        trees = args.data / "trees" / "train.txt"  # the classifier reads the trees: it trains on every phrase
        count = sum(1 for _ in labelled_phrases(trees, binary=binary))
        dev = args.data / "sentences" / f"stsa.{kind}.dev"
        run_dir = args.out / name
        argv = ["train", "classify", "--train", str(trees), "--tree-labels", kind, "--valid", str(dev), *model,
                *limits, "--device", args.device, "--out", str(run_dir)]  # fmt: skip
        trained = rnnkit(*argv)
        scored = rnnkit("eval", str(run_dir), "--data", str(dev), "--device", args.device)
        summary = trained["summary"]
        report["runs"][name] = {
            "command": "rnnkit " + " ".join(argv),
            "train_phrases": count,
            "target_dev_accuracy": target,
            "dev": scored["metrics"],
            "confusion_matrix": scored["confusion_matrix"],
            "passed": scored["metrics"]["accuracy"] >= target,
            "train_seconds": summary["seconds"],
            "steps": summary["steps"],
            "epochs": summary["epochs"],
            "stopped": summary["stopped"],
            "device": summary["device"],
        }
    lines = [
        "# Stanford Sentiment Treebank, dev accuracy (no pretrained embeddings, trained on phrases)",
        "",
        f"Machine: {machine_markdown(report['machine'])}",
        "",
        "| task | dev accuracy | macro F1 | target | training | steps | epochs | phrases |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, r in report["runs"].items():
        d = r["dev"]
        lines.append(f"| {name} | **{d['accuracy']:.4f}** | {d['macro_f1']:.4f} | >= {r['target_dev_accuracy']} | "
                     f"{r['train_seconds']:.0f} s ({r['device']}) | {r['steps']} | {r['epochs']:.1f} | "
                     f"{r['train_phrases']} |")  # fmt: skip
    lines += ["", "Commands:", ""] + [f"    {r['command']}" for r in report["runs"].values()]
    write_results("classify_sst", report, "\n".join(lines) + "\n", results_dir)
    for name, r in report["runs"].items():
        print(f"{name}: dev accuracy {r['dev']['accuracy']:.4f} (target {r['target_dev_accuracy']}) "
              f"in {r['train_seconds']:.0f} s")  # fmt: skip


if __name__ == "__main__":
    main()
