"""The ``rnnkit`` command line.

    rnnkit train TASK [options]     train a model into a run directory (rnnkit tasks lists TASK)
    rnnkit sample RUN               generate text from a language model
    rnnkit eval RUN --data PATH     score a run on new data
    rnnkit predict RUN --text ...   apply a run to new input (classify, tag, seq2seq)
    rnnkit tasks                    list the tasks
    rnnkit gradflow --cell rnn --cell lstm --plot flow.png   gradient flow across time (BPTT)
    rnnkit plot RUN [RUN ...] --out curves.png              training curves and gradient norms
    rnnkit corpora --data DIR ...   the corpus classifier, a generator per corpus, and their check
    rnnkit bench                    time rnnkit's backends against torch.nn (forward+backward, generation)

``--json`` makes a command print one JSON object on stdout: ``{"task": ..., "metrics": {...}, ...}``.
Mistakes in the input (a missing file, a bad option, a corrupt run) print one line on stderr and exit
with status 2; nothing saved is lost.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
import time
from pathlib import Path

import torch

import rnnkit
from rnnkit import checkpoint
from rnnkit.apps import corpora as rnnkit_corpora
from rnnkit.config import config_from_dict
from rnnkit.errors import ConfigError, RnnkitError
from rnnkit.models import build_model, load_model
from rnnkit.tasks import TASKS, get_shown, get_task, shown
from rnnkit.train import TrainConfig, Trainer

LIMITS = ("epochs", "max_steps", "time_budget")
# Commands of the apps built on the library: name -> (module, help). Each module has add_arguments(parser)
# and main(args) -> exit status, and imports what it needs (a web server, onnx) inside main.
APPS = {
    "bench": ("rnnkit.apps.bench", "time rnnkit's backends against torch.nn and a step loop"),
    "serve": ("rnnkit.apps.serve", "a web page and JSON API: stream generated text, classify, tag, train live"),
    "export": ("rnnkit.apps.export", "a run as ONNX graphs, checked in onnxruntime (pip install 'rnnkit[export]')"),
    "baseline": ("rnnkit.apps.baseline", "n-gram (Kneser-Ney) and HMM language models, scored as LM runs are"),
    "compare": ("rnnkit.apps.compare", "language-model runs side by side on one text: bits/char, loss by position"),
}
# Runs that `rnnkit baseline` writes: eval and sample reach them through the app's run_task(task)
BASELINE_TASKS = ("ngram", "hmm")


# -- parsing --------------------------------------------------------------------------------------


def add_common_training_options(parser: argparse.ArgumentParser) -> None:
    """Options every ``rnnkit train TASK`` takes; None means "the task's default"."""
    g = parser.add_argument_group("training")
    g.add_argument("--batch-size", type=int)
    g.add_argument("--lr", type=float, help="learning rate")
    g.add_argument("--optimizer", choices=["adam", "adamw", "sgd", "rmsprop"])
    g.add_argument("--weight-decay", type=float)
    g.add_argument("--momentum", type=float, help="sgd / rmsprop momentum")
    g.add_argument("--schedule", choices=["constant", "step", "cosine", "plateau"])
    g.add_argument("--lr-decay", type=float, help="factor of the step and plateau schedules")
    g.add_argument("--decay-start", type=int, help="step schedule: decay from the epoch after this one")
    g.add_argument("--warmup-steps", type=int)
    g.add_argument("--clip-norm", type=float, help="clip the global gradient norm (0: off)")
    g.add_argument("--clip-value", type=float, help="clip each gradient entry to [-v, v]")
    g.add_argument("--epochs", type=int)
    g.add_argument("--max-steps", type=int)
    g.add_argument("--time-budget", type=float, metavar="SECONDS", help="stop after this much time")
    g.add_argument("--eval-every", type=int, metavar="STEPS", help="evaluate every N steps (default: every epoch)")
    g.add_argument("--patience", type=int, help="stop after N evaluations without improvement")
    g.add_argument("--log-every", type=int, metavar="STEPS")
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps")
    g.add_argument("--out", metavar="RUN", help="run directory to create (default: runs/TASK-DATE-TIME)")
    g.add_argument("--resume", metavar="RUN", help="continue an interrupted run; limits may be raised")
    g.add_argument("--json", action="store_true", help="print the summary as one JSON object")
    g.add_argument("--quiet", action="store_true", help="no progress bar")


class Parser(argparse.ArgumentParser):
    """argparse that reports a usage mistake as one line (``rnnkit: error: ...``) and exit status 2."""

    def error(self, message: str):
        self.exit(2, f"rnnkit: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="rnnkit", description=rnnkit.__doc__)
    parser.add_argument("--version", action="version", version=f"rnnkit {rnnkit.__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    train = commands.add_parser("train", help="train a model on a task")
    tasks = train.add_subparsers(dest="task", metavar="TASK", required=True)
    for name, task in sorted(TASKS.items()):
        p = tasks.add_parser(name, help=task.help, description=task.help)
        task.add_arguments(p)
        add_common_training_options(p)

    sample = commands.add_parser("sample", help="generate text from a language-model run")
    sample.add_argument("run", metavar="RUN", nargs="?", help="an lm run (or --onnx and --vocab instead)")
    sample.add_argument("--onnx", metavar="OUT.onnx", help="sample from an exported lm (numpy + onnxruntime)")
    sample.add_argument("--vocab", metavar="RUN/vocab.json", help="with --onnx: the run's vocabulary")
    sample.add_argument("--prime", help="text the samples start from")
    sample.add_argument("--length", type=int, default=500, help="tokens to generate")
    sample.add_argument("--temperature", type=float, default=1.0)
    sample.add_argument("--top-k", type=int)
    sample.add_argument("--top-p", type=float)
    sample.add_argument("--num-samples", type=int, default=1, help="samples generated together as one batch")
    sample.add_argument("--seed", type=int, help="same seed, same text")
    sample.add_argument("--device", default="cpu")
    sample.add_argument("--json", action="store_true")

    evaluate = commands.add_parser("eval", help="score a run on data")
    evaluate.add_argument("run", metavar="RUN")
    evaluate.add_argument("--data", help="data in the format the run's task trains on (seq2seq: default its test set)")
    evaluate.add_argument("--batch-size", type=int, default=32)
    evaluate.add_argument("--device", default="auto")
    evaluate.add_argument("--json", action="store_true")

    predict = commands.add_parser("predict", help="apply a run to new input")
    predict.add_argument("run", metavar="RUN")
    source = predict.add_mutually_exclusive_group(required=True)
    source.add_argument("--text", help="one input as text")
    source.add_argument("--input", help="one input (seq2seq tasks)")
    source.add_argument("--file", help="a file with one input per line")
    predict.add_argument("--device", default="cpu")
    predict.add_argument("--json", action="store_true")

    tasks_parser = commands.add_parser("tasks", help="list the tasks and their options; show a task's examples")
    tasks_parser.add_argument("--json", action="store_true")
    shows = tasks_parser.add_subparsers(dest="tasks_command", metavar="show")
    show = shows.add_parser("show", help="print examples of a task's data (sort, copy, ...)",
                            description="Print examples of what a task trains on.")  # fmt: skip
    # NAME picks the task whose show hook reads the options, so they are parsed after it (cmd_show)
    show.add_argument("name", metavar="NAME", help=f"{'|'.join(shown())}")
    rest = show.add_argument("options", nargs=argparse.REMAINDER, help="NAME's options (rnnkit tasks show NAME --help)")
    rest.required = False  # may be empty; a missing NAME is the one thing to report

    flow = commands.add_parser("gradflow", help="measure how gradients vanish or explode across time")
    flow.add_argument("--cell", action="append", choices=["rnn", "lstm", "gru"],
                      help="cell to measure (repeat to compare; default: rnn, lstm and gru)")  # fmt: skip
    flow.add_argument("--nonlinearity", choices=["tanh", "relu"], default="tanh", help="of the rnn cell")
    flow.add_argument("--hidden-size", type=int, default=64)
    flow.add_argument("--input-size", type=int, default=32, help="random inputs' size (without --data)")
    flow.add_argument("--length", type=int, default=100, help="steps T")
    flow.add_argument("--batch-size", type=int, default=8, help="sequences averaged over")
    flow.add_argument("--init-scale", type=float,
                      help="recurrent weights = s x orthogonal per gate (default: the cells' own init)")  # fmt: skip
    flow.add_argument("--run", help="measure a trained language-model run instead of fresh cells")
    flow.add_argument("--data", help="real text as input (one-hot characters, or the run's tokens)")
    flow.add_argument("--seed", type=int, default=0)
    flow.add_argument("--plot", metavar="PNG", help="write the plot here")
    flow.add_argument("--json", action="store_true")

    plot = commands.add_parser("plot", help="plot training curves of runs")
    plot.add_argument("runs", nargs="+", metavar="RUN")
    plot.add_argument("--out", required=True, metavar="PNG")

    corpora = commands.add_parser("corpora", help="the 4-corpus system: classifier, generators and their check")
    rnnkit_corpora.add_arguments(corpora)

    for name, (module, help) in APPS.items():  # commands of the apps, each its own module (lazily imported)
        app = commands.add_parser(name, help=help)
        importlib.import_module(module).add_arguments(app)
    return parser


# -- commands -------------------------------------------------------------------------------------


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ConfigError(f"unknown device {name!r}; use auto, cpu, cuda, cuda:N or mps") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {name!r} asked for, but CUDA is not available on this machine")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ConfigError("device 'mps' asked for, but MPS is not available on this machine")
    return device


def train_config_from_args(args: argparse.Namespace, defaults: dict) -> TrainConfig:
    fields = {}
    for name in TrainConfig.__dataclass_fields__:
        value = getattr(args, name, None)
        fields[name] = defaults.get(name) if value is None else value
    fields = {k: v for k, v in fields.items() if v is not None}
    if getattr(args, "clip_norm", None) == 0:
        fields["clip_norm"] = None
    if not any(name in fields for name in LIMITS):
        fields["epochs"] = defaults.get("default_epochs", 10)
    try:
        return TrainConfig(**fields)
    except TypeError as error:
        raise ConfigError(str(error)) from None


def cmd_train(args: argparse.Namespace) -> int:
    task_cls = get_task(args.task)
    device = resolve_device(args.device)
    if args.resume:
        run_dir = Path(args.resume)
        config = checkpoint.load_config(run_dir, task=task_cls.name)
        train_config = config_from_dict(TrainConfig, config.get("train"), "config.json train")
        limits = {name: getattr(args, name) for name in LIMITS if getattr(args, name) is not None}
        if limits:
            train_config = TrainConfig(**{**train_config.__dict__, **limits})
        state = checkpoint.load_training_state(run_dir, device="cpu")
        if state is None:
            raise ConfigError(f"{run_dir} has no {checkpoint.TRAINING_STATE} to resume from")
        task = task_cls.from_run(run_dir, config, device)
        model = build_model(config["model"]).to(device)
        run_config = {k: v for k, v in config.items() if k not in ("format", "version", "model", "train")}
        vocab = checkpoint.load_vocab(run_dir) if (run_dir / checkpoint.VOCAB).is_file() else None
    else:
        run_dir = Path(args.out) if args.out else Path("runs") / f"{task_cls.name}-{time.strftime('%Y%m%d-%H%M%S')}"
        if (run_dir / checkpoint.CONFIG).exists():
            raise ConfigError(
                f"{run_dir} already holds a run; continue it with --resume {run_dir} or choose another --out"
            )
        defaults = task_cls.train_defaults()
        if args.batch_size is None:
            args.batch_size = defaults.get("batch_size", 32)
        train_config = train_config_from_args(args, defaults)
        torch.manual_seed(args.seed)
        task, model, run_config, vocab = task_cls.from_args(args, device)
        state = None
    model.to(device)
    trainer = Trainer(model, task, train_config, run_dir, run_config=run_config, vocab=vocab, device=device)
    if state is not None:
        trainer.load_training_state(state)
    show = ProgressDisplay(trainer, task, quiet=args.quiet or args.json)
    trainer.callback = show
    for note in getattr(task, "notes", ()):  # what building the task did (--init-from, --embeddings)
        print(f"note: {note}", file=sys.stderr)
    try:
        summary = trainer.fit()
    except KeyboardInterrupt:
        show.close()
        trainer.save(weights=False)
        print(f"rnnkit: interrupted at step {trainer.progress.step}; continue with: "
              f"rnnkit train {task_cls.name} --resume {run_dir}", file=sys.stderr)  # fmt: skip
        return 130
    finally:
        show.close()
    best = summary.get("best") or {}
    if args.json:
        metrics = {k: v for k, v in best.items() if k not in ("split", "best")}
        print(json.dumps({"task": task_cls.name, "metrics": metrics, "run": str(run_dir), "summary": summary}))
        return 0
    print(f"best validation loss {best.get('loss', float('nan')):.4f} at step {best.get('step')} "
          f"({describe_metrics(best)}); {summary['steps']} steps in {summary['seconds']:.0f} s; "
          f"run saved in {run_dir}", file=sys.stderr)  # fmt: skip
    if hasattr(task, "preview"):
        best_model = load_model(run_dir, device=device)
        print(task.preview(best_model, length=600))
    return 0


def describe_metrics(record: dict) -> str:
    parts = []
    for key, value in record.items():
        if key in ("split", "step", "epoch", "loss", "best", "elapsed", "tokens") or not isinstance(value, float):
            continue
        parts.append(f"{key} {value:.4f}")
    return ", ".join(parts)


class ProgressDisplay:
    """A tqdm bar on stderr with loss and tokens/s, and a text sample at each evaluation."""

    def __init__(self, trainer: Trainer, task, quiet: bool) -> None:
        self.trainer, self.task, self.quiet, self.bar = trainer, task, quiet, None
        self.valid = ""

    def __call__(self, event: str, record: dict) -> None:
        if self.quiet:
            return
        from tqdm.auto import tqdm

        c = self.trainer.config
        if self.bar is None:
            total = c.max_steps or None
            done = self.trainer.progress.step - (1 if event == "step" else 0)
            self.bar = tqdm(total=total, initial=done, unit="step", file=sys.stderr, dynamic_ncols=True)
        if event == "step":
            self.bar.update(1)
        elif event == "train":
            speed = record.get("tokens_per_s")
            postfix = {"loss": f"{record['loss']:.3f}"}
            if speed:
                postfix["tok/s"] = f"{speed:,.0f}"
            if self.valid:
                postfix["valid"] = self.valid
            if c.time_budget:
                postfix["time"] = f"{record['elapsed']:.0f}/{c.time_budget:.0f}s"
            self.bar.set_postfix(postfix, refresh=False)
        elif event == "valid":
            self.valid = f"{record['loss']:.3f}"
            self.bar.write(f"step {record['step']}: valid loss {record['loss']:.4f} ({describe_metrics(record)})",
                           file=sys.stderr)  # fmt: skip
            if hasattr(self.task, "preview"):
                text = self.task.preview(self.trainer.model, length=200)
                self.bar.write("    " + text.strip().replace("\n", "\n    "), file=sys.stderr)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def run_task(run: str) -> tuple[type, dict]:
    config = checkpoint.load_config(run)
    if config.get("task") in BASELINE_TASKS:
        return importlib.import_module(APPS["baseline"][0]).run_task(config["task"]), config
    return get_task(config.get("task")), config


def cmd_sample_onnx(args: argparse.Namespace) -> int:
    """``rnnkit sample --onnx OUT.onnx --vocab RUN/vocab.json``: the sampler of rnnkit_onnx (no PyTorch in it)."""
    if args.run or not args.onnx or not args.vocab:
        raise ConfigError("rnnkit sample takes a RUN, or --onnx OUT.onnx with --vocab RUN/vocab.json")
    from rnnkit_onnx.__main__ import run

    try:
        return run(args)
    except ValueError as error:
        raise ConfigError(str(error)) from None


def cmd_sample(args: argparse.Namespace) -> int:
    from rnnkit.tasks.lm import load_tokenizer, sample_text

    if args.run is None and not args.onnx:
        Parser(prog="rnnkit sample").error("the following arguments are required: RUN (or --onnx OUT.onnx)")
    if args.onnx or args.vocab:
        return cmd_sample_onnx(args)
    task_cls, config = run_task(args.run)
    options = dict(length=args.length, prime=args.prime, temperature=args.temperature, top_k=args.top_k,
                   top_p=args.top_p, num_samples=args.num_samples, seed=args.seed)  # fmt: skip
    if hasattr(task_cls, "sample_run"):  # a baseline run (n-gram, HMM): text pieces as sample_text gives them
        pieces = task_cls.sample_run(Path(args.run), config, **options)
    else:
        if task_cls.name != "lm":
            raise ConfigError(f"{args.run} is a {task_cls.name!r} run; rnnkit sample needs an 'lm' run")
        device = resolve_device(args.device)
        model = load_model(args.run, device=device, task="lm")
        pieces = sample_text(model, load_tokenizer(Path(args.run)), **options)
    try:
        prime = args.prime or ""
        if args.json:
            started = time.perf_counter()
            texts = list(pieces)
            seconds = time.perf_counter() - started
            samples = ["".join(texts)] if args.num_samples == 1 else texts
            tokens = args.length * args.num_samples
            print(json.dumps({"task": task_cls.name, "samples": [prime + s for s in samples],
                              "metrics": {"tokens": tokens, "tokens_per_s": tokens / seconds}}))  # fmt: skip
            return 0
        first = next(pieces)  # errors in the options surface before anything is printed
        if args.num_samples == 1:
            sys.stdout.write(prime + first)
            for piece in pieces:
                sys.stdout.write(piece)
                sys.stdout.flush()
            sys.stdout.write("\n")
        else:
            for i, text in enumerate([first, *pieces]):
                sys.stdout.write(f"--- sample {i + 1} ---\n{prime}{text}\n")
    except ValueError as error:
        raise ConfigError(str(error)) from None
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    task_cls, config = run_task(args.run)
    if args.data is None and not getattr(task_cls, "has_test_set", False):
        raise ConfigError(f"{args.run} is a {task_cls.name!r} run: rnnkit eval needs --data FILE")
    device = resolve_device(args.device)
    result = task_cls.evaluate_run(Path(args.run), config, args, device)
    if args.json:
        print(json.dumps(result))
    else:
        metrics = result["metrics"]
        print("\n".join(f"{k}: {v:.4f}" if isinstance(v, float) else f"{k}: {v}" for k, v in metrics.items()))
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    task_cls, config = run_task(args.run)
    if not hasattr(task_cls, "predict_run"):
        raise ConfigError(f"{args.run} is a {task_cls.name!r} run, which has no predict; try rnnkit sample")
    device = resolve_device(args.device)
    result = task_cls.predict_run(Path(args.run), config, args, device)  # {"task", "predictions", "text"}
    if args.json:
        print(json.dumps({k: v for k, v in result.items() if k != "text"}))
    else:
        print(result["text"])
    return 0


def cmd_corpora(args: argparse.Namespace) -> int:
    config = rnnkit_corpora.config_from_args(args)
    device = resolve_device(args.device)

    def show(event: str, record: dict) -> None:
        if args.quiet or args.json:
            return
        if event in ("start", "skip"):
            verb = {"start": "resuming" if record.get("resumed") else "training", "skip": "already trained:"}[event]
            print(f"{verb} {record['stage']} ({record['run']})", file=sys.stderr)
        elif event == "valid":
            print(f"  {record['stage']} step {record['step']}: valid loss {record['loss']:.4f} "
                  f"({describe_metrics(record)})", file=sys.stderr)  # fmt: skip
        elif event == "generate":
            print(f"generating and classifying {record['passages']} passages", file=sys.stderr)

    report = rnnkit_corpora.run(config, device, callback=show)
    if args.json:
        print(json.dumps({k: report[k] for k in ("task", "metrics", "labels", "passages", "seconds")}))
    else:
        print(rnnkit_corpora.report_markdown(report))
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    """``rnnkit tasks show NAME [options]``: the options are those of the show hook of NAME's task."""
    task = get_shown(args.name)
    parser = Parser(prog=f"rnnkit tasks show {args.name}", description=f"Examples of {args.name} ({task.name}).")
    task.add_show_arguments(parser)
    parser.add_argument("--json", action="store_true")
    options = parser.parse_args(args.options)
    result = task.show(args.name, options)  # {..., "text"}
    if options.json or args.json:
        print(json.dumps({k: v for k, v in result.items() if k != "text"}))
    else:
        print(result["text"])
    return 0


