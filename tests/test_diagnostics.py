"""Gradient flow across time behaves as the course notes derive; plots are written."""

import json

import pytest
import torch

from rnnkit import checkpoint
from rnnkit.cli import main
from rnnkit.diagnostics import fit_decay, gradient_flow, jacobian_norms, make_cell


def flow(kind, scale=None, nonlinearity="tanh", T=40, seed=0):
    torch.manual_seed(seed)
    cell = make_cell(kind, 8, 32, scale, nonlinearity).double()
    x = torch.randn(T, 4, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))
    return gradient_flow([cell], x)


def test_tanh_rnn_vanishes_at_small_scale_and_the_rate_rises_with_the_scale():
    rates = [flow("rnn", s).decay_per_step for s in (0.5, 1.0, 1.5)]
    assert rates[0] < 0.6, "vanishing at init-scale 0.5"
    assert rates[0] < rates[1] < rates[2]


def test_relu_rnn_explodes_above_scale_one():
    result = flow("rnn", 2.0, nonlinearity="relu")
    assert result.decay_per_step > 1.1
    assert result.grad_norms[-1] > 100 * result.grad_norms[0]


@pytest.mark.parametrize("scale", [None, 0.5, 1.0])
def test_lstm_decays_less_than_the_tanh_rnn(scale):
    assert flow("lstm", scale).decay_per_step > flow("rnn", scale).decay_per_step


def test_measurements_against_autograd_jacobians():
    torch.manual_seed(1)
    cell = make_cell("gru", 3, 5).double()
    x = torch.randn(6, 2, 3, dtype=torch.float64)

    def last_state(h_t, t):  # h_T as a function of h_t, running steps t+1..T
        h = h_t
        for x_k in x[t + 1 :, :1]:
            _, h = cell.advance(x_k, h)
        return h[0]

    states = [cell.init_state(1, dtype=torch.float64)]
    for x_k in x[:, :1]:
        states.append(cell.advance(x_k, states[-1])[1])
    expected = []
    for t in range(6):
        jacobian = torch.autograd.functional.jacobian(lambda h, t=t: last_state(h, t), states[t + 1])  # (H, 1, H)
        expected.append(torch.linalg.matrix_norm(jacobian[:, 0], ord=2).item())
    assert jacobian_norms([cell], x) == pytest.approx(expected[::-1], rel=1e-9)
    result = gradient_flow([cell], x)
    assert result.grad_norms[0] == pytest.approx(1.0)  # a unit readout of h_T
    assert len(result.grad_norms) == 6


def test_fit_decay_recovers_a_geometric_rate():
    assert fit_decay([3 * 0.7**d for d in range(20)]) == pytest.approx(0.7)
    # zeros and overflows are left out of the fit: the points (0, 1) and (3, 0.25) remain
    assert fit_decay([1.0, 0.0, float("inf"), 0.25]) == pytest.approx(0.25 ** (1 / 3))


def test_gradflow_command_json_and_plot(tmp_path, capsys):
    png = tmp_path / "flow.png"
    assert main(["gradflow", "--cell", "rnn", "--cell", "lstm", "--length", "20", "--hidden-size", "16",
                 "--init-scale", "0.5", "--plot", str(png), "--json"]) == 0  # fmt: skip
    result = json.loads(capsys.readouterr().out)
    assert result["task"] == "gradflow" and set(result["metrics"]) == {"rnn", "lstm"}
    rnn = result["metrics"]["rnn"]
    assert len(rnn["grad_norms"]) == 20 and len(rnn["jacobian_norms"]) == 20 and rnn["decay_per_step"] < 1
    assert png.stat().st_size > 10_000 and png.read_bytes()[:4] == b"\x89PNG"
    assert main(["gradflow", "--cell", "gru", "--length", "10", "--json"]) == 0
    assert set(json.loads(capsys.readouterr().out)["metrics"]) == {"grad_norms", "decay_per_step", "jacobian_norms"}


def test_gradflow_on_a_trained_run_with_real_text_and_training_plots(tmp_path, capsys):
    text = tmp_path / "t.txt"
    text.write_text("to be or not to be, that is the question.\n" * 200)
    runs = []
    for name, clip in (("clipped", "0.01"), ("free", "0")):
        run = tmp_path / name
        assert main(["train", "lm", "--data", str(text), "--out", str(run), "--max-steps", "12", "--hidden-size", "16",
                     "--embedding-size", "8", "--batch-size", "4", "--seq-len", "16", "--clip-norm", clip,
                     "--log-every", "3", "--quiet"]) == 0  # fmt: skip
        runs.append(str(run))
    train = [r for r in checkpoint.read_metrics(runs[0]) if r["split"] == "train"]
    assert [r["clipped"] for r in train] == [3, 3, 3, 3] and all(r["grad_norm"] > 0.01 for r in train)
    assert all(r["clipped"] == 0 for r in checkpoint.read_metrics(runs[1]) if r["split"] == "train")
    capsys.readouterr()
    assert main(["gradflow", "--run", runs[0], "--data", str(text), "--length", "30", "--json"]) == 0
    measured = json.loads(capsys.readouterr().out)["metrics"]
    assert len(measured["grad_norms"]) == 30
    png = tmp_path / "curves.png"
    assert main(["plot", *runs, "--out", str(png)]) == 0
    assert png.stat().st_size > 10_000
    assert main(["plot", str(tmp_path), "--out", str(png)]) == 2
    assert "has no config.json" in capsys.readouterr().err


@pytest.mark.parametrize("argv, line", [
    (["--length", "0"], "rnnkit: error: argument --length: must be an integer >= 1, got '0'"),
    (["--init-scale", "-1", "--cell", "rnn"], "rnnkit: error: argument --init-scale: must be a number > 0, got '-1'"),
    (["--init-scale", "nan"], "rnnkit: error: argument --init-scale: must be finite and a number > 0, got 'nan'"),
])  # fmt: skip
def test_bad_gradflow_input(capsys, argv, line):
    """Flags are checked where they are parsed: one line naming the flag and the value, exit 2."""
    with pytest.raises(SystemExit) as exit_:
        main(["gradflow", *argv])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and err.startswith(line + " (see rnnkit gradflow --help)\n"), err
    assert len(err.splitlines()) == 1, err
    with pytest.raises(ValueError, match="init scale must be > 0, got -1"):  # the library checks it too
        make_cell("rnn", 4, 4, init_scale=-1.0)
