"""Cold tier: the Iceberg table ``memories``, and the erase of memory rows from Iceberg.

Erase invariant: after :func:`erase_rows`, no snapshot of the table (on any branch or tag)
holds a matching row, and no data file or manifest that held one exists any more. Steps:
rewrite each ref head that holds a match (copy-on-write delete; a tag is re-pointed at its
rewritten snapshot, keeping its retention), expire every snapshot that still holds a match,
then delete the files that only expired snapshots reached. Snapshots without a match keep
their time travel.

Key rotation (:func:`reseal_table`) uses the same steps with a replacement instead of a delete:
every ref head is rewritten with its rows sealed by the current key, then every snapshot that is
not a ref head is expired and the files only they reached are deleted (so rotation ends the time
travel of the memory tables, as an erase ends it for the snapshots holding the erased rows).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from functools import partial
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pyiceberg.expressions import (
    AlwaysTrue,
    And,
    BooleanExpression,
    EqualTo,
    GreaterThan,
    IsNull,
    LessThanOrEqual,
    NotNull,
    Or,
)
from pyiceberg.table import Table
from pyiceberg.table.refs import SnapshotRefType

from lakehouse.core import Lakehouse
from lakehouse.ingest.tiering import Key, Tiering, TierResult
from lakehouse.memory.coldrows import ColdRows
from lakehouse.memory.crypto import MemoryCipher
from lakehouse.memory.model import Memory, from_ms, matches, read_records, to_ms
from lakehouse.memory.tables import MEMORIES, memory_table
from lakehouse.table.snapshots import remove_snapshots

if TYPE_CHECKING:
    from lakehouse.memory.coldindex import ColdIndex
    from lakehouse.memory.warm import WarmTier

ASSET = "memory_cold_archive"
INDEX_FIELDS = (
    "memory_id",
    "tenant_id",
    "vector",
    "importance",
    "created_at",
    "expires_at",
    "last_access",
)
"""The columns of ``memories`` the vector index is built from."""
Revector = Callable[[str, np.ndarray], "np.ndarray | None"]
"""A memory's new vector from its content and stored vector, or None to keep it."""


@dataclass(frozen=True)
class TableErase:
    """What an erase removed from one Iceberg table."""

    table: str
    rows_removed: int
    refs_rewritten: tuple[str, ...]
    snapshots_expired: int
    files_deleted: int


def _rows(memories: Sequence[Memory], now: datetime, cipher: MemoryCipher) -> pa.Table:
    """The ``memories`` rows of ``memories``, built column by column.

    The vectors go in as one float32 buffer: as Python lists of floats (32 bytes a float) they
    took ~0.8 GB at 100k 256-d memories.
    """
    sealed = [cipher.seal_record(m.record()) for m in memories]
    schema = MEMORIES.arrow_schema
    n = len(memories)
    flat = (
        np.concatenate([np.asarray(m.vector, dtype=np.float32).ravel() for m in memories])
        if n
        else np.empty(0, dtype=np.float32)
    )
    offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum([np.asarray(m.vector).size for m in memories], out=offsets[1:])
    vector_type = schema.field("vector").type
    vectors = pa.LargeListArray.from_arrays(pa.array(offsets), pa.array(flat, pa.float32()))
    columns = {
        "memory_id": [m.id for m in memories],
        "tenant_id": [m.tenant_id for m in memories],
        "content": [rec["content"] for rec in sealed],
        "metadata": [json.dumps(rec["metadata"]) for rec in sealed],
        "vector": vectors.cast(vector_type),
        "importance": [m.importance for m in memories],
        "created_at": [from_ms(m.created_ms) for m in memories],
        "expires_at": [from_ms(m.expires_ms) for m in memories],
        "last_access": [from_ms(m.last_access_ms) for m in memories],
        "signature": [m.signature for m in memories],
        "archived_at": [now] * n,
    }
    return pa.table(
        [
            col if isinstance(col, pa.Array) else pa.array(col, schema.field(name).type)
            for name, col in columns.items()
        ],
        schema=schema,
    )


def _memories(rows: pa.Table, cipher: MemoryCipher) -> list[Memory]:
    """The readable memories of ``rows`` (see :func:`.model.read_records`)."""
    return read_records(
        ((str(row["memory_id"]), partial(_decode, row, cipher)) for row in rows.to_pylist()),
        "cold",
    )


