"""``aura memory``: store, read, search, erase and compact agent memories from the shell."""

from __future__ import annotations

import json
import math
from dataclasses import asdict
from datetime import timedelta
from typing import Any

import click

from lakehouse import Settings
from lakehouse.exceptions import ValidationError
from lakehouse.memory import (
    MAX_AGE,
    MAX_K,
    MAX_TTL,
    EraseReceipt,
    Memory,
    MemoryStore,
    check_metadata,
    new_key,
)


def _shown(memory: Memory) -> dict[str, Any]:
    out = {k: v for k, v in asdict(memory).items() if k != "vector"}
    return out


def _json(value: Any, **options: Any) -> str:
    """JSON for people and programs: non-ASCII text as is, not as ``\\u`` escapes."""
    return json.dumps(value, ensure_ascii=False, default=str, **options)


def _receipt(receipt: EraseReceipt) -> None:
    click.echo(_json(asdict(receipt), indent=2))


def _ttl(ctx: click.Context, param: click.Parameter, value: float | None) -> timedelta | None:
    """--ttl-hours as a duration: finite, positive, at most MAX_TTL."""
    if value is None:
        return None
    hours = MAX_TTL.days * 24
    if not math.isfinite(value) or not 0 < value <= hours:
        raise click.BadParameter(f"must be a number of hours in (0, {hours}], got {value}")
    return timedelta(hours=value)


def _meta(ctx: click.Context, param: click.Parameter, value: str | None) -> dict[str, Any] | None:
    """--meta as a JSON object (standard JSON: no NaN or Infinity), validated like the API."""
    if value is None:
        return None
    try:
        metadata = json.loads(value, parse_constant=_no_constant)
    except RecursionError:
        raise click.BadParameter("is nested too deeply") from None
    except ValueError as exc:
        raise click.BadParameter(f"is not JSON: {exc}") from None
    if not isinstance(metadata, dict):
        raise click.BadParameter("must be a JSON object")
    try:
        return check_metadata(metadata)
    except ValidationError as exc:
        raise click.BadParameter(str(exc)) from None


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number; use a finite number or a string")


@click.group("memory")
def memory() -> None:
    """Agent memory over hot Redis, warm Qdrant and cold Iceberg."""


@memory.command("store")
@click.argument("tenant")
@click.argument("content")
@click.option(
    "--ttl-hours",
    "ttl",
    type=click.FloatRange(min=0, max=MAX_TTL.days * 24, min_open=True),
    callback=_ttl,
    help="Hard TTL.",
)
@click.option("--importance", type=click.FloatRange(0, 1), help="Importance in [0, 1].")
@click.option("--meta", "metadata", callback=_meta, help="Metadata as a JSON object.")
def store(
    tenant: str,
    content: str,
    ttl: timedelta | None,
    importance: float | None,
    metadata: dict[str, Any] | None,
) -> None:
    """Store CONTENT as a memory of TENANT; prints its id."""
    with MemoryStore(Settings.from_env()) as mem:
        click.echo(mem.store(tenant, content, metadata=metadata, ttl=ttl, importance=importance))


@memory.command("get")
@click.argument("tenant")
@click.argument("memory_id")
def get(tenant: str, memory_id: str) -> None:
    """Show TENANT's memory MEMORY_ID (and the tier holding it) as JSON."""
    with MemoryStore(Settings.from_env()) as mem:
        found = mem.get(tenant, memory_id)
    if found is None:
        raise click.ClickException(f"tenant {tenant!r} has no live memory {memory_id!r}")
    click.echo(_json(_shown(found), indent=2))


@memory.command("search")
@click.argument("tenant")
@click.argument("query")
@click.option("-k", type=click.IntRange(min=1, max=MAX_K), default=5, show_default=True)
def search(tenant: str, query: str, k: int) -> None:
    """TENANT's top K memories for QUERY across every tier, one JSON line each."""
    with MemoryStore(Settings.from_env()) as mem:
        hits = mem.search(tenant, query, k=k)
    for hit in hits:
        row = {"score": round(hit.score, 4), "similarity": round(hit.similarity, 4)}
        click.echo(_json(row | _shown(hit.memory)))


