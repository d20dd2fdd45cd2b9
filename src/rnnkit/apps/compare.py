"""``rnnkit compare RUN RUN ... --data FILE``: language-model runs (``rnnkit train lm``) and their Markov peers
(``rnnkit baseline ngram|hmm``) scored on the same text, token for token.

    rnnkit compare runs/lstm runs/5gram runs/hmm64 --data valid.txt --plot compare.png [--json]

Every run tokenises FILE with its own tokenizer; the runs must cut it into the same tokens (the same level,
and at word level the same word split), so that each token's loss -log p(x_t | x_<t) can be set beside the
others'. An LM run is scored as ``rnnkit eval`` scores it (:func:`rnnkit.tasks.lm.token_losses`: B streams,
the state carried through each, the first token of a stream not predicted); the baselines predict every
token from the ones before it. The table averages over the tokens that every run predicts, so its numbers
are of the very same tokens (they can differ a little from each run's own ``rnnkit eval``, which averages
over the tokens it predicts).

The per-position loss is the mean loss as a function of d, the distance into the line: the tokens since the
last newline (character level) or ``<eos>`` (word level), d = 0 for the first token of a line (the line end
itself ends its line: d = its length). An n-gram of order n sees only n-1 tokens back, so a line's start is
all it knows at d = 0; the curves show how each model's loss falls as it reads into the line, and whether a
recurrent state that remembers more than an n-gram's window or an HMM's log2(N) bits earns a lower loss.
Distances with fewer than ``--min-count`` scored tokens (rare long lines) are left out.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from rnnkit import checkpoint
from rnnkit.apps import baseline
from rnnkit.data.lm import encode_file
from rnnkit.data.tokenizers import CharTokenizer, Tokenizer
from rnnkit.errors import ConfigError
from rnnkit.models import load_model
from rnnkit.tasks import lm

LM_TASKS = ("lm", *baseline.BASELINE_TASKS)
MAX_DISTANCE = 200


@dataclass
class ScoredRun:
    """One run's losses on the text, with what the table says about it."""

    name: str
    path: str
    task: str
    model: str
    level: str
    parameters: int
    seconds: float | None
    tokens_per_s: float | None
    losses: np.ndarray = field(repr=False)  # (L,) nats, NaN where the run predicts nothing
    breaks: np.ndarray = field(repr=False)  # (L,) bool: the token ends a line (newline or <eos>)


# -- the command line ------------------------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``rnnkit compare``."""
    parser.add_argument("runs", nargs="+", metavar="RUN", help="lm, ngram or hmm runs")
    parser.add_argument("--data", required=True, help="the text every run is scored on (e.g. the validation file)")
    parser.add_argument("--plot", metavar="PNG", help="write the plot (scores, and loss by position in the line)")
    parser.add_argument("--min-count", type=int, default=50,
                        help="loss by position: leave out distances with fewer scored tokens")  # fmt: skip
    parser.add_argument("--batch-size", type=int, default=16, help="lm runs: streams scored together")
    parser.add_argument("--device", default="cpu", help="lm runs: cpu, cuda, cuda:N or mps")
    parser.add_argument("--json", action="store_true", help="print the comparison as one JSON object")


def main(args: argparse.Namespace) -> int:
    """``rnnkit compare``: score, print the table (or JSON), plot."""
    if args.min_count < 1 or args.batch_size < 1:
        raise ConfigError("--min-count and --batch-size must be >= 1")
    runs = [score_run(Path(r), args.data, args.batch_size, args.device) for r in args.runs]
    result = compare(runs, min_count=args.min_count)
    result["data"] = str(args.data)
    if args.plot:
        plot_comparison(result, args.plot)
    if args.json:
        print(json.dumps(result))
    else:
        print(format_table(result))
        if args.plot:
            print(f"plot written to {args.plot}", file=sys.stderr)
    return 0


# -- scoring ------------------------------------------------------------------------------------------