def _decode(row: dict[str, Any], cipher: MemoryCipher) -> Memory:
    meta = json.loads(row["metadata"] or "{}")
    r = cipher.open_record(row | {"metadata": meta})
    last = r["last_access"]
    return Memory(
        id=r["memory_id"],
        tenant_id=r["tenant_id"],
        content=r["content"],
        vector=np.asarray(r["vector"], dtype=np.float32),
        metadata=r["metadata"],
        importance=r["importance"],
        created_ms=to_ms(r["created_at"]),
        expires_ms=None if r["expires_at"] is None else to_ms(r["expires_at"]),
        last_access_ms=None if last is None else to_ms(last),
        signature=r["signature"],
        tier="cold",
    )


def stub(tenant_id: str, row: Mapping[str, Any], vector: np.ndarray) -> Memory:
    """A cold memory without content or metadata, for ranking (see :meth:`ColdTier.fetch`)."""
    last = row.get("last_access")
    expires = row.get("expires_at")
    return Memory(
        id=str(row["memory_id"]),
        tenant_id=tenant_id,
        content="",
        vector=vector,
        importance=float(row["importance"]),
        created_ms=to_ms(row["created_at"]),
        expires_ms=None if expires is None else to_ms(expires),
        last_access_ms=None if last is None else to_ms(last),
        tier="cold",
    )


class _NoHot:
    """A hot store with nothing in it (for copies and reads that trim nothing)."""

    def candidates(
        self, *, day: date | None = None, older_than: datetime | None = None
    ) -> pa.Table:
        return MEMORIES.arrow_schema.empty_table()

    def delete(self, keys: Sequence[Key]) -> int:
        return 0

    def count(self) -> int:
        return 0


def _live(tenant_id: str, now_ms: int) -> BooleanExpression:
    now = from_ms(now_ms)
    assert now is not None
    return And(
        EqualTo("tenant_id", tenant_id),
        Or(IsNull("expires_at"), GreaterThan("expires_at", now.isoformat())),
    )


class WarmSource:
    """The warm tier seen as a :class:`lakehouse.ingest.tiering.HotStore` of ``memories`` rows.

    Candidates are the points created before ``older_than`` plus the ids in :attr:`extra`
    (the oldest points past a size limit); expired points are purged before a move, never moved.
    """

    def __init__(
        self,
        warm: WarmTier,
        erased: Callable[[Sequence[Memory]], set[str]] | None = None,
        index: ColdIndex | None = None,
    ) -> None:
        self.warm = warm
        self.index = index
        self.extra: set[str] = set()
        self.erased = erased
        self.chosen: list[Memory] = []

    def candidates(
        self, *, day: date | None = None, older_than: datetime | None = None
    ) -> pa.Table:
        cutoff = None if older_than is None else to_ms(older_than)
        chosen = {m.id: m for m in self.warm.scan(max_created_ms=cutoff)}
        if self.extra:
            chosen |= {m.id: m for m in self.warm.scan() if m.id in self.extra}
        if day is not None:
            chosen = {i: m for i, m in chosen.items() if from_ms(m.created_ms).date() == day}  # type: ignore[union-attr]
        ordered = sorted(chosen.values(), key=lambda m: (m.created_ms, m.id))
        buried = self.erased(ordered) if self.erased else set()
        if buried:  # a tombstoned memory is never copied; its stray warm copy goes too
            self.warm.delete(sorted(buried))
            ordered = [m for m in ordered if m.id not in buried]
        self.chosen = ordered
        if self.index is not None:  # indexed before the copy: never an unsearchable cold row
            self.index.put(ordered)
        return _rows(ordered, datetime.now(UTC), self.warm.cipher)

    def delete(self, keys: Sequence[Key]) -> int:
        ids = [str(k[0]) for k in keys]
        self.warm.delete(ids)
        return len(ids)

    def count(self) -> int:
        return self.warm.count()


