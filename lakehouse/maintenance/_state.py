"""What a backup carries besides the tables: the state no table holds.

The memory tiers outside Iceberg and the checkpoints not yet archived cannot be rebuilt from
the tables, so a backup exports them and a restore imports them, always through the tiers' and
the checkpoint store's public functions (never their files), so any engine behind them works:

* **memories** (``memories-<sha>.parquet``): every live memory of the hot tier (Redis) and the
  warm tier (one row per id; hot wins), each as its record with content and metadata sealed
  when ``AURA_MEMORY_KEY`` is set, and its vector. Restore puts them all in the warm tier:
  their ``store`` events were published when they were stored (they are in ``memory_events``
  once ingested), and a write to the hot tier would publish new ones.
* **the spool** (``spool-<sha>.sqlite``): memories stored while Redis was down, with their
  unpublished events; restore adds them to the new home's spool, and opening the memory store
  replays them into Redis, once.
* **checkpoint hot rows** (``checkpoints-<sha>.parquet``, ``checkpoint_writes-...``,
  ``checkpoint_blobs-...``): every checkpoint of the hot store, with its channel values and
  pending writes (archived or not); restore imports them into the new hot store.

Files are named by their content, so an interrupted incremental backup leaves the previous
manifest's files in place. Not carried: stream entries not yet ingested and consumer-group
positions (Redis), tombstones of erased memories (the erased rows are gone from the tables).
"""

from __future__ import annotations

import hashlib
import json
import logging
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from lakehouse.exceptions import StoreUnavailableError
from lakehouse.maintenance._location import Location
from lakehouse.maintenance._manifest import STATE, BackupError, safe_rel
from lakehouse.settings import Settings

log = logging.getLogger(__name__)

DIR = "_state"
_MEMORY_SCHEMA = pa.schema(
    [
        pa.field("tier", pa.string(), nullable=False),
        pa.field("record", pa.string(), nullable=False),  # JSON, content and metadata sealed
        pa.field("vector", pa.list_(pa.float32()), nullable=False),
    ]
)
_CHECKPOINT_PARTS = ("checkpoints", "checkpoint_writes", "checkpoint_blobs")


@dataclass(frozen=True)
class StateCounts:
    """How much state a backup carried or a restore brought back."""

    hot_memories: int = 0
    warm_memories: int = 0
    spooled_memories: int = 0
    hot_checkpoints: int = 0


Put = Callable[[str, bytes], None]
"""Stores a part of the state: its path below the backup's ``files`` and its content."""


def export(settings: Settings, put: Put) -> tuple[dict[str, str], StateCounts]:
    """Export the state, each part through ``put`` as ``_state/<part>-<sha>.<suffix>``;
    returns (part -> relative path, counts).

    Raises:
        BackupError: Redis or Qdrant does not answer (the backup would miss memories).
    """
    parts: dict[str, str] = {}
    hot, warm, spooled = _export_memories(settings, put, parts)
    checkpoints = _export_checkpoints(settings, put, parts)
    counts = StateCounts(hot, warm, spooled, checkpoints)
    log.info("backup state: %s", counts)
    return parts, counts


def restore(
    settings: Settings, files: Location, manifest: dict[str, Any], *, cold: bool = False
) -> StateCounts:
    """Import the state a backup carries (below its ``files``) into the home of ``settings``.

    ``cold``: the restored catalog holds ``memories``, whose vector index (a collection of the
    vector engine, not in any backup) is rebuilt from the restored table.
    """
    parts = checked_parts(manifest)
    spooled = memories = 0
    if cold or "spool" in parts or "memories" in parts:
        spooled, memories = _restore_memories(settings, files, parts)
    checkpoints = 0
    if "checkpoints" in parts:
        checkpoints = _restore_checkpoints(settings, files, parts)
    counts = StateCounts(
        warm_memories=memories, spooled_memories=spooled, hot_checkpoints=checkpoints
    )
    log.info("restored state: %s", counts)
    return counts


def checked_parts(manifest: dict[str, Any]) -> dict[str, str]:
    """The manifest's state parts, each a safe path to a listed file of kind ``state``.

    Raises:
        BackupError: a part names something else.
    """
    state = manifest.get("state") or {}
    parts = state.get("files") if isinstance(state, dict) else None
    if not isinstance(parts, dict):
        return {}
    files: dict[str, dict[str, Any]] = manifest["files"]
    known = {"memories", "spool", *_CHECKPOINT_PARTS}
    for part, rel in parts.items():
        if part not in known or not safe_rel(rel) or files.get(rel, {}).get("kind") != STATE:
            raise BackupError(f"the backup's state part {part!r} is not a state file it lists")
    return dict(parts)


# --------------------------------------------------------------------------- memories


