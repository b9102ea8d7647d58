"""Helpers shared by tests: building routing data and reading tables independently."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import duckdb
import duckdb_extension_avro
import duckdb_extension_iceberg
import pyarrow as pa


def decision(i: int, day: date = date(2026, 11, 20), **changes: object) -> dict[str, object]:
    """A valid routing event (as the router publishes it) with overridable fields."""
    ts = datetime(day.year, day.month, day.day, 9, tzinfo=UTC) + timedelta(seconds=37 * i)
    event: dict[str, object] = {
        "decision_id": f"d-{day:%Y%m%d}-{i}",
        "ts": ts.isoformat(),
        "tenant_id": "acme",
        "task_type": "code",
        "prompt_tokens": 800 + i,
        "candidate_models": ["large", "small"],
        "chosen_model": "small",
        "cost_usd": 0.0031,
        "latency_ms": 420.5,
        "quality_score": 0.91,
        "fallback_used": False,
    }
    event.update(changes)
    return event


def payload(event: dict[str, object]) -> str:
    return json.dumps(event)


def duckdb_iceberg() -> duckdb.DuckDBPyConnection:
    """A DuckDB connection with the packaged, signed iceberg extension (never downloaded)."""
    con = duckdb.connect(
        config={"autoinstall_known_extensions": False, "autoload_known_extensions": False}
    )
    for module, name in ((duckdb_extension_avro, "avro"), (duckdb_extension_iceberg, "iceberg")):
        path = Path(module.__file__).parent / "extensions" / f"v{duckdb.__version__}"
        con.install_extension(str(path / f"{name}.duckdb_extension"))
        con.load_extension(name)
    return con


def sorted_rows(table: pa.Table, key: str) -> list[dict[str, object]]:
    return sorted(table.to_pylist(), key=lambda row: row[key])