class ColdTier:
    """The Iceberg side of a memory store; moves into it go through :class:`Tiering`."""

    def __init__(
        self, lh: Lakehouse, cipher: MemoryCipher | None = None, index: ColdIndex | None = None
    ) -> None:
        self.lh = lh
        self.cipher = cipher or MemoryCipher()
        self.rows = ColdRows(lambda: self.table)
        self.index = index

    @property
    def table(self) -> Table:
        return memory_table(self.lh, MEMORIES.name)

    def tiering(self, source: WarmSource) -> Tiering:
        """The shared hot → cold mechanism from ``source`` into ``memories``."""
        memory_table(self.lh, MEMORIES.name)  # the no-stats properties before any write
        return Tiering(self.lh, MEMORIES.name, source, asset=ASSET)

    def archive(
        self, source: WarmSource, older_than: datetime, run_id: str | None = None
    ) -> TierResult:
        """Copy the warm candidates into their day partitions, verify, then trim the warm tier."""
        return self.tiering(source).tier(older_than=older_than, run_id=run_id)

    def put(self, memories: Sequence[Memory]) -> int:
        """Merge memories into their day partitions (idempotent by id); returns rows added."""
        memory_table(self.lh, MEMORIES.name)
        if self.index is not None:
            self.index.put(memories)
        tiers = Tiering(self.lh, MEMORIES.name, _NoHot(), asset=ASSET)
        return sum(m.added for m in tiers.copy(_rows(memories, datetime.now(UTC), self.cipher)))

    def held(self, ids: Sequence[str]) -> set[str]:
        table = self.table
        if table.current_snapshot() is None:
            return set()
        tiers = Tiering(self.lh, MEMORIES.name, _NoHot(), asset=ASSET)
        return {str(k[0]) for k in tiers.held((i,) for i in ids)}

    def _scan(self, row_filter: BooleanExpression) -> list[Memory]:
        table = self.table
        if table.current_snapshot() is None:
            return []
        return _memories(table.scan(row_filter=row_filter).to_arrow(), self.cipher)

    def get(self, tenant_id: str, memory_id: str, now_ms: int) -> Memory | None:
        found = self._scan(And(_live(tenant_id, now_ms), EqualTo("memory_id", memory_id)))
        return next((m for m in found if m.tenant_id == tenant_id), None)

    def signed(self, tenant_id: str, now_ms: int) -> list[Memory]:
        """The tenant's live memories that carry a topology signature."""
        found = self._scan(And(_live(tenant_id, now_ms), NotNull("signature")))
        return [m for m in found if m.tenant_id == tenant_id]

    def search(
        self,
        tenant_id: str,
        vector: np.ndarray,
        k: int,
        filters: Mapping[str, object],
        now_ms: int,
    ) -> list[tuple[Memory, float]]:
        if filters:  # metadata may be sealed: open every live row, then filter and rank
            return self.scan_search(tenant_id, vector, k, now_ms, filters)
        ranked = self.candidates(tenant_id, vector, k, now_ms)
        whole = self.fetch(tenant_id, [m for m, _ in ranked], now_ms)
        return [(whole[m.id], sim) for m, sim in ranked if m.id in whole]

    def scan_search(
        self,
        tenant_id: str,
        vector: np.ndarray,
        k: int,
        now_ms: int,
        filters: Mapping[str, object] | None = None,
    ) -> list[tuple[Memory, float]]:
        """The ``k`` best by reading every live row of the tenant: for metadata filters (which
        may be sealed) and when the vector index does not answer."""
        found = [
            m
            for m in self._scan(_live(tenant_id, now_ms))
            if m.tenant_id == tenant_id and matches(m.metadata, filters or {})
        ]
        if not found:
            return []
        sims = np.asarray([m.vector for m in found], dtype=np.float32) @ vector
        top = np.argsort(-sims, kind="stable")[:k]
        return [(found[i], float(sims[i])) for i in top]

    def candidates(
        self, tenant_id: str, vector: np.ndarray, k: int, now_ms: int
    ) -> list[tuple[Memory, float]]:
        """The tenant's ``k`` live memories most similar to ``vector``, as ranking stubs.

        A stub carries what ranking needs (id, vector, importance, times) and no content:
        :meth:`fetch` reads the rows of the stubs that make the final ranking. They come from
        the vector index (:mod:`.coldindex`); a store without one scans the table's vectors.
        """
        if self.index is not None:
            return self.index.candidates(tenant_id, vector, k, now_ms)
        table = self.table
        if table.current_snapshot() is None:
            return []
        fields = ("memory_id", "vector", "importance", "created_at", "expires_at", "last_access")
        rows = table.scan(row_filter=_live(tenant_id, now_ms), selected_fields=fields).to_arrow()
        if rows.num_rows == 0:
            return []
        flat = pc.list_flatten(rows.column("vector")).to_numpy()
        matrix = flat.astype(np.float32).reshape(rows.num_rows, -1)
        sims = matrix @ vector
        top = np.argsort(-sims, kind="stable")[:k]
        picked = rows.take(pa.array(top)).drop_columns(["vector"]).to_pylist()
        return [
            (stub(tenant_id, row, matrix[i]), float(sims[i]))
            for i, row in zip(top, picked, strict=True)
        ]

    def fetch(self, tenant_id: str, stubs: Sequence[Memory], now_ms: int) -> dict[str, Memory]:
        """The whole memories of ``stubs`` (of :meth:`candidates`) by id, live and the tenant's.

        Reads only the row groups that can hold them (:class:`.coldrows.ColdRows`); a stub
        whose row is gone (erased, expired, moved back) is absent from the answer.
        """
        if not stubs:
            return {}
        vectors = {m.id: m.vector for m in stubs}
        bare = [m.id for m in stubs if not len(m.vector)]  # stubs of the index come without
        if bare and self.index is not None:
            vectors |= self.index.vectors(bare)
        rows = self.rows.lookup([(m.id, m.created_ms) for m in stubs]).to_pylist()
        found = read_records(
            (
                (
                    str(r["memory_id"]),
                    partial(_decode, r | {"vector": vectors[r["memory_id"]]}, self.cipher),
                )
                for r in rows
                if r["memory_id"] in vectors
            ),
            "cold",
        )
        return {m.id: m for m in found if m.tenant_id == tenant_id and not m.expired(now_ms)}

    def purge_expired(self, now_ms: int) -> int:
        table = self.table
        if table.current_snapshot() is None:
            return 0
        now = from_ms(now_ms)
        assert now is not None
        predicate = LessThanOrEqual("expires_at", now.isoformat())
        n = _count(table, predicate, None)
        if n:
            table.delete(predicate, snapshot_properties={"aura.asset": "memory-ttl-purge"})
        if self.index is not None:
            self.index.purge_expired(now_ms)
        return n

    def reindex(self) -> int:
        """Make the vector index hold exactly the table's memories; returns how many it holds."""
        if self.index is None:
            return 0
        table = self.table
        rows = (
            table.scan(selected_fields=(*INDEX_FIELDS,)).to_arrow()
            if table.current_snapshot() is not None
            else MEMORIES.arrow_schema.empty_table().select(list(INDEX_FIELDS))
        )
        stale = self.index.ids() - set(rows.column("memory_id").to_pylist())
        self.index.delete(sorted(stale))
        return self.index.put_rows(rows)

    def indexed(self) -> bool:
        """Whether the vector index holds as many memories as the table (a cheap check)."""
        if self.index is None:
            return True
        table = self.table
        held = 0
        if table.current_snapshot() is not None:
            held = table.scan(selected_fields=("memory_id",)).to_arrow().num_rows
        return self.index.count() == held


