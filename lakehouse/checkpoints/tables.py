"""Iceberg tables of the checkpoint archive (each partitioned by day of ``ts``).

``workflow_checkpoints``
    One row per checkpoint, exactly as the hot store holds it: the checkpoint without its large
    channel values, plus ``blob_versions`` naming the (channel, version) values it uses.
``workflow_checkpoint_writes``
    The pending writes of each archived checkpoint.
``workflow_checkpoint_blobs``
    Channel values, coalesced: one row per (thread, namespace, channel, version), and the bytes
    of identical values stored once (by content hash); later rows carry only the hash.
"""

from __future__ import annotations

from pyiceberg.schema import Schema
from pyiceberg.types import BinaryType, LongType, StringType, TimestamptzType

from lakehouse.table.registry import TableSpec, column, register

CHECKPOINTS = "workflow_checkpoints"
WRITES = "workflow_checkpoint_writes"
BLOBS = "workflow_checkpoint_blobs"
ASSET = "workflow_checkpoints"


CHECKPOINTS_SPEC = register(
    TableSpec(
        name=CHECKPOINTS,
        schema=Schema(
            column(1, "thread_id", StringType()),
            column(2, "checkpoint_ns", StringType()),
            column(3, "checkpoint_id", StringType(), doc="uuid6: sorts in creation order"),
            column(4, "parent_checkpoint_id", StringType(), required=False),
            column(5, "run_id", StringType(), required=False),
            column(6, "ts", TimestamptzType(), doc="When LangGraph created the checkpoint"),
            column(7, "type", StringType(), doc="Serializer type tag of `checkpoint`"),
            column(8, "checkpoint", BinaryType(), doc="Checkpoint without its blob values"),
            column(9, "metadata", StringType(), doc="Checkpoint metadata as JSON"),
            column(10, "blob_versions", StringType(), doc="JSON {channel: version} of blobs"),
        ),
        time_column="ts",
        key=("thread_id", "checkpoint_ns", "checkpoint_id"),
        description="Archived LangGraph checkpoints (channel values live in the blobs table)",
    )
)

WRITES_SPEC = register(
    TableSpec(
        name=WRITES,
        schema=Schema(
            column(1, "thread_id", StringType()),
            column(2, "checkpoint_ns", StringType()),
            column(3, "checkpoint_id", StringType()),
            column(4, "task_id", StringType()),
            column(5, "idx", LongType()),
            column(6, "task_path", StringType()),
            column(7, "channel", StringType()),
            column(8, "type", StringType(), required=False),
            column(9, "blob", BinaryType()),
            column(10, "ts", TimestamptzType(), doc="ts of the checkpoint the write belongs to"),
        ),
        time_column="ts",
        key=("thread_id", "checkpoint_ns", "checkpoint_id", "task_id", "idx"),
        description="Pending writes of archived LangGraph checkpoints",
    )
)

BLOBS_SPEC = register(
    TableSpec(
        name=BLOBS,
        schema=Schema(
            column(1, "thread_id", StringType()),
            column(2, "checkpoint_ns", StringType()),
            column(3, "channel", StringType()),
            column(4, "version", StringType()),
            column(5, "content_hash", StringType(), doc="blake2b-128 of type and bytes"),
            column(6, "type", StringType()),
            column(
                7,
                "blob",
                BinaryType(),
                required=False,
                doc="The bytes; null when another row holds the same content_hash",
            ),
            column(8, "ts", TimestamptzType(), doc="ts of the first checkpoint using it"),
        ),
        time_column="ts",
        key=("thread_id", "checkpoint_ns", "channel", "version"),
        description="Channel values of archived checkpoints, once per version and content",
    )
)
