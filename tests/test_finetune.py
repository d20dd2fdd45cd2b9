"""Fine-tuning ``rnnkit train lm --init-from RUN``: the model and tokenizer come from RUN, new characters get
fresh rows, new words become <unk>, flags that would change the model are refused."""

import json
import random

import pytest
import torch
from safetensors.torch import load_file

from rnnkit.cli import main
from rnnkit.layers import RecurrentConfig
from rnnkit.models import LanguageModel, LanguageModelConfig
from rnnkit.tasks.lm import grow_vocabulary

SMALL = ["--batch-size", "8", "--seq-len", "20", "--quiet"]
MODEL = ["--hidden-size", "16", "--embedding-size", "8", "--num-layers", "1"]


def verses(n, seed, extra=()):
    rng = random.Random(seed)
    subjects, verbs, objects = ["the king", "a fool", "my lord"], ["loves", "fears", "sees"], ["the crown", "a rose"]
    lines = [f"{rng.choice(subjects)} {rng.choice(verbs)} {rng.choice(objects)}." for _ in range(n)]
    return "\n".join([*lines, *extra]) + "\n"


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    """A character model and a word model trained on the verses, and texts to fine-tune them on."""
    root = tmp_path_factory.mktemp("finetune")
    (root / "old.txt").write_text(verses(800, 0), encoding="utf-8")
    (root / "same.txt").write_text(verses(400, 1), encoding="utf-8")
    (root / "new.txt").write_text(verses(400, 2, ["Zoe sees the café."] * 20), encoding="utf-8")
    (root / "words.txt").write_text(verses(400, 3, ["the queen sees a horse."] * 3), encoding="utf-8")
    assert main(["train", "lm", "--data", str(root / "old.txt"), *MODEL, "--max-steps", "60", "--lr", "0.02",
                 "--out", str(root / "char"), *SMALL]) == 0  # fmt: skip
    assert main(["train", "lm", "--data", str(root / "old.txt"), "--level", "word", *MODEL, "--max-steps", "5",
                 "--out", str(root / "word"), *SMALL]) == 0  # fmt: skip
    return root


def run_json(capsys, *argv) -> dict:
    capsys.readouterr()
    assert main(list(argv)) == 0
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def fail_line(capsys, *argv) -> str:
    capsys.readouterr()
    assert main(list(argv)) == 2
    err = capsys.readouterr().err
    assert err.startswith("rnnkit: error: ") and err.count("\n") == 1, err
    return err


def test_fine_tuning_starts_from_the_runs_model(base, tmp_path, capsys):
    out = tmp_path / "tuned"
    # model flags at their defaults take RUN's sizes; lr 1e-9 keeps one step from moving the weights
    capsys.readouterr()
    assert main(["train", "lm", "--init-from", str(base / "char"), "--data", str(base / "same.txt"),
                 "--max-steps", "1", "--lr", "1e-9", "--out", str(out), *SMALL]) == 0  # fmt: skip
    assert "--init-from:" not in capsys.readouterr().err  # nothing to say: the same characters
    old = json.loads((base / "char" / "config.json").read_text())
    new = json.loads((out / "config.json").read_text())
    assert new["model"] == old["model"]
    assert (out / "vocab.json").read_text() == (base / "char" / "vocab.json").read_text()
    assert new["init_from"] == {"run": str((base / "char").resolve()), "added_tokens": []}
    scores = {}
    for run in (base / "char", out):
        scores[run.name] = run_json(capsys, "eval", str(run), "--data", str(base / "same.txt"), "--json")
    assert scores["tuned"]["metrics"]["nats_per_token"] == pytest.approx(scores["char"]["metrics"]["nats_per_token"],
                                                                         rel=1e-4)  # fmt: skip
    fresh = tmp_path / "fresh"
    main(["train", "lm", "--data", str(base / "same.txt"), *MODEL, "--max-steps", "1", "--lr", "1e-9",
          "--out", str(fresh), *SMALL])  # fmt: skip
    untrained = run_json(capsys, "eval", str(fresh), "--data", str(base / "same.txt"), "--json")
    assert scores["tuned"]["metrics"]["nats_per_token"] < untrained["metrics"]["nats_per_token"] - 0.5