def resealed_rows(
    rows: pa.Table, cipher: MemoryCipher, revector: Revector | None = None
) -> pa.Table:
    """Rows of ``memories`` or ``memory_events`` with content and metadata sealed by the
    current key (opened with any configured key; plaintext rows get sealed), and the vectors
    ``revector`` remakes (key rotation of the keyed embedder) replaced."""
    content: list[str | None] = []
    metadata: list[str | None] = []
    vectors: list[Any] = []
    revector = revector if "vector" in rows.column_names else None
    for r in rows.select(["tenant_id", "memory_id", "content", "metadata"]).to_pylist():
        meta = None if r["metadata"] is None else json.loads(r["metadata"])
        rec = cipher.reseal_record(r | {"metadata": meta})
        content.append(rec["content"])
        metadata.append(None if rec["metadata"] is None else json.dumps(rec["metadata"]))
    if revector is not None:
        opened = (
            cipher.open_record(r)
            for r in rows.select(["tenant_id", "memory_id", "content"]).to_pylist()
        )
        for rec, vector in zip(opened, rows.column("vector").to_pylist(), strict=True):
            new = revector(rec["content"], np.asarray(vector, dtype=np.float32))
            vectors.append(vector if new is None else new.tolist())
    columns: list[tuple[str, list[Any]]] = [("content", content), ("metadata", metadata)]
    if revector is not None:
        columns.append(("vector", vectors))
    for name, values in columns:
        at = rows.schema.get_field_index(name)
        field = rows.schema.field(at)
        rows = rows.set_column(at, field, pa.array(values, field.type))
    return rows


def _count(table: Table, predicate: BooleanExpression, snapshot_id: int | None) -> int:
    fields = (table.schema().fields[0].name,)
    scan = table.scan(row_filter=predicate, snapshot_id=snapshot_id, selected_fields=fields)
    return scan.to_arrow().num_rows


