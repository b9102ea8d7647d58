"""What every vector store of :mod:`lakehouse.vectors` takes and answers, whatever the engine.

:class:`CollectionSpec` is a collection's design (named vectors, the tenant field, payload
indexes); :class:`VectorStore` is the interface both engines implement; :class:`Record` and
:class:`Hit` are what reads return. Filters are qdrant-client's ``models.Filter`` (the Qdrant
REST model) on both engines: the server takes them as they are, the Edge engine translates them.
"""

from __future__ import annotations

import abc
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Required, TypedDict

from typing_extensions import Unpack

from lakehouse.exceptions import ConfigurationError, ValidationError

if TYPE_CHECKING:
    from qdrant_client.models import Filter

PointId = str | int
"""A point id: a UUID string (answers give it in canonical form) or an unsigned integer."""
Distance = Literal["cosine", "euclid", "dot"]
IndexKind = Literal["keyword", "integer", "float", "bool", "datetime", "uuid"]

HNSW_M = 16
HNSW_EF_CONSTRUCT = 100
FULL_SCAN_THRESHOLD = 20_000
"""HNSW settings of every collection (Edge's default config gave filtered recall 0.53-0.69 with
a tenant near the full-scan threshold; these gave 1.0 at the same speed, ../FACTS.md)."""


@dataclass(frozen=True)
class CollectionSpec:
    """A collection's design, the same on both engines.

    ``vectors`` maps each named vector to its size and distance; ``tenant_field`` is a keyword
    payload field every point carries (indexed with ``is_tenant``) and every search filters on;
    ``indexes`` are further payload indexes (field -> kind).
    """

    name: str
    vectors: Mapping[str, tuple[int, Distance]]
    tenant_field: str = "tenant_id"
    indexes: Mapping[str, IndexKind] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.name or not self.name.replace("_", "").replace("-", "").isalnum():
            raise ConfigurationError(
                f"collection name {self.name!r} is not a plain name; use letters, digits, _ or -"
            )
        if not self.vectors:
            raise ConfigurationError(f"collection {self.name!r} needs at least one named vector")
        for name, (size, distance) in self.vectors.items():
            if size < 1 or distance not in ("cosine", "euclid", "dot"):
                raise ConfigurationError(
                    f"vector {name!r} of {self.name!r}: size {size} / distance {distance!r}; "
                    "use a positive size and one of cosine, euclid, dot"
                )

    def check_using(self, using: str) -> None:
        """Refuse a vector name the collection does not have."""
        if using not in self.vectors:
            from lakehouse.exceptions import VectorStoreError

            raise VectorStoreError(
                f"{self.name!r} has no vector {using!r}; use one of {sorted(self.vectors)}"
            )

    def check_point(self, point: Record) -> None:
        """Refuse a point with a malformed id, without its tenant or with a wrong vector size."""
        if not _valid_id(point.id):
            raise ValidationError(
                f"point id {point.id!r} of {self.name!r} is neither a UUID string nor an "
                "unsigned integer; use one of those"
            )
        tenant = point.payload.get(self.tenant_field)
        if not isinstance(tenant, str) or not tenant:
            raise ValidationError(
                f"point {point.id!r} of {self.name!r} has no {self.tenant_field!r} in its "
                "payload; every point carries its tenant"
            )
        for name, vector in point.vectors.items():
            want = self.vectors.get(name)
            if want is None or len(vector) != want[0]:
                raise ValidationError(
                    f"point {point.id!r}: vector {name!r} has {len(vector)} values; "
                    f"{self.name!r} expects {dict((n, s) for n, (s, _) in self.vectors.items())}"
                )


def _valid_id(value: object) -> bool:
    if isinstance(value, int) and not isinstance(value, bool):
        return value >= 0
    if not isinstance(value, str):
        return False
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


@dataclass(frozen=True)
class Record:
    """A stored point: its id, payload and the named vectors asked for."""

    id: PointId
    payload: dict[str, Any] = field(default_factory=dict)
    vectors: dict[str, list[float]] = field(default_factory=dict)


@dataclass(frozen=True)
class Hit(Record):
    """A search answer: a record and its score (a distance for ``euclid``, lower is nearer; a
    similarity for ``cosine`` and ``dot``, higher is nearer). Best first."""

    score: float = 0.0


Selector = bool | Sequence[str]
"""``with_payload`` / ``with_vectors``: all, none, or these fields / vector names."""


def as_selector(value: Selector) -> bool | list[str]:
    """A ``with_payload`` / ``with_vectors`` value as both engines take it."""
    return value if isinstance(value, bool) else list(value)


def named_vectors(value: Any) -> dict[str, list[float]]:
    """The named vectors of an engine's answer (``{}`` when none were asked for)."""
    return {k: list(v) for k, v in value.items()} if isinstance(value, dict) else {}


def answer_id(value: Any) -> PointId:
    """An engine's point id as we answer it (a UUID as its canonical string)."""
    return str(value) if isinstance(value, uuid.UUID) else value


def record_of(point: Any) -> Record:
    """An engine's record (``id``, ``payload``, ``vector``) as a :class:`Record`."""
    return Record(
        id=answer_id(point.id),
        payload=dict(point.payload or {}),
        vectors=named_vectors(point.vector),
    )


def hit_of(point: Any) -> Hit:
    """An engine's scored point as a :class:`Hit`."""
    return Hit(
        id=answer_id(point.id),
        payload=dict(point.payload or {}),
        vectors=named_vectors(point.vector),
        score=float(point.score),
    )