def score_run(run_dir: Path, data: str, batch_size: int = 16, device: str = "cpu") -> ScoredRun:
    """Per-token losses of ``data`` under the run in ``run_dir`` (lm, ngram or hmm), and its facts."""
    config = checkpoint.load_config(run_dir)
    task = config.get("task")
    if task not in LM_TASKS:
        raise ConfigError(f"{run_dir} is a {task!r} run; rnnkit compare takes {', '.join(LM_TASKS)} runs")
    summary_path = run_dir / checkpoint.SUMMARY
    summary = json.loads(summary_path.read_text(encoding="utf-8")) if summary_path.is_file() else {}
    if task == "lm":
        import torch

        model = load_model(run_dir, device=torch.device(device), task="lm")
        tokenizer = lm.load_tokenizer(run_dir)
        ids = encode_file(data, tokenizer)
        seq_len = int((config.get("data") or {}).get("seq_len", 100))
        losses = lm.token_losses(model, ids, batch_size, seq_len, device)
        rnn = model.config.rnn
        description = f"{rnn.cell.upper()} {rnn.num_layers}x{rnn.hidden_size}"
        parameters = sum(p.numel() for p in model.parameters())
        rates = [r["tokens_per_s"] for r in checkpoint.read_metrics(run_dir)
                 if r.get("split") == "train" and r.get("tokens_per_s")]  # fmt: skip
        tokens_per_s = statistics.median(rates) if rates else None
    else:
        model, tokenizer = baseline.load_run(run_dir, config)
        ids = encode_file(data, tokenizer)
        losses = baseline.token_losses(model, ids)
        description = f"{model.order}-gram" if task == "ngram" else f"HMM {model.num_states} states"
        parameters = baseline.parameter_count(model)
        tokens_per_s = summary.get("tokens_per_s")
    return ScoredRun(
        name=run_dir.name or str(run_dir), path=str(run_dir), task=task, model=description, level=tokenizer.level,
        parameters=int(parameters), seconds=summary.get("seconds"), tokens_per_s=tokens_per_s,
        losses=losses, breaks=line_ends(ids, tokenizer),
    )  # fmt: skip


def line_ends(ids: np.ndarray, tokenizer: Tokenizer) -> np.ndarray:
    """(L,) bool: which tokens end a line (the newline character, or ``<eos>``)."""
    if isinstance(tokenizer, CharTokenizer):
        end = tokenizer.index.get("\n", -1)
    else:
        end = tokenizer.eos
    return np.asarray(ids) == end


def distance_into_line(breaks: np.ndarray) -> np.ndarray:
    """d_t = tokens since the last line end before t (the text's start counts as one): (L,) int64."""
    positions = np.arange(len(breaks))
    last = np.maximum.accumulate(np.where(breaks, positions, -1))  # last line end at or before t
    before = np.concatenate([[-1], last[:-1]])  # ... strictly before t
    return positions - before - 1


def compare(runs: list[ScoredRun], min_count: int = 50) -> dict:
    """The table and the per-position curves of ``runs``, over the tokens every run predicts.

    Returns ``{"task": "compare", "level", "unit", "tokens", "metrics": {name: {...}}, "runs": [...],
    "per_position": {"distance", "count", "loss": {name: [...]}}}``; the per-position losses are in bits at
    character level, in nats at word level (``unit``)."""
    if not runs:
        raise ConfigError("rnnkit compare needs at least one run")
    first = runs[0]
    names = _names(runs)
    for run in runs[1:]:
        if run.level != first.level:
            raise ConfigError(f"{run.path} is a {run.level}-level run and {first.path} a {first.level}-level one: "
                              "rnnkit compare sets runs of one level beside each other")  # fmt: skip
        if len(run.losses) != len(first.losses) or not np.array_equal(run.breaks, first.breaks):
            raise ConfigError(f"{run.path} and {first.path} cut the text into different tokens ({len(run.losses):,} "
                              f"and {len(first.losses):,}): compare runs with the same word split")  # fmt: skip
    mask = np.ones(len(first.losses), dtype=bool)
    mask[:1] = False  # no run predicts the first token from anything
    for run in runs:
        mask &= np.isfinite(run.losses)
    if not mask.any():
        raise ConfigError("the text is too short: no token is predicted by every run")
    char = first.level == "char"
    metrics, table = {}, []
    for name, run in zip(names, runs):
        nats = float(run.losses[mask].mean())
        metrics[name] = {"nats_per_token": nats, **_units(char, nats), "tokens": int(mask.sum())}
        facts = ("path", "task", "model", "parameters", "seconds", "tokens_per_s")
        table.append({"name": name, **{k: getattr(run, k) for k in facts}})
    distance = distance_into_line(first.breaks)
    counts = np.bincount(distance[mask], minlength=1)
    kept = np.flatnonzero(counts >= min_count)
    kept = kept[kept <= MAX_DISTANCE]
    scale = 1.0 / math.log(2) if char else 1.0
    curves = {}
    for name, run in zip(names, runs):
        sums = np.bincount(distance[mask], weights=run.losses[mask], minlength=len(counts))
        curves[name] = [float(sums[d] / counts[d] * scale) for d in kept]
    return {
        "task": "compare", "level": first.level, "unit": "bits" if char else "nats", "tokens": int(mask.sum()),
        "metrics": metrics, "runs": table,
        "per_position": {"distance": kept.tolist(), "count": counts[kept].tolist(), "loss": curves},
    }  # fmt: skip


