"""Helpers shared by tests: building routing data and reading tables independently."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
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


@contextmanager
def silent_server() -> Iterator[int]:
    """A TCP port whose server accepts connections and never answers (a hung database)."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    listener.settimeout(0.2)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            try:
                held.append(listener.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        stop.set()
        thread.join()
        for connection in held:
            connection.close()
        listener.close()


def dead_port() -> int:
    """A TCP port nothing listens on (connections are refused)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]
