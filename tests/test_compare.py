"""``rnnkit compare``: per-token LM losses against score_ids, the distance into a line, the table over the
tokens every run predicts, loss by position against a hand computation, and bad combinations of runs."""

import json
import math
import random

import numpy as np
import pytest
import torch

from rnnkit.apps import baseline
from rnnkit.apps.compare import ScoredRun, compare, distance_into_line
from rnnkit.cli import main
from rnnkit.data.lm import encode_file
from rnnkit.layers import RecurrentConfig
from rnnkit.models import LanguageModel, LanguageModelConfig, load_model
from rnnkit.tasks.lm import load_tokenizer, score_ids, token_losses


def test_token_losses_are_the_losses_score_ids_averages():
    torch.manual_seed(0)
    model = LanguageModel(LanguageModelConfig(7, 5, RecurrentConfig("gru", 5, 6, batch_first=True)))
    ids = np.random.default_rng(0).integers(0, 7, size=103).astype(np.uint8)
    losses = token_losses(model, ids, batch_size=4, seq_len=6)
    nats, count = score_ids(model, ids, 4, 6, "cpu")
    assert np.isfinite(losses).sum() == count and np.nanmean(losses) == pytest.approx(nats, rel=1e-6)
    n = len(ids) // 4  # 25 tokens per stream: its first token is never predicted, the last 3 of the text are left
    assert np.flatnonzero(np.isnan(losses)).tolist() == [0, n, 2 * n, 3 * n, 100, 101, 102]
    # stream 1 alone, from a fresh state, gives the same losses: the state is carried, streams are independent
    logits, _ = model(torch.from_numpy(ids[n : 2 * n].astype(np.int64))[None])
    alone = torch.nn.functional.cross_entropy(logits[0, :-1], torch.from_numpy(ids[n + 1 : 2 * n].astype(np.int64)),
                                              reduction="none")  # fmt: skip
    np.testing.assert_allclose(losses[n + 1 : 2 * n], alone.detach().numpy(), rtol=1e-5)


def test_distance_into_line_counts_tokens_since_the_last_line_end():
    breaks = np.array([0, 0, 1, 0, 0, 0, 1, 1, 0], dtype=bool)  # "ab\ncde\n\nf"
    assert distance_into_line(breaks).tolist() == [0, 1, 2, 0, 1, 2, 3, 0, 0]


def scored(name, losses, breaks, level="char"):
    return ScoredRun(name, name, "lm", name, level, 10, 1.0, 100.0, np.asarray(losses, float), np.asarray(breaks, bool))


def test_compare_averages_over_the_tokens_every_run_predicts():
    breaks = [0, 0, 1, 0, 0, 1]
    a = scored("a", [9.0, 1.0, 2.0, 3.0, 4.0, 5.0], breaks)
    b = scored("b", [9.0, np.nan, 4.0, 2.0, 2.0, 2.0], breaks)
    result = compare([a, b], min_count=1)
    # token 0 is predicted by no run; token 1 not by b: tokens 2..5 remain
    assert result["tokens"] == 4
    assert result["metrics"]["a"]["nats_per_token"] == pytest.approx((2 + 3 + 4 + 5) / 4)
    assert result["metrics"]["b"]["bits_per_char"] == pytest.approx(2.5 / math.log(2))
    pos = result["per_position"]  # distances of tokens 2..5: 2, 0, 1, 2
    assert pos["distance"] == [0, 1, 2] and pos["count"] == [1, 1, 2]
    assert pos["loss"]["a"] == pytest.approx([3 / math.log(2), 4 / math.log(2), (2 + 5) / 2 / math.log(2)])
    assert compare([a, b], min_count=2)["per_position"]["distance"] == [2]
    word = compare([scored("w", [1.0, 2.0, 3.0], [0, 1, 0], "word")], min_count=1)
    assert word["unit"] == "nats" and word["metrics"]["w"]["perplexity"] == pytest.approx(math.exp(2.5))


