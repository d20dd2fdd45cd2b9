"""One writer per run directory: an OS file lock (``flock``) on ``RUN/.lock``, held for the run's life.

The lock is the kernel's, not the file's existence: ``flock(LOCK_EX | LOCK_NB)`` on an open file, which
the kernel drops when the process ends however it ends (exit, exception, ``kill -9``). So a second
writer (a second ``rnnkit train --out RUN``, a second ``--resume RUN``) is refused while the first is
alive, and a lock file left behind by a killed process is simply locked again by the next run: it is
stale exactly when no process holds it, and the kernel is what decides that.

The holder writes its process id into the file, so a refused writer can say who holds the run.
A clean release unlinks the file while still holding the lock; a writer that opened the old file just
before it was unlinked finds, after locking it, that the path no longer names that file and tries again,
so two processes can never both believe they hold the lock.
"""

from __future__ import annotations

import errno
import fcntl
import os
import sys
import time
from pathlib import Path

from rnnkit.errors import RunLockedError

LOCK = ".lock"


class RunLock:
    """The exclusive lock of ``run_dir`` (which must exist). ``acquire`` is idempotent; ``release`` too.

    Use as a context manager, or call :meth:`acquire` and :meth:`release`.
    """

    def __init__(self, run_dir: str | os.PathLike) -> None:
        self.run_dir = Path(run_dir)
        self.path = self.run_dir / LOCK
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> RunLock:
        """Take the lock or raise :class:`RunLockedError` naming the process that holds it."""
        if self._fd is not None:
            return self
        while True:
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
            except OSError as error:
                raise RunLockedError(f"cannot lock {self.run_dir}: {error.strerror} ({self.path})") from None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as error:
                holder = _holder(fd) if error.errno in (errno.EWOULDBLOCK, errno.EAGAIN) else None
                os.close(fd)
                if error.errno not in (errno.EWOULDBLOCK, errno.EAGAIN):
                    raise RunLockedError(f"cannot lock {self.run_dir}: {error.strerror}") from None
                who = f"process {holder}" if holder else "another process"
                raise RunLockedError(
                    f"{self.run_dir} is in use: {who} is writing it (it holds {self.path}); "
                    "wait until it ends, or stop it"
                ) from None
            if _same_file(fd, self.path):
                break
            os.close(fd)  # the last holder removed the file between our open and our lock: try again
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()} {' '.join(sys.argv)[:300]}\n".encode("utf-8", "replace"))
        self._fd = fd
        return self

    def release(self) -> None:
        """Drop the lock; the lock file goes with it (unlinked while still held, see the module doc)."""
        fd, self._fd = self._fd, None
        if fd is None:
            return
        try:
            if _same_file(fd, self.path):
                self.path.unlink()
        except OSError:
            pass  # a lock file left behind is harmless: the next writer locks it again
        finally:
            os.close(fd)

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()

    def __del__(self) -> None:  # the OS would drop the lock anyway; this also removes the file
        if getattr(self, "_fd", None) is not None:
            try:
                self.release()
            except Exception:  # noqa: BLE001 - at interpreter shutdown modules may be gone
                pass


def holder(run_dir: str | os.PathLike) -> int | None:
    """The process id that holds ``run_dir``'s lock now, or None when nobody does."""
    path = Path(run_dir) / LOCK
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError:
        return _holder(fd)
    else:
        return None
    finally:
        os.close(fd)


def _holder(fd: int) -> int | None:
    """The pid the holder wrote into the lock file; it writes it just after locking, so wait a moment."""
    for _ in range(20):
        try:
            text = os.pread(fd, 64, 0).decode("utf-8", "replace")
        except OSError:
            return None
        first = text.split(" ", 1)[0].strip()
        if first.isdigit():
            return int(first)
        time.sleep(0.005)
    return None


def _same_file(fd: int, path: Path) -> bool:
    try:
        a, b = os.fstat(fd), os.stat(path)
    except OSError:
        return False
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)
