"""CoNLL-2003 English NER: entity F1 on the dev set (eng.testa) with no external embeddings.

Target: dev F1 >= 0.88. Model after Lample et al. 2016 (BiLSTM-CRF with a char BiLSTM of 25 + 25, word
embeddings of 100, dropout 0.5, singletons replaced by <unk> with p = 0.5, IOBES tags), with lower-cased
word embeddings plus a casing embedding (Collobert et al. 2011; Reimers & Gurevych 2017) in place of the
pretrained embeddings, and a word BiLSTM of 200 per direction. Adam, batch 16, early stopping on dev F1.

    PYTHONPATH=src python benchmarks/tag_conll.py                 # full run, about 1 hour on 2 CPU cores
    PYTHONPATH=src python benchmarks/tag_conll.py --smoke         # a few steps on 200 sentences, seconds
    PYTHONPATH=src python benchmarks/tag_conll.py --names         # also the binary "part of a name" task

Writes benchmarks/results/tag_conll.json and .md (a smoke run writes to a temporary folder).
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from common import DATA, RESULTS, head_lines, machine, machine_markdown, rnnkit, write_results

TARGET_F1 = 0.88
MODEL = ["--crf", "--scheme", "bioes", "--lowercase", "--casing-size", "8", "--embedding-size", "100",
         "--hidden-size", "200", "--char-features", "lstm", "--char-embedding-size", "25", "--char-hidden-size", "25",
         "--dropout", "0.5", "--unk-replace", "0.5"]  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DATA / "conll2003")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--time-budget", type=float, default=3600.0, help="training seconds per run")
    parser.add_argument("--epochs", type=int, default=50)
    parser.add_argument("--patience", type=int, default=10, help="evaluations (epochs) without a better dev F1")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--out", type=Path, default=Path("runs/bench-conll"), help="run directories go here")
    parser.add_argument("--results", type=Path, help=f"default: {RESULTS}")
    parser.add_argument("--names", action="store_true", help="also train and score --binary-names")
    parser.add_argument("--smoke", action="store_true", help="a tiny check that the script works")
    args = parser.parse_args()

    train, dev = args.data / "eng.train", args.data / "eng.testa"
    limits = ["--epochs", str(args.epochs), "--patience", str(args.patience), "--time-budget", str(args.time_budget)]
    results_dir = args.results or RESULTS
    if args.smoke:
        tmp = Path(tempfile.mkdtemp(prefix="conll-smoke-"))
        train, dev = head_lines(train, tmp / "train", 3000), head_lines(dev, tmp / "dev", 800)
        limits = ["--max-steps", "5"]
        args.out, results_dir = tmp / "runs", args.results or tmp / "results"

    runs = {"ner": MODEL}
    if args.names:
        runs["names"] = [*MODEL, "--binary-names"]
    report = {"benchmark": "conll2003", "target": {"dev_f1": TARGET_F1}, "machine": machine(), "runs": {}}
    for name, model in runs.items():
        run_dir = args.out / name
        argv = ["train", "tag", "--train", str(train), "--valid", str(dev), *model, "--batch-size",
                str(args.batch_size), "--lr", str(args.lr), *limits, "--device", args.device,
                "--out", str(run_dir)]  # fmt: skip
        trained = rnnkit(*argv)
        scored = rnnkit("eval", str(run_dir), "--data", str(dev), "--device", args.device)
        summary = trained["summary"]
        report["runs"][name] = {
            "command": "rnnkit " + " ".join(argv),
            "dev": scored["metrics"],
            "per_type": scored["per_type"],
            "train_seconds": summary["seconds"],
            "steps": summary["steps"],
            "epochs": summary["epochs"],
            "stopped": summary["stopped"],
            "device": summary["device"],
            "parameters": summary["parameters"],
        }
    ner = report["runs"]["ner"]
    report["passed"] = ner["dev"]["f1"] >= TARGET_F1
    lines = [
        "# CoNLL-2003 English NER (dev = eng.testa), no external embeddings",
        "",
        f"Machine: {machine_markdown(report['machine'])}",
        "",
        "| run | precision | recall | F1 | target | training | steps | epochs |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, r in report["runs"].items():
        d = r["dev"]
        target = f">= {TARGET_F1}" if name == "ner" else ""
        lines.append(f"| {name} | {d['precision']:.4f} | {d['recall']:.4f} | **{d['f1']:.4f}** | {target} | "
                     f"{r['train_seconds']:.0f} s ({r['device']}) | {r['steps']} | {r['epochs']:.1f} |")  # fmt: skip
    lines += [
        "",
        "Per entity type (ner run):",
        "",
        "| type | precision | recall | F1 | entities |",
        "|---|---|---|---|---|",
    ]
    for kind, s in ner["per_type"].items():
        lines.append(f"| {kind} | {s['precision']:.4f} | {s['recall']:.4f} | {s['f1']:.4f} | {s['support']} |")
    lines += ["", "Commands:", ""] + [f"    {r['command']}" for r in report["runs"].values()]
    write_results("tag_conll", report, "\n".join(lines) + "\n", results_dir)
    print(f"dev F1 {ner['dev']['f1']:.4f} (target {TARGET_F1}) in {ner['train_seconds']:.0f} s")


if __name__ == "__main__":
    main()
