"""``aura topology``: runs of similar shape, and the drift reports over recent days."""

from __future__ import annotations

import click
import pyarrow.compute as pc

from lakehouse import Lakehouse, Settings
from lakehouse.exceptions import AuraError


@click.group("topology")
def topology() -> None:
    """Shape-aware retrieval of workflow runs and drift of their topology."""


@topology.command("similar")
@click.argument("run_id")
@click.option("--tenant", help="The run's tenant (default: looked up in topology_history).")
@click.option("-k", "k", default=10, show_default=True, type=click.IntRange(1, 1000))
def similar(run_id: str, tenant: str | None, k: int) -> None:
    """The K runs of the same tenant closest in shape to RUN_ID (exact bottleneck re-ranking)."""
    from lakehouse.topology.index import rebuild_index
    from lakehouse.topology.retrieval import open_index, similar_runs

    settings = Settings.from_env()
    lh = Lakehouse(settings)
    if tenant is None:
        tenant = _tenant_of(lh, run_id)
    store = open_index(settings)
    try:
        if store.created:  # a restored home: the vector index is not backed up
            points = rebuild_index(lh, store)
            click.echo(
                f"the similarity index was missing; rebuilt it from topology_history "
                f"({points} run(s))",
                err=True,
            )
        hits = similar_runs(store, tenant, run_id=run_id, k=k)
    except KeyError as exc:
        raise AuraError(
            f"{exc.args[0]} (materialise topology_index for its day, e.g. `aura demo`)"
        ) from None
    finally:
        store.close()
    click.echo(f"runs of tenant {tenant} closest in shape to {run_id}:")
    click.echo(f"{'run_id':<24} {'workflow':<14} {'bottleneck':>10} {'vector':>8}")
    for hit in hits:
        click.echo(
            f"{hit.run_id:<24} {hit.workflow:<14} {hit.distance:>10.4f} {hit.vector_distance:>8.3f}"
        )


def _tenant_of(lh: Lakehouse, run_id: str) -> str:
    history = lh.read("topology_history")
    found = history.filter(pc.equal(history.column("run_id"), run_id)).column("tenant_id")
    if len(found) == 0:
        raise AuraError(
            f"run {run_id!r} is not in topology_history; materialise its day first or pass --tenant"
        )
    return str(found[0].as_py())


@topology.command("drift")
@click.option("--days", default=14, show_default=True, type=click.IntRange(1, 3660))
def drift(days: int) -> None:
    """P-values of the topology test and the scalar baseline over the last DAYS tested days."""
    rows = Lakehouse(Settings.from_env()).read("drift_reports").to_pylist()
    if not rows:
        click.echo("no drift reports yet (materialise topology_drift)")
        return
    by_day: dict[str, dict[str, dict]] = {}
    for r in rows:
        by_day.setdefault(r["day"].date().isoformat(), {})[r["detector"]] = r
    click.echo(f"{'day':<11} {'topology p':>10} {'scalar p':>10}  drift  reference")
    for day in sorted(by_day)[-days:]:
        topo, scalar = by_day[day].get("topology"), by_day[day].get("scalar")
        flags = ("T" if topo and topo["drift"] else "-") + (
            "S" if scalar and scalar["drift"] else "-"
        )
        ref = f"{topo['reference_days']}d/{topo['n_ref']} runs" if topo else "-"
        click.echo(f"{day:<11} {_p(topo):>10} {_p(scalar):>10}  {flags:<5}  {ref}")


def _p(row: dict | None) -> str:
    return "-" if row is None else f"{row['p_value']:.4f}"
