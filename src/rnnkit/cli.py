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
import os
import sys
import time
from pathlib import Path

import torch

import rnnkit
from rnnkit import checkpoint, distributed
from rnnkit.apps import corpora as rnnkit_corpora
from rnnkit.apps import diagnose
from rnnkit.errors import ConfigError, RnnkitError
from rnnkit.models import load_model
from rnnkit.progress import FINAL_PREVIEW, ProgressDisplay, describe_metrics
from rnnkit.runlock import RunLock
from rnnkit.tasks import TASKS, get_shown, get_task, presets, shown
from rnnkit.tasks.music import add_sample_arguments, music_sample, sample_run
from rnnkit.tasks.options import POSITIVE, SEED, Number
from rnnkit.train import TRAIN_RANGES, TrainConfig, Trainer, resume_parts, training_dtype
from rnnkit_onnx.sampler import write_samples

LIMITS = ("epochs", "max_steps", "time_budget")
# Commands of the apps built on the library: name -> (module, help). Each module has add_arguments(parser)
# and main(args) -> exit status, and imports what it needs (a web server, onnx) inside main.
APPS = {
    "bench": ("rnnkit.apps.bench", "time rnnkit's backends against torch.nn and a step loop"),
    "serve": ("rnnkit.apps.serve", "a web page and JSON API: stream generated text, classify, tag, train live"),
    "export": ("rnnkit.apps.export", "a run as ONNX graphs, checked in onnxruntime (pip install 'rnnkit[export]')"),
    "baseline": ("rnnkit.apps.baseline", "n-gram (Kneser-Ney) and HMM language models, scored as LM runs are"),
    "compare": ("rnnkit.apps.compare", "language-model runs side by side on one text: bits/char, loss by position"),
    "data": ("rnnkit.apps.data", "what data ship with rnnkit, and where the examples' other data come from"),
}
# Runs that `rnnkit baseline` writes: eval and sample reach them through the app's run_task(task)
BASELINE_TASKS = ("ngram", "hmm")


# -- parsing --------------------------------------------------------------------------------------