def _export_memories(settings: Settings, put: Put, parts: dict[str, str]) -> tuple[int, int, int]:
    """The tiers are opened one by one, as :class:`~lakehouse.memory.MemoryStore` opens them but
    without its side effects on the source (creating the memory tables, draining the spool)."""
    from lakehouse.memory import HashingEmbedder, HotTier
    from lakehouse.memory import warm as warm_tier
    from lakehouse.memory.crypto import MemoryCipher
    from lakehouse.memory.engine import Collection
    from lakehouse.memory.spool import Spool, spool_path
    from lakehouse.memory.tiers import DOWN, clock_ms
    from lakehouse.stores import close_redis, open_redis

    cipher = MemoryCipher.from_settings(settings)
    now = clock_ms(None)
    found: dict[str, tuple[str, Any]] = {}
    try:
        client = open_redis(settings)
        try:
            hot_tier = HotTier(client, cipher)
            for tenant in hot_tier.tenants():
                for memory in hot_tier.load(tenant, hot_tier.ids(tenant)):
                    found.setdefault(memory.id, ("hot", memory))
        finally:
            close_redis(client)
        dim = HashingEmbedder(key=cipher.embedding_key()).dim  # the store's default
        collection = Collection(settings, warm_tier.spec(dim), 10.0)
        try:
            for memory in warm_tier.WarmTier(collection, dim, cipher).scan():
                found.setdefault(memory.id, ("warm", memory))
        finally:
            collection.release()
    except _down(DOWN) as exc:
        raise BackupError(
            f"a memory tier does not answer ({type(exc).__name__}), so the backup would miss "
            "memories; check AURA_REDIS_URL and AURA_QDRANT_URL (`aura doctor`) and run it again"
        ) from None
    live = [(tier, m) for tier, m in found.values() if not m.expired(now)]
    if live:
        table = pa.table(
            {
                "tier": [tier for tier, _ in live],
                "record": [
                    json.dumps(cipher.seal_record(m.record()), separators=(",", ":"))
                    for _, m in live
                ],
                "vector": [m.vector.tolist() for _, m in live],
            },
            schema=_MEMORY_SCHEMA,
        )
        parts["memories"] = _put(put, "memories", ".parquet", _parquet(table))
    with tempfile.TemporaryDirectory(prefix="aura-spool-") as tmp:
        spool = Path(tmp) / "spool.sqlite"
        spooled = Spool(spool_path(settings.home), cipher).copy_to(spool)
        if spooled:
            parts["spool"] = _put(put, "spool", ".sqlite", spool.read_bytes())
    hot = sum(1 for tier, _ in live if tier == "hot")
    return hot, len(live) - hot, spooled


def _restore_memories(
    settings: Settings, files: Location, parts: dict[str, str]
) -> tuple[int, int]:
    from lakehouse.memory import Memory, MemoryStore
    from lakehouse.memory.spool import Spool, spool_path

    spooled = 0
    if "spool" in parts:  # before the store opens: opening it replays the spool into Redis
        with tempfile.TemporaryDirectory(prefix="aura-spool-") as tmp:
            copy = Path(tmp) / "spool.sqlite"
            copy.write_bytes(files.read_bytes(parts["spool"]))
            spooled = Spool(spool_path(settings.home)).adopt(copy)
    with MemoryStore(settings) as store:
        memories = []
        if "memories" in parts:
            rows = _read(files, parts["memories"], _MEMORY_SCHEMA).to_pylist()
            for row in rows:
                try:
                    record = store.cipher.open_record(json.loads(row["record"]))
                    memories.append(Memory.from_record(record, row["vector"], "warm"))
                except (ValueError, KeyError, TypeError) as exc:
                    raise BackupError(f"a memory of the backup cannot be read: {exc}") from None
        if memories and len(memories[0].vector) != store.warm.dim:
            raise BackupError(
                f"the backup's memory vectors have {len(memories[0].vector)} dimensions and "
                f"this store's embedder {store.warm.dim}; restore with the same embedder"
            )
        store.warm.put(memories)
        store.cold.reindex()  # the cold tier's vector index, from the restored table
    return spooled, len(memories)


# --------------------------------------------------------------------------- checkpoints


def _export_checkpoints(settings: Settings, put: Put, parts: dict[str, str]) -> int:
    from lakehouse.checkpoints import AuraCheckpointSaver

    with AuraCheckpointSaver.from_settings(settings, archive=False) as saver:
        days = sorted({ts.date() for *_, ts in saver.hot.retention_candidates()})
        exported = [saver.hot.export_day(day) for day in days]
    if not exported:
        return 0
    tables = {
        "checkpoints": pa.concat_tables([r.checkpoints for r in exported]),
        "checkpoint_writes": pa.concat_tables([r.writes for r in exported]),
        "checkpoint_blobs": pa.concat_tables([r.blobs for r in exported]),
    }
    for part, table in tables.items():
        parts[part] = _put(put, part, ".parquet", _parquet(table))
    return tables["checkpoints"].num_rows


def _restore_checkpoints(settings: Settings, files: Location, parts: dict[str, str]) -> int:
    from lakehouse.checkpoints import AuraCheckpointSaver
    from lakehouse.checkpoints.records import (
        BLOB_SCHEMA,
        CHECKPOINT_SCHEMA,
        WRITE_SCHEMA,
        Records,
    )

    if not all(part in parts for part in _CHECKPOINT_PARTS):
        raise BackupError("the backup carries checkpoint rows without their writes or values")
    records = Records(
        _read(files, parts["checkpoints"], CHECKPOINT_SCHEMA),
        _read(files, parts["checkpoint_writes"], WRITE_SCHEMA),
        _read(files, parts["checkpoint_blobs"], BLOB_SCHEMA),
    )
    with AuraCheckpointSaver.from_settings(settings, archive=False) as saver:
        saver.hot.import_records(records)
    return records.checkpoints.num_rows


# --------------------------------------------------------------------------- files


def _down(tier_errors: tuple[type[Exception], ...]) -> tuple[type[Exception], ...]:
    """What a memory tier that does not answer raises, opening included."""
    return (*tier_errors, StoreUnavailableError)


def _parquet(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink)
    return bytes(sink.getvalue().to_pybytes())


def _put(put: Put, part: str, suffix: str, data: bytes) -> str:
    """Store ``data`` as ``_state/<part>-<sha256 prefix><suffix>``; returns that path."""
    rel = f"{DIR}/{part}-{hashlib.sha256(data).hexdigest()[:16]}{suffix}"
    put(rel, data)
    return rel


def _read(files: Location, rel: str, schema: pa.Schema) -> pa.Table:
    with files.open_input(rel) as source:
        return pq.read_table(source, schema=schema)
