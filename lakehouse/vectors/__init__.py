"""AURA's vector engine: one collection per :class:`VectorStore`, embedded or on a Qdrant server.

Open a collection with :func:`open_store`: without ``AURA_QDRANT_URL`` it is a Qdrant Edge
shard in ``AURA_HOME/vectors/<name>/`` (:class:`EdgeStore`: Qdrant's own engine in-process,
HNSW and payload indexes, guarded by an OS file lock); with it, the same collection design on
the server through qdrant-client (:class:`ServerStore`, replication and write consistency from
``AURA_QDRANT_REPLICATION`` / ``AURA_QDRANT_WRITE_CONSISTENCY``).

The API (stable; memory and topology both build on it)::

    spec = CollectionSpec("aura_memory", {"dense": (384, "cosine")},
                          tenant_field="tenant_id", indexes={"expires_ms": "integer"})
    with open_store(settings, spec) as store:           # waits up to lock_timeout for the lock
        store.upsert([Record(id=uuid_str, vectors={"dense": v}, payload={"tenant_id": "t1"})])
        hits = store.search(v, tenant="t1", using="dense", limit=10, filter=None)
        many = store.search_batch([v1, v2], tenant="t1", using="dense", score_threshold=0.8)
        store.retrieve([uuid_str], with_payload=True, with_vectors=False)   # -> [Record]
        for record in store.scroll(flt): ...                                  # every point
        store.count(flt); store.delete([uuid_str]); store.delete_where(flt)  # -> int
        store.optimize()   # index/compaction assets only: blocks (and holds the GIL) for minutes
        store.drop()       # the whole collection

* Every point carries its tenant in ``payload[spec.tenant_field]`` (refused otherwise); every
  search filters on it (a caller's ``filter`` is ANDed, never a replacement). ``retrieve``,
  ``scroll``, ``count`` and ``delete_where`` take the filter they are given: check the tenant of
  what they answer.
* Filters are qdrant-client's ``models.Filter`` on both engines (the Edge engine supports match
  value/any/except, range, is_null, is_empty, has_id and nested filters).
* Mutating calls are durable when they return. After ``delete``/``delete_where`` plus
  ``optimize()`` no byte of the deleted points is left on disk (the Edge engine; a server
  vacuums on its own schedule).
* Scores: ``euclid`` is a distance (lower is nearer), ``cosine`` and ``dot`` similarities.
* Errors are :mod:`lakehouse.exceptions` classes: ``VectorStoreBusyError`` (a shard stayed
  locked by another process for the whole wait), ``VectorStoreError`` (the engine refused),
  ``ValidationError`` (a point without its tenant, a wrong vector size, a malformed id),
  ``StoreUnavailableError`` (the server did not answer).
"""

from __future__ import annotations

from collections.abc import Callable

from lakehouse.settings import Settings
from lakehouse.vectors.edge import DEFAULT_LOCK_TIMEOUT_S, EdgeStore
from lakehouse.vectors.model import CollectionSpec, Hit, PointId, Record, VectorStore

__all__ = [
    "DEFAULT_LOCK_TIMEOUT_S",
    "CollectionSpec",
    "EdgeStore",
    "Hit",
    "PointId",
    "Record",
    "VectorStore",
    "open_store",
    "server_store",
]


def open_store(
    settings: Settings,
    spec: CollectionSpec,
    *,
    lock_timeout: float = DEFAULT_LOCK_TIMEOUT_S,
    while_waiting: Callable[[], None] | None = None,
) -> VectorStore:
    """The collection ``spec`` on the configured engine, created if missing (``store.created``).

    ``while_waiting`` (embedded) is called while the open waits for the shard's lock.

    Raises:
        VectorStoreBusyError: (embedded) another process kept the shard for ``lock_timeout`` s.
        StoreUnavailableError: (server) the server at ``AURA_QDRANT_URL`` did not answer.
    """
    if settings.qdrant_url:
        return server_store(settings, spec)
    return EdgeStore(
        settings.vectors_path, spec, lock_timeout=lock_timeout, while_waiting=while_waiting
    )


def server_store(settings: Settings, spec: CollectionSpec) -> VectorStore:
    """The collection on the Qdrant server of ``AURA_QDRANT_URL`` (which must be set)."""
    from lakehouse.exceptions import ConfigurationError
    from lakehouse.vectors.server import ServerStore

    if not settings.qdrant_url:
        raise ConfigurationError("AURA_QDRANT_URL is unset; set it to the Qdrant server's URL")
    try:
        from qdrant_client import QdrantClient
    except ImportError as exc:
        raise ConfigurationError(
            "qdrant-client is needed for a Qdrant server: pip install 'qdrant-client>=1.15'"
        ) from exc
    client = QdrantClient(url=settings.qdrant_url, check_compatibility=False)
    try:
        return ServerStore(
            client,
            spec,
            replication=settings.qdrant_replication,
            write_consistency=settings.qdrant_write_consistency,
        )
    except BaseException:
        client.close()
        raise
