"""The Dagster resources reach real stores built from the settings."""

from __future__ import annotations

import dagster as dg

from aura_resources import DuckDBResource, LakehouseResource, QdrantResource, RedisResource


def test_resources_reach_their_stores(in_aura_env, redis_client) -> None:  # type: ignore[no-untyped-def]
    from lakehouse.vectors import CollectionSpec, Record

    spec = CollectionSpec(name="probe", vectors={"v": (3, "cosine")})

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

        with qdrant.store(spec) as vectors:  # an Edge shard embedded, the server's otherwise
            vectors.upsert(
                [
                    Record(1, {"tenant_id": "t"}, {"v": [1.0, 0.0, 0.0]}),
                    Record(2, {"tenant_id": "t"}, {"v": [0.0, 1.0, 0.0]}),
                ]
            )
            hits = vectors.search([0.9, 0.1, 0.0], tenant="t", using="v", limit=1)
            assert hits[0].id == 1

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


def test_set_variables_are_bound_by_name_and_never_show_a_password(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from aura_assets.resources import build_resources

    for name in ("AURA_CATALOG_URI", "AURA_QDRANT_URL", "AURA_BRANCH", "AURA_REDIS_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AURA_HOME", str(tmp_path))
    monkeypatch.setenv("AURA_PG_URL", "postgresql://aura:Zq7s3cret@db:5432/aura")
    resources = build_resources()
    lakehouse = resources["lakehouse"]
    assert isinstance(lakehouse.pg_url, dg.EnvVar) and lakehouse.pg_url == "AURA_PG_URL"
    assert lakehouse.home == "AURA_HOME" and lakehouse.redis_url is None  # unset: unbound
    assert resources["redis"].home == "AURA_HOME" and resources["redis"].url is None
    assert "Zq7s3cret" not in repr(resources)
    # At run time the variables resolve into the settings the resource builds.
    settings = LakehouseResource(home=str(tmp_path), branch="exp").settings()
    assert settings.home == tmp_path.resolve() and settings.branch == "exp"
    assert settings.catalog_uri == "postgresql+psycopg://aura:Zq7s3cret@db:5432/aura"


def test_resources_work_with_no_environment_at_all(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from aura_assets.resources import build_resources
    from lakehouse.settings import ENV_VARS

    for name in ENV_VARS.values():
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    resources = build_resources()

    @dg.asset
    def where(lakehouse: LakehouseResource) -> dg.MaterializeResult:
        return dg.MaterializeResult(metadata={"home": str(lakehouse.settings().home)})

    result = dg.materialize([where], resources={"lakehouse": resources["lakehouse"]})
    assert result.success
    [event] = result.asset_materializations_for_node("where")
    assert event.metadata["home"].value == str(tmp_path.resolve() / ".aura")
