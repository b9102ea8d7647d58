"""The table registry discovers every domain's tables; specs carry their contract as data."""

from __future__ import annotations

import pkgutil
import subprocess
import sys
import textwrap

import pytest
from pyiceberg.schema import Schema
from pyiceberg.types import StringType

import lakehouse
from lakehouse.table.expectations import between, in_set, not_null, unique
from lakehouse.table.registry import TableSpec, all_specs, column, data_specs, register, spec_for
from quality.suites import suite_for


@pytest.mark.process
def test_a_fresh_process_discovers_every_domain_without_a_list() -> None:
    code = textwrap.dedent(
        """
        import sys
        from lakehouse.table.registry import all_specs, data_specs
        names = {s.name for s in all_specs()}
        data = {s.name for s in data_specs()}
        print(sorted(names)); print(sorted(names - data))
        assert "quality" not in " ".join(sys.modules), "the library imported quality"
        # no vector-engine client before a vector is touched (half a second per `aura` command)
        assert "qdrant_client" not in sys.modules, "table discovery imported qdrant_client"
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.splitlines()
    names, bookkeeping = eval(out[0]), eval(out[1])  # noqa: S307 - our own repr of two lists
    assert {"routing_decisions", "routing_decisions_rejected", "routing_model_daily"} <= set(names)
    assert {"workflow_checkpoints", "workflow_checkpoint_blobs"} <= set(names)
    assert bookkeeping == ["experiments", "quality_results"]


def test_every_domain_folder_with_tables_registers_them() -> None:
    domains = [m.name for m in pkgutil.iter_modules(lakehouse.__path__) if m.ispkg]
    registered_by = {spec_for(s.name).name: s for s in all_specs()}
    for domain in domains:
        module = sys.modules.get(f"lakehouse.{domain}.tables")
        if module is None:
            continue
        specs = [v for v in vars(module).values() if isinstance(v, TableSpec)]
        assert specs, f"lakehouse.{domain}.tables registers no table"
        assert all(s.name in registered_by for s in specs)
    assert "lakehouse.routing.tables" in sys.modules


def test_suites_come_from_the_specs_expectations() -> None:
    routing = suite_for("routing_decisions")
    assert routing.expectations == spec_for("routing_decisions").expectations
    assert "quality_score_in_range" in [e.name for e in routing.expectations]
    derived = suite_for("experiments")  # declares none: its key's
    assert [e.name for e in derived.expectations] == [
        "experiment_not_null",
        "event_not_null",
        "event_at_not_null",
        "experiment_event_event_at_unique",
    ]
    assert [s.name for s in data_specs() if s.bookkeeping] == []


def test_a_spec_naming_unknown_columns_is_refused() -> None:
    schema = Schema(column(1, "name", StringType()), column(2, "kind", StringType()))
    with pytest.raises(ValueError, match=r"\['colour'\]"):
        register(
            TableSpec(
                name="test_bad_spec",
                schema=schema,
                key=("name",),
                description="bad",
                expectations=(in_set("colour", ["red"]),),
            )
        )
    with pytest.raises(ValueError, match="share names"):
        register(
            TableSpec(
                name="test_bad_spec",
                schema=schema,
                key=("name",),
                description="bad",
                expectations=(not_null("kind"), not_null("kind")),
            )
        )
    ok = register(
        TableSpec(
            name="test_good_spec",
            schema=schema,
            key=("name",),
            description="good",
            expectations=(unique("name"), in_set("kind", ["a", "b"])),
        )
    )
    assert [e.name for e in suite_for(ok.name).expectations] == ["name_unique", "kind_in_set"]
    assert between("x", 0, 1).describe() == "x in [0, 1]"


def test_processes_racing_to_set_a_tables_properties_all_succeed(
    lakehouse: lakehouse.Lakehouse,
) -> None:
    """Two processes opening the memory tables at once both set their properties; the one whose
    handle is stale loses the commit race, re-reads and finds nothing left to set."""
    from lakehouse.table.registry import ensure_properties

    stale = lakehouse.table("routing_decisions")
    wanted = {"aura.test-property": "1"}
    ensure_properties(lakehouse.table("routing_decisions"), wanted)  # the other process won

    ensure_properties(stale, wanted)
    assert stale.properties["aura.test-property"] == "1"
    assert lakehouse.table("routing_decisions").properties["aura.test-property"] == "1"
