"""One writer per run directory: the OS lock, its refusal naming the holder, and taking over a stale lock."""

import os
import signal
import time

import pytest

from rnnkit.cli import main
from rnnkit.errors import RunLockedError
from rnnkit.runlock import LOCK, RunLock, holder

SMALL = ["--hidden-size", "16", "--embedding-size", "8", "--batch-size", "4", "--seq-len", "10", "--num-layers", "1",
         "--quiet"]  # fmt: skip


def fork(body) -> int:
    """Run ``body()`` in a child process (its output thrown away); return the child's pid."""
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        code = 1
        try:
            null = os.open(os.devnull, os.O_WRONLY)
            os.dup2(null, 1)
            os.dup2(null, 2)
            code = body() or 0
        finally:
            os._exit(code)
    return pid


def wait_for(condition, seconds=20.0):
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def kill(pid):
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)


def test_a_second_lock_is_refused_and_names_the_holder(tmp_path):
    with RunLock(tmp_path) as first:
        assert first.held and holder(tmp_path) == os.getpid()
        with pytest.raises(RunLockedError, match=f"in use: process {os.getpid()} is writing it"):
            RunLock(tmp_path).acquire()
        first.acquire()  # taking a lock one holds is a no-op
    assert not (tmp_path / LOCK).exists(), "a clean release removes the lock file"
    assert holder(tmp_path) is None
    RunLock(tmp_path).acquire().release()


def test_a_killed_holder_leaves_a_stale_lock_that_is_taken_over(tmp_path):
    def hold():
        lock = RunLock(tmp_path).acquire()
        time.sleep(60)
        lock.release()

    pid = fork(hold)
    try:
        wait_for(lambda: holder(tmp_path) == pid)
        with pytest.raises(RunLockedError, match=f"process {pid} "):
            RunLock(tmp_path).acquire()
    finally:
        kill(pid)
    assert (tmp_path / LOCK).read_text().startswith(f"{pid} "), "kill -9 leaves the file behind"
    assert holder(tmp_path) is None, "but nobody holds it"
    with RunLock(tmp_path):
        assert (tmp_path / LOCK).read_text().startswith(f"{os.getpid()} ")


def test_a_writer_that_opened_the_lock_file_before_it_was_removed_tries_again(tmp_path, monkeypatch):
    first = RunLock(tmp_path).acquire()
    stale_fd = os.open(tmp_path / LOCK, os.O_RDWR)  # a writer opened the file just before the holder released it
    first.release()
    second = RunLock(tmp_path).acquire()  # a third writer makes a new lock file and holds it
    real_open, calls = os.open, []

    def open_stale_first(path, flags, mode=0o777):
        calls.append(path)
        return os.dup(stale_fd) if len(calls) == 1 else real_open(path, flags, mode)

    monkeypatch.setattr("rnnkit.runlock.os.open", open_stale_first)
    try:
        # the old, unlinked file locks at once; the writer sees the path names another file, opens that
        # one, and is refused: two writers never both hold the run
        with pytest.raises(RunLockedError, match=f"process {os.getpid()}"):
            RunLock(tmp_path).acquire()
        assert len(calls) == 2
    finally:
        os.close(stale_fd)
        second.release()


@pytest.fixture
def verses(tmp_path):
    path = tmp_path / "verses.txt"
    path.write_text("the king loves the sea.\na fool fears a rose.\n" * 600, encoding="utf-8")
    return path


def test_a_second_writer_and_a_second_resume_are_refused_while_a_run_trains(verses, tmp_path, capsys):
    run = tmp_path / "run"
    argv = ["train", "lm", "--data", str(verses), "--out", str(run), "--max-steps", "100000", "--eval-every", "50",
            *SMALL]  # fmt: skip
    pid = fork(lambda: main(argv))
    try:
        wait_for(lambda: (run / "optimizer.pt").exists() and holder(run) == pid)
        before = (run / "metrics.jsonl").read_bytes() if (run / "metrics.jsonl").exists() else b""
        assert main(["train", "lm", "--resume", str(run), "--max-steps", "5", "--quiet"]) == 2
        err = capsys.readouterr().err
        assert f"is in use: process {pid} is writing it" in err and err.count("\n") == 1
        assert main(argv) == 2  # the same --out again
        assert "already holds a run" in capsys.readouterr().err
        metrics = (run / "metrics.jsonl").read_bytes() if (run / "metrics.jsonl").exists() else b""
        assert metrics.startswith(before), "the refused commands wrote nothing"
    finally:
        kill(pid)
    # the writer is gone (kill -9): its stale lock is taken over and the run resumes
    assert main(["train", "lm", "--resume", str(run), "--max-steps", "3", "--quiet"]) == 0
    assert not (run / LOCK).exists()


def test_two_new_runs_into_one_folder_one_is_refused(verses, tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    with RunLock(run):  # as if another new run had just made the folder and locked it
        code = main(["train", "lm", "--data", str(verses), "--out", str(run), "--max-steps", "2", *SMALL])
    assert code == 2
    assert f"process {os.getpid()}" in capsys.readouterr().err
    assert sorted(p.name for p in run.iterdir()) == [], "nothing written, and the folder it found is left as it was"
