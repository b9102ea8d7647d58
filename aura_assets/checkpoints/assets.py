"""Checkpoint assets: a day of LangGraph checkpoints archived into Iceberg, then hot retention."""

from typing import Any

from dagster import (
    AssetExecutionContext,
    AssetKey,
    AssetSpec,
    Config,
    MaterializeResult,
    multi_asset,
)
from pydantic import Field

from aura_assets.concurrency import table_pool
from aura_assets.materialize import partition_day, snapshot_result
from aura_assets.partitions import DAILY
from aura_resources.lakehouse import LakehouseResource
from lakehouse.checkpoints import (
    AuraCheckpointSaver,
    RetentionPolicy,
    archive_and_trim,
    archive_checkpoints,
)
from lakehouse.checkpoints.archive import BLOBS, CHECKPOINTS, WRITES, ArchiveResult
from lakehouse.settings import Settings, is_postgres_url
from lakehouse.table import refs
from lakehouse.table.writer import WriteResult
from quality.checks import check_results, check_specs
from quality.validate import validate_ref

CHECKPOINTS_KEY = AssetKey(CHECKPOINTS)
WRITES_KEY = AssetKey(WRITES)
BLOBS_KEY = AssetKey(BLOBS)
ARCHIVE_CODE_VERSION = "checkpoints-archive-1"


class CheckpointArchiveConfig(Config):
    """Hot retention applied once the day's archive commit has succeeded."""

    trim: bool = Field(default=True, description="Trim the hot store after archiving.")
    keep_last: int | None = Field(
        default=20, description="Checkpoints kept hot per thread namespace (None: no limit)."
    )
    max_age_days: float | None = Field(
        default=None, description="Also keep every checkpoint younger than this many days."
    )


# The source of the archived tables: LangGraph workflows checkpointed by AuraCheckpointSaver
# into the hot store. External (no Dagster run produces it): it gives the lineage its origin.
def hot_store_kind(settings: Settings) -> str:
    """The checkpoint hot store's kind under ``settings``: ``postgres`` or ``sqlite``."""
    return "postgres" if is_postgres_url(settings.checkpoint_url) else "sqlite"


WORKFLOWS = AssetSpec(
    AssetKey("agent_workflows"),
    description="LangGraph agent workflow threads checkpointed by `AuraCheckpointSaver` into "
    "the hot store (PostgreSQL, or SQLite under AURA_HOME); `aura simulate --workflows N` and "
    "the demo run simulated ones (`lakehouse/simulate/agents.py`).",
    group_name="checkpoints",
    # The kind shown is the store this code location is configured with, not always Postgres.
    kinds={"langgraph", hot_store_kind(Settings.from_env())},
    owners=["team:agents"],
)


def _spec(key: AssetKey, description: str) -> AssetSpec:
    return AssetSpec(
        key,
        description=description,
        code_version=ARCHIVE_CODE_VERSION,
        partitions_def=DAILY,
        group_name="checkpoints",
        kinds={"iceberg", "langgraph"},
        deps=[WORKFLOWS.key],
        owners=["team:lakehouse"],
        metadata={"iceberg/table": f"aura.{key.path[-1]}"},
    )


@multi_asset(
    pool=table_pool(CHECKPOINTS),
    specs=[
        _spec(
            CHECKPOINTS_KEY,
            "LangGraph checkpoints of the day, copied from the hot store "
            "(PostgreSQL or SQLite) without their channel values.",
        ),
        _spec(WRITES_KEY, "Pending writes of the day's archived checkpoints."),
        _spec(
            BLOBS_KEY,
            "Channel values of archived checkpoints, once per (thread, channel, "
            "version), bytes stored once per content hash.",
        ),
    ],
    check_specs=[*check_specs(CHECKPOINTS_KEY), *check_specs(WRITES_KEY), *check_specs(BLOBS_KEY)],
)
def workflow_checkpoints(
    context: AssetExecutionContext, config: CheckpointArchiveConfig, lakehouse: LakehouseResource
):
    """Archive the partition's day of checkpoints, idempotently; then trim the hot store."""
    day = partition_day(context.partition_key)
    assert day is not None  # daily partitioned
    lh = lakehouse.lakehouse()
    policy = (
        RetentionPolicy(keep_last=config.keep_last, max_age_days=config.max_age_days)
        if config.trim
        else None
    )
    with AuraCheckpointSaver.from_settings(lh.settings, archive=False) as saver:
        if policy is None:
            result, trimmed = archive_checkpoints(lh, saver, day, run_id=context.run.run_id), None
        else:
            result, trimmed = archive_and_trim(lh, saver, day, policy, run_id=context.run.run_id)
    context.log.info(
        f"{day}: archived {result.checkpoints} checkpoints, {result.writes} writes, "
        f"{result.blobs} blobs; hot rows trimmed: {trimmed.trimmed if trimmed else 0}"
    )
    common = _common(result)
    if trimmed is not None:
        common |= {"hot/trimmed": trimmed.trimmed, "hot/kept_not_archived": trimmed.not_archived}
    for key, added in (
        (CHECKPOINTS_KEY, result.checkpoints),
        (WRITES_KEY, result.writes),
        (BLOBS_KEY, result.blobs),
    ):
        table = key.path[-1]
        branch = lh.settings.branch
        write = WriteResult(table, branch, added, refs.head(lh.table(table), branch), "archive")
        result_ = snapshot_result(
            key, write, None, day, {**common, "rows_added": added}, lakehouse=lh
        )
        audit = validate_ref(lh, table, branch, day=day, run_id=context.run.run_id)
        yield MaterializeResult(
            asset_key=key,
            metadata=result_.metadata,
            data_version=result_.data_version,
            tags=result_.tags,
            check_results=check_results(key, audit),
        )


def _common(result: ArchiveResult) -> dict[str, Any]:
    meta: dict[str, Any] = {
        "archive/raw_bytes": result.raw_bytes,
        "archive/bytes_added": result.archive_bytes,
    }
    if result.ratio is not None:
        meta["archive/size_ratio"] = round(result.ratio, 4)
    return meta
