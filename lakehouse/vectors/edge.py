"""The embedded engine: one Qdrant Edge shard per collection, in ``AURA_HOME/vectors/<name>/``.

Invariants (each answers a pitfall measured in ../FACTS.md):

* **Never opened twice.** Every open takes an exclusive ``flock`` on ``<name>.lock`` beside the
  shard first (:mod:`._lock`), waiting up to ``lock_timeout`` seconds, else
  :class:`~lakehouse.exceptions.VectorStoreBusyError` naming the holder. (A second
  ``EdgeShard.load`` of a live shard deletes its tracker journals; with the WAL off nothing else
  stops it.) The lock is released by :meth:`EdgeStore.close` or the holder's death.
* **Durable when a call returns.** The WAL is off (it kept deleted payloads on disk until ~64 MB
  of later writes), so every mutating call ends with ``flush()``.
* **Erase leaves no byte behind** once :meth:`EdgeStore.optimize` has run after the delete: the
  vacuum optimizer rewrites every segment holding a deleted point, whatever its size. Edge skips
  segments of fewer than ``vacuum_min_vector_number`` points and vacuums only when the deleted
  share is *above* ``deleted_threshold`` (one delete in 1,000 points is not above 0.001), so both
  are set to their floor (1 and 1e-9). Between the delete and that optimize the deleted bytes
  are still in segment files (unreachable by any read). Shards made with the older settings
  take these when opened (the configuration given to ``load`` replaces the stored one).
* **Optimize where it blocks nobody.** ``optimize()`` builds the HNSW graphs and vacuums; it holds
  the GIL for its whole run (minutes at 100k points), so only the compaction and index assets
  call it. Until then new points sit in plain segments and are searched exactly (correct, slower).
* **Our errors.** Edge raises bare ``Exception``; every call maps it to
  :class:`~lakehouse.exceptions.VectorStoreError` (or ``ValidationError`` for a malformed id)
  with the collection and what to do.
"""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lakehouse.exceptions import AuraError, ValidationError, VectorStoreError
from lakehouse.vectors._lock import ShardLock
from lakehouse.vectors.model import (
    FULL_SCAN_THRESHOLD,
    HNSW_EF_CONSTRUCT,
    HNSW_M,
    CollectionSpec,
    Hit,
    PointId,
    Record,
    SearchPlan,
    Selector,
    VectorStore,
    answer_id,
    as_selector,
    hit_of,
    record_of,
)

if TYPE_CHECKING:
    from qdrant_client.models import Filter

DEFAULT_LOCK_TIMEOUT_S = 10.0
_BATCH = 512
_CONFIG_FILE = "edge_config.json"
# Vacuum a segment as soon as it holds one deleted point (the share must be above this).
_VACUUM_DELETED_SHARE = 1e-9


def _edge() -> Any:
    try:
        import qdrant_edge
    except ImportError as exc:  # a dependency, but say what to do if it is missing
        raise VectorStoreError(
            "qdrant-edge-py is needed for the embedded vector engine: pip install "
            "'qdrant-edge-py>=0.9,<0.10' (or set AURA_QDRANT_URL to use a Qdrant server)"
        ) from exc
    return qdrant_edge


def _config(spec: CollectionSpec) -> Any:
    qe = _edge()
    distances = {"cosine": qe.Distance.Cosine, "euclid": qe.Distance.Euclid, "dot": qe.Distance.Dot}
    return qe.EdgeConfig(
        vectors={
            name: qe.EdgeVectorParams(size=size, distance=distances[distance])
            for name, (size, distance) in spec.vectors.items()
        },
        hnsw_config=qe.HnswIndexConfig(
            m=HNSW_M, ef_construct=HNSW_EF_CONSTRUCT, full_scan_threshold=FULL_SCAN_THRESHOLD
        ),
        optimizers=qe.EdgeOptimizersConfig(
            deleted_threshold=_VACUUM_DELETED_SHARE, vacuum_min_vector_number=1
        ),
        wal_enabled=False,
    )


def _index_schema(kind: str, tenant: bool = False) -> Any:
    qe = _edge()
    if tenant:
        return qe.KeywordIndexParams(is_tenant=True)
    return {
        "keyword": qe.PayloadSchemaType.Keyword,
        "integer": qe.PayloadSchemaType.Integer,
        "float": qe.PayloadSchemaType.Float,
        "bool": qe.PayloadSchemaType.Bool,
        "datetime": qe.PayloadSchemaType.Datetime,
        "uuid": qe.PayloadSchemaType.Uuid,
    }[kind]


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, list | tuple) else [value]


