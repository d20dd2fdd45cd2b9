"""RNN over Markov models, measured (issue 24): n-grams and HMMs against the default LSTM, in one table.

    python benchmarks/markov.py [--time-budget 600] [--device cpu] [--hmm-tokens 100000] [--out DIR]
    python benchmarks/markov.py --quick            # every step end to end on a few lines, in about a minute

Two corpora, each tokenised once by rnnkit's LM code for every model:

- tiny Shakespeare (``../shared/data/tinyshakespeare/input.txt``), characters, nanoGPT's split: the first 90%
  of the characters train, the last 10% validate (``rnnkit train lm``'s default ``--valid-fraction 0.1``);
- Penn Treebank (``../shared/data/ptb``), words: ``ptb.train.txt.gz`` trains, ``ptb.valid.txt`` validates,
  the 10,000-word vocabulary, ``<eos>`` at every line end.

On each: ``rnnkit baseline ngram`` of orders 2-7 (interpolated modified Kneser-Ney, every training token),
``rnnkit baseline hmm`` with 16, 32, ..., 512 states (Baum-Welch on ``--hmm-tokens`` training tokens in
windows of 256 spread over the text, at most ``--hmm-iterations`` iterations), and the default LSTM,
``rnnkit train lm --time-budget S`` (PTB: ``--level word``, otherwise every default). Each model's figure is
its validation score as its run reports it (``summary.json``: nats per token, bits per character, perplexity);
``rnnkit compare`` then scores the LSTM, the best n-gram and the largest HMM on the very same validation
tokens and gives the loss by distance into the line. The plot shows bits per character (tiny Shakespeare) and
perplexity (PTB) against log2(states) of the HMM sweep, beside the LSTM's line and the n-grams': an HMM
carries at most log2(N) bits of the past from one token to the next.

Writes ``benchmarks/results/markov-TAG.{json,md}``, ``markov-TAG.png`` and the compare plots
``markov-TAG-compare-{shakespeare,ptb}.png`` (TAG: cpuN or gpu; ``--quick`` writes to a temporary folder
unless ``--results`` says where). Run it alone on a quiet machine: the LSTMs train for a fixed time.
"""

from __future__ import annotations

import argparse
import gzip
import json
import math
import sys
import tempfile
import time
from pathlib import Path

from common import DATA, RESULTS, machine, machine_markdown, machine_tag, rnnkit, write_results

ORDERS = (2, 3, 4, 5, 6, 7)
STATES = (16, 32, 64, 128, 256, 512)


def corpora(quick: bool, scratch: Path) -> dict[str, dict]:
    """The two corpora: their files and the options that make every run read them the same way."""
    shakespeare = DATA / "tinyshakespeare" / "input.txt"
    ptb_train, ptb_valid = DATA / "ptb" / "ptb.train.txt.gz", DATA / "ptb" / "ptb.valid.txt"
    if quick:  # the first lines only
        shakespeare = _head(shakespeare, scratch / "shakespeare.txt", 2000)
        ptb_train = _head(ptb_train, scratch / "ptb.train.txt", 1500)
        ptb_valid = _head(ptb_valid, scratch / "ptb.valid.txt", 200)
    text = shakespeare.read_text(encoding="utf-8")
    valid = scratch / "shakespeare.valid.txt"  # the held-out last 10%, as a file for rnnkit compare
    valid.write_text(text[int(len(text) * 0.9) :], encoding="utf-8")
    return {
        "shakespeare": {"data": ["--data", str(shakespeare)], "level": "char", "valid": valid,
                        "name": "tiny Shakespeare", "lm": []},
        "ptb": {"data": ["--data", str(ptb_train), "--valid", str(ptb_valid)], "level": "word", "valid": ptb_valid,
                "name": "Penn Treebank", "lm": ["--level", "word"]},
    }  # fmt: skip


def _head(source: Path, target: Path, lines: int) -> Path:
    opener = gzip.open if source.suffix == ".gz" else open
    with opener(source, "rt", encoding="utf-8") as f:
        target.write_text("".join(line for _, line in zip(range(lines), f)), encoding="utf-8")
    return target


def run_once(run: Path, argv: list[str]) -> dict:
    """``rnnkit ARGV --out RUN`` unless RUN already has its summary (a benchmark interrupted and run again)."""
    if not (run / "summary.json").is_file():
        print(f"rnnkit {' '.join(argv[:3])} ... -> {run.name}", file=sys.stderr, flush=True)
        rnnkit(*argv, "--out", str(run))
    summary = json.loads((run / "summary.json").read_text())
    best = summary["best"]
    row = {"run": str(run), "nats_per_token": best["loss"], "tokens": best.get("tokens"),
           "parameters": summary["parameters"], "seconds": summary["seconds"]}  # fmt: skip
    if "bits_per_char" in best:
        row["bits_per_char"] = best["bits_per_char"]
    else:
        row["perplexity"] = math.exp(best["loss"])
    if "tokens_per_s" in summary:
        row["tokens_per_s"] = summary["tokens_per_s"]
    if "train_tokens" in summary:
        row["train_tokens"] = summary["train_tokens"]
    return row


