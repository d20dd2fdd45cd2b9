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


# -- every flag checked once, before anything is made (issue 27) --------------------------------------


@pytest.mark.parametrize(
    "task, flag, value, match",
    [
        ("lm", "--lr", "inf", "argument --lr: must be finite and a number in (0, 1000], got 'inf'"),
        ("lm", "--lr", "1e38", "argument --lr: must be a number in (0, 1000], got '1e38'"),
        ("lm", "--time-budget", "inf", "argument --time-budget: must be finite and a number > 0, got 'inf'"),
        ("lm", "--time-budget", "0", "argument --time-budget: must be a number > 0, got '0'"),
        ("lm", "--time-budget", "-5", "argument --time-budget: must be a number > 0, got '-5'"),
        ("lm", "--clip-norm", "inf", "argument --clip-norm: must be finite and a number >= 0, got 'inf'"),
        ("lm", "--weight-decay", "nan", "argument --weight-decay: must be finite and a number in [0, 10], got 'nan'"),
        ("lm", "--weight-decay", "-1", "argument --weight-decay: must be a number in [0, 10], got '-1'"),
        ("classify", "--lr", "inf", "argument --lr: must be finite and a number in (0, 1000], got 'inf'"),
        ("tag", "--time-budget", "nan", "argument --time-budget: must be finite and a number > 0, got 'nan'"),
        ("seq2seq", "--clip-norm", "-1", "argument --clip-norm: must be a number >= 0, got '-1'"),
    ],
)
def test_a_bad_training_number_is_one_line_and_makes_nothing(tmp_path, capsys, task, flag, value, match):
    out = tmp_path / "new" / "run"
    with pytest.raises(SystemExit) as exit_info:
        main(["train", task, "--out", str(out), "--max-steps", "1", flag, value])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and err == f"rnnkit: error: {match} (see rnnkit train {task} --help)\n"
    assert not (tmp_path / "new").exists()


def test_an_out_folder_that_cannot_be_made_is_one_line_and_makes_nothing(tmp_path, capsys):
    (tmp_path / "notes.txt").write_text("a file\n")
    for out, match in [(tmp_path / "notes.txt" / "run", f"{tmp_path / 'notes.txt'} is a file, so no folder can be"),
                       (tmp_path / "notes.txt", "that is a file, not a folder")]:  # fmt: skip
        assert main(["train", "lm", "--out", str(out), "--max-steps", "1", "--quiet"]) == 2
        err = capsys.readouterr().err
        assert err.startswith("rnnkit: error: --out ") and match in err and err.count("\n") == 1, err
    assert [p.name for p in tmp_path.iterdir()] == ["notes.txt"]
    assert (tmp_path / "notes.txt").read_text() == "a file\n"


def test_an_out_folder_that_cannot_be_written_is_one_line_and_makes_nothing(tmp_path, capsys, monkeypatch):
    """A read-only place (root writes where permissions say no, so the refusal is the file system's, here
    simulated): the folder is tried before anything is made, and named with the system's words."""

    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr("rnnkit.checkpoint.tempfile.mkstemp", refuse)
    out = tmp_path / "new" / "run"
    assert main(["train", "lm", "--out", str(out), "--max-steps", "1", "--quiet"]) == 2
    assert capsys.readouterr().err == f"rnnkit: error: --out {out}: cannot write in {tmp_path} (Permission denied)\n"
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "argv, match",
    [
        (["sample", "RUN", "--temperature", "nan"], "argument --temperature: must be finite and a number in [0, 100]"),
        (["sample", "RUN", "--temperature", "-1"], "argument --temperature: must be a number in [0, 100], got '-1'"),
        (["sample", "RUN", "--length", "0"], "argument --length: must be an integer >= 1, got '0'"),
    ],
)
def test_bad_sampling_numbers_name_the_flag(capsys, argv, match):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and err.startswith(f"rnnkit: error: {match}") and err.count("\n") == 1, err


# -- rnnkit data list (issue 27: examples that work from a clone) -----------------------------------


def test_data_list_shows_what_ships_and_where_the_rest_comes_from(capsys):
    from pathlib import Path

    from rnnkit.apps.data import DATASETS

    assert main(["data", "list", "--json"]) == 0
    listing = json.loads(capsys.readouterr().out)
    shipped = {item["name"]: item for item in listing["shipped"]}
    assert "tinyshakespeare" in shipped
    text = Path(shipped["tinyshakespeare"]["file"]).read_text(encoding="utf-8")
    assert len(text) == shipped["tinyshakespeare"]["bytes"] == 1_115_394  # the counts the listing states
    assert Path(shipped["tinyshakespeare"]["source_note"]).is_file()
    assert {d["name"] for d in listing["datasets"]} == {d.name for d in DATASETS}
    for d in listing["datasets"]:
        assert d["source"] and d["licence"] and d["fetch"], d
    assert main(["data", "list"]) == 0
    out = capsys.readouterr().out
    others = [d for d in DATASETS if not d.fetch.startswith("shipped")]
    assert "tinyshakespeare" in out and all(f"\n{d.name}: {d.what}\n" in out for d in others)


def test_every_example_in_the_data_list_is_a_command_line_rnnkit_accepts():
    """Each data set's ``used_by`` commands parse (flags and values as rnnkit takes them), and the files
    they read lie in the folder its fetch command makes."""
    import shlex

    from rnnkit.apps.data import DATASETS
    from rnnkit.cli import build_parser

    parser = build_parser()
    for d in DATASETS:
        for command in d.used_by.split(";"):
            argv = shlex.split(command.split("(")[0])
            assert argv[0] == "rnnkit", command
            parser.parse_args(argv[1:])  # argparse exits (fails the test) on a flag rnnkit does not take
            for word in argv:
                if word.startswith("data/"):
                    folder = "/".join(word.split("/")[:2])
                    assert d.fetch.startswith(f"mkdir -p {folder} "), (word, d.fetch)
