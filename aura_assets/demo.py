"""The demo's Dagster part: materialise the routing job for each day in the AURA instance."""

from collections.abc import Iterator
from datetime import date

from lakehouse.settings import Settings

QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


def run_demo(settings: Settings, days: list[date]) -> Iterator[str]:
    """Run ``routing_ingest`` for each day in the persistent instance; yield progress lines."""
    from aura_assets.definitions import defs
    from aura_assets.instance import open_instance

    instance = open_instance(settings)
    job = defs.resolve_job_def("routing_ingest")
    for day in days:
        result = job.execute_in_process(
            partition_key=day.isoformat(),
            instance=instance,
            run_config=QUIET,
            raise_on_error=True,
        )
        yield f"{day}: run {result.run_id} {'succeeded' if result.success else 'FAILED'}"
