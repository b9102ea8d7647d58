"""The Iceberg IO manager: Arrow / Polars asset outputs stored in aura tables, inputs loaded.

An asset that returns an Arrow table or Polars DataFrame (with this as its ``io_manager``) has
the partition's day overwritten through write-audit-publish (:func:`write_audited`): the batch
is written to an audit branch, the table's great-expectations suite validates the branch
snapshot, and only on success is the target (main, or the branch the lakehouse resource names)
fast-forwarded to it. On failure the target is unchanged, the audit branch is kept and the step
fails with the failing expectations as metadata. The target branch is shown as the run tag
``aura/branch``. Assets that want their snapshot id as data version and blocking check results
write through ``aura_assets.materialize`` instead (an IO manager can set neither).
"""

import polars as pl
import pyarrow as pa
from dagster import ConfigurableIOManager, Failure, InputContext, OutputContext, ResourceDependency

from aura_resources.lakehouse import LakehouseResource
from aura_resources.metadata import (
    lineage_of,
    metadata_for,
    partition_day,
    table_for,
    tag_run,
    to_arrow,
    wap_metadata,
    wap_snapshot,
    write_audited,
)


class IcebergIOManager(ConfigurableIOManager):
    """Stores Arrow / Polars asset outputs in aura tables; loads inputs as Arrow or Polars."""

    lakehouse: ResourceDependency[LakehouseResource]

    def handle_output(self, context: OutputContext, obj: object) -> None:
        if obj is None:  # assets that wrote their table themselves return nothing
            return
        arrow = to_arrow(obj)
        day = partition_day(context.partition_key if context.has_partition_key else None)
        lineage = lineage_of(context, context.asset_key)
        wap = write_audited(
            self.lakehouse.lakehouse(), table_for(context.asset_key), arrow, day, lineage
        )
        tag_run(context.step_context.instance, context.run_id, wap.target)
        metadata = {
            **metadata_for(wap.write, None, day),  # the snapshot read below shows the data
            **wap_snapshot(self.lakehouse.lakehouse(), wap, day),
            **wap_metadata(wap),
        }
        if not wap.published:  # an IO manager cannot report check results: fail the step
            raise Failure(description=wap.audit.summary(), metadata=metadata)
        context.add_output_metadata(metadata)

    def load_input(self, context: InputContext) -> pa.Table | pl.DataFrame:
        lakehouse = self.lakehouse.lakehouse()
        table = table_for(context.asset_key)
        if context.has_asset_partitions:
            window = context.asset_partitions_time_window
            data = lakehouse.read(table, window=(window.start, window.end))
        else:
            data = lakehouse.read(table)
        if context.dagster_type.typing_type is pl.DataFrame:
            return pl.from_arrow(data)
        return data
