"""Training on several processes (rnnkit.distributed): torchrun launched here, 2 gloo processes on the CPU.

Each run of 2 processes is compared with a run of one process (in this process, the same flags and seed,
float64 through RNNKIT_DTYPE): the logged global losses and pre-clip gradient norms must agree to 1e-8;
only rank 0 writes; a resumed run continues from its step on every rank; kill -9 of one rank ends the
other and leaves a checkpoint that loads and resumes.
"""

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from rnnkit import checkpoint, distributed
from rnnkit.cli import main
from rnnkit.errors import ConfigError
from rnnkit.models import load_model

LM = ["--hidden-size", "16", "--embedding-size", "8", "--num-layers", "2", "--batch-size", "8", "--seq-len", "10",
      "--dropout", "0", "--schedule", "constant", "--log-every", "5", "--eval-every", "10", "--eval-tokens", "400",
      "--quiet"]  # fmt: skip
CLASSIFY = ["--hidden-size", "12", "--embedding-size", "8", "--batch-size", "6", "--dropout", "0", "--log-every", "5",
            "--eval-every", "10", "--clip-norm", "0.05", "--quiet"]  # fmt: skip
EXACT = 1e-8  # float64: one process and two differ by rounding only (the issue asks for 1e-5)

pytestmark = pytest.mark.skipif(not torch.distributed.is_gloo_available(), reason="torch without gloo")


@pytest.fixture(scope="module")
def verses(tmp_path_factory):
    rng = random.Random(0)
    subjects, verbs, objects = ["the king", "a fool", "my lord"], ["loves", "fears", "sees"], ["the crown", "a rose"]
    lines = [f"{rng.choice(subjects)} {rng.choice(verbs)} {rng.choice(objects)}." for _ in range(300)]
    path = tmp_path_factory.mktemp("lm") / "verses.txt"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def labelled(tmp_path_factory):
    """45 training lines: batches of 6 leave one of 3 per epoch, which 2 processes share unevenly (1 + 2)."""
    rng = random.Random(1)
    words = {"sea": "wave ship tide salt".split(), "farm": "goat field hay barn".split()}
    root = tmp_path_factory.mktemp("classify")
    for name, n in (("train", 45), ("valid", 12)):
        lines = []
        for i in range(n):
            label = "sea" if i % 2 else "farm"
            text = " ".join(rng.choice(words[label] + ["the", "a"]) for _ in range(rng.randint(2, 8)))
            lines.append(f"{label} {text}")
        (root / f"{name}.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return root


def torchrun(*args: str, wait: bool = True, timeout: float = 40):
    """``python -m torch.distributed.run --standalone --nproc_per_node 2 -m rnnkit ARGS`` in float64."""
    env = {**os.environ, "RNNKIT_DTYPE": "float64", "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
               "-m", "rnnkit", *args]  # fmt: skip
    if not wait:
        return subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout)


def one_process(monkeypatch, *args: str) -> None:
    monkeypatch.setenv("RNNKIT_DTYPE", "float64")
    assert main(list(args)) == 0


def records(run: Path, split: str) -> list[dict]:
    return [r for r in checkpoint.read_metrics(run) if r["split"] == split]


def assert_same_training(a: Path, b: Path, steps: list[int]) -> None:
    """The train and valid records of runs ``a`` and ``b`` agree: global loss, pre-clip norm, clip counts."""
    train_a, train_b = records(a, "train"), records(b, "train")
    assert [r["step"] for r in train_a] == [r["step"] for r in train_b] == steps
    for x, y in zip(train_a, train_b):
        assert abs(x["loss"] - y["loss"]) < EXACT, (x, y)
        assert abs(x["grad_norm"] - y["grad_norm"]) < EXACT and abs(x["grad_norm_max"] - y["grad_norm_max"]) < EXACT
        assert x["clipped"] == y["clipped"]
    valid_a, valid_b = records(a, "valid"), records(b, "valid")
    assert [r["step"] for r in valid_a] == [r["step"] for r in valid_b]
    for x, y in zip(valid_a, valid_b):
        assert abs(x["loss"] - y["loss"]) < EXACT, (x, y)


