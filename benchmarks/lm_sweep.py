"""How the default character-level configuration was chosen: a sweep of candidates, each trained on
tiny Shakespeare for as many tokens as it processes in a fixed time on the target CPU.

    python benchmarks/lm_sweep.py rates                       # on the CPU, alone: tokens/s of each candidate
    python benchmarks/lm_sweep.py run --device cuda --seconds 600 --rates results/lm_sweep_rates-cpu2.json

``run`` trains every candidate for ``rate x seconds x 0.95`` tokens (the 5% leaves time for evaluation)
on any device, so a GPU can answer "which configuration is best after 10 minutes on 2 CPU cores".
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from common import RESULTS, machine, machine_tag, training_throughput, write_results
from rnnkit.cli import main as rnnkit_main
from rnnkit.layers import RecurrentConfig
from rnnkit.models import LanguageModel, LanguageModelConfig

CANDIDATES = {
    "lstm-1x512": dict(cell="lstm", layers=1, hidden=512, emb=64, dropout=0.1),
    "lstm-2x256": dict(cell="lstm", layers=2, hidden=256, emb=64, dropout=0.1),
    "lstm-2x256-d0": dict(cell="lstm", layers=2, hidden=256, emb=64, dropout=0.0),
    "lstm-2x256-d2": dict(cell="lstm", layers=2, hidden=256, emb=64, dropout=0.2),
    "lstm-2x256-lr5": dict(cell="lstm", layers=2, hidden=256, emb=64, dropout=0.1, lr=5e-3),
    "lstm-2x256-lr2": dict(cell="lstm", layers=2, hidden=256, emb=64, dropout=0.1, lr=2e-3),
    "lstm-2x384": dict(cell="lstm", layers=2, hidden=384, emb=64, dropout=0.2),
    "lstm-3x192": dict(cell="lstm", layers=3, hidden=192, emb=32, dropout=0.1),
    # second round, at the step count the default configuration really reaches in 10 minutes
    "lstm-2x256-d0-lr5": dict(cell="lstm", layers=2, hidden=256, emb=64, dropout=0.0, lr=5e-3),
    "lstm-2x256-lr8": dict(cell="lstm", layers=2, hidden=256, emb=64, dropout=0.1, lr=8e-3),
    "lstm-2x256-d0-lr8": dict(cell="lstm", layers=2, hidden=256, emb=64, dropout=0.0, lr=8e-3),
    "lstm-2x256-lr12": dict(cell="lstm", layers=2, hidden=256, emb=64, dropout=0.1, lr=1.2e-2),
    "lstm-2x256-d0-lr12": dict(cell="lstm", layers=2, hidden=256, emb=64, dropout=0.0, lr=1.2e-2),
    "lstm-2x256-e128-lr8": dict(cell="lstm", layers=2, hidden=256, emb=128, dropout=0.1, lr=8e-3),
}
BATCH, SEQ, VOCAB = 64, 100, 65


def build(c: dict) -> LanguageModel:
    rnn = RecurrentConfig(c["cell"], c["emb"], c["hidden"], c["layers"], batch_first=True,
                          dropout=c["dropout"] if c["layers"] > 1 else 0.0)  # fmt: skip
    return LanguageModel(LanguageModelConfig(VOCAB, c["emb"], rnn, dropout=c["dropout"]))


def rates(args) -> None:
    result = {name: training_throughput(build(c), VOCAB, BATCH, SEQ, "cpu") for name, c in CANDIDATES.items()}
    info = machine("cpu")
    path = write_results("lm_sweep_rates", {"rates": result, "machine": info},
                         "\n".join(f"{k}: {v:,.0f} tokens/s" for k, v in result.items()))  # fmt: skip
    print(json.dumps(result, indent=2), f"\nwritten: {path}.json")


def run(args) -> None:
    rates = json.loads(Path(args.rates).read_text())["rates"]
    rows = {}
    for name, c in CANDIDATES.items():
        if args.only and name not in args.only:
            continue
        steps = args.steps or int(rates[name] * args.seconds * 0.95 / (BATCH * SEQ))
        out = Path(tempfile.mkdtemp(prefix="sweep-")) / name
        argv = ["train", "lm", "--cell", c["cell"], "--num-layers", str(c["layers"]), "--hidden-size",
                str(c["hidden"]), "--embedding-size", str(c["emb"]), "--dropout", str(c["dropout"]),
                "--lr", str(c.get("lr", 3e-3)), "--schedule", "cosine", "--batch-size", str(BATCH),
                "--seq-len", str(SEQ), "--max-steps", str(steps), "--eval-every", str(max(1, steps // 4)),
                "--device", args.device, "--out", str(out), "--quiet", "--json"]  # fmt: skip
        assert rnnkit_main(argv) == 0
        summary = json.loads((out / "summary.json").read_text())
        rows[name] = {"steps": steps, "valid_loss": summary["best"]["loss"], "cpu_tokens_per_s": rates.get(name)}
        print(name, rows[name], flush=True)
    info = machine(args.device)
    md = "| candidate | steps | valid loss (nats/char) |\n|---|---|---|\n" + "\n".join(
        f"| {k} | {v['steps']} | {v['valid_loss']:.4f} |" for k, v in rows.items()
    )
    write_results(args.name, {"seconds": args.seconds, "rows": rows, "machine": info,
                               "rates_machine": json.loads(Path(args.rates).read_text())["machine"]}, md)  # fmt: skip
    print(md)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("rates")
    r = sub.add_parser("run")
    r.add_argument("--device", default="cpu")
    r.add_argument("--seconds", type=float, default=600)
    r.add_argument("--rates", default=str(RESULTS / f"lm_sweep_rates-{machine_tag(machine())}.json"))
    r.add_argument("--only", nargs="*")
    r.add_argument("--steps", type=int, help="train every candidate for this many steps instead")
    r.add_argument("--name", default="lm_sweep", help="results file name")
    args = parser.parse_args()
    {"rates": rates, "run": run}[args.command](args)


if __name__ == "__main__":
    main()