def edge_filter(flt: Any) -> Any:
    """A qdrant-client ``models.Filter`` as Qdrant Edge's ``Filter``.

    Supported: ``must`` / ``should`` / ``must_not`` (nested filters too), ``FieldCondition`` with
    ``MatchValue``, ``MatchAny``, ``MatchExcept`` or ``Range``, ``IsNullCondition``,
    ``IsEmptyCondition`` and ``HasIdCondition``; anything else is a :class:`VectorStoreError`
    naming it.
    """
    from qdrant_client import models

    qe = _edge()
    if flt is None:
        return None
    if not isinstance(flt, models.Filter):
        raise VectorStoreError(f"a filter must be a qdrant_client.models.Filter, not {flt!r}")
    if flt.min_should is not None:
        raise VectorStoreError("min_should filters are not supported by the vector engine")

    def condition(c: Any) -> Any:
        if isinstance(c, models.Filter):
            return edge_filter(c)
        if isinstance(c, models.FieldCondition):
            match, rng = c.match, c.range
            if isinstance(match, models.MatchValue):
                return qe.FieldCondition(key=c.key, match=qe.MatchValue(match.value))
            if isinstance(match, models.MatchAny):
                return qe.FieldCondition(key=c.key, match=qe.MatchAny(list(match.any)))
            if isinstance(match, models.MatchExcept):
                return qe.FieldCondition(key=c.key, match=qe.MatchExcept(list(match.except_)))
            if match is None and isinstance(rng, models.Range):
                return qe.FieldCondition(
                    key=c.key, range=qe.RangeFloat(gte=rng.gte, gt=rng.gt, lte=rng.lte, lt=rng.lt)
                )
        if isinstance(c, models.IsNullCondition):
            return qe.IsNullCondition(c.is_null.key)
        if isinstance(c, models.IsEmptyCondition):
            return qe.IsEmptyCondition(c.is_empty.key)
        if isinstance(c, models.HasIdCondition):
            return qe.HasIdCondition(set(c.has_id))
        raise VectorStoreError(
            f"filter condition {c!r} is not supported by the vector engine; use match "
            "value/any/except, range, is_null, is_empty, has_id or a nested filter"
        )

    return qe.Filter(
        must=[condition(c) for c in _as_list(flt.must)] or None,
        should=[condition(c) for c in _as_list(flt.should)] or None,
        must_not=[condition(c) for c in _as_list(flt.must_not)] or None,
    )


