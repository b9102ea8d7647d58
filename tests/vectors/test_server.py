"""The server path's collection design on a real Qdrant server (``AURA_QDRANT_URL``): the tenant
as an ``is_tenant`` keyword index, HNSW as on the embedded engine, the replication and write
consistency factors of the settings. Skipped, saying why, when no server is configured."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest
from qdrant_client import QdrantClient

from lakehouse.settings import Settings
from lakehouse.vectors import CollectionSpec, server_store

QDRANT_URL = os.environ.get("AURA_QDRANT_URL", "")
pytestmark = pytest.mark.skipif(
    not QDRANT_URL, reason="AURA_QDRANT_URL is unset: no Qdrant server to test the server path on"
)


def test_collections_are_created_cluster_ready(tmp_path: Path) -> None:
    # A single-node server accepts factors of 1; a cluster takes the deployment's values.
    settings = Settings.from_env(home=str(tmp_path))
    replication = settings.qdrant_replication or 1
    consistency = settings.qdrant_write_consistency or 1
    settings = settings.with_overrides(
        qdrant_replication=replication, qdrant_write_consistency=consistency
    )
    spec = CollectionSpec(
        f"test_cluster_{uuid.uuid4().hex[:12]}", {"v": (4, "cosine")}, indexes={"day": "keyword"}
    )
    store = server_store(settings, spec)
    client = QdrantClient(url=QDRANT_URL, check_compatibility=False)
    try:
        assert store.created
        info = client.get_collection(spec.name)
        assert info.config.params.replication_factor == replication
        assert info.config.params.write_consistency_factor == consistency
        assert (info.config.hnsw_config.m, info.config.hnsw_config.ef_construct) == (16, 100)
        tenant = info.payload_schema["tenant_id"]
        assert tenant.data_type.value == "keyword" and tenant.params.is_tenant is True
        assert info.payload_schema["day"].data_type.value == "keyword"
    finally:
        store.drop()
        client.close()
