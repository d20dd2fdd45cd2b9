"""Penn Treebank word-level language model with the configurations of Zaremba et al. (2014).

    python benchmarks/lm_ptb.py --config small  [--device cuda] [--data-dir ../shared/data/ptb]
    python benchmarks/lm_ptb.py --config medium --device cuda

small: 2x200 LSTM, no dropout, seq 20, batch 20, 13 epochs, SGD lr 1 halved every epoch after the 4th,
clip norm 5, init U(-0.1, 0.1). Their validation perplexity: 120.7.
medium: 2x650, dropout 0.5, seq 35, 39 epochs, lr 1 times 0.8 every epoch after the 6th, init
U(-0.05, 0.05). Theirs: 86.2.

Zaremba et al. (and the TensorFlow PTB tutorial) sum the loss over the T steps of a window and average
it over the batch; rnnkit averages over both. The same update is therefore lr x T with the gradient
norm clipped at 5 / T, which is what this script passes.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from common import compare_throughput, machine, write_results
from rnnkit.cli import main as rnnkit_main
from rnnkit.models import load_model

CONFIGS = {
    "small": dict(hidden=200, dropout=0.0, seq=20, epochs=13, decay=0.5, decay_start=4, init=0.1, target=120.7),
    "medium": dict(hidden=650, dropout=0.5, seq=35, epochs=39, decay=0.8, decay_start=6, init=0.05, target=86.2),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", choices=sorted(CONFIGS), default="small")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--data-dir", default=str(Path(__file__).resolve().parents[2] / "shared/data/ptb"))
    parser.add_argument("--epochs", type=int, help="override the configuration's epochs (smoke tests)")
    parser.add_argument("--out", help="run directory (default: a temporary one)")
    args = parser.parse_args()
    c = CONFIGS[args.config]
    data = Path(args.data_dir)
    out = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix=f"ptb-{args.config}-")) / "run"
    argv = [
        "train", "lm", "--data", str(data / "ptb.train.txt.gz"), "--valid", str(data / "ptb.valid.txt"),
        "--level", "word", "--vocab-size", "20000", "--cell", "lstm", "--num-layers", "2",
        "--hidden-size", str(c["hidden"]), "--embedding-size", str(c["hidden"]), "--dropout", str(c["dropout"]),
        "--seq-len", str(c["seq"]), "--batch-size", "20", "--epochs", str(args.epochs or c["epochs"]),
        "--optimizer", "sgd", "--lr", str(c["seq"]), "--schedule", "step", "--lr-decay", str(c["decay"]),
        "--decay-start", str(c["decay_start"]), "--clip-norm", str(5 / c["seq"]), "--init-range", str(c["init"]),
        "--device", args.device, "--out", str(out), "--quiet", "--json",
    ]  # fmt: skip
    code = rnnkit_main(argv)
    if code != 0:
        raise SystemExit(code)
    summary = json.loads((out / "summary.json").read_text())
    model = load_model(out, device=args.device)
    speed = compare_throughput(model, batch_size=20, seq_len=c["seq"], device=args.device)
    best = summary["best"]
    result = {
        "benchmark": f"ptb-{args.config}",
        "command": "rnnkit " + " ".join(argv),
        "valid_perplexity": best["perplexity"],
        "target": c["target"],
        "met": best["perplexity"] <= c["target"],
        "epochs": summary["epochs"],
        "seconds": summary["seconds"],
        "speed": speed,
        "machine": machine(args.device),
    }
    md = (
        f"# PTB {args.config} (Zaremba et al. 2014)\n\n"
        f"| | rnnkit | Zaremba et al. |\n|---|---|---|\n"
        f"| validation perplexity | {best['perplexity']:.1f} | {c['target']} |\n\n"
        f"{summary['epochs']:.0f} epochs in {summary['seconds']:.0f} s on {summary['device']}. "
        f"Training throughput {speed['rnnkit_tokens_per_s']:,.0f} tokens/s, "
        f"{speed['ratio']:.2f}x torch.nn.LSTM's {speed['torch_nn_lstm_tokens_per_s']:,.0f} "
        f"(backend {speed['backend']}, same process).\n\nMachine: `{json.dumps(result['machine'])}`\n\n"
        f"Command: `{result['command']}`"
    )
    path = write_results(f"lm_ptb_{args.config}", result, md)
    print(md)
    print(f"\nwritten: {path}.json")


if __name__ == "__main__":
    main()