def _units(char: bool, nats: float) -> dict:
    return {"bits_per_char": nats / math.log(2)} if char else {"perplexity": math.exp(min(nats, 50.0))}


def _names(runs: list[ScoredRun]) -> list[str]:
    """Each run's folder name, or its path as given where two names clash."""
    names = [r.name for r in runs]
    return [r.path if names.count(r.name) > 1 else r.name for r in runs]


# -- output -------------------------------------------------------------------------------------------


def format_table(result: dict) -> str:
    """A markdown table of the runs, best score first, and a line on the per-position curves."""
    char = result["level"] == "char"
    key, label = ("bits_per_char", "bits/char") if char else ("perplexity", "perplexity")
    lines = [f"| run | model | {label} | nats/token | parameters | training time | tokens/s |",
             "|---|---|---|---|---|---|---|"]  # fmt: skip
    rows = sorted(result["runs"], key=lambda r: result["metrics"][r["name"]]["nats_per_token"])
    for r in rows:
        m = result["metrics"][r["name"]]
        seconds = f"{r['seconds']:.0f} s" if r["seconds"] is not None else "-"
        speed = f"{r['tokens_per_s']:,.0f}" if r["tokens_per_s"] else "-"
        lines.append(f"| {r['name']} | {r['model']} | {m[key]:.4f} | {m['nats_per_token']:.4f} | {r['parameters']:,} "
                     f"| {seconds} | {speed} |")  # fmt: skip
    unit = "line" if char else "sentence"
    pos = result["per_position"]
    lines.append("")
    lines.append(f"{result['tokens']:,} tokens scored by every run. Mean loss ({result['unit']}) by distance into the "
                 f"{unit}:")  # fmt: skip
    picks = [d for d in (0, 1, 2, 5, 10, 20, 40, 80) if d in pos["distance"]]
    lines.append("| run | " + " | ".join(f"d={d}" for d in picks) + " |")
    lines.append("|---|" + "---|" * len(picks))
    for r in rows:
        curve = dict(zip(pos["distance"], pos["loss"][r["name"]]))
        lines.append(f"| {r['name']} | " + " | ".join(f"{curve[d]:.3f}" for d in picks) + " |")
    return "\n".join(lines)


def plot_comparison(result: dict, path: str) -> None:
    """Left: each run's bits/char (or perplexity); right: mean loss against the distance into the line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    char = result["level"] == "char"
    key, label = ("bits_per_char", "bits per character") if char else ("perplexity", "perplexity")
    names = [r["name"] for r in result["runs"]]
    fig, (bars, curves) = plt.subplots(1, 2, figsize=(12, 4.8), gridspec_kw={"width_ratios": [1, 2]})
    values = [result["metrics"][n][key] for n in names]
    colors = [f"C{i}" for i in range(len(names))]
    bars.barh(range(len(names)), values, color=colors)
    bars.set_yticks(range(len(names)), [f"{n}\n{r['model']}" for n, r in zip(names, result["runs"])], fontsize=8)
    bars.invert_yaxis()
    for i, v in enumerate(values):
        bars.text(v, i, f" {v:.3f}" if char else f" {v:.1f}", va="center", fontsize=8)
    bars.set_xlim(0, max(values) * 1.18)  # room for the value labels
    bars.set_xlabel(label)
    bars.set_title(f"{result['tokens']:,} tokens of {Path(result.get('data', '')).name}", fontsize=9)
    pos = result["per_position"]
    for name, color in zip(names, colors):
        curves.plot(pos["distance"], pos["loss"][name], color=color, label=name)
    curves.set_xlabel("distance into the line (" + ("characters" if char else "words") + " since the last "
                      + ("newline" if char else "<eos>") + ")")  # fmt: skip
    curves.set_ylabel(f"mean loss ({result['unit']} per token)")
    curves.grid(True, alpha=0.3)
    curves.legend(fontsize="small")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