def measure(corpus: dict, runs: Path, args: argparse.Namespace) -> dict:
    """Every model on one corpus: {"ngram": {order: row}, "hmm": {states: row}, "lstm": row, "compare": {...}}."""
    runs.mkdir(parents=True, exist_ok=True)
    rows: dict = {"ngram": {}, "hmm": {}}
    for order in args.orders:
        rows["ngram"][order] = run_once(runs / f"ngram{order}", ["baseline", "ngram", *corpus["data"], "--level",
                                        corpus["level"], "--order", str(order)])  # fmt: skip
    for states in args.states:
        rows["hmm"][states] = run_once(runs / f"hmm{states}", [
            "baseline", "hmm", *corpus["data"], "--level", corpus["level"], "--states", str(states),
            "--iterations", str(args.hmm_iterations), "--max-train-tokens", str(args.hmm_tokens)])  # fmt: skip
    lstm = ["train", "lm", *corpus["data"], *corpus["lm"], "--device", args.device, "--quiet"]
    lstm += ["--time-budget", str(args.time_budget)] if not args.quick else ["--max-steps", "3", "--hidden-size", "32"]
    rows["lstm"] = run_once(runs / "lstm", lstm)
    best_order = min(rows["ngram"], key=lambda n: rows["ngram"][n]["nats_per_token"])
    picked = [runs / "lstm", runs / f"ngram{best_order}", runs / f"hmm{max(args.states)}"]
    plot = args.results / f"markov-{args.tag}-compare-{corpus['key']}.png"
    compared = rnnkit("compare", *map(str, picked), "--data", str(corpus["valid"]), "--plot", str(plot),
                      "--device", args.device)  # fmt: skip
    rows["compare"] = {k: compared[k] for k in ("metrics", "runs", "per_position", "tokens", "unit")}
    rows["compare"]["plot"] = plot.name
    return rows


