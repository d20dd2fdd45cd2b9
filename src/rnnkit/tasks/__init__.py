"""The task registry: each task family (lm, classify, tag, seq2seq, ...) is one module here.

A task module defines a class registered with :func:`register_task`. The command line asks it for
its options (``add_arguments``), builds it from parsed arguments (``from_args``) or from a run
directory (``from_run``), hands it to the :class:`rnnkit.train.Trainer`, and dispatches the run
commands (``sample``, ``eval``, ``predict``) to it by the ``task`` named in ``config.json``.

What tasks share (the recurrent stack's options, the inputs of ``predict``) lives in
:mod:`rnnkit.tasks.options`: a task module imports that and this registry, never another task module.
"""

from __future__ import annotations

TASKS: dict[str, type] = {}


def register_task(cls: type) -> type:
    """Class decorator: make ``cls`` available as ``rnnkit train <cls.name>``."""
    if cls.name in TASKS:
        raise ValueError(f"task {cls.name!r} is already registered")
    TASKS[cls.name] = cls
    return cls


def get_task(name: str) -> type:
    from rnnkit.errors import ConfigError

    if name not in TASKS:
        raise ConfigError(f"unknown task {name!r}; available: {', '.join(sorted(TASKS))}")
    return TASKS[name]


# Importing a task module registers it.
from rnnkit.tasks import (  # noqa: E402
    classify,  # noqa: F401
    lm,  # noqa: F401
    seq2seq,  # noqa: F401
    tag,  # noqa: F401
)
