"""``aura sql --tenant T``: memory tables show T's rows only, now and in time travel."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from click.testing import CliRunner

from aura_assets.cli import main
from lakehouse import Settings
from lakehouse.memory import MemoryStore, ingest_memory_events
from lakehouse.publish.wap import accept_all
from lakehouse.sql import connect


def test_tenant_session_never_shows_another_tenant(mem: MemoryStore, in_aura_env: Settings) -> None:
    now = datetime.now(UTC)
    mem.store("alpha", "alpha row")
    mem.store("beta", "beta secret row")
    mem.redis.xadd("aura:events:memory", {"data": b'{"tenant_id": "beta", "oops": 1}'})
    ingest_memory_events(mem.lakehouse, mem.redis, now.date(), audit=accept_all)
    mem.compact(now=now + timedelta(hours=2))
    mem.compact(now=now + timedelta(hours=2), warm_max_points=0)
    first = mem.cold.table.current_snapshot()
    assert first is not None
    with connect(mem.settings) as everyone:  # the scan below can see beta's rows
        assert everyone.arrow("SELECT * FROM memories").num_rows == 2
    with connect(mem.settings, tenant="alpha") as alpha:
        for query in (
            "SELECT tenant_id FROM memories",
            "SELECT tenant_id FROM memory_events",
            f"SELECT tenant_id FROM memories_at_snapshot({first.snapshot_id})",
            f"SELECT tenant_id FROM memories_at('{(now + timedelta(days=1)).isoformat()}')",
            "SELECT tenant_id FROM memory_events_at_ref('main')",
        ):
            assert set(alpha.arrow(query).column("tenant_id").to_pylist()) == {"alpha"}, query
        assert alpha.arrow("SELECT * FROM memory_events_rejected").num_rows == 0
    mem.close()
    out = CliRunner().invoke(
        main,
        ["sql", "--tenant", "alpha", "--format", "json", "SELECT content FROM memories"],
    )
    assert "alpha row" in out.output and "beta" not in out.output, out.output
