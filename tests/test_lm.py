"""The language-model task through the command line: training, resuming, sampling, eval, bad input."""

import json
import math
import random

import pytest
import torch

from rnnkit import checkpoint
from rnnkit.cli import main
from rnnkit.models import load_model
from rnnkit.tasks.lm import LanguageModelTask
from rnnkit.train import Trainer

SMALL = ["--hidden-size", "32", "--embedding-size", "16", "--batch-size", "8", "--seq-len", "20", "--quiet"]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """A learnable text: verses built from a small grammar."""
    rng = random.Random(0)
    subjects, verbs, objects = ["the king", "a fool", "my lord", "the queen"], ["loves", "fears", "sees"], [
        "the crown", "his horse", "the sea", "a rose"]  # fmt: skip
    lines = [f"{rng.choice(subjects)} {rng.choice(verbs)} {rng.choice(objects)}." for _ in range(1500)]
    path = tmp_path_factory.mktemp("data") / "verses.txt"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def run_json(capsys, *argv) -> dict:
    assert main(list(argv)) == 0
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def test_training_lowers_the_loss_and_writes_a_complete_run(corpus, tmp_path, capsys):
    out = tmp_path / "run"
    result = run_json(capsys, "train", "lm", "--data", str(corpus), "--out", str(out), "--max-steps", "150",
                      "--eval-every", "50", "--lr", "0.01", "--json", *SMALL)  # fmt: skip
    assert sorted(p.name for p in out.iterdir()) == [
        "config.json", "metrics.jsonl", "model.safetensors", "optimizer.pt", "summary.json", "vocab.json"]  # fmt: skip
    records = checkpoint.read_metrics(out)
    valid = [r for r in records if r["split"] == "valid"]
    train = [r for r in records if r["split"] == "train"]
    vocab = len(json.loads((out / "vocab.json").read_text())["tokens"])
    assert [r["step"] for r in valid] == [50, 100, 150]
    assert valid[-1]["loss"] < 0.6 * math.log(vocab), "well below the uniform guess"
    assert train[-1]["loss"] < train[0]["loss"]
    assert {"grad_norm", "clipped", "tokens_per_s", "lr", "bits_per_char"} <= set(train[0])
    assert result["task"] == "lm" and result["metrics"]["bits_per_char"] == pytest.approx(
        result["metrics"]["loss"] / math.log(2)
    )
    assert json.loads((out / "summary.json").read_text())["steps"] == 150


def test_resume_after_interruption_continues_exactly(corpus, tmp_path, capsys, monkeypatch):
    args = ["train", "lm", "--data", str(corpus), "--eval-every", "5", "--schedule", "constant",
            "--dropout", "0.3", "--num-layers", "2", *SMALL]  # fmt: skip
    main([*args, "--out", str(tmp_path / "straight"), "--max-steps", "16"])

    # interrupt the second run at step 8, between two checkpoints, as Ctrl-C would
    original_fit_step = Trainer.log

    def interrupt(self, record):
        original_fit_step(self, record)
        if record["split"] == "train" and record["step"] >= 8 and not getattr(self, "_interrupted", False):
            self._interrupted = True
            raise KeyboardInterrupt

    monkeypatch.setattr(Trainer, "log", interrupt)
    assert main([*args, "--out", str(tmp_path / "resumed"), "--max-steps", "16", "--log-every", "4"]) == 130
    monkeypatch.setattr(Trainer, "log", original_fit_step)
    assert "--resume" in capsys.readouterr().err
    state = checkpoint.load_training_state(tmp_path / "resumed")
    assert state["progress"]["step"] == 8
    assert main(["train", "lm", "--resume", str(tmp_path / "resumed"), "--max-steps", "16", "--quiet"]) == 0

    a = checkpoint.load_training_state(tmp_path / "straight")["model"]
    b = checkpoint.load_training_state(tmp_path / "resumed")["model"]
    for name in a:
        assert torch.equal(a[name], b[name]), name


def test_sampling_is_reproducible_and_streams(corpus, tmp_path, capsys):
    out = tmp_path / "run"
    main(["train", "lm", "--data", str(corpus), "--out", str(out), "--max-steps", "30", *SMALL])
    capsys.readouterr()
    first = run_json(capsys, "sample", str(out), "--prime", "the king", "--length", "40", "--seed", "3", "--json")
    again = run_json(capsys, "sample", str(out), "--prime", "the king", "--length", "40", "--seed", "3", "--json")
    assert first["samples"] == again["samples"] and first["samples"][0].startswith("the king")
    assert len(first["samples"][0]) == len("the king") + 40
    many = run_json(capsys, "sample", str(out), "--length", "20", "--num-samples", "3", "--seed", "1", "--json")
    assert len(many["samples"]) == 3
    assert main(["sample", str(out), "--length", "25", "--seed", "3", "--prime", "a"]) == 0
    assert len(capsys.readouterr().out) == 1 + 25 + 1


def test_eval_prints_the_documented_json(corpus, tmp_path, capsys):
    out = tmp_path / "run"
    main(["train", "lm", "--data", str(corpus), "--out", str(out), "--max-steps", "20", *SMALL])
    capsys.readouterr()
    result = run_json(capsys, "eval", str(out), "--data", str(corpus), "--json")
    assert result["task"] == "lm"
    assert set(result["metrics"]) == {"nats_per_token", "bits_per_char", "tokens"}
    assert result["metrics"]["tokens"] > 10000