# -- without torchrun ------------------------------------------------------------------------------


def test_one_process_is_untouched(monkeypatch):
    for name in distributed.ENV:
        monkeypatch.delenv(name, raising=False)
    assert not distributed.launched() and distributed.setup(torch.device("cpu")) == torch.device("cpu")
    assert (distributed.world(), distributed.rank(), distributed.is_main()) == (1, 0, True)
    assert not torch.distributed.is_initialized()
    loss = torch.tensor(2.5, requires_grad=True)
    backward, value, count = distributed.global_loss(loss, 7)
    assert backward is loss and (value, count) == (2.5, 7)
    assert distributed.agree(0.3) == 0.3 and distributed.broadcast({"a": 1}) == {"a": 1}
    items = torch.arange(5)
    assert distributed.share(items) is items and distributed.rank_seed(42) == 42


@pytest.mark.parametrize("n", [1, 2, 3, 5, 8])
def test_the_shares_of_a_batch_cover_it_in_order(monkeypatch, n):
    monkeypatch.setattr(distributed, "world", lambda: 3)
    shares = []
    for r in range(3):
        monkeypatch.setattr(distributed, "rank", lambda r=r: r)
        shares.append(distributed.share(torch.arange(n)).tolist())
    if n >= 3:
        assert sum(shares, []) == list(range(n)) and max(map(len, shares)) - min(map(len, shares)) <= 1
    else:  # fewer items than ranks: a rank whose share would be empty repeats one item, as DistributedSampler pads
        assert all(len(s) == 1 for s in shares) and sorted({s[0] for s in shares}) == list(range(n))
    monkeypatch.setattr(distributed, "rank", lambda: 1)
    rows = torch.arange(12).view(2, 6)
    assert distributed.share(rows.numpy(), dim=1).tolist() == [[2, 3], [8, 9]]


def test_a_batch_that_does_not_divide_is_refused(monkeypatch):
    monkeypatch.setattr(distributed, "world", lambda: 4)
    distributed.check_batch(32)
    with pytest.raises(ConfigError, match=r"^--batch-size 30 does not divide among the 4 training processes: .* "
                                          r"use a multiple of 4$"):  # fmt: skip
        distributed.check_batch(30)


# -- two processes under torchrun -------------------------------------------------------------------


def test_lm_on_two_processes_equals_one_and_resumes_there(verses, tmp_path, monkeypatch):
    args = ["train", "lm", "--data", str(verses), "--max-steps", "20", *LM]
    one_process(monkeypatch, *args, "--out", str(tmp_path / "one"))
    result = torchrun(*args, "--out", str(tmp_path / "two"))
    assert result.returncode == 0, result.stderr[-3000:]
    assert_same_training(tmp_path / "one", tmp_path / "two", [5, 10, 15, 20])
    # rank 0 alone wrote: the same files, each record once, one summary line on stderr
    assert sorted(p.name for p in (tmp_path / "two").iterdir()) == sorted(p.name for p in (tmp_path / "one").iterdir())
    assert len(checkpoint.read_metrics(tmp_path / "two")) == len(checkpoint.read_metrics(tmp_path / "one"))
    assert result.stderr.count("best validation loss") == 1
    assert json.loads((tmp_path / "two" / "summary.json").read_text())["processes"] == 2
    # the carried state of all 8 streams (each rank held 4) is saved as one process saves it
    a = checkpoint.load_training_state(tmp_path / "one")["task"]["state"]
    b = checkpoint.load_training_state(tmp_path / "two")["task"]["state"]
    assert b.shape == a.shape == (2, 8, 16) and (a - b).abs().max() < EXACT
    # resume: 10 steps in one process, the rest on two (the carried state shared out again) equals straight 20
    one_process(monkeypatch, "train", "lm", "--data", str(verses), "--max-steps", "10", *LM, "--out",
                str(tmp_path / "half"))  # fmt: skip
    resumed = torchrun("train", "lm", "--resume", str(tmp_path / "half"), "--max-steps", "20", "--quiet")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert_same_training(tmp_path / "one", tmp_path / "half", [5, 10, 15, 20])
    assert json.loads((tmp_path / "half" / "summary.json").read_text())["steps"] == 20


