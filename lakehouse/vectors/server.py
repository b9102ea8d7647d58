"""The server engine: a collection on a Qdrant server through qdrant-client (``AURA_QDRANT_URL``).

The same collection design as the embedded engine (named vectors, HNSW ``m=16,
ef_construct=100, full_scan_threshold=20000``, the tenant a keyword payload index with
``is_tenant``, Qdrant's recommendation for multi-tenancy, plus the spec's indexes), created with
the replication factor and write consistency factor of ``AURA_QDRANT_REPLICATION`` and
``AURA_QDRANT_WRITE_CONSISTENCY`` (unset: the server's defaults). Writes wait for the server's
acknowledgement (``wait=True``), so they are durable when a call returns; the server optimises
on its own (:meth:`ServerStore.optimize` does nothing). A server that does not answer is a
:class:`~lakehouse.exceptions.StoreUnavailableError` naming ``AURA_QDRANT_URL``; a request it
refuses is a :class:`~lakehouse.exceptions.VectorStoreError`.

:class:`ServerStore` takes any ``QdrantClient``; the tests also run it on qdrant-client's local
mode, which has the same API (but no HNSW, payload indexes or replication).
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

from lakehouse.exceptions import AuraError, StoreUnavailableError, VectorStoreError
from lakehouse.settings import redact_text
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
    from qdrant_client import QdrantClient
    from qdrant_client.models import Filter

_BATCH = 512


class ServerStore(VectorStore):
    """A collection on a Qdrant server (or any ``QdrantClient``); see the module docstring."""

    def __init__(
        self,
        client: QdrantClient,
        spec: CollectionSpec,
        *,
        replication: int | None = None,
        write_consistency: int | None = None,
        owns_client: bool = True,
        where: str = "the Qdrant server (AURA_QDRANT_URL)",
    ) -> None:
        self.spec = spec
        self.client: QdrantClient | None = client
        self._owns = owns_client
        self._where = where
        self.created = False
        with self._call("creating the collection"):
            if not client.collection_exists(spec.name):
                self._create(client, replication, write_consistency)
                self.created = True
            self._ensure_indexes(client)

    @contextlib.contextmanager
    def _call(self, what: str) -> Iterator[None]:
        from qdrant_client.http.exceptions import UnexpectedResponse

        try:
            yield
        except AuraError:
            raise
        except UnexpectedResponse as exc:
            message = redact_text(str(exc))
            if exc.status_code is not None and exc.status_code < 500:
                raise VectorStoreError(
                    f"{what} on collection {self.spec.name!r}: {self._where} refused it "
                    f"({message}); fix the request or the collection's configuration"
                ) from None
            raise self._unavailable(what, message) from None
        except (ValueError, TypeError) as exc:  # the client's validation of a request
            raise VectorStoreError(
                f"{what} on collection {self.spec.name!r}: {redact_text(str(exc))}"
            ) from None
        except Exception as exc:  # transport errors: httpx, grpc, the client's wrappers
            raise self._unavailable(what, type(exc).__name__) from None

    def _unavailable(self, what: str, reason: str) -> StoreUnavailableError:
        return StoreUnavailableError(
            f"{what} on collection {self.spec.name!r}: {self._where} did not answer ({reason}); "
            "start the server or check AURA_QDRANT_URL, or unset it to use the embedded engine"
        )

    def _create(
        self, client: QdrantClient, replication: int | None, write_consistency: int | None
    ) -> None:
        from qdrant_client import models

        distances = {
            "cosine": models.Distance.COSINE,
            "euclid": models.Distance.EUCLID,
            "dot": models.Distance.DOT,
        }
        client.create_collection(
            self.spec.name,
            vectors_config={
                name: models.VectorParams(size=size, distance=distances[distance])
                for name, (size, distance) in self.spec.vectors.items()
            },
            hnsw_config=models.HnswConfigDiff(
                m=HNSW_M, ef_construct=HNSW_EF_CONSTRUCT, full_scan_threshold=FULL_SCAN_THRESHOLD
            ),
            replication_factor=replication,
            write_consistency_factor=write_consistency,
        )

    def _ensure_indexes(self, client: QdrantClient) -> None:
        from qdrant_client import models

        kinds = {
            "keyword": models.PayloadSchemaType.KEYWORD,
            "integer": models.PayloadSchemaType.INTEGER,
            "float": models.PayloadSchemaType.FLOAT,
            "bool": models.PayloadSchemaType.BOOL,
            "datetime": models.PayloadSchemaType.DATETIME,
            "uuid": models.PayloadSchemaType.UUID,
        }
        have = set(client.get_collection(self.spec.name).payload_schema or {})
        wanted: dict[str, Any] = {
            self.spec.tenant_field: models.KeywordIndexParams(
                type=models.KeywordIndexType.KEYWORD, is_tenant=True
            ),
            **{f: kinds[k] for f, k in self.spec.indexes.items()},
        }
        with warnings.catch_warnings():
            # Local mode warns that payload indexes have no effect there; a server uses them.
            warnings.filterwarnings("ignore", "Payload indexes have no effect", UserWarning)
            for field_name, schema in wanted.items():
                if field_name not in have:
                    client.create_payload_index(
                        self.spec.name, field_name, field_schema=schema, wait=True
                    )

    def _client(self) -> QdrantClient:
        if self.client is None:
            raise VectorStoreError(
                f"the vector store {self.spec.name!r} is closed; open it again with open_store()"
            )
        return self.client

    # -- writes ------------------------------------------------------------------------------

    def upsert(self, points: Sequence[Record]) -> None:
        from qdrant_client import models

        for point in points:
            self.spec.check_point(point)
        client = self._client()
        for start in range(0, len(points), _BATCH):
            batch = [
                models.PointStruct(
                    id=p.id, vector={k: list(v) for k, v in p.vectors.items()}, payload=p.payload
                )
                for p in points[start : start + _BATCH]
            ]
            with self._call("upserting points"):
                client.upsert(self.spec.name, points=batch, wait=True)

    def delete(self, ids: Sequence[PointId]) -> None:
        from qdrant_client import models

        if not ids:
            return
        with self._call("deleting points"):
            self._client().delete(
                self.spec.name, points_selector=models.PointIdsList(points=list(ids)), wait=True
            )

    def delete_where(self, filter: Filter) -> int:
        from qdrant_client import models

        n = self.count(filter)
        if n:
            with self._call("deleting points by filter"):
                self._client().delete(
                    self.spec.name,
                    points_selector=models.FilterSelector(filter=filter),
                    wait=True,
                )
        return n

    def optimize(self) -> bool:
        return False  # the server runs its optimizers itself

    # -- reads -------------------------------------------------------------------------------

    def _search(self, vectors: list[list[float]], plan: SearchPlan) -> list[list[Hit]]:
        from qdrant_client import models

        requests = [
            models.QueryRequest(
                query=v,
                using=plan.using,
                filter=plan.filter,
                limit=plan.limit,
                score_threshold=plan.score_threshold,
                params=models.SearchParams(exact=plan.exact),
                with_payload=plan.with_payload,
                with_vector=plan.with_vectors,
            )
            for v in vectors
        ]
        out: list[list[Hit]] = []
        for start in range(0, len(requests), _BATCH):
            with self._call("searching"):
                answers = self._client().query_batch_points(
                    self.spec.name, requests=requests[start : start + _BATCH]
                )
            out += [[hit_of(p) for p in answer.points] for answer in answers]
        return out

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
            found = self._client().retrieve(
                self.spec.name,
                list(ids),
                with_payload=as_selector(with_payload),
                with_vectors=as_selector(with_vectors),
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
        with self._call("scrolling"):
            records, after = self._client().scroll(
                self.spec.name,
                scroll_filter=filter,
                limit=limit,
                offset=offset,
                with_payload=with_payload,
                with_vectors=with_vectors,
            )
        return [record_of(r) for r in records], None if after is None else answer_id(after)

    def count(self, filter: Filter | None = None) -> int:
        with self._call("counting"):
            return int(self._client().count(self.spec.name, count_filter=filter, exact=True).count)

    # -- lifecycle ---------------------------------------------------------------------------

    def close(self) -> None:
        client, self.client = self.client, None
        if client is not None and self._owns:
            client.close()

    def drop(self) -> None:
        with self._call("dropping the collection"):
            self._client().delete_collection(self.spec.name)
        self.close()