@memory.command("forget")
@click.argument("tenant")
@click.argument("memory_id")
def forget(tenant: str, memory_id: str) -> None:
    """Erase one memory from every tier, snapshot and file; prints the receipt."""
    with MemoryStore(Settings.from_env()) as mem:
        _receipt(mem.forget(tenant, memory_id))


@memory.command("forget-tenant")
@click.argument("tenant")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
def forget_tenant(tenant: str, yes: bool) -> None:
    """Erase every memory of TENANT; prints the receipt."""
    if not yes:
        click.confirm(f"Erase every memory of tenant {tenant!r}?", abort=True)
    with MemoryStore(Settings.from_env()) as mem:
        _receipt(mem.forget_tenant(tenant))


@memory.command("compact")
@click.option(
    "--hot-max-age-minutes",
    type=click.IntRange(0, MAX_AGE.days * 1440),
    default=60,
    show_default=True,
)
@click.option(
    "--warm-max-age-days", type=click.IntRange(0, MAX_AGE.days), default=30, show_default=True
)
def compact(hot_max_age_minutes: int, warm_max_age_days: int) -> None:
    """Move memories hot → warm → cold and purge expired ones; prints what moved.

    Runs as a Dagster run of ``memory_compaction`` (`aura ui` shows it with the tiers' counts).
    """
    from aura_assets.launch import CLI_TAG, launch
    from aura_assets.memory.assets import WARM

    config = {"hot_max_age_minutes": hot_max_age_minutes, "warm_max_age_days": warm_max_age_days}
    outcome = launch(
        Settings.from_env(),
        "memory_compaction",
        run_config={"ops": {"memory_tiers": {"config": config}}},
        tags={CLI_TAG: "memory compact"},
    )
    if not outcome.success:
        raise click.ClickException(
            f"memory_compaction run {outcome.run_id} failed: `aura ui` shows why"
        )
    meta = outcome.metadata["/".join(WARM.path)]
    tiers = {
        side: {k.split("/", 1)[1]: v for k, v in meta.items() if k.startswith(f"{side}/")}
        for side in ("before", "after")
    }
    report = {name: meta.get(key, 0) for name, key in _REPORT.items()}
    click.echo(_json({**tiers, "report": report, "run_id": outcome.run_id}, indent=2))


# The compaction run's metadata keys behind each figure of the printed report.
_REPORT = {
    "hot_to_warm": "moved/hot_to_warm",
    "warm_to_cold": "moved/warm_to_cold",
    "expired_hot": "purged/expired_hot",
    "expired_warm": "purged/expired_warm",
    "expired_cold": "purged/expired_cold",
    "tenants": "tenants",
    "spool_replayed": "spool/replayed",
    "consolidated_hot": "consolidated/hot",
    "consolidated_warm": "consolidated/warm",
}


@memory.command("new-key")
def new_key_command() -> None:
    """Print a fresh random key for AURA_MEMORY_KEY (32 bytes, urlsafe base64)."""
    click.echo(new_key())


@memory.command("rotate-key")
def rotate_key() -> None:
    """Re-encrypt every memory copy with AURA_MEMORY_KEY (old keys: AURA_MEMORY_OLD_KEYS).

    Covers the Redis hot tier and event stream, the Qdrant payloads (local storage vacuumed),
    and every ref of the memories and memory_events tables (their older snapshots expired and
    files deleted); prints what was re-encrypted. Afterwards the old keys can be dropped.
    """
    with MemoryStore(Settings.from_env()) as mem:
        report = mem.rotate_key()
    click.echo(_json(asdict(report), indent=2))
