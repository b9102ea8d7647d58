"""The Dagster resources reach real stores built from the settings."""

from __future__ import annotations

import dagster as dg

from aura_resources import DuckDBResource, LakehouseResource, QdrantResource, RedisResource


def test_resources_reach_their_stores(in_aura_env, redis_client) -> None:  # type: ignore[no-untyped-def]
    from qdrant_client.models import Distance, PointStruct, VectorParams

    @dg.asset
    def probe(
        lakehouse: LakehouseResource,
        redis: RedisResource,
        qdrant: QdrantResource,
        duckdb: DuckDBResource,
    ) -> dg.MaterializeResult:
        client = redis.client()
        client.set("aura:probe", b"1")
        assert client.get("aura:probe") == b"1"

        vectors = qdrant.client()
        vectors.create_collection("probe", VectorParams(size=3, distance=Distance.COSINE))
        vectors.upsert(
            "probe", [PointStruct(id=1, vector=[1, 0, 0]), PointStruct(id=2, vector=[0, 1, 0])]
        )
        hits = vectors.query_points("probe", query=[0.9, 0.1, 0], limit=1).points
        assert hits[0].id == 1
        vectors.close()

        lakehouse.lakehouse().ensure_all()
        with duckdb.connect() as session:
            rows = session.execute("SELECT count(*) FROM routing_decisions").fetchall()
        assert rows == [(0,)]
        return dg.MaterializeResult()

    result = dg.materialize(
        [probe],
        resources={
            "lakehouse": LakehouseResource(),
            "redis": RedisResource(),
            "qdrant": QdrantResource(),
            "duckdb": DuckDBResource(),
        },
    )
    assert result.success


def test_branch_override_on_the_lakehouse_resource(in_aura_env) -> None:  # type: ignore[no-untyped-def]
    assert LakehouseResource().settings().branch == "main"
    assert LakehouseResource(branch="exp-1").settings().branch == "exp-1"
