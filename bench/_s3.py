"""The object-store lines of the benches (``AURA_BENCH_S3=1``): they run against the configured
S3 warehouse and REST catalog, which must be a scratch one (``.ci/objstore.sh --run python -m
bench ingest timetravel`` starts one), since each round drops and recreates its table."""

from __future__ import annotations

import contextlib
import os

from pyiceberg.exceptions import NoSuchTableError

from lakehouse import Lakehouse
from lakehouse.settings import NAMESPACE


def enabled() -> bool:
    return os.environ.get("AURA_BENCH_S3") == "1"


def fresh_table(lh: Lakehouse, name: str) -> None:
    """Drop ``name`` with its files from the configured catalog (a round starts empty)."""
    with contextlib.suppress(NoSuchTableError):
        lh.catalog.purge_table((NAMESPACE, name))
