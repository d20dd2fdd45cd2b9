"""The command-line options every task shares, and reading them into configs and inputs.

Each task module adds its own options in ``add_arguments``; what is common to all of them lives here,
so that no task module imports another: the recurrent stack's options (:func:`add_rnn_options`, read
back by :func:`rnn_config_from_args`), the positive-integer check with its one-line error, and the
texts of ``rnnkit predict RUN --text | --input | --file`` (:func:`predict_inputs`), and pretrained word vectors
(``--embeddings``, ``--freeze-embeddings``: :func:`add_embedding_options`, :func:`read_pretrained`,
:func:`apply_pretrained` through :func:`new_run_config`, :func:`hold_embedding`).
"""

from __future__ import annotations

import argparse
import math
from dataclasses import asdict
from pathlib import Path

from torch import nn

from rnnkit.data.embeddings import WordVectors, read_word_vectors
from rnnkit.data.text import iter_lines
from rnnkit.errors import ConfigError, DataError
from rnnkit.layers import RecurrentConfig
from rnnkit.models.common import load_pretrained
from rnnkit.tasks.presets import left_alone


def add_rnn_options(group) -> None:
    """Options every task's recurrent stack takes."""
    group.add_argument("--layer-norm", action="store_true", help="layer-normalised cells (Ba et al. 2016)")
    group.add_argument("--recurrent-dropout", type=DROPOUT, default=0.0, help="one dropout mask per sequence on h")
    group.add_argument("--zoneout", type=DROPOUT, default=0.0, help="zoneout probability (Krueger et al. 2016)")
    group.add_argument("--reset", choices=["after", "before"], default="after", help="GRU form (before = Cho et al.)")
    group.add_argument("--backend", choices=["auto", "torch", "fused", "reference"], default="auto",
                       help="how the recurrence runs: torch's kernels, rnnkit's fused BPTT, or the reference loop")


def add_cell_options(group) -> None:
    """The recurrent stack's cell and size, with no default: left out, they come from the task's preset."""
    group.add_argument("--cell", choices=["lstm", "gru", "rnn"])
    group.add_argument("--hidden-size", type=POSITIVE)
    group.add_argument("--num-layers", type=POSITIVE)


def rnn_config_from_args(args: argparse.Namespace, input_size: int, **overrides) -> RecurrentConfig:
    """The :class:`RecurrentConfig` of ``--cell``, ``--hidden-size``, ``--num-layers`` and the options of
    :func:`add_rnn_options`, batch first; ``overrides`` (e.g. ``bidirectional=True``) win."""
    for name in ("hidden_size", "num_layers", "embedding_size"):
        if getattr(args, name, 1) is not None:
            check_positive(getattr(args, name, 1), "--" + name.replace("_", "-"))
    fields = dict(
        cell=args.cell, input_size=input_size, hidden_size=args.hidden_size, num_layers=args.num_layers,
        batch_first=True, dropout=args.dropout if args.num_layers > 1 else 0.0,
        reset=args.reset if args.cell == "gru" else "after", layer_norm=args.layer_norm,
        recurrent_dropout=args.recurrent_dropout, zoneout=args.zoneout, backend=args.backend,
    )  # fmt: skip
    fields.update(overrides)
    try:
        return RecurrentConfig(**fields)
    except ValueError as error:
        raise ConfigError(str(error)) from None


