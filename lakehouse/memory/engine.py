"""The memory tiers' collections on the vector engine, shared within a process, handed between
processes.

An embedded (Qdrant Edge) shard is open in one process at a time (:mod:`lakehouse.vectors` locks
it). :class:`Collection` opens its collection on first use and keeps it open, so a search pays no
reopen; every memory store of the process shares that one open store (reference counted). A
process that needs a shard another process holds leaves a marker file
``<name>.wanted.<pid>`` beside the shard while it waits for the lock; the holder sees it at its
next call, closes the shard (each write was already flushed) and leaves the marker's owner to
open it, waiting in turn with its own marker when it needs the shard again. A process waiting
for one shard closes the others it holds that another process waits for (no two processes wait
on each other's shard). A holder that stays
idle keeps the shard: the waiter then gets
:class:`~lakehouse.exceptions.VectorStoreBusyError` after its wait (reads skip the tier,
writes stop having changed nothing), never a second open of a live shard.

On a Qdrant server (``AURA_QDRANT_URL``) there is no lock and no marker: every process keeps
its own client.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

from lakehouse.settings import Settings
from lakehouse.vectors import CollectionSpec, VectorStore, open_store

_OPEN: dict[tuple[str, str], VectorStore] = {}  # the process's open stores
_USERS: dict[tuple[str, str], int] = {}  # how many unreleased Collections use each
_GUARD = threading.RLock()


class Collection:
    """One collection of the vector engine for one memory store; calling it gives the store."""

    def __init__(self, settings: Settings, spec: CollectionSpec, lock_timeout: float) -> None:
        self.spec = spec
        self._settings = settings
        self._lock_timeout = lock_timeout
        self._embedded = not settings.qdrant_url
        where = str(settings.vectors_path) if self._embedded else str(settings.qdrant_url)
        self._key = (where, spec.name)
        self._dir = Path(settings.vectors_path)
        self._released = False
        with _GUARD:
            _USERS[self._key] = _USERS.get(self._key, 0) + 1

    def __call__(self) -> VectorStore:
        with _GUARD:
            store = _OPEN.get(self._key)
            if store is not None and self._embedded and self._wanted_elsewhere():
                del _OPEN[self._key]  # every user in this process reopens it when needed
                store.close()
                store = None
            if store is None:
                store = self._open()
                _OPEN[self._key] = store
            return store

    def idle(self) -> None:
        """Close the process's open store now (the next call reopens it): a process done with
        a batch of writes (compaction) lets other processes have the shard."""
        with _GUARD:
            store = _OPEN.pop(self._key, None)
            if store is not None:
                store.close()

    def release(self) -> None:
        """Stop using the collection; the last user in the process closes it."""
        with _GUARD:
            if self._released:
                return
            self._released = True
            _USERS[self._key] -= 1
            if _USERS[self._key] == 0:
                del _USERS[self._key]
                store = _OPEN.pop(self._key, None)
                if store is not None:
                    store.close()

    def _open(self) -> VectorStore:
        if not self._embedded:
            return open_store(self._settings, self.spec, lock_timeout=self._lock_timeout)
        self._dir.mkdir(parents=True, exist_ok=True)
        marker = self._dir / f"{self.spec.name}.wanted.{os.getpid()}"
        marker.touch()
        try:
            return open_store(
                self._settings,
                self.spec,
                lock_timeout=self._lock_timeout,
                while_waiting=self._yield_wanted,
            )
        finally:
            marker.unlink(missing_ok=True)

    def _yield_wanted(self) -> None:
        """While waiting for this shard: close the process's other open shards that another
        process waits for. Two processes each holding one shard and waiting for the other's
        (a search holds the warm shard and wants the cold index while a compaction holds the
        cold index and wants the warm shard) would otherwise both wait out the timeout."""
        with _GUARD:
            for key, store in list(_OPEN.items()):
                if key[0] == self._key[0] and key != self._key and _wanted(self._dir, key[1]):
                    del _OPEN[key]
                    store.close()

    def _wanted_elsewhere(self) -> bool:
        """Whether a live process other than this one waits for the shard."""
        return _wanted(self._dir, self.spec.name)


def _wanted(directory: Path, name: str) -> bool:
    """Whether a live process other than this one waits for the shard ``name``."""
    me = os.getpid()
    for marker in directory.glob(f"{name}.wanted.*"):
        pid = marker.suffix.lstrip(".")
        if not pid.isdigit() or int(pid) == me:
            continue
        if _alive(int(pid)):
            return True
        marker.unlink(missing_ok=True)  # its process died while waiting
    return False


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
