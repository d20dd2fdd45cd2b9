"""The command line's own behaviour: one-line usage errors, listing tasks, python -m rnnkit."""

import json
import subprocess
import sys

import pytest

from rnnkit.cli import main


@pytest.mark.parametrize(
    "argv, match",
    [
        (["train", "lm", "--bogus", "1"], "unrecognized arguments: --bogus 1"),
        (["train", "lm", "--hidden-size", "abc"], "argument --hidden-size: invalid int value: 'abc'"),
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