def add_common_training_options(parser: argparse.ArgumentParser) -> None:
    """Options every ``rnnkit train TASK`` takes; None means "the task's default"."""
    g = parser.add_argument_group("training")
    r = TRAIN_RANGES  # each flag parses with its field's range, so a bad number stops here, before anything runs
    g.add_argument("--batch-size", type=POSITIVE)
    g.add_argument("--lr", type=r["lr"], help="learning rate")
    g.add_argument("--optimizer", choices=["adam", "adamw", "sgd", "rmsprop"])
    g.add_argument("--weight-decay", type=r["weight_decay"])
    g.add_argument("--momentum", type=r["momentum"], help="sgd / rmsprop momentum")
    g.add_argument("--schedule", choices=["constant", "step", "cosine", "plateau"])
    g.add_argument("--lr-decay", type=r["lr_decay"], help="factor of the step and plateau schedules")
    g.add_argument("--decay-start", type=r["decay_start"], help="step schedule: decay from the epoch after this one")
    g.add_argument("--warmup-steps", type=r["warmup_steps"])
    g.add_argument("--clip-norm", type=Number(float, 0.0), help="clip the global gradient norm (0: off)")
    g.add_argument("--clip-value", type=r["clip_value"], help="clip each gradient entry to [-v, v]")
    g.add_argument("--epochs", type=r["epochs"])
    g.add_argument("--max-steps", type=r["max_steps"])
    g.add_argument("--time-budget", type=r["time_budget"], metavar="SECONDS",
                   help="stop in time for the run, its last evaluation and save included, to end after this "
                   "many seconds (counted from the start of the command)")  # fmt: skip
    g.add_argument("--eval-every", type=r["eval_every"], metavar="STEPS",
                   help="evaluate every N steps (default: every epoch, and at 10, 25, 50, 75%% of a time budget)")
    g.add_argument("--patience", type=r["patience"], help="stop after N evaluations without improvement")
    g.add_argument("--average", type=r["average"], metavar="DECAY",
                   help="score and keep an exponential moving average of the weights, w <- DECAY w + (1 - DECAY) "
                   "w_step (Polyak averaging); default: the weights as trained")  # fmt: skip
    g.add_argument("--log-every", type=r["log_every"], metavar="STEPS")
    g.add_argument("--seed", type=SEED, default=0)
    g.add_argument("--allow-divergence", action="store_true", default=None,
                   help="go on when the validation loss diverges (by default the run stops, keeping its best)")
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
        table = getattr(task, "preset_table", None)
        p = tasks.add_parser(name, help=task.help, description=task.help, epilog=table and presets.describe(table),
                             formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
        task.add_arguments(p)
        add_common_training_options(p)

    sample = commands.add_parser("sample", help="generate text from a language-model run")
    sample.add_argument("run", metavar="RUN", nargs="?", help="an lm run (or --onnx and --vocab instead)")
    sample.add_argument("--onnx", metavar="OUT.onnx", help="sample from an exported lm (numpy + onnxruntime)")
    sample.add_argument("--vocab", metavar="RUN/vocab.json", help="with --onnx: the run's vocabulary")
    sample.add_argument("--prime", help="text the samples start from")
    sample.add_argument("--length", type=POSITIVE, default=500, help="tokens to generate")
    sample.add_argument("--temperature", type=Number(float, 0.0, 100.0), help="0: greedy; default 1, "
                        "with --abc rnnkit.tasks.music.ABC_TEMPERATURE (measured: benchmarks/music.py)")  # fmt: skip
    sample.add_argument("--top-k", type=POSITIVE)
    sample.add_argument("--top-p", type=Number(float, 0.0, 1.0, low_open=True))
    sample.add_argument("--num-samples", type=Number(int, 1, 10_000), default=1,
                        help="samples generated together as one batch")  # fmt: skip
    sample.add_argument("--seed", type=SEED, help="same seed, same text")
    sample.add_argument("--device", default="cpu")
    sample.add_argument("--json", action="store_true")
    add_sample_arguments(sample)  # music runs, and --abc tunes from an lm run

    evaluate = commands.add_parser("eval", help="score a run on data")
    evaluate.add_argument("run", metavar="RUN")
    evaluate.add_argument("--data", help="data in the format the run's task trains on (seq2seq: default its test set)")
    evaluate.add_argument("--batch-size", type=POSITIVE, default=32)
    evaluate.add_argument("--split", choices=["train", "valid", "test"], help="music: which split (default test)")
    evaluate.add_argument("--backtest", type=POSITIVE, metavar="K", help="forecast runs: also K rolling origins, "
                          "H apart (mean and spread of each metric, model and baselines)")  # fmt: skip
    evaluate.add_argument("--device", default="auto")
    evaluate.add_argument("--json", action="store_true")

    predict = commands.add_parser("predict", help="apply a run to new input")
    predict.add_argument("run", metavar="RUN")
    source = predict.add_mutually_exclusive_group(required=True)
    source.add_argument("--text", help="one input as text")
    source.add_argument("--input", help="one input (seq2seq tasks)")
    source.add_argument("--file", help="a file with one input per line")
    source.add_argument("--data", metavar="FILE.csv", help="forecast runs: the history to forecast past the end of")
    predict.add_argument("--horizon", type=POSITIVE, help="forecast runs: steps ahead (at most the run's horizon)")
    predict.add_argument("--csv", metavar="OUT.csv", help="forecast runs: also write the forecast as CSV")
    predict.add_argument("--plot", metavar="OUT.png", help="forecast runs: history, median, intervals, baselines")
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
    diagnose.add_gradflow_arguments(flow)

    plot = commands.add_parser("plot", help="plot training curves of runs")
    diagnose.add_plot_arguments(plot)

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
    """Train a new run (``--out``) or continue one (``--resume``). Every flag was checked as it was parsed;
    a new run's folder is checked before the data are read and made only after, and the run's lock is
    held from then on, so a mistake leaves nothing behind and a second writer is refused.

    Under torchrun every process runs this (:mod:`rnnkit.distributed`); rank 0 alone makes, locks and
    writes the run directory. ``RNNKIT_DTYPE=float64`` trains in float64 (the tests' exact comparisons)."""
    task_cls = get_task(args.task)
    device = distributed.setup(resolve_device(args.device))
    main = distributed.is_main()
    dtype = training_dtype()
    created: list[Path] = []
    if args.resume:
        run_dir = Path(args.resume)
        config = checkpoint.load_config(run_dir, task=task_cls.name)
        distributed.check_batch((config.get("data") or {}).get("batch_size") or 0)
        # before anything is read: a second --resume is refused at once
        lock = RunLock(run_dir).acquire() if main else None
    else:
        run_dir = Path(args.out) if args.out else Path("runs") / f"{task_cls.name}-{time.strftime('%Y%m%d-%H%M%S')}"
        run_dir = Path(distributed.broadcast(str(run_dir)))  # rank 0's clock names the run
        if main:
            checkpoint.check_new_run_dir(run_dir)
        lock = None
    default_dtype = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        if args.resume:
            overrides = {name: getattr(args, name) for name in LIMITS if getattr(args, name) is not None}
            if args.allow_divergence:
                overrides["allow_divergence"] = True
            task, model, train_config, run_config, vocab, state = resume_parts(run_dir, task_cls, device, overrides)
        else:
            chosen = presets.apply(task_cls, args)  # the budget's defaults for what the user left out
            defaults = task_cls.train_defaults()
            if args.batch_size is None:
                args.batch_size = defaults.get("batch_size", 32)
            distributed.check_batch(args.batch_size)  # the global batch: each process takes batch / processes
            train_config = train_config_from_args(args, defaults)
            torch.manual_seed(args.seed)
            task, model, run_config, vocab = task_cls.from_args(args, device)
            if chosen is not None:
                run_config["defaults"] = chosen
            state = None
            if main:
                created = checkpoint.make_run_dir(run_dir)
                lock = RunLock(run_dir).acquire()
                checkpoint.check_new_run_dir(run_dir)  # another process may have made a run here meanwhile
        model.to(device, dtype)
        trainer = Trainer(model, task, train_config, run_dir, run_config=run_config, vocab=vocab, device=device,
                          lock=lock, started=getattr(args, "started", None))  # fmt: skip
        if state is not None:
            trainer.load_training_state(state)
        code = _fit(args, task_cls, task, trainer, run_dir, device)
        if code == 0:
            distributed.barrier()  # rank 0 may still be printing its preview
        return code
    finally:
        torch.set_default_dtype(default_dtype)
        if lock is not None:
            lock.release()
        if created and not (run_dir / checkpoint.CONFIG).exists():
            checkpoint.remove_unused(created)


def _fit(args: argparse.Namespace, task_cls, task, trainer: Trainer, run_dir: Path, device) -> int:
    main = distributed.is_main()  # under torchrun only rank 0 shows progress and prints
    show = ProgressDisplay(trainer, task, quiet=args.quiet or args.json or not main, notes=not args.json and main)
    trainer.callback = show
    trainer.reserve = show.reserve
    for note in getattr(task, "notes", ()):  # what building the task did (--init-from, --embeddings)
        trainer.note(note)
    try:
        summary = trainer.fit()
    except KeyboardInterrupt:
        show.close()
        if distributed.active():  # the others may be gone: a save would wait for them; the last one stands
            if main:
                print(f"rnnkit: interrupted at step {trainer.progress.step}; {trainer.on_disk()}; continue with: "
                      f"torchrun ... -m rnnkit train {task_cls.name} --resume {run_dir}", file=sys.stderr)  # fmt: skip
            return 130
        trainer.save(weights=False)
        print(f"rnnkit: interrupted at step {trainer.progress.step}; continue with: "
              f"rnnkit train {task_cls.name} --resume {run_dir}", file=sys.stderr)  # fmt: skip
        return 130
    finally:
        show.close()
    if not main:
        return 0
    best = summary.get("best") or {}
    if args.json:
        metrics = {k: v for k, v in best.items() if k not in ("split", "best")}
        print(json.dumps({"task": task_cls.name, "metrics": metrics, "run": str(run_dir), "summary": summary}))
        return 0
    steps = f"{summary['steps']} step{'s' if summary['steps'] != 1 else ''}"
    print(f"best validation loss {best.get('loss', float('nan')):.4f} at step {best.get('step')} "
          f"({describe_metrics(best)}); {steps} in {summary['seconds']:.0f} s; run saved in {run_dir}",
          file=sys.stderr)  # fmt: skip
    if hasattr(task, "preview"):
        best_model = load_model(run_dir, device=device)
        print(task.preview(best_model, length=FINAL_PREVIEW))
    return 0


def run_task(run: str) -> tuple[type, dict]:
    """The task and config of run directory ``run``, its vocabulary checked against its model."""
    config = checkpoint.load_config(run)
    if config.get("task") in BASELINE_TASKS:
        task = importlib.import_module(APPS["baseline"][0]).run_task(config["task"])
    else:
        task = get_task(config.get("task"))
    if hasattr(task, "check_run"):
        task.check_run(Path(run), config)
    return task, config


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
    if music_sample(task_cls, args):  # a music run, or --abc tunes from an lm run (rnnkit.tasks.music)
        result = sample_run(task_cls, Path(args.run), config, args, resolve_device(args.device))
        print(json.dumps({k: v for k, v in result.items() if k != "text"}) if args.json else result["text"])
        return 0
    temperature = 1.0 if args.temperature is None else args.temperature
    options = dict(length=args.length, prime=args.prime, temperature=temperature, top_k=args.top_k,
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
        write_samples(pieces, args.prime or "", num_samples=args.num_samples, length=args.length, task=task_cls.name,
                      as_json=args.json, out=sys.stdout)  # fmt: skip
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



COMMANDS = {
    "train": cmd_train,
    "sample": cmd_sample,
    "eval": cmd_eval,
    "predict": cmd_predict,
    "tasks": cmd_tasks,
    "gradflow": diagnose.gradflow,
    "plot": diagnose.plot,
    "corpora": cmd_corpora,
}


def process_started() -> float:
    """The ``time.perf_counter()`` at which this process started (from /proc on Linux; else now), so that
    a time budget covers the interpreter's start and the imports too."""
    try:
        with open("/proc/self/stat", encoding="ascii") as f:
            ticks = int(f.read().rsplit(")", 1)[1].split()[19])  # field 22, starttime, in clock ticks after boot
        with open("/proc/uptime", encoding="ascii") as f:
            uptime = float(f.read().split()[0])
        age = uptime - ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        age = 0.0
    return time.perf_counter() - min(max(age, 0.0), 600.0)


def main(argv: list[str] | None = None) -> int:
    # the program's own command line (argv None) counts its time from the process start; a call from
    # Python (tests, scripts) from here
    started = process_started() if argv is None else time.perf_counter()
    parser = build_parser()
    args = parser.parse_args(argv)
    args.started = started
    if args.command is None:
        parser.print_help(sys.stderr)
        return 2
    try:
        if args.command in APPS:
            return importlib.import_module(APPS[args.command][0]).main(args)
        return COMMANDS[args.command](args)
    except RnnkitError as error:
        # under torchrun: an error every rank meets is printed once (rank 0's); any other names its rank
        if distributed.is_main() or not getattr(error, "every_rank", False):
            where = f"rank {distributed.rank()} of {distributed.world()}: " if distributed.rank() else ""
            print(f"rnnkit: error: {where}{error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("rnnkit: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0  # e.g. `rnnkit sample RUN | head`
    finally:
        distributed.shutdown()  # under torchrun (rnnkit train): leave the process group
