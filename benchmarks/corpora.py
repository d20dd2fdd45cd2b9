"""The course notes' 4-corpus system on shakespeare / austen / kjv / sherlock (../shared/data/corpora).

Targets: classifier accuracy on held-out 50-token windows >= 0.97; generated passages assigned to their
own corpus >= 0.90 (reported for the per-corpus generators and for the label-conditioned generator).
Configuration of the course notes: a word-level LSTM classifier with embedding 256 and hidden 256 over
50-token windows; character-level LSTM generators with hidden 512. The last 10% of the lines of each
corpus are held out (the corpora themselves already keep parts back, see their SOURCE.md). The time
budget is shared: classifier 20%, the four generators 50%, the conditioned generator 30%.

    PYTHONPATH=src python benchmarks/corpora.py                      # about 90 minutes on 2 CPU cores
    PYTHONPATH=src python benchmarks/corpora.py --time-budget 10800  # 3 hours: better generators
    PYTHONPATH=src python benchmarks/corpora.py --smoke              # tiny models on 400 lines each, seconds

Writes benchmarks/results/corpora.json and .md (a smoke run writes to a temporary folder); the runs,
passages.jsonl and report.md stay in --out. Running it again with the same --out skips finished stages.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from common import DATA, RESULTS, head_lines, machine, machine_markdown, rnnkit, write_results

TARGETS = {"classifier_accuracy": 0.97, "per_corpus_generators_own_share": 0.90,
           "conditional_generator_own_share": 0.90}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DATA / "corpora")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--time-budget", type=float, default=5400.0, help="training seconds for all stages")
    parser.add_argument("--passages", type=int, default=100, help="per corpus and generator")
    parser.add_argument("--out", type=Path, default=Path("runs/bench-corpora"))
    parser.add_argument("--results", type=Path, help=f"default: {RESULTS}")
    parser.add_argument("--smoke", action="store_true", help="a tiny check that the script works")
    args = parser.parse_args()

    data, results_dir = args.data, args.results or RESULTS
    options = ["--time-budget", str(args.time_budget), "--passages", str(args.passages)]
    if args.smoke:
        tmp = Path(tempfile.mkdtemp(prefix="corpora-smoke-"))
        data = tmp / "data"
        data.mkdir()
        for name in ("shakespeare", "austen", "kjv", "sherlock"):
            head_lines(args.data / f"{name}.txt", data / f"{name}.txt", 400)
        options = ["--max-steps", "3", "--passages", "3", "--classifier-hidden", "16", "--classifier-embedding", "16",
                   "--generator-hidden", "16", "--generator-batch", "4"]  # fmt: skip
        args.out, results_dir = tmp / "out", args.results or tmp / "results"
    argv = ["corpora", "--data", str(data), "--out", str(args.out), *options, "--device", args.device]
    result = rnnkit(*argv)
    report = json.loads((args.out / "report.json").read_text(encoding="utf-8"))
    payload = {
        "benchmark": "corpora",
        "command": "rnnkit " + " ".join(argv),
        "targets": TARGETS,
        "metrics": result["metrics"],
        "passed": {k: result["metrics"][k] >= v for k, v in TARGETS.items()},
        "labels": report["labels"],
        "classifier": {k: report["classifier"][k] for k in ("metrics", "confusion_matrix", "summary")},
        "passages": report["passages"],
        "generators": report["generators"],
        "conditional": report["conditional"],
        "seconds": report["seconds"],
        "device": report["device"],
        "machine": machine(),
    }
    text = (args.out / "report.md").read_text(encoding="utf-8")
    header = "\n\n".join([
        f"Machine: {machine_markdown(payload['machine'])}",
        "Targets: held-out window accuracy >= 0.97; passages assigned to their own corpus >= 0.90.",
        "Command:", "    " + payload["command"], "",
    ])  # fmt: skip
    write_results("corpora", payload, text.replace("\n\n", "\n\n" + header, 1), results_dir)
    print(" ".join(f"{k} {v:.4f}" for k, v in result["metrics"].items()))


if __name__ == "__main__":
    main()
