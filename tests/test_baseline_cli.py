"""``rnnkit baseline ngram|hmm`` runs: what the run directory holds, eval and sample on them as on LM runs,
the numbers against the library models and a plain numpy forward algorithm, and bad input as one line."""

import json
import math
import random

import numpy as np
import pytest
from safetensors.numpy import load_file

from rnnkit.baselines.ngram import KneserNey
from rnnkit.cli import main
from rnnkit.data.lm import encode_file, load_corpus

LM_SMALL = ["--hidden-size", "8", "--embedding-size", "8", "--num-layers", "1", "--batch-size", "4", "--seq-len", "10",
            "--max-steps", "1", "--quiet"]  # fmt: skip


@pytest.fixture(scope="module")
def texts(tmp_path_factory):
    """Training and validation text from a small grammar; the validation text has two words never trained on."""
    root = tmp_path_factory.mktemp("baseline")
    rng = random.Random(0)
    subjects, verbs, objects = ["the king", "a fool", "my lord"], ["loves", "fears", "sees"], ["the crown", "a rose"]

    def lines(n):
        return [f"{rng.choice(subjects)} {rng.choice(verbs)} {rng.choice(objects)}." for _ in range(n)]

    (root / "train.txt").write_text("\n".join(lines(600)) + "\n", encoding="utf-8")
    (root / "valid.txt").write_text("\n".join(lines(60)) + "\nthe queen sees a horse.\n", encoding="utf-8")
    return root


def run_json(capsys, *argv) -> dict:
    assert main(list(argv)) == 0
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def fail_line(capsys, *argv) -> str:
    assert main(list(argv)) == 2
    err = capsys.readouterr().err
    assert err.startswith("rnnkit: error: ") and err.count("\n") == 1, err
    return err


