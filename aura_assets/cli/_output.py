"""Operator output: progress bars on long work, quiet third-party logs, structured log lines.

Progress bars (rich) go to stderr and only when it is a terminal, so piped output and tests see
plain lines. Logs: AURA's own loggers at WARNING (INFO with ``-v``); Dagster, great-expectations,
pyiceberg, alembic, SQLAlchemy and HTTP clients at WARNING unless ``-v -v``. ``--log-format
json`` writes one JSON object per record (time, level, logger, message), secrets redacted.
"""

import json
import logging
import sys
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import TypeVar

from lakehouse.settings import redact_text

T = TypeVar("T")

NOISY = (
    "dagster",
    "great_expectations",
    "pyiceberg",
    "alembic",
    "sqlalchemy",
    "urllib3",
    "httpx",
    "filelock",
    "langgraph",
    "qdrant_client",
)


class _JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": redact_text(record.getMessage(), []),
        }
        if record.exc_info:
            entry["error"] = redact_text(self.formatException(record.exc_info), [])
        return json.dumps(entry)


class _RedactingFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return redact_text(super().format(record), [])


def configure_logging(verbosity: int, fmt: str) -> None:
    """Root logging for the CLI: AURA's level by ``verbosity``; third-party noise quiet."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        _JsonFormatter()
        if fmt == "json"
        else _RedactingFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO if verbosity >= 1 else logging.WARNING)
    for name in NOISY:
        logging.getLogger(name).setLevel(logging.INFO if verbosity >= 2 else logging.WARNING)


@contextmanager
def progress(description: str, total: int | None) -> Iterator["_Bar"]:
    """A progress bar on stderr when it is a terminal (nothing otherwise)."""
    if not sys.stderr.isatty():
        yield _Bar(None, None)
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
    )

    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=Console(stderr=True), transient=True) as bar:
        yield _Bar(bar, bar.add_task(description, total=total))


class _Bar:
    def __init__(self, bar: object, task: object) -> None:
        self._bar, self._task = bar, task

    def advance(self, n: int = 1) -> None:
        if self._bar is not None:
            self._bar.advance(self._task, n)  # type: ignore[attr-defined]

    def track(self, items: Iterable[T]) -> Iterator[T]:
        for item in items:
            yield item
            self.advance()
