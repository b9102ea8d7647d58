"""The topology domain's tables: workflow runs, their dead letters, signatures and drift reports.

* ``workflow_runs``: one row per workflow run from ``aura:events:workflows`` (key ``run_id``),
  nodes and edges as nested lists exactly as the event carried them.
* ``topology_history``: one row per run, its persistent-homology signature
  (:mod:`lakehouse.topology.tda`): diagrams (``[[birth, death], ...]``, ``death`` may be
  ``inf``), Betti numbers, entropy, landscape norms, bottleneck score and agents, and the
  fixed-length retrieval vectors; plus the run's scalar summaries the baseline tests.
* ``drift_reports``: per day and detector (``topology`` | ``scalar``), the test's statistic,
  p-value and verdict, the reference window, and the snapshot ids of the tables it read.
"""

from __future__ import annotations

from pyiceberg.schema import Schema
from pyiceberg.types import (
    BooleanType,
    DoubleType,
    ListType,
    LongType,
    NestedField,
    StringType,
    StructType,
    TimestamptzType,
)

from lakehouse.ingest.streams import rejected_table_spec
from lakehouse.table.expectations import between, in_set, not_null, unique
from lakehouse.table.registry import TableSpec, column, register

STATUSES = ("ok", "error", "interrupted")
DETECTORS = ("topology", "scalar")

_NODE = StructType(
    NestedField(101, "id", StringType(), required=True),
    NestedField(102, "kind", StringType(), required=True),
)
_EDGE = StructType(
    NestedField(111, "src", StringType(), required=True),
    NestedField(112, "dst", StringType(), required=True),
    NestedField(113, "calls", LongType(), required=True),
    NestedField(114, "latency_ms", DoubleType(), required=True),
    NestedField(115, "errors", LongType(), required=True),
)


def _floats(element_id: int) -> ListType:
    return ListType(element_id, DoubleType(), element_required=True)


def _diagram(list_id: int) -> ListType:
    """``[[birth, death], ...]``: a list of two-element lists of doubles."""
    return ListType(list_id, _floats(list_id + 1), element_required=True)


WORKFLOW_RUNS = register(
    TableSpec(
        name="workflow_runs",
        schema=Schema(
            column(1, "run_id", StringType(), doc="Unique id of the workflow run"),
            column(2, "ts", TimestamptzType(), doc="When the run started (UTC)"),
            column(3, "tenant_id", StringType()),
            column(4, "workflow", StringType()),
            column(5, "status", StringType(), doc="ok | error | interrupted"),
            column(6, "nodes", ListType(103, _NODE, element_required=True)),
            column(7, "edges", ListType(116, _EDGE, element_required=True), doc="Directed"),
            column(8, "stream_id", StringType(), required=False, doc="Redis stream entry id"),
            column(9, "ingested_at", TimestamptzType(), required=False),
        ),
        time_column="ts",
        key=("run_id",),
        description="One row per agent workflow run, from the aura:events:workflows stream",
        expectations=(
            not_null("run_id"),
            unique("run_id"),
            not_null("ts"),
            not_null("tenant_id"),
            not_null("workflow"),
            in_set("status", STATUSES),
        ),
    )
)

WORKFLOW_RUNS_REJECTED = register(
    rejected_table_spec(
        "workflow_runs_rejected",
        "Dead letters: workflow-trace events that broke the contract, with the reason",
    )
)

TOPOLOGY_HISTORY = register(
    TableSpec(
        name="topology_history",
        schema=Schema(
            column(1, "run_id", StringType()),
            column(2, "ts", TimestamptzType()),
            column(3, "tenant_id", StringType()),
            column(4, "workflow", StringType()),
            column(5, "status", StringType()),
            column(6, "n_nodes", LongType()),
            column(7, "n_edges", LongType()),
            column(8, "mean_latency_ms", DoubleType(), doc="Mean edge latency of the run"),
            column(9, "error_rate", DoubleType(), doc="Failed calls over calls"),
            column(10, "betti_0", LongType(), doc="Connected components (infinite H0 bars)"),
            column(11, "betti_1", LongType(), doc="Cycles no triangle fills (infinite H1 bars)"),
            column(12, "entropy", DoubleType(), doc="Persistence entropy (nats)"),
            column(13, "landscape_l1_h0", DoubleType()),
            column(14, "landscape_l1_h1", DoubleType()),
            column(15, "landscape_l2_h0", DoubleType()),
            column(16, "landscape_l2_h1", DoubleType()),
            column(17, "bottleneck_score", DoubleType(), doc="Largest share of calls on a node"),
            column(
                18,
                "bottleneck_agents",
                ListType(118, StringType(), element_required=True),
                doc="Nodes carrying more than half of the run's calls, most loaded first",
            ),
            column(19, "dgm0", _diagram(120), doc="H0 diagram [[birth, death], ...]"),
            column(20, "dgm1", _diagram(122), doc="H1 diagram [[birth, death], ...]"),
            column(21, "image", _floats(124), doc="Persistence images of H0 and H1"),
            column(22, "betti_curve", _floats(125), doc="Betti curves of H0 and H1"),
            column(23, "computed_at", TimestamptzType(), required=False),
        ),
        time_column="ts",
        key=("run_id",),
        description="One row per workflow run: its persistent homology signature",
        expectations=(
            not_null("run_id"),
            unique("run_id"),
            not_null("ts"),
            not_null("tenant_id"),
            between("betti_0", min_value=1),
            between("betti_1", min_value=0),
            between("entropy", min_value=0),
            between("bottleneck_score", 0, 1),
        ),
        diff_metrics={
            "betti_1 mean": ("betti_1", "mean"),
            "entropy mean": ("entropy", "mean"),
            "bottleneck_score mean": ("bottleneck_score", "mean"),
        },
    )
)

DRIFT_REPORTS = register(
    TableSpec(
        name="drift_reports",
        schema=Schema(
            column(1, "day", TimestamptzType(), doc="UTC midnight of the day tested"),
            column(2, "detector", StringType(), doc="topology | scalar"),
            column(3, "statistic", DoubleType()),
            column(4, "p_value", DoubleType()),
            column(5, "drift", BooleanType(), doc="p_value < alpha"),
            column(6, "alpha", DoubleType()),
            column(7, "reference_days", LongType(), doc="Earlier days with runs in the window"),
            column(8, "window_days", LongType(), doc="Configured reference window length"),
            column(9, "n_ref", LongType()),
            column(10, "n_cur", LongType()),
            column(11, "n_permutations", LongType()),
            column(12, "seed", LongType()),
            column(13, "distance", StringType(), required=False),
            column(14, "landscape_p_value", DoubleType(), required=False),
            column(15, "history_snapshot_id", LongType(), required=False),
            column(16, "runs_snapshot_id", LongType(), required=False),
            column(17, "computed_at", TimestamptzType(), required=False),
        ),
        time_column="day",
        key=("day", "detector"),
        description="Daily drift tests of workflow shape (topology) and run scalars (baseline)",
        expectations=(
            not_null("detector"),
            unique("day", "detector"),
            in_set("detector", DETECTORS),
            between("p_value", 0, 1),
        ),
        tenant_neutral=True,  # one row per day/model/policy across tenants
    )
)