def plot_states(results: dict, path: Path) -> None:
    """Bits/char (tiny Shakespeare) and perplexity (PTB) against log2(states), with the LSTM and n-gram lines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(12, 4.6))
    for ax, key, metric, label in ((axes[0], "shakespeare", "bits_per_char", "bits per character"),
                                   (axes[1], "ptb", "perplexity", "perplexity")):  # fmt: skip
        rows = results["corpora"][key]
        states = sorted(rows["hmm"])
        ax.plot([math.log2(n) for n in states], [rows["hmm"][n][metric] for n in states], "o-", label="HMM")
        ax.axhline(rows["lstm"][metric], color="C3", label=f"LSTM ({rows['lstm']['seconds']:.0f} s)")
        for order in sorted(rows["ngram"]):
            if order in (2, 3, 5, 7) or len(rows["ngram"]) <= 3:
                ax.axhline(rows["ngram"][order][metric], color="gray", linestyle=":", linewidth=1)
                ax.text(math.log2(states[0]), rows["ngram"][order][metric], f"{order}-gram", fontsize=7,
                        color="gray", va="bottom")  # fmt: skip
        ax.set_xlabel("log2(HMM states): the bits of the past an HMM can carry")
        ax.set_ylabel(f"validation {label}")
        if metric == "perplexity":
            ax.set_yscale("log")
        ax.set_title(results["corpora"][key]["name"])
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize="small")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def markdown(results: dict, args: argparse.Namespace) -> str:
    s, p = results["corpora"]["shakespeare"], results["corpora"]["ptb"]

    def cell(rows: dict, metric: str) -> str:
        return f"{rows[metric]:.3f}" if metric == "bits_per_char" else f"{rows[metric]:.1f}"

    def facts(rows: dict) -> str:
        return f"{rows['parameters']:,} | {rows['seconds']:.0f}"

    lines = [
        "# RNN over Markov models: n-grams and HMMs against the default LSTM\n",
        f"Command: `python benchmarks/markov.py {' '.join(sys.argv[1:])}`. Validation scores as each run reports "
        "them (tiny Shakespeare: last 10% of the characters, nanoGPT's split; PTB: ptb.valid.txt, 10,000 words). "
        f"HMMs: Baum-Welch on {args.hmm_tokens:,} training tokens (windows of 256 spread over the text), at most "
        f"{args.hmm_iterations} iterations; n-grams count every training token; the LSTM is rnnkit's default "
        + (f"model trained for {args.time_budget:g} s on {args.device}.\n" if not args.quick else
           "model shrunk to 2x32 and trained for 3 steps (--quick: a check of the script, not a measurement).\n"),
        "| model | tiny Shakespeare bits/char | parameters | seconds | PTB perplexity | parameters | seconds |",
        "|---|---|---|---|---|---|---|",
    ]
    for order in args.orders:
        a, b = s["ngram"][order], p["ngram"][order]
        lines.append(f"| {order}-gram (Kneser-Ney) | {cell(a, 'bits_per_char')} | {facts(a)} | "
                     f"{cell(b, 'perplexity')} | {facts(b)} |")  # fmt: skip
    for states in args.states:
        a, b = s["hmm"][states], p["hmm"][states]
        lines.append(f"| HMM, {states} states (log2 = {math.log2(states):g}) | {cell(a, 'bits_per_char')} | "
                     f"{facts(a)} | {cell(b, 'perplexity')} | {facts(b)} |")  # fmt: skip
    a, b = s["lstm"], p["lstm"]
    lines.append(f"| LSTM, rnnkit defaults | {cell(a, 'bits_per_char')} | {facts(a)} | {cell(b, 'perplexity')} | "
                 f"{facts(b)} |\n")  # fmt: skip
    lines.append(f"![bits/char and perplexity against log2(states)]({results['plot']})\n")
    for key in ("shakespeare", "ptb"):
        c = results["corpora"][key]["compare"]
        unit = "bits" if key == "shakespeare" else "nats"
        pos = c["per_position"]
        picks = [d for d in (0, 1, 2, 5, 10, 20, 40) if d in pos["distance"]]
        span = "line" if key == "shakespeare" else "sentence"
        lines.append(f"## {results['corpora'][key]['name']}: loss ({unit} per token) by distance into the {span}, "
                     f"the same {c['tokens']:,} tokens\n")  # fmt: skip
        lines.append("| run | model | all | " + " | ".join(f"d={d}" for d in picks) + " |")
        lines.append("|---|---|---|" + "---|" * len(picks))
        for r in c["runs"]:
            curve = dict(zip(pos["distance"], pos["loss"][r["name"]]))
            m = c["metrics"][r["name"]]
            overall = f"{m['bits_per_char']:.3f}" if "bits_per_char" in m else f"ppl {m['perplexity']:.1f}"
            lines.append(f"| {r['name']} | {r['model']} | {overall} | " + " | ".join(f"{curve[d]:.3f}" for d in picks)
                         + " |")  # fmt: skip
        lines.append(f"\n![loss by position]({c['plot']})\n")
    lines.append(f"Machine: {machine_markdown(results['machine'])}. Total wall time {results['seconds']:.0f} s.")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--time-budget", type=float, default=600, help="seconds of LSTM training per corpus")
    parser.add_argument("--device", default="cpu", help="of the LSTMs (the baselines run on the CPU)")
    parser.add_argument("--hmm-tokens", type=int, default=100_000, help="Baum-Welch training tokens per HMM")
    parser.add_argument("--hmm-iterations", type=int, default=30)
    parser.add_argument("--out", help="folder for the run directories (default: a temporary one); "
                        "runs already there are reused")  # fmt: skip
    parser.add_argument("--results", help="folder for the results files (default: benchmarks/results)")
    parser.add_argument("--quick", action="store_true", help="a few lines, tiny models: check the script end to end")
    args = parser.parse_args()
    started = time.perf_counter()
    scratch = Path(tempfile.mkdtemp(prefix="markov-"))
    out = Path(args.out) if args.out else scratch / "runs"
    args.orders, args.states = ORDERS, STATES
    if args.quick:
        args.orders, args.states, args.hmm_tokens, args.hmm_iterations = (2, 3), (2, 4), 3000, 2
    args.results = Path(args.results) if args.results else (scratch / "results" if args.quick else RESULTS)
    args.results.mkdir(parents=True, exist_ok=True)
    info = machine(args.device)
    args.tag = machine_tag(info)
    results: dict = {"benchmark": "markov", "corpora": {}, "machine": info, "time_budget": args.time_budget,
                     "hmm_tokens": args.hmm_tokens, "hmm_iterations": args.hmm_iterations,
                     "quick": args.quick}  # fmt: skip
    for key, corpus in corpora(args.quick, scratch).items():
        corpus["key"] = key
        rows = measure(corpus, out / key, args)
        results["corpora"][key] = {"name": corpus["name"], **rows}
    plot = args.results / f"markov-{args.tag}.png"
    plot_states(results, plot)
    results["plot"] = plot.name
    results["seconds"] = time.perf_counter() - started
    md = markdown(results, args)
    write_results("markov", json.loads(json.dumps(results, default=str)), md, args.results)
    print(md)


if __name__ == "__main__":
    main()
