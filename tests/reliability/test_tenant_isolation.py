"""Tenant isolation: tenant A attacks tenant B across every memory tier, retrieval and SQL.

Tenant B stores memories (with metadata and signatures) that end up hot (Redis), warm (Qdrant
local mode) and cold (Iceberg), their events in ``memory_events``, and workflow runs in
``workflow_runs``, ``topology_history`` and the shape index. Tenant A then attacks:

* ``get`` of each of B's ids in each tier (also in the other spellings a UUID parses from), of
  ids naming B, and with tenant ids that try to alias B's keys;
* ``search`` with B's exact vectors and contents, per tier and merged, with filters naming B's
  metadata keys and values and tenant-looking keys (``tenant_id``);
* ``search_by_shape`` when the store has it;
* ``forget(A, B's id)`` and ``forget_tenant(A)``: B's memories stay, in every tier and table;
* topology ``similar_runs`` of A from B's run ids, signatures and vectors, on the index's Edge
  shard before and after ``optimize()`` (plain segments, then the HNSW-indexed ones);
* ``aura sql --tenant A`` (the session API and the CLI): plain reads, ``WHERE tenant_id='B'``,
  ``OR 1=1``, unions and joins of views, time travel to older snapshots, raw Parquet and
  ``iceberg_scan`` reads of the warehouse.

All of it runs twice: memories in the clear, and sealed with ``AURA_MEMORY_KEY`` (metadata
filters then run after opening). Every attack counts; one answer carrying any of B's ids,
contents, run ids or tenant name is a leak. The test prints ``attacks`` and ``leaks`` and fails
on any leak.
"""

from __future__ import annotations

import glob
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner

from lakehouse import Settings
from lakehouse.exceptions import AuraError
from lakehouse.memory import MemoryStore, ingest_memory_events, new_key
from lakehouse.publish.wap import accept_all
from lakehouse.simulate.traces import publish_workflow_events, simulate_workflow_events
from lakehouse.sql import connect
from lakehouse.topology import ingest as topo
from lakehouse.topology.history import history_day
from lakehouse.topology.index import index_day
from lakehouse.topology.retrieval import SPEC, similar_runs
from lakehouse.topology.tda import event_signature
from lakehouse.vectors import EdgeStore, VectorStore
from quality.audit import gx_audit
from reliability.harness import scaled

pytestmark = pytest.mark.reliability

A, B = "tenant-a", "tenant-b"
DAY = date(2026, 11, 20)
T0 = datetime.combine(DAY, time(8), tzinfo=UTC)
MEMORY_TABLES = ("memories", "memory_events", "memory_events_rejected")
RUN_TABLES = ("workflow_runs", "topology_history", "workflow_runs_rejected")


class Attacks:
    """Counts attacks per surface and records every leak (an answer carrying a B marker)."""

    def __init__(self, markers: set[str]) -> None:
        self.markers = markers
        self.tried: Counter[str] = Counter()
        self.refused: Counter[str] = Counter()
        self.leaks: list[str] = []

    def probe(self, surface: str, label: str, attack: Callable[[], object]) -> object:
        """Run one attack; an AURA/validation/key error is a refusal, an answer is scanned."""
        self.tried[surface] += 1
        try:
            answer = attack()
        except (AuraError, KeyError, ValueError) as exc:
            self.refused[surface] += 1
            self.check(surface, f"{label} (error)", str(exc))
            return None
        self.check(surface, label, answer)
        return answer

    def check(self, surface: str, label: str, answer: object) -> None:
        """A leak: a marker in the answer that the attacker did not put in its own input."""
        text = repr(answer)
        found = sorted(m for m in self.markers if m in text and m not in label)
        if found:
            self.leaks.append(f"{surface}: {label} -> {found[:3]}")

    def leak(self, surface: str, label: str) -> None:
        self.leaks.append(f"{surface}: {label}")


@pytest.fixture(params=["plain", "sealed"])
def mem(
    request: pytest.FixtureRequest, settings: Settings, redis_client: Any
) -> Iterator[MemoryStore]:
    """The store in the clear, and sealed (``AURA_MEMORY_KEY``: filters run after opening)."""
    if request.param == "sealed":
        settings = settings.with_overrides(memory_key=new_key())
    store = MemoryStore(settings, redis_client=redis_client)
    yield store
    store.close()


