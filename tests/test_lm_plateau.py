"""benchmarks/lm_plateau.py, small: the N(0, 1) embedding leaves the unigram plateau before U(-0.1, 0.1) does
(same seed, same batches, every other weight equal); its curves are what ``rnnkit train lm`` logs; its
first-layer diagnostic computes rnnkit's own first layer."""

import json
import sys
from pathlib import Path

import pytest
import torch

from rnnkit.cli import main as rnnkit_main
from rnnkit.layers import GRU, LSTM

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
import lm_plateau as plateau  # noqa: E402

STEPS = 40


@pytest.fixture(scope="module")
def small_text(tmp_path_factory):
    """The first 200 KB of the shipped corpus: the same text, a tenth of it (fast to load and score)."""
    from rnnkit.tasks.lm import default_corpus

    path = tmp_path_factory.mktemp("plateau") / "shakespeare.txt"
    path.write_text(default_corpus().read_text(encoding="utf-8")[:200_000], encoding="utf-8")
    return str(path)


@pytest.fixture(scope="module")
def pair(small_text):
    return {init: plateau.train_rnnkit(plateau.TINY, init, STEPS, 0, data=small_text) for init in ("uniform", "normal")}


def test_normal_embedding_leaves_the_plateau_first(pair, small_text):
    task = plateau.build_rnnkit(plateau.TINY, STEPS, 0, small_text)[0]
    level = plateau.unigram_entropy(task.corpus.train, len(task.tokenizer)) - plateau.BELOW
    uniform, normal = pair["uniform"], pair["normal"]
    assert uniform["other_weights_sum"] == normal["other_weights_sum"]  # only the embedding differs
    at_normal = plateau.first_below(normal["loss"], level)
    at_uniform = plateau.first_below(uniform["loss"], level) or STEPS + 1
    assert at_normal is not None and at_normal < at_uniform, (at_normal, at_uniform)
    assert plateau.logged_loss(normal["loss"], STEPS) < plateau.logged_loss(uniform["loss"], STEPS)


def test_the_input_signal_is_small_with_uniform(pair):
    """The mechanism: at initialisation U(-0.1, 0.1) leaves the first layer's input term and the gradient
    of its input weights an order of magnitude below N(0, 1)'s."""
    u, n = pair["uniform"], pair["normal"]
    assert u["signals"][0]["embedding_rms"] == pytest.approx(0.1 / 3**0.5, rel=0.1)
    assert n["signals"][0]["embedding_rms"] == pytest.approx(1.0, rel=0.1)
    assert n["signals"][0]["input"] > 8 * u["signals"][0]["input"]
    assert n["signals"][0]["input_share"] > 3 * u["signals"][0]["input_share"]
    assert n["grad_norm"]["weight_ih_l0"][0] > 8 * u["grad_norm"]["weight_ih_l0"][0]
    assert len(u["loss"]) == len(u["grad_norm"]["embedding"]) == len(u["signals"]) - 1 == STEPS


def test_curve_is_what_rnnkit_train_logs(pair, small_text, tmp_path):
    v = plateau.TINY
    flags = ["--cell", v["cell"], "--hidden-size", str(v["hidden_size"]), "--num-layers", str(v["num_layers"]),
             "--embedding-size", str(v["embedding_size"]), "--dropout", str(v["dropout"]), "--seq-len",
             str(v["seq_len"]), "--batch-size", str(v["batch_size"]), "--lr", str(v["lr"]), "--schedule",
             v["schedule"]]  # fmt: skip
    run = tmp_path / "run"
    code = rnnkit_main(["train", "lm", "--data", small_text, *flags, "--max-steps", str(STEPS), "--seed", "0",
                        "--out", str(run), "--quiet"])  # fmt: skip
    assert code == 0
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    logged = {r["step"]: r["loss"] for r in records if r["split"] == "train"}
    for step in (10, 20, 40):
        assert plateau.logged_loss(pair["normal"]["loss"], step) == pytest.approx(logged[step], abs=1e-6)


@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_layer0_states_are_rnnkits_first_layer(cell):
    torch.manual_seed(0)
    rnn = (GRU if cell == "gru" else LSTM)(5, 7, 2, batch_first=True)
    x = torch.randn(3, 4, 5)
    one = (GRU if cell == "gru" else LSTM)(5, 7, 1, batch_first=True)
    with torch.no_grad():
        for name in ("weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0"):
            getattr(one, name).copy_(getattr(rnn, name))
        expected = one(x)[0]
    torch.testing.assert_close(plateau.layer0_states(rnn, cell, x), expected, atol=1e-6, rtol=1e-5)


def test_bad_steps_is_one_line(capsys):
    assert plateau.main(["--steps", "0"]) == 2
    assert capsys.readouterr().err == "lm_plateau: error: --steps must be >= 1, got 0\n"