class Number:
    """A number's range, checked once for a flag and for the config value it becomes.

    As an argparse ``type`` it parses the flag's text and refuses, before any command runs, what is
    not a finite number in range: ``rnnkit: error: argument --lr: must be a number in (0, 1000], got 'inf'``.
    :meth:`check` refuses the same for a value read back from a run's config.json (ConfigError).
    """

    def __init__(self, kind: type = float, low: float | None = None, high: float | None = None, *,
                 low_open: bool = False, high_open: bool = False) -> None:  # fmt: skip
        self.kind, self.low, self.high, self.low_open, self.high_open = kind, low, high, low_open, high_open
        self.__name__ = kind.__name__  # argparse names the type in some of its messages

    def describe(self) -> str:
        noun = "an integer" if self.kind is int else "a number"
        low, high = self.low, self.high
        if low is not None and high is not None:
            left, right = "(" if self.low_open else "[", ")" if self.high_open else "]"
            return f"{noun} in {left}{_show(low)}, {_show(high)}{right}"
        if low is not None:
            return f"{noun} {'>' if self.low_open else '>='} {_show(low)}"
        if high is not None:
            return f"{noun} {'<' if self.high_open else '<='} {_show(high)}"
        return f"a finite {noun[2:] if noun.startswith('a ') else noun[3:]}"

    def accepts(self, value) -> bool:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            return False
        if self.kind is int and not isinstance(value, int):
            return False
        low, high = self.low, self.high
        if low is not None and (value < low or (self.low_open and value == low)):
            return False
        return high is None or not (value > high or (self.high_open and value == high))

    def __call__(self, text: str):
        try:
            value = self.kind(text)
        except (TypeError, ValueError):
            value = None
        if value is None or not self.accepts(value):
            finite = "" if value is None or math.isfinite(value) else "finite and "
            raise argparse.ArgumentTypeError(f"must be {finite}{self.describe()}, got {text!r}")
        return value

    def check(self, value, name: str) -> None:
        """ConfigError ``NAME must be <range>, got VALUE`` unless ``value`` is in range."""
        if not self.accepts(value):
            raise ConfigError(f"{name} must be {self.describe()}, got {value!r}")

    def __repr__(self) -> str:
        return f"Number({self.describe()})"


def _show(x: float) -> str:
    return str(int(x)) if float(x).is_integer() and abs(x) < 1e15 else f"{x:g}"


# The ranges flags share (each flag names one; rnnkit.train.TRAIN_RANGES holds the training options').
POSITIVE = Number(int, 1)
COUNT = Number(int, 0)
SEED = Number(int, 0, 2**63 - 1)
PROBABILITY = Number(float, 0.0, 1.0)  # [0, 1]
DROPOUT = Number(float, 0.0, 1.0, high_open=True)  # [0, 1)
FRACTION = Number(float, 0.0, 1.0, low_open=True, high_open=True)  # (0, 1)
POSITIVE_REAL = Number(float, 0.0, low_open=True)
FINITE = Number(float)


def check_positive(value: int, option: str) -> None:
    """ConfigError ``OPTION must be >= 1, got VALUE`` unless ``value`` is given and >= 1."""
    if value is None or value < 1:
        raise ConfigError(f"{option} must be >= 1, got {value}")


def predict_inputs(args: argparse.Namespace) -> list[str]:
    """The texts of ``--text`` / ``--input`` (one) or ``--file`` (one per non-blank line)."""
    if getattr(args, "file", None):
        texts = [line for line in iter_lines(args.file) if line.strip()]
        if not texts:
            raise DataError(f"{args.file} has no non-blank line to predict")
        return texts
    text = args.text if getattr(args, "text", None) is not None else getattr(args, "input", None)
    if text is None or not text.strip():
        raise DataError("give a non-empty --text or a --file")
    return [text]


# -- pretrained word vectors (--embeddings FILE, --freeze-embeddings): classify, tag and word-level lm ----------


def add_embedding_options(group) -> None:
    """``--embeddings FILE`` and ``--freeze-embeddings``, read back by :func:`read_pretrained`."""
    group.add_argument("--embeddings", metavar="FILE",
                       help="pretrained word vectors (GloVe or word2vec text format) for the word embedding; "
                       "--embedding-size left at its default takes the file's size")  # fmt: skip
    group.add_argument("--freeze-embeddings", action="store_true",
                       help="keep the embedding fixed while training (the --embeddings vectors, or --init-from's)")


