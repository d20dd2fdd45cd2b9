"""Defaults chosen by the time budget: each task's best measured configuration for the time a user gives.

The best model for two minutes of a laptop's CPU is not the best for half an hour: a small, fast model with a
high learning rate wins a short budget, a larger regularised one a long budget. So a task's model and
optimiser defaults are not fixed values but a short table of :class:`Preset` rows, each the winner of a
committed sweep (``benchmarks/``, results in ``benchmarks/results/``) for budgets up to its ``upto`` seconds.
``rnnkit train TASK --time-budget S`` takes the first row whose ``upto`` is at least S (a run limited by
``--epochs`` or ``--max-steps`` alone takes the last, long-budget row). A flag the user gives always wins:
the options a preset covers default to None on the command line, and :func:`apply` fills only those left
None. What was chosen and why is written to the run's config.json under ``"defaults"`` and printed by
``rnnkit train TASK --help`` (:func:`describe`).

A task opts in with a class attribute ``preset_table`` (variant -> rows) and ``preset_variant(args)``, which
names the variant from options that are not tuned, such as ``--level`` or the seq2seq ``--task``; tasks
without them keep their ``train_defaults()``.
"""

from __future__ import annotations

import argparse
import math
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Preset:
    """One row of a task's defaults: ``values`` (argparse dest -> value) for budgets up to ``upto`` seconds."""

    upto: float  # the longest --time-budget (seconds) this row serves; math.inf for the last row
    values: dict = field(default_factory=dict)
    why: str = ""  # the measurement that chose it: a benchmarks/results file and its figure



def label(rows: list[Preset], row: Preset) -> str:
    """Which budgets ``row`` of ``rows`` serves, in words."""
    before = [r.upto for r in rows if r.upto < row.upto]
    if math.isinf(row.upto):
        return f"budgets over {max(before):g} s or none" if before else "any budget"
    return f"budgets over {max(before):g} s up to {row.upto:g} s" if before else f"budgets up to {row.upto:g} s"


def choose(rows: list[Preset], budget: float | None) -> Preset:
    """The row for ``budget`` seconds (None: no budget, the long-budget row)."""
    if not rows or not math.isinf(rows[-1].upto):
        raise ValueError("a preset table must end with a row for any budget (upto=math.inf)")
    if budget is None:
        return rows[-1]
    return next(row for row in rows if budget <= row.upto)


def apply(task_cls: type, args: argparse.Namespace) -> dict | None:
    """Fill every option the user left unset (None) from ``task_cls``'s preset row for ``args.time_budget``.

    Returns what config.json records under ``"defaults"`` — the budget, the row, the values filled and the
    measurement behind them — or None for a task without presets. The filled names are also kept in
    ``args.preset_filled``, so that code comparing a flag with its default can tell "left alone" from "set".
    """
    table = getattr(task_cls, "preset_table", None)
    args.preset_filled = {}
    if table is None:
        return None
    budget = getattr(args, "time_budget", None)
    variant = task_cls.preset_variant(args)
    row = choose(table[variant], budget)
    for name, value in row.values.items():
        if getattr(args, name, None) is None:
            setattr(args, name, value)
            args.preset_filled[name] = value
    given = sorted(name for name in row.values if name not in args.preset_filled)
    return {"time_budget": budget, "preset": f"{variant}, {label(table[variant], row)}",
            "chosen": dict(args.preset_filled), "given": given, "why": row.why}


def left_alone(args: argparse.Namespace, name: str) -> bool:
    """Whether option ``name`` came from a preset rather than from the user's command line."""
    return name in getattr(args, "preset_filled", {})


def describe(rows_by_variant: dict[str, list[Preset]]) -> str:
    """The preset tables as ``--help`` text: one line per row, ``--flag value`` as a user would type it."""
    lines = ["Defaults chosen from --time-budget (a flag you give always wins; config.json records the choice):"]
    for variant, rows in rows_by_variant.items():
        for row in rows:
            flags = " ".join(_flag(name, value) for name, value in row.values.items())
            lines.append(f"  {variant}, {label(rows, row)}: {flags}")
    return "\n".join(lines)


def _flag(name: str, value) -> str:
    flag = "--" + name.replace("_", "-")
    if value is True:
        return flag
    if value is False:
        return f"(no {flag})"
    return f"{flag} {value:g}" if isinstance(value, float) else f"{flag} {value}"
