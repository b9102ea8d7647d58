"""Derived tables carry Dagster column lineage that names real columns on both sides.

``routing_model_daily``, ``router_training_set`` and ``topology_history`` report
``dagster/column_lineage`` with every materialisation; the UI draws it, so each column must exist
in the table and each source column in the upstream table (a renamed column fails here).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pytest
from dagster import TableColumnLineage

from aura_assets.router.assets import TRAINING_SOURCES
from aura_assets.routing.assets import SUMMARY_SOURCES
from aura_assets.topology.assets import HISTORY_SOURCES
from aura_resources.presentation import column_lineage
from lakehouse.table.registry import spec_for

DERIVED = {
    "routing_model_daily": SUMMARY_SOURCES,
    "router_training_set": TRAINING_SOURCES,
    "topology_history": HISTORY_SOURCES,
}


@pytest.mark.parametrize("table", sorted(DERIVED))
def test_lineage_names_existing_columns(table: str) -> None:
    sources: Mapping[str, Sequence[tuple[str, str]]] = DERIVED[table]
    columns = set(spec_for(table).arrow_schema.names)
    assert set(sources) <= columns
    assert columns - set(sources) <= {"computed_at"}  # only the clock has no source
    for found in sources.values():
        assert found
        for upstream, column in found:
            assert column in spec_for(upstream).arrow_schema.names, (upstream, column)


def test_lineage_is_dagster_metadata() -> None:
    meta = column_lineage(SUMMARY_SOURCES)["dagster/column_lineage"]
    assert isinstance(meta, TableColumnLineage)
    (dep,) = meta.deps_by_column["quality_mean"]
    assert dep.asset_key.to_user_string() == "routing_decisions"
    assert dep.column_name == "quality_score"