def option_defaults(add_arguments) -> dict:
    """The defaults of a task's options (``add_arguments(parser)``), to tell a flag left alone from one set."""
    parser = argparse.ArgumentParser(add_help=False)
    add_arguments(parser)
    return vars(parser.parse_args([]))


def read_pretrained(args: argparse.Namespace, vocab: list[str], default_size: int) -> tuple[WordVectors | None, int]:
    """The ``--embeddings`` vectors of the words of ``vocab`` (exact or lowercased) and the embedding size:
    the file's when ``--embedding-size`` is left at ``default_size`` (or to the budget's preset), else both
    must agree. (None, the
    embedding size) without ``--embeddings``."""
    path = getattr(args, "embeddings", None)
    if path is None:
        return None, args.embedding_size
    wanted = {w.lower() for w in vocab}
    vectors = read_word_vectors(path, keep=lambda word: word.lower() in wanted)
    size = args.embedding_size
    given = size is not None and size != default_size and not left_alone(args, "embedding_size")
    if given and size != vectors.dim:
        raise ConfigError(f"--embedding-size {args.embedding_size} does not match the {vectors.dim}-dimensional "
                          f"vectors of {path}; leave it out to take the file's size")  # fmt: skip
    if not len(vectors):
        raise DataError(f"{path} has no vector for any of the {len(vocab)} words of the vocabulary")
    return vectors, vectors.dim


def apply_pretrained(embedding: nn.Embedding, vectors: WordVectors, vocab: list[str],
                     args: argparse.Namespace) -> tuple[dict, str]:  # fmt: skip
    """Copy ``vectors`` into ``embedding`` (:func:`rnnkit.models.common.load_pretrained`); returns what
    config.json records under ``"embeddings"`` and the note the command line prints."""
    counts = load_pretrained(embedding, vectors, vocab)
    found = counts["exact"] + counts["lowercase"]
    record = {"path": str(Path(args.embeddings).resolve()), "dim": vectors.dim,
              "freeze": bool(args.freeze_embeddings), **counts}  # fmt: skip
    note = (f"--embeddings: {found:,} of {counts['words']:,} words copied from {args.embeddings} "
            f"({counts['lowercase']:,} by their lowercase form); {counts['missing']:,} keep a random vector"
            + ("; the embedding is frozen" if args.freeze_embeddings else ""))  # fmt: skip
    return record, note


def new_run_config(task, model: nn.Module, data, vectors: WordVectors | None, vocab: list[str],
                   args: argparse.Namespace) -> dict:  # fmt: skip
    """The run config of a new run of ``task`` (its name and its ``data`` config); with ``--embeddings``
    ``vectors``, also their record (:func:`apply_pretrained`), which goes into ``model.embedding``, with the
    command line's note in ``task.notes`` and ``--freeze-embeddings`` in ``task.freeze_embeddings``."""
    run_config = {"task": task.name, "data": asdict(data)}
    if vectors is not None:
        run_config["embeddings"], note = apply_pretrained(model.embedding, vectors, vocab, args)
        task.notes.append(note)
        task.freeze_embeddings = args.freeze_embeddings
    return run_config


def frozen_embeddings(config: dict) -> bool:
    """Whether a run's config.json says its embedding is frozen (``"embeddings": {"freeze": true}``)."""
    record = config.get("embeddings")
    if record is None:
        return False
    if not isinstance(record, dict) or not isinstance(record.get("freeze", False), bool):
        raise ConfigError('config.json "embeddings" must be an object with a boolean "freeze"')
    return record.get("freeze", False)


def hold_embedding(model: nn.Module) -> None:
    """Freeze ``model.embedding`` for the step about to run.

    Called from a task's ``loss`` rather than when the model is built: the optimizer is made from every
    parameter of the model (a frozen one never gets a gradient, so it never moves), which keeps the
    optimizer's parameter list the same in a new run and in the model that ``--resume`` rebuilds from config.json.
    """
    model.embedding.weight.requires_grad_(False)
