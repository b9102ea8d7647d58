"""The durable local spool: where ``store`` puts a memory while Redis does not answer.

One SQLite file per ``AURA_HOME`` (``<AURA_HOME>/memory/spool.sqlite``), shared safely by every
process of that home (SQLite's file locks; ``synchronous=FULL``, so an acknowledged store is on
disk before ``store`` returns). Each row holds what the hot tier would have held: the record
(content and metadata sealed with ``AURA_MEMORY_KEY`` when set, as in every tier), the vector
and the (equally sealed) ``store`` event, keyed by memory id.

Invariants:

- Replay is exactly once per memory id: :meth:`Spool.drain` holds the write lock for the whole
  replay (one drainer at a time), writes each memory and its event to Redis only when the
  memory's hot key is absent, and deletes the rows in the same transaction. A crash before
  that commit leaves the keys in Redis, so the next drain only deletes those rows.
- Erase reaches the spool: :meth:`Spool.erase` deletes the rows (``secure_delete`` overwrites
  the freed pages with zeros) and the drain skips memories a tombstone covers, so a spool of
  another home cannot bring an erased memory back either.
- Rows are read back tenant-checked; an expired memory is absent from every read.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
from collections.abc import Callable, Iterator, Mapping, Sequence
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from lakehouse.memory.crypto import MemoryCipher
from lakehouse.memory.model import Memory, matches, read_record, read_records

_SCHEMA = """
CREATE TABLE IF NOT EXISTS spool (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    memory_id TEXT NOT NULL UNIQUE,
    tenant_id TEXT NOT NULL,
    created_ms INTEGER NOT NULL,
    record BLOB NOT NULL,
    vector BLOB NOT NULL,
    event BLOB NOT NULL
)
"""
_TIMEOUT_S = 30.0


def spool_path(home: Path) -> Path:
    """Where the spool of an ``AURA_HOME`` lives."""
    return home / "memory" / "spool.sqlite"


class Spool:
    """A durable queue of memories stored while Redis was down."""

    def __init__(self, path: Path, cipher: MemoryCipher | None = None) -> None:
        self.path = path
        self.cipher = cipher or MemoryCipher()

    @contextlib.contextmanager
    def _connect(self, *, create: bool = False) -> Iterator[sqlite3.Connection | None]:
        if not create and not self.path.exists():
            yield None
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        con = sqlite3.connect(str(self.path), timeout=_TIMEOUT_S, isolation_level=None)
        try:
            con.execute("PRAGMA synchronous=FULL")
            con.execute("PRAGMA secure_delete=ON")
            con.execute(_SCHEMA)
            yield con
        finally:
            con.close()

    def put(self, memory: Memory, vector: np.ndarray, event: Mapping[str, Any]) -> None:
        """Keep a memory and its event durably (committed and synced when this returns)."""
        with self._connect(create=True) as con:
            assert con is not None
            con.execute(
                "INSERT OR REPLACE INTO spool "
                "(memory_id, tenant_id, created_ms, record, vector, event) VALUES (?,?,?,?,?,?)",
                (
                    memory.id,
                    memory.tenant_id,
                    memory.created_ms,
                    json.dumps(self.cipher.seal_record(memory.record())).encode(),
                    np.asarray(vector, dtype=np.float32).tobytes(),
                    json.dumps(dict(event), separators=(",", ":")).encode(),
                ),
            )

    def copy_to(self, target: Path) -> int:
        """Write a consistent copy of the spool to ``target`` (a new file); returns its rows.

        Nothing is written when the spool is empty or absent (returns 0).
        """
        if self.count() == 0:
            return 0
        with self._connect() as con:
            assert con is not None
            target.parent.mkdir(parents=True, exist_ok=True)
            copy = sqlite3.connect(str(target))
            try:
                con.backup(copy)
                return int(copy.execute("SELECT count(*) FROM spool").fetchone()[0])
            finally:
                copy.close()

    def adopt(self, source: Path) -> int:
        """Add the rows of another spool file (a backup's) that this spool lacks; returns how
        many were added. They are replayed, with their events, by the next drain."""
        other = sqlite3.connect(f"file:{source}?mode=ro", uri=True)
        try:
            rows = other.execute(
                "SELECT memory_id, tenant_id, created_ms, record, vector, event FROM spool "
                "ORDER BY seq"
            ).fetchall()
        finally:
            other.close()
        if not rows:
            return 0
        with self._connect(create=True) as con:
            assert con is not None
            before = con.total_changes
            con.executemany(
                "INSERT OR IGNORE INTO spool "
                "(memory_id, tenant_id, created_ms, record, vector, event) VALUES (?,?,?,?,?,?)",
                rows,
            )
            return con.total_changes - before

    def _rows(self, sql: str, args: Sequence[Any]) -> list[tuple[Any, ...]]:
        with self._connect() as con:
            return [] if con is None else con.execute(sql, tuple(args)).fetchall()

    def _memory(self, record: bytes, vector: bytes) -> Memory:
        rec = self.cipher.open_record(json.loads(record))
        return Memory.from_record(rec, np.frombuffer(vector, np.float32), "spool")

    def count(self) -> int:
        return int(self._rows("SELECT count(*) FROM spool", ())[0][0]) if self.path.exists() else 0

    def get(self, tenant_id: str, memory_id: str, now_ms: int) -> Memory | None:
        rows = self._rows(
            "SELECT record, vector FROM spool WHERE memory_id = ? AND tenant_id = ?",
            (memory_id, tenant_id),
        )
        for record, vector in rows:
            memory = read_record(memory_id, "spool", partial(self._memory, record, vector))
            if memory.tenant_id == tenant_id and not memory.expired(now_ms):
                return memory
        return None

    def memories(
        self, tenant_id: str, now_ms: int, filters: Mapping[str, object] | None = None
    ) -> list[Memory]:
        """The tenant's live spooled memories (matching metadata ``filters``)."""
        rows = self._rows(
            "SELECT memory_id, record, vector FROM spool WHERE tenant_id = ? ORDER BY seq",
            (tenant_id,),
        )
        out = read_records(((i, partial(self._memory, r, v)) for i, r, v in rows), "spool")
        return [
            m
            for m in out
            if m.tenant_id == tenant_id
            and not m.expired(now_ms)
            and matches(m.metadata, filters or {})
        ]

    def erase(self, tenant_id: str, memory_ids: Sequence[str] | None) -> int:
        """Delete the tenant's rows (all when ``memory_ids`` is None); freed pages are zeroed."""
        with self._connect() as con:
            if con is None:
                return 0
            if memory_ids is None:
                cur = con.execute("DELETE FROM spool WHERE tenant_id = ?", (tenant_id,))
            else:
                marks = ",".join("?" * len(memory_ids)) or "NULL"
                cur = con.execute(
                    f"DELETE FROM spool WHERE tenant_id = ? AND memory_id IN ({marks})",
                    (tenant_id, *memory_ids),
                )
            removed = int(cur.rowcount)
            if removed:
                con.execute("VACUUM")
            return removed

    def drain(
        self,
        held: Callable[[Memory], bool],
        write: Callable[[Memory, np.ndarray, dict[str, Any]], None],
        erased: Callable[[Sequence[Memory]], set[str]],
    ) -> tuple[int, int]:
        """Replay every row in order; returns ``(replayed, dropped_as_erased)``.

        ``held(memory)`` says whether Redis already holds it (a replay that crashed after the
        write), ``write`` stores it with its event, ``erased`` names tombstoned ids. A Redis
        error propagates; the rows not yet replayed stay for the next drain.
        """
        replayed = dropped = 0
        with self._connect() as con:
            if con is None:
                return 0, 0
            con.execute("BEGIN IMMEDIATE")  # one drainer at a time, across processes
            try:
                rows = con.execute(
                    "SELECT seq, memory_id, record, vector, event FROM spool ORDER BY seq"
                ).fetchall()
                readable = {
                    m.id: m
                    for m in read_records(
                        ((i, partial(self._memory, r, v)) for _, i, r, v, _ in rows), "spool"
                    )
                }
                buried = erased(list(readable.values()))
                for seq, memory_id, _, vector, event in rows:
                    memory = readable.get(memory_id)
                    if memory is None:
                        continue  # unreadable (logged): kept in the spool, never replayed
                    if memory.id in buried:
                        dropped += 1
                    elif not held(memory):
                        write(memory, np.frombuffer(vector, np.float32), json.loads(event))
                        replayed += 1
                    con.execute("DELETE FROM spool WHERE seq = ?", (seq,))
            finally:  # the rows replayed so far are done, even when Redis failed mid-way
                con.execute("COMMIT")
            if dropped:
                con.execute("VACUUM")
        return replayed, dropped
