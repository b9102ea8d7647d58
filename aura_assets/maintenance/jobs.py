"""Apply the retention that audit branches, run tags and release tags carry."""

from dagster import OpExecutionContext, job, op

from aura_resources.lakehouse import LakehouseResource
from lakehouse import refs
from lakehouse.tables import all_specs


@op(description="Remove branches and tags older than their max-ref-age-ms, on every table.")
def expire_refs_op(context: OpExecutionContext, lakehouse: LakehouseResource) -> None:
    lh = lakehouse.lakehouse()
    removed: dict[str, list[str]] = {}
    for spec in all_specs():
        expired = refs.expire_refs(lh.table(spec.name))
        if expired:
            removed[spec.name] = expired
            context.log.info(f"{spec.name}: removed {len(expired)} expired ref(s)")
    total = sum(len(names) for names in removed.values())
    context.log.info(f"removed {total} expired ref(s): {removed}")


@job(
    name="ref_retention",
    description="Ref retention: expired audit branches and tags are removed from every table.",
)
def ref_retention_job() -> None:
    expire_refs_op()