def test_word_level_model_reports_perplexity_and_maps_unknown_prime_words(corpus, tmp_path, capsys):
    out = tmp_path / "words"
    result = run_json(capsys, "train", "lm", "--data", str(corpus), "--level", "word", "--out", str(out),
                      "--max-steps", "40", "--tie-weights", "--embedding-size", "32", "--json", *SMALL[:2],
                      *SMALL[4:])  # fmt: skip
    assert "perplexity" in result["metrics"]
    assert result["metrics"]["perplexity"] == pytest.approx(math.exp(result["metrics"]["loss"]))
    model = load_model(out)
    assert model.head.weight is model.embedding.weight
    sample = run_json(capsys, "sample", str(out), "--prime", "the dragon", "--length", "5", "--seed", "0", "--json")
    assert sample["samples"][0].startswith("the dragon")


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(corpus, tmp_path, capsys, monkeypatch):
    out = tmp_path / "run"
    loss = LanguageModelTask.loss

    def nan_at_step_7(self, model, batch):
        value, count = loss(self, model, batch)
        self.calls = getattr(self, "calls", 0) + 1
        return (value * float("nan") if self.calls == 7 else value), count

    monkeypatch.setattr(LanguageModelTask, "loss", nan_at_step_7)
    code = main(["train", "lm", "--data", str(corpus), "--out", str(out), "--max-steps", "200", "--eval-every", "5",
                 *SMALL])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2 and "the training loss became nan at step 7" in err
    assert "keeps the checkpoint of step 5 and the best weights (step 5)" in err
    assert checkpoint.load_training_state(out)["progress"]["step"] == 5
    load_model(out)  # still loads


def run_main(argv) -> int:
    """main's exit status, also for a flag refused while parsing (argparse exits)."""
    try:
        return main(argv)
    except SystemExit as exit_:
        return exit_.code


def write(path, data: bytes):
    path.write_bytes(data)
    return str(path)


@pytest.mark.parametrize(
    "make_args, match",
    [
        (lambda d: ["--data", write(d / "e.txt", b"")], "e.txt is empty"),
        (lambda d: ["--data", write(d / "b.bin", bytes(range(256)))], "b.bin looks binary"),
        (lambda d: ["--data", write(d / "l.txt", "café\n".encode("latin-1") * 100)], "l.txt is not UTF-8 text"),
        (lambda d: ["--data", write(d / "s.txt", b"too short\n")], "fewer than one window needs"),
        (lambda d: ["--data", str(d / "missing.txt")], "no such file or folder"),
        (lambda d: ["--tie-weights"], "tied weights need"),
        (lambda d: ["--lr", "-1"], "argument --lr: must be a number in (0, 1000], got '-1'"),
        (lambda d: ["--device", "cuda:7"] if not torch.cuda.is_available() else ["--device", "tpu"], "device"),
    ],
)
def test_bad_training_input_is_one_clear_line(tmp_path, capsys, make_args, match):
    code = run_main(["train", "lm", *make_args(tmp_path), "--out", str(tmp_path / "run"), "--max-steps", "1", *SMALL])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("rnnkit: error: ") and err.count("\n") == 1 and match in err
    assert "Traceback" not in err
    assert not (tmp_path / "run" / "config.json").exists()


def test_existing_run_is_never_overwritten(corpus, tmp_path, capsys):
    out = tmp_path / "run"
    main(["train", "lm", "--data", str(corpus), "--out", str(out), "--max-steps", "2", *SMALL])
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    assert main(["train", "lm", "--data", str(corpus), "--out", str(out), "--max-steps", "2", *SMALL]) == 2
    assert "already holds a run" in capsys.readouterr().err
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


@pytest.mark.parametrize(
    "argv, match",
    [
        (lambda run, d: ["sample", str(d / "nowhere")], "does not exist"),
        (lambda run, d: ["sample", str(run), "--prime", "XYZ€"], "character 'X' (U+0058) is not in the model's"),
        (lambda run, d: ["sample", str(run), "--length", "0"], "argument --length: must be an integer >= 1, got '0'"),
        (lambda run, d: ["sample", str(run), "--top-p", "0"], "argument --top-p: must be a number in (0, 1]"),
        (lambda run, d: ["eval", str(run), "--data", write(d / "x.txt", b"\xff\xfe")], "not UTF-8"),
        (lambda run, d: ["train", "lm", "--resume", str(d / "nowhere")], "does not exist"),
    ],
)
def test_bad_run_commands(corpus, tmp_path, capsys, argv, match):
    run = tmp_path / "run"
    main(["train", "lm", "--data", str(corpus), "--out", str(run), "--max-steps", "2", *SMALL])
    capsys.readouterr()
    assert run_main(argv(run, tmp_path)) == 2
    err = capsys.readouterr().err
    assert match in err and err.count("\n") == 1


def test_run_of_another_task_is_refused(corpus, tmp_path, capsys):
    run = tmp_path / "run"
    main(["train", "lm", "--data", str(corpus), "--out", str(run), "--max-steps", "2", *SMALL])
    config = json.loads((run / "config.json").read_text())
    config["task"] = "tag"
    (run / "config.json").write_text(json.dumps(config))
    capsys.readouterr()
    assert main(["train", "lm", "--resume", str(run)]) == 2
    assert "is a 'tag' run, not a 'lm' run" in capsys.readouterr().err