def _store_batch(
    mem: MemoryStore, rng: np.random.Generator, at: datetime, n: int, tier: str
) -> dict[str, dict[str, Any]]:
    """``n`` memories of each tenant at ``at``; B's carry metadata, signatures and secrets."""
    made: dict[str, dict[str, Any]] = {}
    for tenant in (A, B):
        for i in range(n):
            vec = rng.standard_normal(mem.dim)
            content = f"{tenant}-{tier}-{i}-secret-{rng.integers(1 << 40):x}"
            meta = {"project": f"{tenant}-project-{i % 2}", "tenant_id": tenant, "tier": tier}
            mid = mem.store(
                tenant,
                content,
                vector=vec,
                metadata=meta,
                signature=f"sig-{tenant}-{tier}-{i}",
                importance=0.9,
                now=at,
            )
            made[mid] = {"tenant": tenant, "tier": tier, "vector": vec, "content": content}
            made[mid]["metadata"] = meta
    return made


def _memories_in_every_tier(mem: MemoryStore, n: int) -> dict[str, dict[str, Any]]:
    rng = np.random.default_rng(15)
    made = _store_batch(mem, rng, T0, n, "cold")
    mem.compact(now=T0 + timedelta(hours=2))
    mem.compact(now=T0 + timedelta(hours=2), warm_max_points=0)
    made |= _store_batch(mem, rng, T0 + timedelta(hours=3), n, "warm")
    mem.compact(now=T0 + timedelta(hours=5))
    made |= _store_batch(mem, rng, T0 + timedelta(hours=5), n, "hot")
    now_ms = int(datetime.now(UTC).timestamp() * 1000)
    tiers = {"hot": mem.hot, "warm": mem.warm, "cold": mem.cold}
    for mid, m in made.items():  # the setup really spread B (and A) over the three tiers
        assert tiers[m["tier"]].get(m["tenant"], mid, now_ms) is not None, m["tier"]
    return made


def _runs(lh: Any, redis_client: Any, client: VectorStore, n: int) -> list[dict[str, Any]]:
    events = list(simulate_workflow_events(DAY, 1, 2 * n, seed=15))
    for i, event in enumerate(events):
        event["tenant_id"] = (A, B)[i % 2]
        event["run_id"] = f"{event['tenant_id']}-run-{i}"
    publish_workflow_events(redis_client, events)
    topo.ingest_day(lh, redis_client, DAY, audit=gx_audit)
    history_day(lh, DAY, audit=gx_audit)
    assert index_day(lh, client, DAY).indexed == len(events)
    return events


def test_tenant_a_cannot_reach_tenant_b_anywhere(
    mem: MemoryStore, redis_client: Any, in_aura_env: Settings, tmp_path: Path, figures
) -> None:  # type: ignore[no-untyped-def]
    n = scaled(3)
    made = _memories_in_every_tier(mem, n)
    first_cold = mem.cold.table.current_snapshot()
    assert first_cold is not None
    ingest_memory_events(mem.lakehouse, redis_client, DAY, audit=accept_all)
    topo_client = EdgeStore(tmp_path / "topology-vectors", SPEC)
    try:
        events = _runs(mem.lakehouse, redis_client, topo_client, n)
        b_mem = {mid: m for mid, m in made.items() if m["tenant"] == B}
        b_runs = [e for e in events if e["tenant_id"] == B]
        markers = {B, *b_mem, *(m["content"] for m in b_mem.values())}
        markers |= {e["run_id"] for e in b_runs}
        attacks = Attacks(markers)
        _attack_memory(mem, attacks, b_mem)
        _attack_topology(topo_client, attacks, b_runs)
        topo_client.optimize()  # again through the optimized (HNSW-indexed) segments
        _attack_topology(topo_client, attacks, b_runs)
        b_rows = _b_rows(mem.settings)
        _attack_sql(mem, attacks, first_cold.snapshot_id)
        _attack_cli(attacks, mem.settings)
        _attack_erasure(mem, attacks, b_mem, b_rows)
    finally:
        topo_client.close()
    figures(
        attacks=sum(attacks.tried.values()),
        refused=sum(attacks.refused.values()),
        leaks=len(attacks.leaks),
        by_surface=dict(attacks.tried),
        b_memories=len(b_mem),
        b_runs=len(b_runs),
        leak_examples=attacks.leaks[:5],
    )
    assert not attacks.leaks, attacks.leaks