def cmd_tasks(args: argparse.Namespace) -> int:
    if getattr(args, "tasks_command", None) == "show":
        return cmd_show(args)
    listing = []
    for name, task in sorted(TASKS.items()):
        options = argparse.ArgumentParser(add_help=False)
        task.add_arguments(options)
        flags = [a.option_strings[0] for a in options._actions if a.option_strings]
        extra = task.describe() if hasattr(task, "describe") else []
        listing.append({"name": name, "help": task.help, "options": flags, "notes": extra})
    if args.json:
        print(json.dumps({"tasks": listing}))
        return 0
    width = max(len(t["name"]) for t in listing)
    for t in listing:
        print(f"{t['name']:<{width}}  {t['help']}")
        print(" " * (width + 2) + "options: " + " ".join(t["options"]))
        for line in t["notes"]:
            print(" " * (width + 2) + line)
    return 0


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


def cmd_gradflow(args: argparse.Namespace) -> int:
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


def cmd_plot(args: argparse.Namespace) -> int:
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


COMMANDS = {
    "train": cmd_train,
    "sample": cmd_sample,
    "eval": cmd_eval,
    "predict": cmd_predict,
    "tasks": cmd_tasks,
    "gradflow": cmd_gradflow,
    "plot": cmd_plot,
    "corpora": cmd_corpora,
}


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return 2
    try:
        if args.command in APPS:
            return importlib.import_module(APPS[args.command][0]).main(args)
        return COMMANDS[args.command](args)
    except RnnkitError as error:
        print(f"rnnkit: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("rnnkit: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0  # e.g. `rnnkit sample RUN | head`
