"""``rnnkit bench`` with tiny sizes: its rows, its table, and its refusal of bad input."""

import json
import re

import pytest
import torch

import rnnkit
from rnnkit.apps.bench import VARIANTS, training_memory
from rnnkit.cli import main

TINY = ["--hidden-size", "8", "--batch-size", "2", "--seq-len", "4", "--repeats", "1", "--generation-tokens", "3",
        "--quiet"]  # fmt: skip


def test_bench_json_has_every_implementation_and_generation(capsys):
    assert main(["bench", "--cell", "lstm", "gru-before", *TINY, "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["task"] == "bench" and result["machine"]["torch"] == torch.__version__
    training = result["metrics"]["training"]
    by_cell = {cell: {r["implementation"] for r in training if r["cell"] == cell} for cell in ("lstm", "gru-before")}
    assert by_cell["lstm"] == {"auto", "torch", "fused", "reference", "torch.nn", "loop"}
    assert by_cell["gru-before"] == {"auto", "fused", "reference", "torch.nn", "loop"}, "torch cannot run Cho's GRU"
    for row in training:
        assert row["ms"] > 0 and row["tokens_per_s"] == pytest.approx(4 * 2 / (row["ms"] / 1e3))
        assert row["memory_mb"] > 0
        if row["implementation"] == "torch.nn":
            assert row["time_vs_torch"] == 1.0
    generation = result["metrics"]["generation"]
    assert {(r["cell"], r["batch_size"], r["implementation"]) for r in generation} == {
        (cell, b, name) for cell in ("lstm", "gru-before") for b in (1, 16)
        for name in ("rnnkit.generate", "module per token", "matrix-vector floor")
    }  # fmt: skip
    assert all(r["floor_time_ratio"] == 1.0 for r in generation if r["implementation"] == "matrix-vector floor")


def test_bench_prints_a_table(capsys):
    assert main(["bench", "--cell", "rnn", "--backend", "fused", "torch.nn", *TINY, "--skip", "generation"]) == 0
    out = capsys.readouterr().out
    assert "forward+backward, T=4" in out and "generation" not in out
    rows = [line.split() for line in out.splitlines() if line.startswith("rnn ")]
    assert [r[3] for r in rows] == ["fused", "torch.nn"]


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--cell", "lstm-magic"], "unknown cell 'lstm-magic'; choose from lstm, gru, rnn"),
        (["--backend", "cudnn9"], "unknown backend 'cudnn9'; choose from auto, torch, fused"),
        (["--hidden-size", "4000000", "--batch-size", "64"], r"--hidden-size 4000000 with --batch-size 64 .* needs"),
        (["--batch-size", "0"], "batch sizes must be integers >= 1"),
        (["--repeats", "0"], "repeats must be an integer >= 1"),
    ],
)
def test_bench_bad_input_is_one_line_and_exit_2(argv, message, capsys):
    assert main(["bench", "--quiet", *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("rnnkit: error: ") and "\n" not in err
    assert re.search(message, err), err


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message for a machine without CUDA")
def test_bench_on_missing_cuda(capsys):
    assert main(["bench", "--device", "cuda", *TINY]) == 2
    assert "CUDA is not available" in capsys.readouterr().err


def test_training_memory_counts_each_saved_storage_once():
    x = torch.randn(256, 1024, requires_grad=True)  # 1 MiB

    def forward():
        return (x * x).sum() + (x * x.detach()).sum()  # x is saved three times, x.detach() shares its storage

    assert training_memory(forward, torch.device("cpu")) == 2**20


def test_variants_are_valid_layer_configurations():
    for name, (cell, options) in VARIANTS.items():
        assert cell in ("lstm", "gru", "rnn") and name.startswith(cell)
        layer = rnnkit.Recurrent.from_config({"cell": cell, "input_size": 2, "hidden_size": 3, **options})
        assert layer.backend_for(1) == ("torch" if not options else "fused")
