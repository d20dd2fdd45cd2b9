"""Defaults chosen by the time budget (rnnkit.tasks.presets): the row for the budget fills what the user
left out, a given flag wins, the choice is recorded in config.json and listed in --help."""

import argparse
import json
import math

import pytest

from rnnkit.cli import build_parser, main
from rnnkit.tasks import TASKS, presets
from rnnkit.tasks.lm import PRESETS as LM_PRESETS
from rnnkit.tasks.presets import Preset, choose, label

TINY = ["--hidden-size", "16", "--embedding-size", "8", "--num-layers", "1", "--batch-size", "4", "--seq-len", "20"]


def parse(*argv: str) -> argparse.Namespace:
    return build_parser().parse_args(["train", *argv])


def test_the_row_is_the_first_whose_limit_covers_the_budget():
    rows = [Preset(60, {"x": 1}), Preset(600, {"x": 2}), Preset(math.inf, {"x": 3})]
    assert [choose(rows, b).values["x"] for b in (1, 60, 61, 600, 601, 1e9, None)] == [1, 1, 2, 2, 3, 3, 3]
    assert label(rows, rows[1]) == "budgets over 60 s up to 600 s"
    assert label(rows, rows[2]) == "budgets over 600 s or none"
    with pytest.raises(ValueError, match="must end with a row for any budget"):
        choose(rows[:2], 10)


def test_a_short_and_a_long_budget_get_their_own_model_and_a_given_flag_wins():
    short, long = parse("lm", "--time-budget", "120"), parse("lm", "--time-budget", "600")
    presets.apply(TASKS["lm"], short)
    presets.apply(TASKS["lm"], long)
    assert short.hidden_size == LM_PRESETS["char"][0].values["hidden_size"]
    assert long.hidden_size == LM_PRESETS["char"][1].values["hidden_size"] != short.hidden_size
    mine = parse("lm", "--time-budget", "120", "--hidden-size", "77", "--lr", "0.5", "--cell", "lstm")
    record = presets.apply(TASKS["lm"], mine)
    assert (mine.hidden_size, mine.lr, mine.cell) == (77, 0.5, "lstm")
    assert {"hidden_size", "lr", "cell"} <= set(record["given"])
    assert "hidden_size" not in record["chosen"] and record["chosen"]["num_layers"] == mine.num_layers
    word = parse("lm", "--level", "word", "--time-budget", "120")
    presets.apply(TASKS["lm"], word)
    assert word.tie_weights is True and word.seq_len == LM_PRESETS["word"][0].values["seq_len"]


@pytest.mark.parametrize("name", sorted(n for n, t in TASKS.items() if hasattr(t, "preset_table")))
def test_every_preset_option_is_left_unset_by_the_parser_and_every_row_sets_the_same_options(name):
    """A preset can only tell "left out" from "given" for options whose parser default is None."""
    task = TASKS[name]
    parser = argparse.ArgumentParser()
    task.add_arguments(parser)
    from rnnkit.cli import add_common_training_options

    add_common_training_options(parser)
    defaults = vars(parser.parse_args([]))
    for variant, rows in task.preset_table.items():
        keys = set(rows[0].values)
        for row in rows:
            assert set(row.values) == keys, (variant, row)
            for option in row.values:
                assert option in defaults and defaults[option] is None, (variant, option)


def test_config_json_records_what_was_chosen_and_why_and_help_lists_the_table(tmp_path, capsys):
    out = tmp_path / "run"
    corpus = tmp_path / "text.txt"
    corpus.write_text("the quick brown fox jumps over the lazy dog. " * 60)
    assert main(["train", "lm", "--data", str(corpus), "--out", str(out), "--max-steps", "2", "--quiet",
                 "--time-budget", "60", *TINY]) == 0  # fmt: skip
    recorded = json.loads((out / "config.json").read_text())["defaults"]
    assert recorded["preset"] == "char, budgets up to 300 s" and recorded["time_budget"] == 60
    assert recorded["chosen"]["cell"] == "gru" and "hidden_size" in recorded["given"] and recorded["why"]
    config = json.loads((out / "config.json").read_text())
    rnn = config["model"]["config"]["rnn"]
    assert rnn["hidden_size"] == 16 and rnn["cell"] == "gru"
    with pytest.raises(SystemExit):
        main(["train", "lm", "--help"])
    shown = capsys.readouterr().out
    assert "Defaults chosen from --time-budget" in shown and "char, budgets up to 300 s: --cell gru" in shown


def test_a_zero_or_negative_budget_is_one_line_before_anything_runs(tmp_path, capsys):
    for budget in ("0", "-5", "inf", "nan"):
        with pytest.raises(SystemExit) as stop:
            main(["train", "lm", "--time-budget", budget, "--out", str(tmp_path / "never")])
        assert stop.value.code == 2
        err = capsys.readouterr().err
        assert err.startswith("rnnkit: error: argument --time-budget") and err.count("\n") == 1
    assert not (tmp_path / "never").exists()
