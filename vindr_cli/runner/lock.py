"""One run at a time per OUTPUT: an exclusive, non-blocking ``flock`` on ``OUTPUT/.vindr/lock``,
held by the driver for the whole run (:func:`vindr_cli.runner.stage.run_stage` takes it
once for every stage that writes OUTPUT).

The file records the holder's pid and host, so that a second run is refused (exit 2) with
a message naming them. The lock itself is the kernel's: it goes when the holder's process
ends, however it ends, so a lock file left by a killed run (stale) blocks nothing. A run
that ends removes the file while it still holds the lock; one that locked a file just
removed sees that it is no longer the file at that path and locks the new one, so two
runs never hold two different files. Forked workers do not keep a copy of the descriptor
(closed after fork), so only the driver holds it.
"""
from __future__ import annotations

import fcntl
import json
import os
import socket
from pathlib import Path

from vindr_cli.errors import RequestError
from vindr_cli.runner.discover import STATE_DIR

LOCK_FILE = "lock"

_held: set[int] = set()      # descriptors of locks held by this process


def _close_in_child() -> None:
    for fd in list(_held):
        try:
            os.close(fd)           # the parent's lock stays: it holds its own descriptor
        except OSError:
            pass
    _held.clear()


os.register_at_fork(after_in_child=_close_in_child)


class OutputLocked(RequestError):
    """Another run holds OUTPUT (one line, exit 2)."""


def _holder(fd: int) -> str:
    try:
        rec = json.loads(os.pread(fd, 4096, 0).decode("utf-8"))
        return f"pid {int(rec['pid'])} on host {str(rec['host'])[:255]}"
    except (OSError, ValueError, KeyError, TypeError):
        return "a process that has not yet recorded its pid and host"


class OutputLock:
    """``with OutputLock(output):`` or ``acquire()`` / ``release()``; re-entrant acquire."""

    def __init__(self, output: Path):
        self.path = Path(output) / STATE_DIR / LOCK_FILE
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> None:
        """Take the lock (creating ``OUTPUT/.vindr``), or raise :class:`OutputLocked`."""
        if self._fd is not None:
            return
        while True:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                who = _holder(fd)
                os.close(fd)
                raise OutputLocked(f"OUTPUT is in use by another vindr run ({who}): wait for it to finish, "
                                   "or use another OUTPUT folder") from None
            except BaseException:
                os.close(fd)
                raise
            if self._same_file(fd):
                break
            os.close(fd)       # the holder removed it as we opened it: lock the file there now
        try:
            record = json.dumps({"pid": os.getpid(), "host": socket.gethostname()}).encode()
            os.ftruncate(fd, 0)
            os.pwrite(fd, record, 0)
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd
        _held.add(fd)

    def _same_file(self, fd: int) -> bool:
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return False
        mine = os.fstat(fd)
        return (st.st_dev, st.st_ino) == (mine.st_dev, mine.st_ino)

    def release(self) -> None:
        """Remove the file, then let go (a run that opened it meanwhile sees it gone, retries)."""
        fd, self._fd = self._fd, None
        if fd is None:
            return
        _held.discard(fd)
        try:
            self.path.unlink(missing_ok=True)
        except OSError:              # a read-only or vanished folder: the lock still goes with the close
            pass
        os.close(fd)

    def __enter__(self) -> OutputLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


__all__ = ["LOCK_FILE", "OutputLock", "OutputLocked"]
