"""The task registry: each task family (lm, classify, tag, seq2seq, ...) is one module here.

A task module defines a class registered with :func:`register_task`. The command line asks it for
its options (``add_arguments``), builds it from parsed arguments (``from_args``) or from a run
directory (``from_run``), hands it to the :class:`rnnkit.train.Trainer`, and dispatches the run
commands (``sample``, ``eval``, ``predict``) to it by the ``task`` named in ``config.json``.

What tasks share lives in :mod:`rnnkit.tasks.options` (the recurrent stack's options, the inputs of
``predict``) and :mod:`rnnkit.tasks.common` (an epoch's batches): a task module imports those and this
registry, never another task module.

A task may also have the ``rnnkit tasks show NAME`` hook, all three parts or none:

- ``shows``: the names it shows examples of (seq2seq: its generators ``sort``, ``copy``, ``add``, ``execute``);
- ``add_show_arguments(parser)``: the options of ``rnnkit tasks show NAME``;
- ``show(name, args) -> dict``: the examples; the command prints the dict's ``"text"``, or with ``--json``
  the rest of it as one JSON object.

:func:`shown` lists what the registered tasks show and :func:`get_shown` finds the task for a NAME.
"""

from __future__ import annotations

from rnnkit.errors import ConfigError

TASKS: dict[str, type] = {}
SHOW_HOOK = ("shows", "add_show_arguments", "show")


def register_task(cls: type) -> type:
    """Class decorator: make ``cls`` available as ``rnnkit train <cls.name>`` (and ``rnnkit tasks show``
    of what it ``shows``, where it has that hook)."""
    if cls.name in TASKS:
        raise ValueError(f"task {cls.name!r} is already registered")
    parts = [part for part in SHOW_HOOK if hasattr(cls, part)]
    if parts and len(parts) < len(SHOW_HOOK):
        raise ValueError(f"task {cls.name!r} has {', '.join(parts)} but the show hook needs {', '.join(SHOW_HOOK)}")
    taken = shown()
    for name in getattr(cls, "shows", ()):
        if name in taken:
            raise ValueError(f"task {cls.name!r} shows {name!r}, which task {taken[name].name!r} already shows")
    TASKS[cls.name] = cls
    return cls


def get_task(name: str) -> type:
    if name not in TASKS:
        raise ConfigError(f"unknown task {name!r}; available: {', '.join(sorted(TASKS))}")
    return TASKS[name]


def has_show(task: type) -> bool:
    """Whether ``task`` has the ``rnnkit tasks show`` hook (``register_task`` admits all of it or none)."""
    return all(hasattr(task, part) for part in SHOW_HOOK)


def shown() -> dict[str, type]:
    """What ``rnnkit tasks show NAME`` can show: each NAME with the task that shows it, in registration order."""
    return {name: task for task in TASKS.values() if has_show(task) for name in task.shows}


def get_shown(name: str) -> type:
    """The task that shows ``name``; ConfigError naming what can be shown otherwise."""
    table = shown()
    if name in table:
        return table[name]
    available = ", ".join(table)
    if name in TASKS and has_show(TASKS[name]):
        raise ConfigError(f"task {name!r} shows examples by name: {', '.join(TASKS[name].shows)}")
    if name in TASKS:
        raise ConfigError(f"task {name!r} has no examples to show; available: {available}")
    raise ConfigError(f"unknown task {name!r}; available: {available}")


# Importing a task module registers it.
from rnnkit.tasks import (  # noqa: E402
    classify,  # noqa: F401
    forecast,  # noqa: F401
    lm,  # noqa: F401
    music,  # noqa: F401
    seq2seq,  # noqa: F401
    tag,  # noqa: F401
)