def _attack_memory(mem: MemoryStore, attacks: Attacks, b_mem: dict[str, dict[str, Any]]) -> None:
    for mid, m in b_mem.items():
        for form in (mid, mid.upper(), f"{{{mid}}}", f"urn:uuid:{mid}", mid.replace("-", "")):
            attacks.probe(f"get/{m['tier']}", form, lambda f=form: mem.get(A, f))
        for form in (f"{B}:{mid}", f"../{B}/{mid}", f"{mid}*"):
            attacks.probe("get/bad-id", form, lambda f=form: mem.get(A, f))
        for alias in (f"{B}*", "tenant-?", "*", f"{A}:{B}", f"{A}/../{B}", f"{B} ", B.upper()):
            attacks.probe("get/alias", alias, lambda a=alias, mid=mid: mem.get(a, mid))
    tier_sets = (("hot", "warm", "cold"), ("hot",), ("warm",), ("cold",))
    by_shape = getattr(mem, "search_by_shape", None)  # when the store has shape search
    for mid, m in b_mem.items():
        for tiers in tier_sets:
            attacks.probe(
                "search/vector",
                f"{mid} {tiers}",
                lambda m=m, tiers=tiers: _foreign(mem.search(A, m["vector"], k=50, tiers=tiers)),
            )
        attacks.probe(
            "search/content", mid, lambda m=m: _foreign(mem.search(A, m["content"], k=50))
        )
        filters = [dict(m["metadata"]), {"project": m["metadata"]["project"]}]
        filters += [{"tenant_id": B}, {"tenant": B}, {"metadata.tenant_id": B}, {"tier": "hot"}]
        for flt in filters:
            attacks.probe(
                "search/filter",
                f"{mid} {flt}",
                lambda m=m, flt=flt: _foreign(mem.search(A, m["vector"], k=50, filters=flt)),
            )
        if by_shape is not None:
            attacks.probe(
                "search_by_shape", mid, lambda m=m, f=by_shape: _foreign(f(A, m["vector"]))
            )


def _foreign(hits: Any) -> list[Any]:
    """The hits of an answer to A that are not A's (the answer itself is scanned too)."""
    return [h for h in hits if getattr(getattr(h, "memory", h), "tenant_id", A) != A] or list(hits)


def _attack_topology(client: VectorStore, attacks: Attacks, b_runs: list[dict[str, Any]]) -> None:
    for event in b_runs:
        run_id = event["run_id"]
        attacks.probe(
            "similar_runs/run_id", run_id, lambda r=run_id: similar_runs(client, A, run_id=r, k=50)
        )
        sig = event_signature(event)
        attacks.probe(
            "similar_runs/signature",
            run_id,
            lambda s=sig: similar_runs(client, A, signature=s, k=50),
        )
        for using, vec in (("image", sig.image), ("betti", sig.betti_curve)):
            attacks.probe(
                "similar_runs/vector",
                f"{run_id} {using}",
                lambda u=using, v=vec: similar_runs(client, A, vector=v.tolist(), using=u, k=50),
            )
    attacks.probe("similar_runs/no-tenant", "", lambda: similar_runs(client, "", run_id="x"))


def _b_rows(settings: Settings) -> dict[str, int]:
    """B's rows per tenant-scoped table, as B's own session sees them."""
    with connect(settings, tenant=B) as session:
        return {
            t: int(session.execute(f"SELECT count(*) FROM {t}").fetchone()[0])  # type: ignore[index]
            for t in ("memories", "memory_events", "workflow_runs", "topology_history")
        }


