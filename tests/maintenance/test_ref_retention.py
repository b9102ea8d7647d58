"""Ref retention: the nightly job removes expired branches and tags and nothing else."""

from __future__ import annotations

import time
from datetime import date

import dagster as dg
from helpers import decision

from aura_assets.definitions import defs
from lakehouse import Lakehouse
from lakehouse.routing import decisions_to_arrow, parse_entries
from lakehouse.table import refs


def test_ref_retention_job_removes_only_expired_refs(in_aura_env) -> None:  # type: ignore[no-untyped-def]
    from datetime import UTC, datetime

    import orjson

    lh = Lakehouse(in_aura_env)
    batch = parse_entries([(f"{i}-0", {b"data": orjson.dumps(decision(i))}) for i in range(3)])
    lh.append("routing_decisions", decisions_to_arrow(batch.decisions, datetime.now(UTC)))
    table = lh.table("routing_decisions")
    refs.create_tag(table, "short-lived", max_ref_age_ms=1)
    refs.create_tag(table, "release-1")  # no retention: kept forever
    refs.create_branch(table, "audit-old", max_ref_age_ms=1)
    time.sleep(0.01)

    result = defs.resolve_job_def("ref_retention").execute_in_process(
        instance=dg.DagsterInstance.ephemeral()
    )
    assert result.success
    left = {r.name for r in refs.list_refs(lh.table("routing_decisions"))}
    assert left == {"main", "release-1"}
    assert lh.read("routing_decisions", day=date(2026, 11, 20)).num_rows == 3