class SearchOptions(TypedDict, total=False):
    """The keyword options of :meth:`VectorStore.search` (see :meth:`~VectorStore.search_batch`)."""

    tenant: Required[str]
    using: Required[str]
    limit: int
    filter: Filter | None
    score_threshold: float | None
    with_payload: Selector
    with_vectors: Selector
    exact: bool


@dataclass(frozen=True)
class SearchPlan:
    """A checked search as engines run it: the tenant filter is already in ``filter``."""

    using: str
    filter: Filter
    limit: int
    score_threshold: float | None
    with_payload: bool | list[str]
    with_vectors: bool | list[str]
    exact: bool


class VectorStore(abc.ABC):
    """One collection on one engine; open it with :func:`lakehouse.vectors.open_store`.

    Mutating calls (:meth:`upsert`, :meth:`delete`, :meth:`delete_where`) are durable when they
    return. Every search filters on the tenant; other reads take an optional filter.
    """

    spec: CollectionSpec
    created: bool
    """Whether opening made the collection (it was missing: e.g. a restored home)."""

    def __enter__(self) -> VectorStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @staticmethod
    def tenant_filter(spec: CollectionSpec, tenant: str, also: Filter | None = None) -> Filter:
        """``tenant_field == tenant`` AND ``also`` (a caller's filter never replaces the tenant)."""
        from qdrant_client import models

        if not isinstance(tenant, str) or not tenant:
            raise ValueError("tenant is required: a vector search never spans tenants")
        must: list[Any] = [
            models.FieldCondition(key=spec.tenant_field, match=models.MatchValue(value=tenant))
        ]
        if also is not None:
            must.append(also)
        return models.Filter(must=must)

    @abc.abstractmethod
    def upsert(self, points: Sequence[Record]) -> None:
        """Insert or replace points (by id); each carries its tenant and the spec's vector sizes."""

    def search_batch(
        self,
        vectors: Sequence[Sequence[float]],
        *,
        tenant: str,
        using: str,
        limit: int = 10,
        filter: Filter | None = None,
        score_threshold: float | None = None,
        with_payload: Selector = True,
        with_vectors: Selector = False,
        exact: bool = False,
    ) -> list[list[Hit]]:
        """For each vector, the ``limit`` nearest points of ``tenant`` (and ``filter``).

        ``score_threshold`` keeps hits scoring at least it (similarities) or at most it
        (``euclid`` distances); ``exact`` skips the HNSW index (a full scan).
        """
        self.spec.check_using(using)
        plan = SearchPlan(
            using=using,
            filter=self.tenant_filter(self.spec, tenant, filter),
            limit=limit,
            score_threshold=score_threshold,
            with_payload=as_selector(with_payload),
            with_vectors=as_selector(with_vectors),
            exact=exact,
        )
        queries = [[float(x) for x in v] for v in vectors]
        return self._search(queries, plan) if queries else []

    def search(self, vector: Sequence[float], **options: Unpack[SearchOptions]) -> list[Hit]:
        """The nearest points of a tenant to ``vector`` (options of :meth:`search_batch`)."""
        return self.search_batch([vector], **options)[0]

    @abc.abstractmethod
    def _search(self, vectors: list[list[float]], plan: SearchPlan) -> list[list[Hit]]:
        """The engine's answer to each of ``vectors`` (at least one) under ``plan``."""

    @abc.abstractmethod
    def retrieve(
        self,
        ids: Sequence[PointId],
        *,
        with_payload: Selector = True,
        with_vectors: Selector = False,
    ) -> list[Record]:
        """The points of ``ids`` that exist (any tenant: check the payload's tenant)."""

    def scroll(
        self,
        filter: Filter | None = None,
        *,
        with_payload: Selector = True,
        with_vectors: Selector = False,
        page: int = 512,
    ) -> Iterator[Record]:
        """Every point (matching ``filter``), ``page`` at a time, in id order."""
        offset: PointId | None = None
        payload, vectors = as_selector(with_payload), as_selector(with_vectors)
        while True:
            records, offset = self._page(filter, offset, page, payload, vectors)
            yield from records
            if offset is None:
                return

    @abc.abstractmethod
    def _page(
        self,
        filter: Filter | None,
        offset: PointId | None,
        limit: int,
        with_payload: bool | list[str],
        with_vectors: bool | list[str],
    ) -> tuple[list[Record], PointId | None]:
        """One page of :meth:`scroll` from ``offset``, and the next page's offset (or None)."""

    @abc.abstractmethod
    def count(self, filter: Filter | None = None) -> int:
        """The exact number of points (matching ``filter``)."""

    @abc.abstractmethod
    def delete(self, ids: Sequence[PointId]) -> None:
        """Delete points by id (missing ids are not an error)."""

    @abc.abstractmethod
    def delete_where(self, filter: Filter) -> int:
        """Delete the points matching ``filter``; how many there were."""

    @abc.abstractmethod
    def optimize(self) -> bool:
        """Build indexes and vacuum deleted points; whether anything changed.

        On the Edge engine it blocks (and holds the GIL) for minutes on a large collection: run
        it only inside the compaction and index assets. A server optimises on its own.
        """

    @abc.abstractmethod
    def drop(self) -> None:
        """Delete the whole collection and close the store."""

    @abc.abstractmethod
    def close(self) -> None:
        """Release the store (idempotent); an Edge shard's lock is released."""
