"""An exclusive OS lock on one shard: ``flock`` on ``<shard>.lock`` beside the shard directory.

``flock`` locks belong to an open file description, so a second open in the same process (another
thread, another store object) waits exactly like another process does; the kernel releases the
lock when its holder dies, so a crash never leaves a shard locked. The holder writes its pid and
host into the file so a waiter can name it.

Fair hand-off: a waiter first takes a turnstile (``flock`` on ``<shard>.queue``) and keeps it
until it holds the shard lock, and every acquirer passes the turnstile first. So a holder that
closes and reopens in a loop cannot take the shard back while another waits: it queues behind
the waiter (measured: without the turnstile a searcher reopening in a loop starved a writer
past a 60 s wait).
"""

from __future__ import annotations

import fcntl
import os
import socket
import time
from collections.abc import Callable
from pathlib import Path

from lakehouse.exceptions import VectorStoreBusyError

POLL_S = 0.01


def _take(fd: int, deadline: float, while_waiting: Callable[[], None] | None) -> bool:
    """``flock`` ``fd`` exclusively, polling until ``deadline`` (calling ``while_waiting`` at
    each poll); whether it was taken."""
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            if time.monotonic() >= deadline:
                return False
            if while_waiting is not None:
                while_waiting()
            time.sleep(POLL_S)


class ShardLock:
    """Held from :meth:`acquire` until :meth:`release` (or the process ends)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._turnstile = path.with_suffix(".queue")
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self, timeout: float, while_waiting: Callable[[], None] | None = None) -> None:
        """Take the lock, waiting up to ``timeout`` seconds (behind the turnstile);
        ``while_waiting`` is called at each poll of the wait.

        Raises:
            VectorStoreBusyError: another holder kept it for the whole wait.
        """
        self.path.parent.mkdir(parents=True, exist_ok=True)
        deadline = time.monotonic() + max(0.0, timeout)
        turnstile = os.open(self._turnstile, os.O_RDWR | os.O_CREAT, 0o600)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            if not (
                _take(turnstile, deadline, while_waiting) and _take(fd, deadline, while_waiting)
            ):
                raise VectorStoreBusyError(
                    f"the vector shard {self.path.with_suffix('')} is open in "
                    f"{self._holder(fd)} and stayed open for the {timeout:g} s wait; a shard is "
                    "never opened twice. Retry once that process has closed it (an index or "
                    "compaction run holds it until it finishes), or stop that process"
                )
        except BaseException:
            os.close(fd)
            raise
        finally:
            os.close(turnstile)  # releases the turnstile: the next waiter queues on the lock
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}@{socket.gethostname()}\n".encode(), 0)
        self._fd = fd

    def holder(self) -> str | None:
        """Who holds the lock now (``pid N@host``), or None when it is free; takes nothing."""
        if not self.path.exists():
            return None
        fd = os.open(self.path, os.O_RDWR)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                return self._holder(fd)
            fcntl.flock(fd, fcntl.LOCK_UN)
            return None
        finally:
            os.close(fd)

    @staticmethod
    def _holder(fd: int) -> str:
        text = os.pread(fd, 200, 0).decode(errors="replace").strip()
        pid, _, host = text.partition("@")
        if not pid:
            return "another process"
        mine = pid == str(os.getpid()) and host == socket.gethostname()
        return f"this process (pid {pid}: close the other store first)" if mine else f"pid {text}"

    def release(self) -> None:
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        try:
            os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)
