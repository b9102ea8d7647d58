"""Checkpoint assets: a day of LangGraph checkpoints archived into Iceberg, then hot retention."""

from typing import Any

from dagster import (
    AssetExecutionContext,
    AssetKey,
    AssetSpec,
    Config,
    DataVersion,
    MaterializeResult,
    multi_asset,
)
from pydantic import Field

from aura_assets.materialize import partition_day
from aura_assets.partitions import DAILY
from aura_resources.lakehouse import LakehouseResource
from lakehouse.checkpoints import (
    AuraCheckpointSaver,
    RetentionPolicy,
    archive_and_trim,
    archive_checkpoints,
)
from lakehouse.checkpoints.archive import BLOBS, CHECKPOINTS, WRITES, ArchiveResult

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


def _spec(key: AssetKey, description: str) -> AssetSpec:
    return AssetSpec(
        key,
        description=description,
        code_version=ARCHIVE_CODE_VERSION,
        partitions_def=DAILY,
        group_name="checkpoints",
        kinds={"iceberg", "langgraph"},
        metadata={"iceberg/table": f"aura.{key.path[-1]}"},
    )


@multi_asset(
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
)
def workflow_checkpoints(
    context: AssetExecutionContext, config: CheckpointArchiveConfig, lakehouse: LakehouseResource
):  # type: ignore[no-untyped-def]
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
        info = lh.info(key.path[-1])
        yield MaterializeResult(
            asset_key=key,
            metadata={
                **common,
                "rows_added": added,
                "iceberg/snapshot_id": str(info.snapshot_id),
                "partition": day.isoformat(),
            },
            data_version=DataVersion(str(info.snapshot_id)),
        )


def _common(result: ArchiveResult) -> dict[str, Any]:
    meta: dict[str, Any] = {
        "archive/raw_bytes": result.raw_bytes,
        "archive/bytes_added": result.archive_bytes,
    }
    if result.ratio is not None:
        meta["archive/size_ratio"] = round(result.ratio, 4)
    return meta
