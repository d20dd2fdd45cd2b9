"""The command line's own behaviour: one-line usage errors, listing tasks, python -m rnnkit."""

import json
import subprocess
import sys

import pytest

from rnnkit.cli import main
from rnnkit.data.algorithmic import GENERATORS


@pytest.mark.parametrize(
    "argv, match",
    [
        (["train", "lm", "--bogus", "1"], "unrecognized arguments: --bogus 1"),
        (["train", "lm", "--hidden-size", "abc"], "argument --hidden-size: must be an integer >= 1, got 'abc'"),
        (["frobnicate"], "invalid choice: 'frobnicate'"),
        (["train", "nosuchtask"], "invalid choice: 'nosuchtask'"),
        (["sample"], "the following arguments are required: RUN"),
    ],
)
def test_usage_mistakes_are_one_line_and_status_2(capsys, argv, match):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    err = capsys.readouterr().err
    assert exit_info.value.code == 2
    assert err.startswith("rnnkit: error: ") and match in err and err.count("\n") == 1


def test_tasks_lists_every_registered_task(capsys):
    assert main(["tasks", "--json"]) == 0
    names = {t["name"] for t in json.loads(capsys.readouterr().out)["tasks"]}
    assert {"lm", "classify", "tag", "seq2seq"} <= names


def test_python_dash_m_runs_the_same_command_line():
    done = subprocess.run([sys.executable, "-m", "rnnkit", "--version"], capture_output=True, text=True)
    assert done.returncode == 0 and done.stdout.startswith("rnnkit ")


def test_show_goes_through_the_task_registry(capsys, monkeypatch):
    import rnnkit.tasks as registry

    assert {name: task.name for name, task in registry.shown().items()} == {n: "seq2seq" for n in GENERATORS}
    assert [name for name, task in registry.TASKS.items() if registry.has_show(task)] == ["seq2seq"]
    monkeypatch.setattr(registry, "TASKS", dict(registry.TASKS))  # a registry the test may add to

    @registry.register_task
    class Dice:
        """A task with only the show hook: the CLI must find it by what it shows."""

        name, shows = "dice", ("d6", "d20")

        @staticmethod
        def add_show_arguments(parser):
            parser.add_argument("--rolls", type=int, default=2)

        @classmethod
        def show(cls, name, args):
            faces = int(name[1:])
            rolls = [(7 * k) % faces + 1 for k in range(args.rolls)]
            return {"task": name, "rolls": rolls, "text": " ".join(map(str, rolls))}

    assert registry.get_shown("d20") is Dice and registry.get_shown("sort").name == "seq2seq"
    assert main(["tasks", "show", "d20", "--rolls", "3", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {"task": "d20", "rolls": [1, 8, 15]}
    assert main(["tasks", "show", "d6", "--rolls", "4"]) == 0
    assert capsys.readouterr().out == "1 2 3 4\n"
    with pytest.raises(SystemExit) as exit_info:
        main(["tasks", "show", "d6", "--length", "3"])  # seq2seq's option, not the dice's
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and err.count("\n") == 1 and "unrecognized arguments: --length 3" in err


@pytest.mark.parametrize(
    "name, match",
    [
        ("lm", "task 'lm' has no examples to show; available: sort, copy, add, execute"),
        ("tag", "task 'tag' has no examples to show; available: sort, copy, add, execute"),
        ("seq2seq", "task 'seq2seq' shows examples by name: sort, copy, add, execute"),
        ("reverse", "unknown task 'reverse'; available: sort, copy, add, execute"),
    ],
)
def test_show_of_a_task_without_the_hook_is_one_clear_line(capsys, name, match):
    assert main(["tasks", "show", name, "--n", "3"]) == 2
    err = capsys.readouterr().err
    assert err == f"rnnkit: error: {match}\n"


def test_the_registry_takes_the_show_hook_whole_and_its_names_once(monkeypatch):
    import rnnkit.tasks as registry

    monkeypatch.setattr(registry, "TASKS", dict(registry.TASKS))
    half = type("Half", (), {"name": "half", "shows": ("x",), "show": classmethod(lambda cls, name, args: {})})
    with pytest.raises(ValueError, match="task 'half' has shows, show but the show hook needs shows, add_show_arg"):
        registry.register_task(half)
    hook = {"add_show_arguments": staticmethod(lambda parser: None), "show": classmethod(lambda c, n, a: {})}
    copycat = type("Copycat", (), {"name": "copycat", "shows": ("d4", "copy"), **hook})
    with pytest.raises(ValueError, match="task 'copycat' shows 'copy', which task 'seq2seq' already shows"):
        registry.register_task(copycat)
    assert "half" not in registry.TASKS and "copycat" not in registry.TASKS