@pytest.fixture(scope="module")
def ngram_run(texts, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "ngram"
    assert main(["baseline", "ngram", "--data", str(texts / "train.txt"), "--valid", str(texts / "valid.txt"),
                 "--order", "4", "--out", str(out), "--json"]) == 0  # fmt: skip
    return out


@pytest.fixture(scope="module")
def hmm_run(texts, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "hmm"
    assert main(["baseline", "hmm", "--data", str(texts / "train.txt"), "--valid", str(texts / "valid.txt"),
                 "--states", "4", "--iterations", "8", "--max-train-tokens", "5000", "--window", "100",
                 "--out", str(out), "--json"]) == 0  # fmt: skip
    return out


def test_an_ngram_run_is_a_complete_run_directory_with_an_lm_runs_vocabulary(texts, ngram_run, tmp_path):
    assert sorted(p.name for p in ngram_run.iterdir()) == [
        "config.json", "metrics.jsonl", "model.safetensors", "summary.json", "vocab.json"]  # fmt: skip
    config = json.loads((ngram_run / "config.json").read_text())
    assert config["task"] == "ngram" and config["model"]["type"] == "KneserNey"
    assert config["model"]["config"]["order"] == 4 and config["data"]["level"] == "char"
    lm = tmp_path / "lm"
    main(["train", "lm", "--data", str(texts / "train.txt"), "--valid", str(texts / "valid.txt"), "--out", str(lm),
          *LM_SMALL])  # fmt: skip
    assert (ngram_run / "vocab.json").read_text() == (lm / "vocab.json").read_text()
    summary = json.loads((ngram_run / "summary.json").read_text())
    arrays = load_file(str(ngram_run / "model.safetensors"))
    assert summary["parameters"] == sum(a.size for name, a in arrays.items() if name.startswith(("alpha", "gamma")))
    assert summary["tokens_per_s"] > 0 and summary["seconds"] >= 0 and summary["task"] == "ngram"


def test_eval_of_an_ngram_run_is_the_library_models_score_in_the_lm_keys(texts, ngram_run, tmp_path, capsys):
    result = run_json(capsys, "eval", str(ngram_run), "--data", str(texts / "valid.txt"), "--json")
    lm = tmp_path / "lm"
    main(["train", "lm", "--data", str(texts / "train.txt"), "--valid", str(texts / "valid.txt"), "--out", str(lm),
          *LM_SMALL])  # fmt: skip
    reference = run_json(capsys, "eval", str(lm), "--data", str(texts / "valid.txt"), "--json")
    assert set(result) == set(reference) == {"task", "metrics"} and result["task"] == "ngram"
    assert set(result["metrics"]) == set(reference["metrics"]) == {"nats_per_token", "bits_per_char", "tokens"}
    # the same model fitted here from the same tokens
    corpus = load_corpus(texts / "train.txt", "char", valid_path=texts / "valid.txt")
    model = KneserNey.fit(corpus.train, len(corpus.tokenizer), 4)
    nats, count = model.score(encode_file(texts / "valid.txt", corpus.tokenizer))
    assert result["metrics"]["nats_per_token"] == pytest.approx(nats, rel=1e-12)
    assert result["metrics"]["bits_per_char"] == pytest.approx(nats / math.log(2), rel=1e-12)
    assert result["metrics"]["tokens"] == count
    valid = [r for r in (json.loads(line) for line in (ngram_run / "metrics.jsonl").read_text().splitlines())
             if r["split"] == "valid"]  # fmt: skip
    assert len(valid) == 1 and valid[0]["loss"] == pytest.approx(nats, rel=1e-12)
    assert nats < 0.5 * math.log(len(corpus.tokenizer)), "a 4-gram learns this grammar"


def test_eval_of_an_hmm_run_is_the_forward_algorithm_on_its_saved_arrays(texts, hmm_run, capsys):
    result = run_json(capsys, "eval", str(hmm_run), "--data", str(texts / "valid.txt"), "--json")
    arrays = load_file(str(hmm_run / "model.safetensors"))
    tokens = json.loads((hmm_run / "vocab.json").read_text())["tokens"]
    index = {c: i for i, c in enumerate(tokens)}
    x = [index[c] for c in (texts / "valid.txt").read_text()]
    pi, A, B = arrays["start"], arrays["transition"], arrays["emission"]
    alpha, logs = pi * B[:, x[0]], []  # plain scaled forward recursion in numpy
    for t in range(1, len(x)):
        alpha = (alpha / alpha.sum()) @ A * B[:, x[t]]
        logs.append(math.log(alpha.sum()))
    assert result["task"] == "hmm"
    assert result["metrics"]["nats_per_token"] == pytest.approx(-np.mean(logs), rel=1e-10)
    assert result["metrics"]["tokens"] == len(x) - 1
    records = [json.loads(line) for line in (hmm_run / "metrics.jsonl").read_text().splitlines()]
    train = [r for r in records if r["split"] == "train"]
    assert [r["step"] for r in train] == list(range(len(train))) and train[-1]["loss"] < train[0]["loss"]
    summary = json.loads((hmm_run / "summary.json").read_text())
    assert summary["parameters"] == 3 + 4 * 3 + 4 * (len(tokens) - 1)
    assert any("Baum-Welch trained on" in note for note in summary["notes"])


@pytest.mark.parametrize("run", ["ngram_run", "hmm_run"])
def test_sampling_a_baseline_run_is_reproducible_and_has_the_lm_keys(run, request, capsys):
    path = str(request.getfixturevalue(run))
    first = run_json(capsys, "sample", path, "--length", "40", "--seed", "3", "--prime", "the ", "--json")
    again = run_json(capsys, "sample", path, "--length", "40", "--seed", "3", "--prime", "the ", "--json")
    assert first["samples"] == again["samples"] and first["task"] in ("ngram", "hmm")
    assert len(first["samples"]) == 1 and len(first["samples"][0]) == 4 + 40 and first["samples"][0].startswith("the ")
    assert set(first["metrics"]) == {"tokens", "tokens_per_s"}
    several = run_json(capsys, "sample", path, "--length", "10", "--num-samples", "3", "--seed", "1", "--json")
    assert len(several["samples"]) == 3 and all(len(s) == 10 for s in several["samples"])
    assert main(["sample", path, "--length", "20", "--seed", "3"]) == 0
    assert len(capsys.readouterr().out) == 21


def test_a_word_level_ngram_counts_the_validation_words_it_maps_to_unk(texts, tmp_path, capsys):
    result = run_json(capsys, "baseline", "ngram", "--data", str(texts / "train.txt"), "--valid",
                      str(texts / "valid.txt"), "--level", "word", "--order", "3", "--out", str(tmp_path / "w"),
                      "--json")  # fmt: skip
    assert "perplexity" in result["metrics"] and result["metrics"]["tokens"] > 0
    assert "2 of the 305 validation words are not in the vocabulary" in result["summary"]["notes"][0]
    assert main(["baseline", "ngram", "--data", str(texts / "train.txt"), "--valid", str(texts / "valid.txt"),
                 "--level", "word", "--out", str(tmp_path / "w2")]) == 0  # fmt: skip
    assert "note: 2 of the 305 validation words" in capsys.readouterr().err
    evaluated = run_json(capsys, "eval", str(tmp_path / "w"), "--data", str(texts / "valid.txt"), "--json")
    assert set(evaluated["metrics"]) == {"nats_per_token", "perplexity", "tokens"}


@pytest.mark.parametrize(
    "argv, match",
    [
        (["ngram", "--order", "0"], "n-gram order must be an integer from 1 to 10, got 0"),
        (["ngram", "--order", "11"], "n-gram order must be an integer from 1 to 10, got 11"),
        (["hmm", "--states", "1"], "HMM states must be an integer >= 2, got 1"),
        (["ngram", "--vocab-size", "2", "--level", "word"], "--vocab-size must be >= 3"),
    ],
)
def test_bad_options_are_one_line_and_leave_nothing(texts, tmp_path, capsys, argv, match):
    out = tmp_path / "run"
    err = fail_line(capsys, "baseline", argv[0], "--data", str(texts / "train.txt"), *argv[1:], "--out", str(out))
    assert match in err and not out.exists()


def test_bad_files_and_runs_are_one_line(texts, ngram_run, tmp_path, capsys):
    empty, binary = tmp_path / "empty.txt", tmp_path / "binary.txt"
    empty.write_text("")
    binary.write_bytes(b"abc\x00def\n")
    assert "is empty" in fail_line(capsys, "baseline", "ngram", "--data", str(empty), "--out", str(tmp_path / "a"))
    assert "looks binary" in fail_line(capsys, "baseline", "hmm", "--data", str(binary), "--out", str(tmp_path / "b"))
    assert "already holds a run" in fail_line(capsys, "baseline", "ngram", "--data", str(texts / "train.txt"),
                                              "--out", str(ngram_run))  # fmt: skip
    assert "rnnkit eval needs --data FILE" in fail_line(capsys, "eval", str(ngram_run))
    assert "which has no predict" in fail_line(capsys, "predict", str(ngram_run), "--text", "hi")
    unknown = tmp_path / "greek.txt"
    unknown.write_text("the king \u03b1\n", encoding="utf-8")
    assert "is not in the model's vocabulary" in fail_line(capsys, "eval", str(ngram_run), "--data", str(unknown))
    assert "not in the model's vocabulary" in fail_line(capsys, "sample", str(ngram_run), "--prime", "\u03b1")

    broken = tmp_path / "broken"
    broken.mkdir()
    for name in ("config.json", "vocab.json"):
        (broken / name).write_text((ngram_run / name).read_text())
    (broken / "model.safetensors").write_bytes(b"not a safetensors file")
    assert "corrupt or truncated" in fail_line(capsys, "eval", str(broken), "--data", str(texts / "valid.txt"))
    (broken / "model.safetensors").write_bytes((ngram_run / "model.safetensors").read_bytes())
    vocab = json.loads((ngram_run / "vocab.json").read_text())
    (broken / "vocab.json").write_text(json.dumps({**vocab, "tokens": vocab["tokens"][:-1]}))
    assert "tokens but" in fail_line(capsys, "eval", str(broken), "--data", str(texts / "valid.txt"))
