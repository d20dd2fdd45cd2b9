"""Failure paths of every run: kill -9 at random moments (inside checkpoint writes too), a full disk, and
truncated, hostile and mismatched run parts, for lm, classify, tag and seq2seq runs.

Runs are tiny and killed runs are forked children of the test process (no interpreter to start), so the
whole file stays within seconds. Every command must either work or print one line and exit 2: never a
traceback, and never lose what was saved.
"""

import json
import os
import pickle
import random
import resource
import shutil
import signal
import struct
import sys
import time
import types
from pathlib import Path

import pytest
import torch

from rnnkit import checkpoint
from rnnkit.cli import main
from rnnkit.models import load_model
from rnnkit.runlock import LOCK

TINY = ["--hidden-size", "12", "--embedding-size", "8", "--batch-size", "8", "--quiet"]
TASKS = {
    "lm": dict(train=lambda d: ["--data", d["text"], "--seq-len", "8", "--num-layers", "1"],
               use=lambda r, d: ["sample", r, "--length", "5", "--seed", "0"],
               eval=lambda r, d: ["eval", r, "--data", d["text"]]),
    "classify": dict(train=lambda d: ["--train", d["lines"]],
                     use=lambda r, d: ["predict", r, "--text", "good film"],
                     eval=lambda r, d: ["eval", r, "--data", d["lines"]]),
    "tag": dict(train=lambda d: ["--train", d["conll"], "--char-embedding-size", "4", "--char-hidden-size", "4"],
                use=lambda r, d: ["predict", r, "--text", "John visited Paris"],
                eval=lambda r, d: ["eval", r, "--data", d["conll"]]),
    "seq2seq": dict(train=lambda d: ["--task", "copy", "--length", "3", "--epoch-size", "6", "--valid-size", "16",
                                     "--test-size", "16"],
                    use=lambda r, d: ["predict", r, "--input", "123"],
                    eval=lambda r, d: ["eval", r]),
}  # fmt: skip


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    rng = random.Random(0)
    text = "".join(f"{rng.choice(['the king', 'a fool'])} {rng.choice(['loves', 'fears'])} the sea.\n"
                   for _ in range(300))  # fmt: skip
    (root / "text.txt").write_text(text, encoding="utf-8")
    lines = [f"{label} {rng.choice(words)} {rng.choice(words)} film" for label, words in
             [("pos", ["good", "fine", "great"]), ("neg", ["bad", "dull", "awful"])] for _ in range(40)]  # fmt: skip
    rng.shuffle(lines)
    (root / "lines.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    sentences = []
    for _ in range(60):
        name, place = rng.choice(["John", "Mary", "Anna"]), rng.choice(["Paris", "Oslo", "Rome"])
        sentences.append(f"{name} NN I-NP I-PER\nvisited VB I-VP O\n{place} NN I-NP I-LOC\n. . O O\n")
    (root / "conll.txt").write_text("\n".join(sentences), encoding="utf-8")
    return {"text": str(root / "text.txt"), "lines": str(root / "lines.txt"), "conll": str(root / "conll.txt")}


def train_argv(task: str, data: dict, out, *extra) -> list[str]:
    return ["train", task, *TASKS[task]["train"](data), "--out", str(out), *TINY, *extra]


def run(argv) -> tuple[int, str]:
    """(exit status, stderr) of the command line, in this process; a traceback fails the test."""
    import contextlib
    import io

    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            code = main([str(a) for a in argv])
        except SystemExit as exit_:
            code = exit_.code
    return code, err.getvalue()


def assert_one_line(code: int, err: str, *, ok=(0,)) -> None:
    """Either a success (``ok``) or exit 2 with one ``rnnkit: error:`` line."""
    assert "Traceback" not in err
    if code not in ok:
        assert code == 2, err
        errors = [line for line in err.splitlines() if line.startswith("rnnkit: error:")]
        assert len(errors) == 1 and err.strip().splitlines()[-1] == errors[0], err


@pytest.fixture(scope="module")
def runs(data, tmp_path_factory):
    """Per task a finished tiny run, and one of another hidden size (for mismatched parts)."""
    root = tmp_path_factory.mktemp("runs")
    made = {}
    for task in TASKS:
        for name, size in (("base", "12"), ("other", "10")):
            out = root / f"{task}-{name}"
            code, err = run([*train_argv(task, data, out, "--max-steps", "4", "--eval-every", "2"),
                             "--hidden-size", size])  # fmt: skip
            assert code == 0, err
            made[task, name] = out
    return made


# -- kill -9 --------------------------------------------------------------------------------------


def in_child(body, stderr: Path | None = None) -> int:
    """Fork; the child runs ``body`` with its stdout thrown away and its stderr into ``stderr`` (or thrown
    away). sys.stdout and sys.stderr are new files on those descriptors: pytest's capture points them at
    its own files, which a dup2 of 1 and 2 does not reach."""
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        code = 1
        try:
            null = os.open(os.devnull, os.O_WRONLY)
            os.dup2(null, 1)
            os.dup2(os.open(stderr, os.O_WRONLY | os.O_CREAT | os.O_TRUNC) if stderr else null, 2)
            sys.stdout = open(1, "w", closefd=False)
            sys.stderr = open(2, "w", buffering=1, closefd=False)
            code = body() or 0
        finally:
            sys.stderr.flush()
            os._exit(code)
    return pid


def die():  # pragma: no cover - runs in the child
    os.kill(os.getpid(), signal.SIGKILL)


def kill_inside_writes(kind: str, at: int) -> None:  # pragma: no cover - runs in the child
    """Arrange for this process to be SIGKILLed at the ``at``-th write of ``kind``: a torn temporary file,
    a kill between two renames of one save, or half a line of metrics.jsonl."""
    calls = [0]

    def count():
        calls[0] += 1
        return calls[0] >= at

    if kind == "torn":
        stage = checkpoint._stage

        def torn(path, write):
            if not count():
                return stage(path, write)

            def half(tmp):
                write(tmp)
                os.truncate(tmp, os.path.getsize(tmp) // 2)
                die()

            return stage(path, half)

        checkpoint._stage = torn
    elif kind == "rename":
        proxy = types.SimpleNamespace(**{k: getattr(os, k) for k in dir(os) if not k.startswith("__")})
        proxy.replace = lambda a, b: die() if count() else os.replace(a, b)
        checkpoint.os = proxy
    else:
        append = checkpoint.append_jsonl

        def half_line(path, record):
            if count():
                with open(path, "a", encoding="utf-8") as f:
                    f.write(json.dumps(record)[:20])
                die()
            append(path, record)

        checkpoint.append_jsonl = half_line


TRIALS = [("lm", i) for i in range(20)] + [(t, i) for t in ("classify", "tag", "seq2seq") for i in range(4)]


@pytest.mark.parametrize("task, trial", TRIALS, ids=[f"{t}-{i}" for t, i in TRIALS])
def test_kill_9_at_a_random_moment_leaves_a_run_that_loads_and_resumes(data, tmp_path, task, trial):
    rng = random.Random(trial * 7919 + len(task))
    out = tmp_path / "run"
    argv = [str(a) for a in train_argv(task, data, out, "--max-steps", "200", "--eval-every", "1")]
    mode = ("time", "torn", "rename", "metrics")[trial % 4]
    if mode == "time":
        pid = in_child(lambda: main(argv))
        time.sleep(rng.uniform(0.0, 0.4))
        os.kill(pid, signal.SIGKILL)
    else:
        at = rng.randint(1, 12)
        pid = in_child(lambda: (kill_inside_writes(mode, at), main(argv))[1])
    _, status = os.waitpid(pid, 0)
    assert not os.WIFEXITED(status) or os.WEXITSTATUS(status) == 0, "the child failed by itself"

    if not (out / checkpoint.CONFIG).exists():  # killed before the first save: not a run yet
        code, err = run(["train", task, "--resume", out])
        assert code == 2 and "rnnkit: error:" in err and "Traceback" not in err
        code, err = run([*train_argv(task, data, out, "--max-steps", "2")])
        assert code == 0, err
        return
    load_model(out)
    step = checkpoint.load_training_state(out)["progress"]["step"]
    code, err = run(["train", task, "--resume", out, "--max-steps", step + 2])
    assert code == 0, err
    assert checkpoint.load_training_state(out)["progress"]["step"] > step or step >= 200
    keys = [(r["split"], r["step"]) for r in checkpoint.read_metrics(out)]
    assert len(keys) == len(set(keys)), "a step logged twice"
    assert not list(out.glob(".*.tmp")) and not (out / LOCK).exists()
    code, err = run(TASKS[task]["use"](str(out), data))
    assert code == 0, err


# -- a full disk ----------------------------------------------------------------------------------


@pytest.mark.parametrize("task", list(TASKS))
def test_a_full_disk_is_one_line_and_keeps_the_previous_checkpoint(data, tmp_path, task):
    """RLIMIT_FSIZE in a child: files may not outgrow the first checkpoint's optimizer.pt, which has no
    optimizer moments yet; the next save's one does, so it fails as on a full disk."""
    from rnnkit.train import Trainer

    out, log = tmp_path / "run", tmp_path / "stderr.txt"
    argv = [str(a) for a in train_argv(task, data, out, "--max-steps", "20", "--eval-every", "2")]

    def child():  # pragma: no cover - runs in the child
        save = Trainer.save

        def save_then_fill_the_disk(self, *, weights):
            save(self, weights=weights)
            limit = (out / checkpoint.TRAINING_STATE).stat().st_size + 16
            resource.setrlimit(resource.RLIMIT_FSIZE, (limit, resource.RLIM_INFINITY))

        Trainer.save = save_then_fill_the_disk
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails (EFBIG) instead
        return main(argv)

    pid = in_child(child, stderr=log)
    _, status = os.waitpid(pid, 0)
    err = log.read_text()
    assert os.WEXITSTATUS(status) == 2, err
    assert_one_line(2, err)
    assert "could not write the checkpoint of step 2: File too large (" in err
    assert "keeps the checkpoint of step 0" in err
    assert checkpoint.load_training_state(out)["progress"]["step"] == 0
    assert not list(out.glob(".*.tmp")), "the failed save's temporary files are gone"
    load_model(out)
    code, err = run(["train", task, "--resume", out, "--max-steps", "3"])
    assert code == 0, err


# -- truncated, hostile and mismatched parts ---------------------------------------------------------


class Exploit:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def truncate(path: Path, other: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def hostile(path: Path, other: Path) -> None:
    name = path.name
    if name == checkpoint.CONFIG:
        path.write_text(json.dumps({"format": "rnnkit-run", "version": 1, "task": json.loads(
            other.joinpath(name).read_text())["task"], "model": {"type": "os.system", "config": {}}}))  # fmt: skip
    elif name == checkpoint.WEIGHTS:
        path.write_bytes(struct.pack("<Q", 2**62) + b"{" * 64)  # a header that claims exabytes
    elif name == checkpoint.TRAINING_STATE:
        torch.save({"model": Exploit(str(path.parent / "pwned"))}, path)
    elif name == checkpoint.VOCAB:
        path.write_text("[" * 100_000 + "]" * 100_000)  # nested past any parser's depth
    else:
        path.write_bytes(bytes(range(256)) * 4)


def mismatched(path: Path, other: Path) -> None:
    """The same part from a run of another hidden size (config.json: the other run's model section)."""
    if path.name == checkpoint.CONFIG:
        config = json.loads(path.read_text())
        config["model"] = json.loads((other / path.name).read_text())["model"]
        path.write_text(json.dumps(config))
    elif path.name == checkpoint.VOCAB:
        vocab = json.loads(path.read_text())
        shrink(vocab)
        path.write_text(json.dumps(vocab))
    elif path.name == checkpoint.METRICS:
        with open(path, "a") as f:  # records from the future, as a run killed after its last save leaves
            f.write(json.dumps({"split": "train", "step": 999, "loss": 1.0}) + "\n")
    else:
        shutil.copy(other / path.name, path)


def shrink(vocab) -> None:
    """Drop one entry of the longest list in a vocabulary: another size than the model's."""
    lists = []

    def walk(node):
        if isinstance(node, list) and len(node) > 2:
            lists.append(node)
        for child in node.values() if isinstance(node, dict) else node if isinstance(node, list) else []:
            walk(child)

    walk(vocab)
    if lists:
        max(lists, key=len).pop()
    elif isinstance(vocab, dict) and isinstance(vocab.get("index"), dict):
        vocab["index"].popitem()


def no_model_key(path: Path, other: Path) -> None:
    state = torch.load(path, weights_only=True)
    del state["model"]
    torch.save(state, path)


def stale_lock(path: Path, other: Path) -> None:
    path.write_text("999999999 a process long gone\n")


PARTS = (checkpoint.CONFIG, checkpoint.WEIGHTS, checkpoint.TRAINING_STATE, checkpoint.VOCAB, checkpoint.METRICS)
DAMAGES = [(part, damage) for part in PARTS for damage in (truncate, hostile, mismatched)] + [
    (checkpoint.TRAINING_STATE, no_model_key), (checkpoint.SUMMARY, hostile), (LOCK, stale_lock)]  # fmt: skip
# what must be refused: every command that reads the part (resume reads all but the summary)
MUST_REFUSE = {checkpoint.CONFIG: ("resume", "use", "eval"), checkpoint.WEIGHTS: ("resume", "use", "eval"),
               checkpoint.TRAINING_STATE: ("resume",), checkpoint.VOCAB: ("resume", "use", "eval")}  # fmt: skip


@pytest.mark.parametrize("task", list(TASKS))
@pytest.mark.parametrize("part, damage", DAMAGES, ids=[f"{p}-{d.__name__}" for p, d in DAMAGES])
def test_damaged_run_parts_are_refused_in_one_line(runs, data, tmp_path, task, part, damage):
    out = tmp_path / "run"
    shutil.copytree(runs[task, "base"], out)
    damage(out / part, runs[task, "other"])
    commands = {"resume": ["train", task, "--resume", out, "--max-steps", "6"],
                "use": TASKS[task]["use"](str(out), data), "eval": TASKS[task]["eval"](str(out), data)}  # fmt: skip
    refuse = MUST_REFUSE.get(part, ()) if damage is not no_model_key else ("resume",)
    if part == checkpoint.VOCAB and damage is mismatched and task == "seq2seq":
        refuse = ("resume", "use", "eval")
    for name, argv in commands.items():
        before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
        code, err = run(argv)
        assert_one_line(code, err)
        if name in refuse:
            assert code == 2, f"{name} accepted a {damage.__name__} {part}"
            named = {checkpoint.CONFIG, checkpoint.WEIGHTS, checkpoint.TRAINING_STATE, checkpoint.VOCAB}
            assert any(p in err for p in named), err
            after = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
            assert after == before, f"a refused {name} changed the run"
    assert not (out / "pwned").exists()
    if part == checkpoint.METRICS and damage is mismatched:  # resume cut the future record away
        assert all(r["step"] <= 6 for r in checkpoint.read_metrics(out))


def test_the_message_names_the_part_and_the_shape(runs, data, tmp_path):
    out = tmp_path / "run"
    shutil.copytree(runs["lm", "base"], out)
    mismatched(out / checkpoint.CONFIG, runs["lm", "other"])
    code, err = run(["sample", out, "--length", "3"])
    key = "rnn.weight_ih_l0"
    (saved, wanted) = (list(safetensors_shapes(runs["lm", name])[key]) for name in ("base", "other"))
    assert saved != wanted
    assert code == 2 and (f"model.safetensors does not match the model in config.json: {key!r} has shape {saved}, "
                          f"the model in config.json has {wanted}") in err, err  # fmt: skip
    shutil.copytree(runs["lm", "base"], tmp_path / "opt")
    shutil.copy(runs["lm", "other"] / checkpoint.TRAINING_STATE, tmp_path / "opt" / checkpoint.TRAINING_STATE)
    code, err = run(["train", "lm", "--resume", tmp_path / "opt", "--max-steps", "6"])
    assert code == 2 and "optimizer.pt (its 'model' part) does not match the model in config.json" in err
    shutil.copytree(runs["classify", "base"], tmp_path / "vocab")
    vocab = json.loads((tmp_path / "vocab" / checkpoint.VOCAB).read_text())
    vocab["labels"].append("extra")
    (tmp_path / "vocab" / checkpoint.VOCAB).write_text(json.dumps(vocab))
    code, err = run(["predict", tmp_path / "vocab", "--text", "good film"])
    assert code == 2 and "vocab.json does not match config.json: it implies model num_classes = 3, config.json has 2" \
        in err  # fmt: skip


def safetensors_shapes(run_dir: Path) -> dict[str, tuple]:
    from safetensors import safe_open

    with safe_open(str(run_dir / checkpoint.WEIGHTS), framework="pt") as f:
        return {key: tuple(f.get_slice(key).get_shape()) for key in f.keys()}


def test_a_hostile_pickle_never_runs(runs, tmp_path):
    out = tmp_path / "run"
    shutil.copytree(runs["lm", "base"], out)
    marker = out / "pwned"
    with open(out / checkpoint.TRAINING_STATE, "wb") as f:
        pickle.dump({"model": Exploit(str(marker))}, f)
    code, err = run(["train", "lm", "--resume", out])
    assert code == 2 and "refused without running it" in err and not marker.exists()


def test_resume_after_the_training_data_changed_is_refused(data, tmp_path):
    """The data position saved in optimizer.pt is checked against the data as they are now."""
    import re

    text, out = tmp_path / "text.txt", tmp_path / "run"
    shutil.copy(data["text"], text)
    code, err = run(train_argv("lm", {**data, "text": str(text)}, out, "--max-steps", "4"))
    assert code == 0, err
    text.write_text(text.read_text(encoding="utf-8")[:4000], encoding="utf-8")  # the same characters, fewer
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    code, err = run(["train", "lm", "--resume", out, "--max-steps", "6"])
    assert_one_line(code, err)
    found = re.search(r"optimizer\.pt: its data position \(epoch 0, batch 4 of (\d+)\) does not fit the training "
                      r"data, which now make (\d+) batches per epoch; the data changed since the run", err)
    assert code == 2 and found and int(found[2]) < int(found[1]), err
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