def test_classify_on_two_processes_equals_one_with_uneven_shares_and_global_clipping(labelled, tmp_path, monkeypatch):
    args = ["train", "classify", "--train", str(labelled / "train.txt"), "--valid", str(labelled / "valid.txt"),
            "--max-steps", "20", *CLASSIFY]  # fmt: skip
    one_process(monkeypatch, *args, "--out", str(tmp_path / "one"))
    result = torchrun(*args, "--out", str(tmp_path / "two"))
    assert result.returncode == 0, result.stderr[-3000:]
    # 8 batches per epoch (the last of 3 examples: 1 on one rank, 2 on the other), 20 steps cross two epoch ends;
    # every step is clipped (norm 0.05): clipping by each rank's own norm would make the losses differ
    assert all(r["clipped"] == 5 for r in records(tmp_path / "one", "train"))
    assert_same_training(tmp_path / "one", tmp_path / "two", [5, 10, 15, 20])


def test_a_batch_that_does_not_divide_among_the_processes_is_one_line(verses, tmp_path):
    result = torchrun("train", "lm", "--data", str(verses), "--max-steps", "2", *LM, "--batch-size", "7",
                      "--out", str(tmp_path / "run"))  # fmt: skip
    assert result.returncode != 0
    lines = [line for line in result.stderr.splitlines() if line.startswith("rnnkit: error:")]
    assert lines == ["rnnkit: error: --batch-size 7 does not divide among the 2 training processes: each takes an "
                     "equal share of the global batch; use a multiple of 2"], result.stderr[-2000:]  # fmt: skip
    assert "rnnkit/cli.py" not in result.stderr  # no traceback of ours (torchrun prints its own report)
    assert not (tmp_path / "run").exists()


def _worker(launcher: int, rank: int) -> int | None:
    """The pid of torchrun's worker of ``rank`` (a child of the launcher's process, RANK in its environment)."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            environ = (entry / "environ").read_bytes().split(b"\0")
        except (OSError, IndexError, ValueError):
            continue
        if parent == launcher and f"RANK={rank}".encode() in environ:
            return int(entry.name)
    return None


@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="finds the worker through /proc")
def test_kill_9_of_one_rank_ends_the_other_and_the_checkpoint_resumes(verses, tmp_path, monkeypatch):
    run = tmp_path / "run"
    launcher = torchrun("train", "lm", "--data", str(verses), "--max-steps", "100000", *LM, "--eval-every", "5",
                        "--out", str(run), wait=False)  # fmt: skip
    try:
        deadline = time.monotonic() + 40
        while time.monotonic() < deadline and not any(r["step"] >= 10 for r in records(run, "valid")):
            assert launcher.poll() is None, launcher.communicate()[1][-3000:]
            time.sleep(0.2)
        victim = _worker(launcher.pid, 1)
        assert victim is not None, "rank 1's process not found"
        os.kill(victim, signal.SIGKILL)
        _, stderr = launcher.communicate(timeout=40)
    finally:
        if launcher.poll() is None:
            launcher.kill()
            launcher.communicate()
    assert launcher.returncode != 0
    assert "Signal 9 (SIGKILL)" in stderr, stderr[-3000:]  # torchrun's report names the killed rank
    errors = [line for line in stderr.splitlines() if line.startswith("rnnkit: error:")]
    assert len(errors) == 1 and f"{run} keeps the checkpoint of step" in errors[0], stderr[-3000:]
    assert "another training process" in errors[0]
    saved = checkpoint.load_training_state(run)["progress"]["last_saved_step"]
    assert saved >= 10 and saved % 5 == 0
    load_model(run)
    one_process(monkeypatch, "train", "lm", "--resume", str(run), "--max-steps", str(saved + 2), "--quiet")
    assert json.loads((run / "summary.json").read_text())["steps"] == saved + 2