def _sql_attacks(mem: MemoryStore, first_snapshot: int) -> list[str]:
    warehouse = mem.settings.warehouse.removeprefix("file://")
    cold = mem.cold.table.metadata_location.removeprefix("file://")
    data = next(iter(glob.glob(f"{warehouse}/**/*.parquet", recursive=True)), "x.parquet")
    queries = []
    for t in (*MEMORY_TABLES, *RUN_TABLES):
        queries += [
            f"SELECT * FROM {t}",
            f"SELECT * FROM {t} WHERE tenant_id = '{B}'",
            f"SELECT * FROM {t} WHERE tenant_id = '{A}' OR 1=1",
            f"SELECT * FROM {t} WHERE 1=1 OR tenant_id <> '{A}'",
            f"SELECT * FROM {t}_at_ref('main')",
            f"SELECT * FROM {t}_at(TIMESTAMP '2999-01-01')",
            f"SELECT * FROM aura.{t} UNION ALL SELECT * FROM {t}_at_ref('main')",
        ]
    queries += [
        f"SELECT * FROM memories_at_snapshot({first_snapshot})",
        f"SELECT * FROM memories UNION ALL SELECT * FROM memories_at_snapshot({first_snapshot})",
        "SELECT tenant_id, run_id FROM workflow_runs UNION SELECT tenant_id, run_id "
        "FROM topology_history UNION SELECT tenant_id, memory_id FROM memories",
        "SELECT * FROM workflow_runs w FULL JOIN topology_history h USING (run_id)",
        "SELECT m.* FROM memories m RIGHT JOIN memory_events e ON m.memory_id = e.memory_id",
        "SELECT * FROM aura_snapshots",
        "SELECT * FROM aura_history",
        "SELECT * FROM aura_refs",
        "SELECT * FROM aura_views",
        f"SELECT * FROM read_parquet('{warehouse}/**/*.parquet', union_by_name => true)",
        f"SELECT * FROM '{data}'",
        f"SELECT * FROM iceberg_scan('{cold}')",
        f"SELECT * FROM iceberg_scan('{cold}', snapshot_from_id => {first_snapshot})",
        "SELECT * FROM duckdb_views()",
        f"SELECT * FROM memories WHERE memory_id IN (SELECT memory_id FROM read_parquet('{data}'))",
    ]
    return queries


def _attack_sql(mem: MemoryStore, attacks: Attacks, first_snapshot: int) -> None:
    queries = _sql_attacks(mem, first_snapshot)
    sessions: list[tuple[str, dict[str, Any]]] = [
        ("main", {}),
        ("as-of", {"as_of": datetime.now(UTC) + timedelta(days=1)}),
        ("ref", {"ref": "main"}),
        ("pinned", {"snapshots": {"memories": first_snapshot}}),
    ]
    for name, options in sessions:
        with connect(mem.settings, tenant=A, **options) as session:
            own = session.execute("SELECT count(*) FROM memories").fetchone()
            assert own is not None and own[0] > 0, name  # A does see its own rows
            for query in queries:
                attacks.probe(f"sql/{name}", query, lambda q=query: _rows(session, q))


def _rows(session: Any, query: str) -> list[Any]:
    import duckdb

    try:
        return session.arrow(query).to_pylist()  # type: ignore[no-any-return]
    except duckdb.Error as exc:
        raise ValueError(str(exc)) from None


def _attack_cli(attacks: Attacks, settings: Settings) -> None:
    from aura_assets.cli import main

    for query in (
        "SELECT * FROM memories",
        f"SELECT * FROM memory_events WHERE tenant_id = '{B}' OR 1=1",
        f"SELECT * FROM workflow_runs WHERE tenant_id = '{B}'",
        "SELECT * FROM topology_history",
    ):
        for extra in ([], ["--ref", "main"]):

            def run(q: str = query, e: list[str] = extra) -> str:
                out = CliRunner().invoke(main, ["sql", "--tenant", A, *e, "--format", "json", q])
                return out.output

            attacks.probe("cli/sql", f"{extra} {query}", run)


def _attack_erasure(
    mem: MemoryStore, attacks: Attacks, b_mem: dict[str, dict[str, Any]], b_rows: dict[str, int]
) -> None:
    for mid in b_mem:
        receipt = attacks.probe("forget", mid, lambda mid=mid: mem.forget(A, mid).memory_ids)
        if mem.get(B, mid) is None:
            attacks.leak("forget", f"forget({A}, {mid}) erased B's memory ({receipt})")
    attacks.probe("forget_tenant", A, lambda: mem.forget_tenant(A).memory_ids)
    for mid, m in b_mem.items():
        if mem.get(B, mid) is None:
            attacks.leak("forget_tenant", f"B's {m['tier']} memory {mid} gone")
    if _b_rows(mem.settings) != b_rows:
        attacks.leak(
            "forget_tenant", f"B's table rows changed: {b_rows} -> {_b_rows(mem.settings)}"
        )