class EdgeStore(VectorStore):
    """A collection as a Qdrant Edge shard in ``directory/<name>``; see the module docstring."""

    def __init__(
        self,
        directory: Path,
        spec: CollectionSpec,
        *,
        lock_timeout: float = DEFAULT_LOCK_TIMEOUT_S,
        while_waiting: Callable[[], None] | None = None,
    ) -> None:
        self.spec = spec
        self.path = Path(directory) / spec.name
        self._lock = ShardLock(self.path.with_name(f"{spec.name}.lock"))
        self._lock.acquire(lock_timeout, while_waiting)
        try:
            self.created = not (self.path / _CONFIG_FILE).exists()
            self._shard: Any = self._open()
            self._ensure_indexes()
        except BaseException:
            self._release()
            raise

    # -- plumbing ----------------------------------------------------------------------------

    @contextlib.contextmanager
    def _call(self, what: str) -> Iterator[None]:
        """Map Edge's bare exceptions to ours, naming the collection and what to do."""
        try:
            yield
        except AuraError:
            raise
        except ValueError as exc:
            raise ValidationError(
                f"{what} on vector collection {self.spec.name!r}: {exc}; point ids are UUID "
                "strings or unsigned integers"
            ) from None
        except Exception as exc:  # Qdrant Edge raises bare Exception for every failure
            raise VectorStoreError(
                f"{what} on vector collection {self.spec.name!r} ({self.path}) failed: {exc}. "
                f"{_hint(str(exc))}"
            ) from None

    def _open(self) -> Any:
        qe = _edge()
        config = _config(self.spec)
        if self.created:
            if self.path.exists():  # a create interrupted before its config was written
                shutil.rmtree(self.path)
            with self._call("creating the shard"):
                return qe.EdgeShard.create(str(self.path), config)
        with self._call("opening the shard"):
            return qe.EdgeShard.load(str(self.path), config)

    def _ensure_indexes(self) -> None:
        qe = _edge()
        with self._call("reading the shard's payload indexes"):
            have = set(self._live().info().payload_schema)
        wanted = {self.spec.tenant_field: "keyword", **self.spec.indexes}
        missing = [f for f in wanted if f not in have]
        for field_name in missing:
            schema = _index_schema(wanted[field_name], tenant=field_name == self.spec.tenant_field)
            with self._call(f"creating the payload index {field_name!r}"):
                self._live().update(qe.UpdateOperation.create_field_index(field_name, schema))
        if missing:
            self._flush()

    def _live(self) -> Any:
        shard = getattr(self, "_shard", None)
        if shard is None:
            raise VectorStoreError(
                f"the vector store {self.spec.name!r} is closed; open it again with open_store()"
            )
        return shard

    def _flush(self) -> None:
        with self._call("flushing"):
            self._live().flush()

    def _update(self, what: str, operation: Any) -> None:
        with self._call(what):
            self._live().update(operation)

    # -- writes ------------------------------------------------------------------------------

    def upsert(self, points: Sequence[Record]) -> None:
        qe = _edge()
        for point in points:
            self.spec.check_point(point)
        for start in range(0, len(points), _BATCH):
            batch = [
                qe.Point(
                    id=p.id, vector={k: list(v) for k, v in p.vectors.items()}, payload=p.payload
                )
                for p in points[start : start + _BATCH]
            ]
            self._update("upserting points", qe.UpdateOperation.upsert_points(batch))
        if points:
            self._flush()

    def delete(self, ids: Sequence[PointId]) -> None:
        if not ids:
            return
        self._update("deleting points", _edge().UpdateOperation.delete_points(list(ids)))
        self._flush()

    def delete_where(self, filter: Filter) -> int:
        n = self.count(filter)
        if n:
            op = _edge().UpdateOperation.delete_points_by_filter(edge_filter(filter))
            self._update("deleting points by filter", op)
            self._flush()
        return n

    def optimize(self) -> bool:
        with self._call("optimizing"):
            changed = bool(self._live().optimize())
        self._flush()
        return changed

    # -- reads -------------------------------------------------------------------------------

    def _search(self, vectors: list[list[float]], plan: SearchPlan) -> list[list[Hit]]:
        qe = _edge()
        flt = edge_filter(plan.filter)
        requests = [
            qe.QueryRequest(
                limit=plan.limit,
                query=qe.Query.Nearest(v, using=plan.using),
                filter=flt,
                score_threshold=plan.score_threshold,
                params=qe.SearchParams(exact=plan.exact),
                with_payload=plan.with_payload,
                with_vector=plan.with_vectors,
            )
            for v in vectors
        ]
        with self._call("searching"):
            if len(requests) == 1:
                answers = [self._live().query(requests[0])]
            else:
                answers = self._live().query_batch(qe.QueryBatchRequest(requests))
        return [[hit_of(p) for p in points] for points in answers]

    def retrieve(
        self,
        ids: Sequence[PointId],
        *,
        with_payload: Selector = True,
        with_vectors: Selector = False,
    ) -> list[Record]:
        if not ids:
            return []
        with self._call("retrieving points"):
            found = self._live().retrieve(
                list(ids),
                with_payload=as_selector(with_payload),
                with_vector=as_selector(with_vectors),
            )
        return [record_of(r) for r in found]

    def _page(
        self,
        filter: Filter | None,
        offset: PointId | None,
        limit: int,
        with_payload: bool | list[str],
        with_vectors: bool | list[str],
    ) -> tuple[list[Record], PointId | None]:
        request = _edge().ScrollRequest(
            offset=offset,
            limit=limit,
            filter=edge_filter(filter),
            with_payload=with_payload,
            with_vector=with_vectors,
        )
        with self._call("scrolling"):
            records, after = self._live().scroll(request)
        return [record_of(r) for r in records], None if after is None else answer_id(after)

    def count(self, filter: Filter | None = None) -> int:
        request = _edge().CountRequest(exact=True, filter=edge_filter(filter))
        with self._call("counting"):
            return int(self._live().count(request))

    # -- lifecycle ---------------------------------------------------------------------------

    def close(self) -> None:
        self._release()

    def _release(self) -> None:
        shard, self._shard = getattr(self, "_shard", None), None
        try:
            if shard is not None:
                with self._call("closing"):
                    shard.close()
        finally:
            self._lock.release()

    def drop(self) -> None:
        """Close the shard and delete its directory (the lock is held until it is gone)."""
        shard, self._shard = self._shard, None
        try:
            if shard is not None:
                with self._call("closing"):
                    shard.close()
            shutil.rmtree(self.path, ignore_errors=True)
        finally:
            self._lock.release()


def _hint(message: str) -> str:
    lowered = message.lower()
    if "dimension" in lowered:
        return "Give vectors of the collection's size (see its CollectionSpec)."
    if "config" in lowered or "incompatible" in lowered or "wal" in lowered:
        return (
            "The shard was made with another configuration: rebuild it (drop() it and index "
            "again from the tables)."
        )
    if "not initialized" in lowered:
        return "The shard is closed; open the store again."
    return "If the shard is damaged, drop it and rebuild it from the tables."