def _reachable(table: Table) -> set[str]:
    """Manifest lists, manifests and live data files of every snapshot."""
    files: set[str] = set()
    for snapshot in table.metadata.snapshots:
        files.add(snapshot.manifest_list)
        for manifest in snapshot.manifests(table.io):
            files.add(manifest.manifest_path)
            for entry in manifest.fetch_manifest_entry(table.io, discard_deleted=True):
                files.add(entry.data_file.file_path)
    return files


def _rewrite_refs(
    table: Table, needs: Callable[[int], bool], write: Callable[[str], None], prefix: str
) -> list[str]:
    """Rewrite each ref whose head ``needs`` it with ``write(branch)``; a tag is rewritten on a
    temporary branch, then re-pointed at the result (keeping its retention)."""
    rewritten = []
    for ref_name, ref in sorted(table.metadata.refs.items()):
        if not needs(ref.snapshot_id):
            continue
        if ref.snapshot_ref_type == SnapshotRefType.BRANCH:
            write(ref_name)
        else:
            tmp = f"{prefix}-{uuid.uuid4().hex[:12]}"
            with table.manage_snapshots() as ms:
                ms.create_branch(ref.snapshot_id, tmp)
            write(tmp)
            table.refresh()
            new_head = table.metadata.refs[tmp].snapshot_id
            with table.manage_snapshots() as ms:
                ms.remove_tag(ref_name)
                ms.create_tag(new_head, ref_name, max_ref_age_ms=ref.max_ref_age_ms)
                ms.remove_branch(tmp)
        rewritten.append(ref_name)
        table.refresh()
    return rewritten


def _expire(table: Table, snapshot_ids: list[int], before: set[str]) -> int:
    """Expire ``snapshot_ids``, then delete the files (of ``before``) no snapshot reaches."""
    if snapshot_ids:
        remove_snapshots(table, snapshot_ids)  # pyiceberg's by_ids is quadratic
        table.refresh()
    garbage = before - _reachable(table)
    for path in sorted(garbage):
        table.io.delete(path)
    return len(garbage)


def erase_rows(table: Table, predicate: BooleanExpression) -> TableErase:
    """Remove every row matching ``predicate`` from every ref, snapshot and file of ``table``."""
    table.refresh()
    name = table.name()[-1]
    if not table.metadata.snapshots:
        return TableErase(name, 0, (), 0, 0)
    before = _reachable(table)
    main = table.metadata.refs.get("main")
    removed = _count(table, predicate, main.snapshot_id) if main else 0
    props = {"aura.asset": "memory-erase"}

    def delete(branch: str) -> None:
        table.delete(predicate, snapshot_properties=props, branch=branch)

    rewritten = _rewrite_refs(
        table, lambda sid: _count(table, predicate, sid) > 0, delete, "aura-erase"
    )
    holding = [
        s.snapshot_id for s in table.metadata.snapshots if _count(table, predicate, s.snapshot_id)
    ]
    files = _expire(table, holding, before)
    return TableErase(name, removed, tuple(rewritten), len(holding), files)


@dataclass(frozen=True)
class TableReseal:
    """What a key rotation rewrote in one Iceberg table."""

    table: str
    rows_resealed: int
    refs_rewritten: tuple[str, ...]
    snapshots_expired: int
    files_deleted: int


def reseal_table(table: Table, reseal: Callable[[pa.Table], pa.Table]) -> TableReseal:
    """Rewrite every ref head of ``table`` through ``reseal`` (rows sealed with the current
    key), expire every other snapshot and delete the files only they reached."""
    table.refresh()
    name = table.name()[-1]
    if not table.metadata.snapshots:
        return TableReseal(name, 0, (), 0, 0)
    before = _reachable(table)
    props = {"aura.asset": "memory-key-rotation"}
    resealed = 0

    def rewrite(branch: str) -> None:
        nonlocal resealed
        rows = table.scan(snapshot_id=table.metadata.refs[branch].snapshot_id).to_arrow()
        new = reseal(rows)
        resealed += new.num_rows
        table.overwrite(new, AlwaysTrue(), snapshot_properties=props, branch=branch)

    rewritten = _rewrite_refs(
        table, lambda sid: _count(table, AlwaysTrue(), sid) > 0, rewrite, "aura-rotate"
    )
    heads = {ref.snapshot_id for ref in table.metadata.refs.values()}
    old = [s.snapshot_id for s in table.metadata.snapshots if s.snapshot_id not in heads]
    files = _expire(table, old, before)
    return TableReseal(name, resealed, tuple(rewritten), len(old), files)