def test_runs_of_another_level_or_tokenisation_are_refused():
    a = scored("a", [1.0, 1.0, 1.0], [0, 1, 0])
    with pytest.raises(ValueError, match="is a word-level run and a a char-level one"):
        compare([a, scored("w", [1.0, 1.0, 1.0], [0, 1, 0], "word")])
    with pytest.raises(ValueError, match="cut the text into different tokens"):
        compare([a, scored("b", [1.0, 1.0], [0, 1])])


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """An LM run, an n-gram run and an HMM run on the same text."""
    root = tmp_path_factory.mktemp("compare")
    rng = random.Random(0)
    words = ["the king", "a fool", "loves", "fears", "the crown", "a rose"]
    lines = [" ".join(rng.choice(words) for _ in range(rng.randint(2, 6))) for _ in range(400)]
    (root / "train.txt").write_text("\n".join(lines[:360]) + "\n", encoding="utf-8")
    (root / "valid.txt").write_text("\n".join(lines[360:]) + "\n", encoding="utf-8")
    data = ["--data", str(root / "train.txt"), "--valid", str(root / "valid.txt")]
    assert main(["train", "lm", *data, "--cell", "lstm", "--hidden-size", "16", "--embedding-size", "8",
                 "--num-layers", "1",
                 "--batch-size", "8", "--seq-len", "20", "--max-steps", "20", "--out", str(root / "lstm"),
                 "--quiet"]) == 0  # fmt: skip
    assert main(["baseline", "ngram", *data, "--order", "3", "--out", str(root / "trigram")]) == 0
    assert main(["baseline", "hmm", *data, "--states", "3", "--iterations", "3", "--out", str(root / "hmm")]) == 0
    return root


def test_compare_scores_every_run_on_the_same_tokens_and_plots(runs, tmp_path, capsys):
    capsys.readouterr()
    plot = tmp_path / "compare.png"
    argv = [str(runs / name) for name in ("lstm", "trigram", "hmm")]
    assert main(["compare", *argv, "--data", str(runs / "valid.txt"), "--plot", str(plot), "--min-count", "5",
                 "--batch-size", "4", "--json"]) == 0  # fmt: skip
    result = json.loads(capsys.readouterr().out)
    assert result["task"] == "compare" and set(result["metrics"]) == {"lstm", "trigram", "hmm"}
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # the n-gram's figure, computed here: its losses over the tokens the LM predicts with 4 streams
    lm_model, tokenizer = load_model(runs / "lstm"), load_tokenizer(runs / "lstm")
    ids = encode_file(runs / "valid.txt", tokenizer)
    mask = np.isfinite(token_losses(lm_model, ids, batch_size=4, seq_len=20))
    ngram, ngram_tokenizer = baseline.load_run(runs / "trigram")
    assert ngram_tokenizer.tokens == tokenizer.tokens  # both built their vocabulary from train and valid
    expected = -ngram.log_probs(ids)[mask].mean()
    assert result["tokens"] == mask.sum() and result["metrics"]["trigram"]["tokens"] == mask.sum()
    assert result["metrics"]["trigram"]["nats_per_token"] == pytest.approx(expected, rel=1e-12)
    facts = {r["name"]: r for r in result["runs"]}
    assert facts["trigram"]["model"] == "3-gram" and facts["hmm"]["model"] == "HMM 3 states"
    assert facts["lstm"]["model"] == "LSTM 1x16" and facts["lstm"]["tokens_per_s"] > 0
    assert facts["hmm"]["parameters"] == 2 + 3 * 2 + 3 * (len(tokenizer) - 1)
    pos = result["per_position"]
    assert pos["distance"][0] == 0 and min(pos["count"]) >= 5 and len(pos["loss"]["lstm"]) == len(pos["distance"])

    assert main(["compare", *argv, "--data", str(runs / "valid.txt")]) == 0
    table = capsys.readouterr().out
    assert table.startswith("| run | model | bits/char | nats/token | parameters | training time | tokens/s |")
    assert "Mean loss (bits) by distance into the line" in table


def test_compare_refuses_runs_it_cannot_set_side_by_side(runs, tmp_path, capsys):
    assert main(["baseline", "ngram", "--data", str(runs / "train.txt"), "--level", "word", "--out",
                 str(tmp_path / "words")]) == 0  # fmt: skip
    capsys.readouterr()
    assert main(["compare", str(runs / "trigram"), str(tmp_path / "words"), "--data", str(runs / "valid.txt")]) == 2
    assert "rnnkit compare sets runs of one level beside each other" in capsys.readouterr().err
    classify = tmp_path / "classify"
    classify.mkdir()
    (classify / "config.json").write_text(json.dumps({"format": "rnnkit-run", "version": 1, "task": "classify"}))
    assert main(["compare", str(classify), "--data", str(runs / "valid.txt")]) == 2
    assert "is a 'classify' run; rnnkit compare takes lm, ngram, hmm runs" in capsys.readouterr().err
