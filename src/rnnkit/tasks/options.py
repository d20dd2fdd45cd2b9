"""The command-line options every task shares, and reading them into configs and inputs.

Each task module adds its own options in ``add_arguments``; what is common to all of them lives here,
so that no task module imports another: the recurrent stack's options (:func:`add_rnn_options`, read
back by :func:`rnn_config_from_args`), the positive-integer check with its one-line error, and the
texts of ``rnnkit predict RUN --text | --input | --file`` (:func:`predict_inputs`).
"""

from __future__ import annotations

import argparse

from rnnkit.data.text import iter_lines
from rnnkit.errors import ConfigError, DataError
from rnnkit.layers import RecurrentConfig


def add_rnn_options(group) -> None:
    """Options every task's recurrent stack takes."""
    group.add_argument("--layer-norm", action="store_true", help="layer-normalised cells (Ba et al. 2016)")
    group.add_argument("--recurrent-dropout", type=float, default=0.0, help="one dropout mask per sequence on h")
    group.add_argument("--zoneout", type=float, default=0.0, help="zoneout probability (Krueger et al. 2016)")
    group.add_argument("--reset", choices=["after", "before"], default="after", help="GRU form (before = Cho et al.)")
    group.add_argument("--backend", choices=["auto", "torch", "fused", "reference"], default="auto",
                       help="how the recurrence runs: torch's kernels, rnnkit's fused BPTT, or the reference loop")


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
