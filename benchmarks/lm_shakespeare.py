"""The default character-level model on tiny Shakespeare under a time budget (issue 3's headline).

    python benchmarks/lm_shakespeare.py [--time-budget 600] [--device cpu]

Runs ``rnnkit train lm --time-budget S`` with every default (the corpus shipped in the package, last 10%
held out, as nanoGPT splits it), reports the best validation loss in nats per character, the training
throughput next to the same model on torch.nn.LSTM measured in the same process, and a sample.
Targets on 2 CPU cores in 10 minutes: <= 1.55 nats/char; goal <= 1.45.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from pathlib import Path

from common import compare_throughput, machine, rnnkit, write_results
from rnnkit.models import load_model
from rnnkit.tasks.lm import load_tokenizer, sample_text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--time-budget", type=float, default=600)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", help="run directory (default: a temporary one)")
    args = parser.parse_args()
    out = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="shakespeare-")) / "run"
    load_before = os.getloadavg()
    result = rnnkit("train", "lm", "--time-budget", str(args.time_budget), "--device", args.device, "--out", str(out),
                    "--quiet")  # fmt: skip
    load_after = os.getloadavg()
    summary, config = result["summary"], json.loads((out / "config.json").read_text())
    model = load_model(out, device=args.device)
    text = "".join(sample_text(model, load_tokenizer(out), length=400, temperature=0.8, seed=0))
    data = config["data"]
    # the throughput comparison trains on random tokens: give it a copy of the architecture, not the model
    speed = compare_throughput(load_model(out, device=args.device), data["batch_size"], data["seq_len"], args.device)
    best = summary["best"]
    rnn = config["model"]["config"]["rnn"]
    report = {
        "benchmark": "tiny-shakespeare",
        "valid_loss_nats_per_char": best["loss"],
        "target": 1.55,
        "goal": 1.45,
        "met": best["loss"] <= 1.55,
        "steps": summary["steps"],
        "epochs": summary["epochs"],
        "seconds": summary["seconds"],
        "model": f"{rnn['cell']} {rnn['num_layers']}x{rnn['hidden_size']}",
        "parameters": summary["parameters"],
        "speed": speed,
        "load_average_before_after": [load_before, load_after],
        "train_config": config["train"],
        "sample": text,
        "machine": machine(args.device),
    }
    md = (
        f"# Tiny Shakespeare, default configuration, {args.time_budget:.0f} s\n\n"
        f"| | rnnkit | target | goal |\n|---|---|---|---|\n"
        f"| validation loss (nats/char) | {best['loss']:.4f} | 1.55 | 1.45 |\n\n"
        f"Model {report['model']} ({summary['parameters']:,} parameters), {summary['steps']} steps, "
        f"{summary['epochs']:.1f} epochs in {summary['seconds']:.0f} s on {summary['device']}. Training throughput "
        f"{speed['rnnkit_tokens_per_s']:,.0f} tokens/s, {speed['ratio']:.2f}x the same model on torch.nn.LSTM "
        f"({speed['torch_nn_lstm_tokens_per_s']:,.0f} tokens/s, same process, backend {speed['backend']}). "
        f"Load average before/after: {load_before[0]:.2f}/{load_after[0]:.2f}.\n\n"
        f"Sample (temperature 0.8):\n\n```\n{text}\n```\n\nMachine: `{json.dumps(report['machine'])}`"
    )
    write_results("lm_shakespeare", report, md)
    print(md)


if __name__ == "__main__":
    main()
