"""``rnnkit gradflow`` and ``rnnkit plot``: looking inside recurrent training.

    rnnkit gradflow --cell rnn --cell lstm --plot flow.png   gradient flow across time (BPTT)
    rnnkit plot RUN [RUN ...] --out curves.png              training curves and gradient norms

The measurements and the plots are :mod:`rnnkit.diagnostics`'; this module reads the options, builds the
inputs (random vectors, one-hot characters of a text, or a run's embeddings) and prints the result.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from rnnkit import checkpoint
from rnnkit.errors import ConfigError
from rnnkit.models import load_model
from rnnkit.tasks.options import POSITIVE, POSITIVE_REAL, SEED


def add_gradflow_arguments(flow: argparse.ArgumentParser) -> None:
    """``rnnkit gradflow``'s options."""
    flow.add_argument("--cell", action="append", choices=["rnn", "lstm", "gru"],
                      help="cell to measure (repeat to compare; default: rnn, lstm and gru)")  # fmt: skip
    flow.add_argument("--nonlinearity", choices=["tanh", "relu"], default="tanh", help="of the rnn cell")
    flow.add_argument("--hidden-size", type=POSITIVE, default=64)
    flow.add_argument("--input-size", type=POSITIVE, default=32, help="random inputs' size (without --data)")
    flow.add_argument("--length", type=POSITIVE, default=100, help="steps T")
    flow.add_argument("--batch-size", type=POSITIVE, default=8, help="sequences averaged over")
    flow.add_argument("--init-scale", type=POSITIVE_REAL,
                      help="recurrent weights = s x orthogonal per gate (default: the cells' own init)")  # fmt: skip
    flow.add_argument("--run", help="measure a trained language-model run instead of fresh cells")
    flow.add_argument("--data", help="real text as input (one-hot characters, or the run's tokens)")
    flow.add_argument("--seed", type=SEED, default=0)
    flow.add_argument("--plot", metavar="PNG", help="write the plot here")
    flow.add_argument("--json", action="store_true")


def add_plot_arguments(plot: argparse.ArgumentParser) -> None:
    """``rnnkit plot``'s options."""
    plot.add_argument("runs", nargs="+", metavar="RUN")
    plot.add_argument("--out", required=True, metavar="PNG")


def gradflow_inputs(args: argparse.Namespace, tokenizer=None, embedding=None) -> torch.Tensor:
    """Inputs (T, B, I) in float64: random vectors, one-hot characters of --data, or a run's embeddings
    of --data (or of random tokens)."""
    from rnnkit.data.text import iter_text
    from rnnkit.data.tokenizers import CharTokenizer

    T, B = args.length, args.batch_size
    generator = torch.Generator().manual_seed(args.seed)
    if args.data is None:
        if embedding is None:
            return torch.randn(T, B, args.input_size, generator=generator, dtype=torch.float64)
        ids = torch.randint(0, embedding.num_embeddings, (T, B), generator=generator)
    else:
        text = ""
        for chunk in iter_text(args.data):
            text += chunk
            if len(text) >= 4 * T * B:  # enough for T x B tokens at either level
                break
        tokenizer = tokenizer or CharTokenizer.build([text])
        ids = torch.from_numpy(tokenizer.encode(text).astype("int64"))
        if len(ids) < T * B:
            raise ConfigError(f"{args.data} is too short for {B} sequences of {T} steps")
        ids = ids[: T * B].view(B, T).t()  # (T, B)
    if embedding is not None:
        with torch.no_grad():
            return embedding(ids).double()
    return torch.nn.functional.one_hot(ids, len(tokenizer)).double()


def gradflow(args: argparse.Namespace) -> int:
    """``rnnkit gradflow``: how the gradient of the last step's loss shrinks or grows back through time."""
    from rnnkit import diagnostics

    for name in ("hidden_size", "input_size", "length", "batch_size"):
        if getattr(args, name) < 1:
            raise ConfigError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    torch.manual_seed(args.seed)
    results: dict[str, diagnostics.GradientFlow] = {}
    if args.run:
        if args.cell:
            raise ConfigError("--cell and --run exclude each other: a run brings its own cells")
        from rnnkit.tasks.lm import load_tokenizer

        model = load_model(args.run, task="lm").double()
        rnn = model.rnn.config
        if rnn.skip_connections:
            raise ConfigError("gradflow does not follow skip connections; measure a run without them")
        cells = [model.rnn.cell(layer * rnn.num_directions) for layer in range(rnn.num_layers)]
        tokenizer = load_tokenizer(Path(args.run)) if args.data else None
        x = gradflow_inputs(args, tokenizer=tokenizer, embedding=model.embedding)
        results[Path(args.run).name] = diagnostics.gradient_flow(cells, x)
    else:
        kinds = args.cell or ["rnn", "lstm", "gru"]
        x = gradflow_inputs(args)
        for kind in kinds:
            try:
                cell = diagnostics.make_cell(kind, x.shape[-1], args.hidden_size, args.init_scale, args.nonlinearity)
            except ValueError as error:
                raise ConfigError(str(error)) from None
            results[kind] = diagnostics.gradient_flow([cell.double()], x)
    if args.plot:
        scale = f", recurrent scale {args.init_scale}" if args.init_scale else ""
        diagnostics.plot_gradient_flow(results, args.plot, title=f"Gradient flow over {args.length} steps{scale}")
    metrics = {name: flow.to_json() for name, flow in results.items()}
    if len(metrics) == 1:
        metrics = next(iter(metrics.values()))
    if args.json:
        print(json.dumps({"task": "gradflow", "metrics": metrics}))
        return 0
    for name, flow in results.items():
        g = flow.grad_norms
        picks = [d for d in (1, 10, 50, len(g) - 1) if d < len(g)]
        print(
            f"{name:>6}: x{flow.decay_per_step:.4g} per step; "
            + ", ".join(f"|dL/dh_T-{d}| = {g[d]:.3g}" for d in picks)
        )
    if args.plot:
        print(f"plot written to {args.plot}")
    return 0


def plot(args: argparse.Namespace) -> int:
    """``rnnkit plot RUN [RUN ...] --out PNG``: the runs' training curves and gradient norms."""
    from rnnkit import diagnostics

    runs = {}
    for run in args.runs:
        checkpoint.load_config(run)  # a clear error for a path that is not a run
        records = checkpoint.read_metrics(run)
        if not records:
            raise ConfigError(f"{run} has no metrics.jsonl records to plot")
        runs[Path(run).name or run] = records
    diagnostics.plot_runs(runs, args.out)
    print(f"plot written to {args.out}")
    return 0