def test_new_characters_get_fresh_rows_and_a_note(base, tmp_path, capsys):
    out = tmp_path / "grown"
    capsys.readouterr()
    assert main(["train", "lm", "--init-from", str(base / "char"), "--data", str(base / "new.txt"),
                 "--max-steps", "1", "--lr", "1e-9", "--out", str(out), *SMALL]) == 0  # fmt: skip
    err = capsys.readouterr().err
    old = json.loads((base / "char" / "vocab.json").read_text())["tokens"]
    new = json.loads((out / "vocab.json").read_text())["tokens"]
    assert new[: len(old)] == old and new[len(old) :] == ["Z", "é"]  # old ids kept, new characters after them
    assert "note: --init-from: 2 characters not in" in err and "'Zé'" in err
    assert json.loads((out / "config.json").read_text())["init_from"]["added_tokens"] == ["Z", "é"]
    before, after = load_file(str(base / "char" / "model.safetensors")), load_file(str(out / "model.safetensors"))
    V = len(old)
    assert after["embedding.weight"].shape[0] == V + 2 and after["head.bias"].shape == (V + 2,)
    torch.testing.assert_close(after["embedding.weight"][:V], before["embedding.weight"], rtol=0, atol=1e-6)
    torch.testing.assert_close(after["head.weight"][:V], before["head.weight"], rtol=0, atol=1e-6)
    assert run_json(capsys, "sample", str(out), "--prime", "Zoe", "--length", "5", "--seed", "0", "--json")["samples"]
    # a fine-tuned run resumes like any other
    assert main(["train", "lm", "--resume", str(out), "--max-steps", "3", "--quiet"]) == 0
    assert json.loads((out / "summary.json").read_text())["steps"] == 3


def test_grow_vocabulary_copies_every_weight_and_draws_the_new_rows():
    torch.manual_seed(0)
    for tie in (False, True):
        model = LanguageModel(LanguageModelConfig(5, 4, RecurrentConfig("lstm", 4, 4, batch_first=True),
                                                  tie_weights=tie))  # fmt: skip
        grown = grow_vocabulary(model, 7)
        assert grown.config.vocab_size == 7 and grow_vocabulary(model, 5) is model
        for name, tensor in model.state_dict().items():
            torch.testing.assert_close(grown.state_dict()[name][: len(tensor)], tensor, rtol=0, atol=0)
        new = grown.embedding.weight[5:]
        # as a fresh model draws them: U(-0.1, 0.1) tied to the head, N(0, 1) untied (8 draws all below 0.1: ~1e-9)
        assert new.abs().sum() > 0 and (new.abs().max() <= 0.1 if tie else new.abs().max() > 0.1)
        assert (grown.head.weight is grown.embedding.weight) == tie


def test_word_level_keeps_the_vocabulary_and_counts_unknown_words(base, tmp_path, capsys):
    out = tmp_path / "words"
    capsys.readouterr()
    assert main(["train", "lm", "--init-from", str(base / "word"), "--data", str(base / "words.txt"),
                 "--max-steps", "1", "--out", str(out), *SMALL]) == 0  # fmt: skip
    err = capsys.readouterr().err
    assert (out / "vocab.json").read_text() == (base / "word" / "vocab.json").read_text()
    # "queen" and "horse." three times each, of 400 x 5 + 3 x 5 words
    assert "note: --init-from: 6 of 2,015 words of the new text are not in" in err
    assert json.loads((out / "config.json").read_text())["data"]["level"] == "word"


@pytest.mark.parametrize(
    "extra, match",
    [
        (["--hidden-size", "32"], "--hidden-size 32 differs from"),
        (["--cell", "rnn"], "--cell rnn differs from"),
        (["--level", "word"], "--level word differs from"),
        (["--tie-weights"], "--tie-weights True differs from"),
        (["--embeddings", "vectors.txt"], "--embeddings and --init-from exclude each other"),
    ],
)
def test_flags_that_would_change_the_model_are_refused(base, tmp_path, capsys, extra, match):
    out = tmp_path / "refused"
    err = fail_line(capsys, "train", "lm", "--init-from", str(base / "char"), "--data", str(base / "new.txt"),
                    "--max-steps", "1", "--out", str(out), *extra, *SMALL)  # fmt: skip
    assert match in err and not out.exists()


def test_a_missing_or_foreign_run_is_one_line(base, tmp_path, capsys):
    data = ["--data", str(base / "new.txt"), "--max-steps", "1", *SMALL]
    assert "does not exist" in fail_line(capsys, "train", "lm", "--init-from", str(tmp_path / "nope"), *data)
    assert main(["baseline", "ngram", "--data", str(base / "old.txt"), "--out", str(tmp_path / "ngram")]) == 0
    assert "is a 'ngram' run, not a 'lm' run" in fail_line(capsys, "train", "lm", "--init-from",
                                                           str(tmp_path / "ngram"), *data)  # fmt: skip
