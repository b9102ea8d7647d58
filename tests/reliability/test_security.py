"""Security: hostile names, SQL escapes, and secrets; each attack is counted, none succeeds.

* Every identifier surface (table, branch, tag, experiment, tenant) is fed path traversal, SQL,
  control characters, reserved and oversized names: each is refused with an AURA error and no
  file appears outside the test's home.
* ``aura sql`` is fed statements that try to read, write, attach, install or load anything
  outside the warehouse (a marker file sits next to it): every one fails, the marker's content
  never appears, no file is written.
* Names that reach SQL as data (a checkpoint thread id holding SQL) are inert.
* Secrets: with a password in ``AURA_PG_URL`` (server pass) and a memory key in
  ``AURA_MEMORY_KEY``, a Dagster run, ``aura config``, ``aura tables``, ``aura memory`` commands
  (one failing on a wrong key) and a failing command leave neither secret in any output, log,
  Dagster event storage, generated file or Iceberg metadata.
* Tampered artifacts: checkpoint values rewritten in the hot store (SQLite; Postgres on the
  server pass) or appended to the Iceberg archive, and router model files replaced (pickle,
  hostile skops, garbage, edited metadata; with the hash fixed too), each a payload that would
  create a marker file if its reader trusted it: every read is a clear AURA error naming what
  was refused, and the marker never appears.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from click.testing import CliRunner

from lakehouse import Lakehouse, Settings
from lakehouse.exceptions import AuraError
from lakehouse.table import refs
from reliability.harness import SERVERS

pytestmark = pytest.mark.reliability

HOSTILE_NAMES = [
    "../x",
    "../../etc/passwd",
    "a/../../b",
    "/etc/passwd",
    "..",
    ".hidden",
    "x'; DROP TABLE iceberg_tables; --",
    'x"; DROP TABLE iceberg_tables; --',
    "main' OR '1'='1",
    "a b",
    "",
    " ",
    "a\x00b",
    "a\nb",
    "a\u202eb",
    "a\u200bb",
    "HEAD",
    "main",
    "audit-1",
    "run-1",
    "x" * 129,
    "a*",
    "a:b",
    "$(rm -rf /)",
    "`id`",
    "a\\b",
    "C:\\Windows",
    "%2e%2e%2f",
    "~root",
]


def _tree(root: Path) -> set[str]:
    return {str(p) for p in root.rglob("*")}


def test_hostile_identifiers_are_refused_everywhere(
    lakehouse: Lakehouse, tmp_path: Path, figures
) -> None:  # type: ignore[no-untyped-def]
    from lakehouse.publish import experiments
    from lakehouse.table.tenants import check_tenant

    table = lakehouse.table("routing_decisions")
    before = _tree(tmp_path.parent)
    attempts = refused = accepted = 0
    accepted_examples: list[str] = []

    def attack(surface: str, call) -> None:  # type: ignore[no-untyped-def]
        nonlocal attempts, refused, accepted
        attempts += 1
        try:
            call()
        except (AuraError, ValueError):
            refused += 1
        else:
            accepted += 1
            accepted_examples.append(surface)

    for name in HOSTILE_NAMES:
        attack(f"table {name!r}", lambda n=name: lakehouse.table(n))
        attack(
            f"branch {name!r}",
            lambda n=name: refs.create_branch(table, refs.validate_ref_name(n, user=True)),
        )
        attack(f"experiment {name!r}", lambda n=name: experiments.create(lakehouse, n))
        if name not in ("main", "HEAD", "audit-1", "run-1"):  # reserved for refs only
            attack(f"tenant {name!r}", lambda n=name: check_tenant(n))
    created_outside = sorted(
        p for p in _tree(tmp_path.parent) - before if not p.startswith(str(tmp_path))
    )
    figures(
        attempts=attempts,
        refused=refused,
        accepted=accepted,
        accepted_examples=accepted_examples[:5],
        files_created_outside=len(created_outside),
    )
    assert accepted == 0 and not created_outside


SQL_ESCAPES = [
    "SELECT * FROM read_csv('{secret}')",
    "SELECT * FROM read_csv_auto('{secret}')",
    "SELECT * FROM read_text('{secret}')",
    "SELECT * FROM read_blob('{secret}')",
    "SELECT * FROM read_json('{secret}')",
    "SELECT * FROM read_parquet('{secret}')",
    "SELECT * FROM '{secret}'",
    "SELECT * FROM glob('{outside}/*')",
    "SELECT * FROM read_text('{warehouse}/../secret.txt')",
    "SELECT * FROM read_text('/etc/passwd')",
    "SELECT * FROM read_csv('/etc/passwd')",
    "SELECT * FROM iceberg_scan('{outside}')",
    "SELECT * FROM parquet_metadata('{secret}')",
    "ATTACH '{outside}/x.db' AS x",
    "ATTACH ':memory:' AS m",
    "INSTALL httpfs",
    "LOAD httpfs",
    "FORCE INSTALL iceberg",
    "COPY (SELECT 1) TO '{outside}/out.csv'",
    "COPY (SELECT 1) TO '{warehouse}/out.csv'",
    "EXPORT DATABASE '{outside}/export'",
    "SET enable_external_access = true",
    "SET allowed_directories = ['/']",
    "SET lock_configuration = false",
    "RESET lock_configuration",
    "PRAGMA enable_external_access",
    "CREATE TABLE t AS SELECT 1",
    "CREATE SECRET s (TYPE s3, KEY_ID 'x', SECRET 'y')",
    "CALL pragma_version(); COPY (SELECT 1) TO '{outside}/two.csv'",
    "SELECT 1; ATTACH '{outside}/y.db'",
    "DROP VIEW routing_decisions",
    "SELECT getenv('HOME')",
    "SELECT * FROM duckdb_secrets()",
]


def test_aura_sql_cannot_escape_the_warehouse(
    lakehouse: Lakehouse, in_aura_env: Settings, tmp_path: Path, figures
) -> None:  # type: ignore[no-untyped-def]
    from aura_assets.cli.sql import sql
    from lakehouse.routing import ROUTING_DECISIONS

    lakehouse.table(ROUTING_DECISIONS.name)
    outside = tmp_path / "outside"
    outside.mkdir()
    secret = outside / "secret.txt"
    secret.write_text("TOP-SECRET-MARKER,1\n")
    warehouse = urlsplit(in_aura_env.warehouse).path
    before = _tree(tmp_path)
    escaped: list[str] = []
    for template in SQL_ESCAPES:
        query = template.format(secret=secret, outside=outside, warehouse=warehouse)
        result = CliRunner().invoke(sql, [query])
        if (
            result.exit_code == 0
            or "TOP-SECRET-MARKER" in result.output
            or ("root:" in result.output)
        ):
            escaped.append(query)
    written = sorted(_tree(tmp_path) - before)
    written = [p for p in written if not p.startswith(warehouse) or p.endswith(".csv")]
    figures(
        attempts=len(SQL_ESCAPES),
        escaped=len(escaped),
        escaped_examples=escaped[:3],
        files_written=len(written),
    )
    assert not escaped and not written


def test_names_that_reach_sql_as_data_are_inert(tmp_path: Path, figures) -> None:  # type: ignore[no-untyped-def]
    from helpers import graph_builder, thread_config

    from lakehouse.checkpoints import AuraCheckpointSaver

    threads = [n for n in HOSTILE_NAMES if n and "\x00" not in n]
    with AuraCheckpointSaver.from_conn_string(str(tmp_path / "hot.db")) as saver:
        saver.setup()
        graph = graph_builder().compile(checkpointer=saver)
        for thread in threads:
            graph.invoke(
                {"messages": [{"role": "user", "content": "q"}], "step": 0}, thread_config(thread)
            )
        roundtrip = sum(1 for t in threads if saver.get_tuple(thread_config(t)) is not None)
        total = len(list(saver.list(None)))
    figures(thread_ids=len(threads), roundtrip=roundtrip, checkpoints=total)
    assert roundtrip == len(threads)


@pytest.mark.skipif(
    not SERVERS, reason="needs PostgreSQL (the server pass): trust auth takes any password"
)
def test_secrets_appear_nowhere(
    aura_env: dict[str, str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    figures,
) -> None:  # type: ignore[no-untyped-def]
    import dagster as dg
    from helpers import decision, payload

    from aura_assets.cli import main as cli
    from aura_assets.definitions import defs
    from lakehouse.memory import new_key
    from lakehouse.simulate.routing import publish
    from lakehouse.stores import open_redis

    password = "Zq7-S3cret-" + os.urandom(4).hex()
    url = urlsplit(aura_env["AURA_PG_URL"])
    with_password = url._replace(
        netloc=f"{url.username or 'postgres'}:{password}@{url.hostname}:{url.port or 5432}"
    ).geturl()
    memory_key = new_key()
    env = aura_env | {"AURA_PG_URL": with_password, "AURA_MEMORY_KEY": memory_key}
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    dagster_home = tmp_path / "dagster"
    dagster_home.mkdir()
    caplog.set_level(logging.DEBUG)
    outputs: list[str] = []
    client = open_redis(Settings.from_env(env))
    client.flushdb()
    publish(client, [payload(decision(i)) for i in range(20)] + ["{broken"])
    with dg.instance_for_test(temp_dir=str(dagster_home)) as instance:
        result = defs.resolve_job_def("routing_ingest").execute_in_process(
            partition_key="2026-11-20", instance=instance
        )
        assert result.success
        outputs += [repr(entry) for entry in instance.all_logs(result.run_id)]
    runner = CliRunner()
    for args in (["config"], ["tables"], ["sql", "SELECT 1"]):
        outputs.append(runner.invoke(cli, args).output)
    stored = runner.invoke(cli, ["memory", "store", "acme", "a sealed memory"])
    outputs.append(stored.output)
    monkeypatch.setenv("AURA_MEMORY_KEY", new_key())  # a wrong key: the error names no key
    wrong = runner.invoke(cli, ["memory", "get", "acme", stored.output.strip()])
    assert wrong.exit_code == 1 and "AURA_MEMORY_KEY" in wrong.output
    outputs.append(wrong.output + repr(wrong.exception))
    monkeypatch.setenv("AURA_MEMORY_KEY", memory_key)
    bad = with_password.replace(f"/{url.path.lstrip('/')}", "/no_such_database")
    monkeypatch.setenv("AURA_PG_URL", bad)
    monkeypatch.setenv("AURA_CATALOG_NAME", "other")
    failing = runner.invoke(cli, ["tables"])
    outputs.append(failing.output + repr(failing.exception))
    outputs.append(caplog.text)
    files = [p for p in Path(env["AURA_HOME"]).rglob("*") if p.is_file()]
    files += [p for p in dagster_home.rglob("*") if p.is_file()]
    secrets = (password, memory_key)
    leaked_files = [str(p) for p in files if any(s.encode() in p.read_bytes() for s in secrets)]
    leaked_outputs = [o[:120] for o in outputs if any(s in o for s in secrets)]
    figures(
        outputs_scanned=len(outputs),
        files_scanned=len(files),
        leaked_outputs=len(leaked_outputs),
        leaked_files=leaked_files[:5],
    )
    assert any(":***@" in o for o in outputs), "the URL was never shown, so never tested"
    assert not leaked_outputs and not leaked_files


# ------------------------------------------------------------------- tampered stored artifacts


class _Trap:
    """Unpickling this object creates ``path`` (what a hostile pickle would do, harmlessly)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple[object, tuple[str, str]]:
        return (open, (str(self.path), "w"))


def _hostile_payloads(marker: Path) -> dict[str, tuple[str, bytes]]:
    """Stored ``(type, bytes)`` values that each create ``marker`` if their reader trusts them."""
    import json
    import pickle

    import ormsgpack

    def ext(code: int, value: object) -> bytes:
        return ormsgpack.packb(ormsgpack.Ext(code, ormsgpack.packb(value)))

    lc = {"lc": 1, "type": "constructor", "id": ["builtins", "open"], "kwargs": {}}
    return {
        "pickle": ("pickle", pickle.dumps(_Trap(marker))),
        "msgpack constructor": ("msgpack", ext(1, ("builtins", "open", [str(marker), "w"]))),
        "msgpack single arg": ("msgpack", ext(0, ("os", "system", f"touch {marker}"))),
        "msgpack method": ("msgpack", ext(3, ("pathlib", "Path", str(marker), "touch"))),
        "json constructor": ("json", json.dumps(lc | {"args": [str(marker), "w"]}).encode()),
        "garbage": ("msgpack", b"\xc1" + os.urandom(64)),
        "unknown type": ("exec", b"open('x', 'w')"),
    }


def test_tampered_checkpoints_are_clear_errors_never_code_execution(
    settings: Settings, tmp_path: Path, figures
) -> None:  # type: ignore[no-untyped-def]
    """Checkpoint values rewritten in the hot store (SQLite, or Postgres on the server pass) and
    appended to the Iceberg archive: each read is a CheckpointDecodeError, nothing executes."""
    import uuid
    from datetime import UTC, datetime

    import pyarrow as pa
    from helpers import graph_builder, thread_config

    from lakehouse.checkpoints import AuraCheckpointSaver, CheckpointDecodeError
    from lakehouse.checkpoints._exec import Stmt

    marker = tmp_path / "executed"
    payloads = _hostile_payloads(marker)
    lh = Lakehouse(settings)
    refused: dict[str, int] = {}
    unclear: list[str] = []

    def expect_refusal(kind: str, read: object) -> None:
        try:
            read()  # type: ignore[operator]
        except CheckpointDecodeError as exc:
            refused[kind] = refused.get(kind, 0) + 1
            if "thread" not in str(exc) or "checkpoint" not in str(exc):
                unclear.append(str(exc))
        else:
            unclear.append(f"{kind}: read without an error")

    with AuraCheckpointSaver.from_settings(settings) as saver:
        graph = graph_builder().compile(checkpointer=saver)
        d = saver._exec.dialect
        for part, sql in (
            ("checkpoint", "UPDATE {checkpoints} SET type = ?, checkpoint = ? WHERE thread_id = ?"),
            ("channel", "UPDATE {blobs} SET type = ?, blob = ? WHERE thread_id = ?"),
            ("write", "UPDATE {writes} SET type = ?, blob = ? WHERE thread_id = ?"),
        ):
            for kind, (type_, data) in payloads.items():
                thread = f"tamper-{uuid.uuid4().hex[:8]}"
                graph.invoke(
                    {"messages": [{"role": "user", "content": "q"}], "step": 0},
                    thread_config(thread),
                )
                saver.put_writes(
                    saver.get_tuple(thread_config(thread)).config,  # type: ignore[union-attr]
                    [("messages", "pending")],
                    "task-1",
                )

                def tamper(t: str = thread, s: str = sql, v: tuple[str, bytes] = (type_, data)):  # type: ignore[no-untyped-def]
                    yield Stmt(d.render(s), (v[0], v[1], t))

                saver._exec.run(tamper(), write=True)
                expect_refusal(
                    f"hot {part} {kind}", lambda t=thread: saver.get_tuple(thread_config(t))
                )
                expect_refusal(
                    f"hot list {part} {kind}", lambda t=thread: list(saver.list(thread_config(t)))
                )

    # The Iceberg archive: rows appended as if someone wrote to the warehouse.
    spec = lh.spec("workflow_checkpoints")
    with AuraCheckpointSaver.from_settings(settings) as saver:
        for i, (kind, (type_, data)) in enumerate(payloads.items()):
            thread = f"tamper-archive-{uuid.uuid4().hex[:8]}"
            row = {
                "thread_id": thread,
                "checkpoint_ns": "",
                "checkpoint_id": f"1ef{i:05d}",
                "parent_checkpoint_id": None,
                "run_id": None,
                "ts": datetime.now(UTC),
                "type": type_,
                "checkpoint": data,
                "metadata": "{}",
                "blob_versions": "{}",
            }
            lh.append("workflow_checkpoints", pa.Table.from_pylist([row], schema=spec.arrow_schema))
            config = thread_config(thread) | {}
            config["configurable"] = config["configurable"] | {
                "checkpoint_id": row["checkpoint_id"]
            }
            expect_refusal(f"archive {kind}", lambda c=config: saver.get_tuple(c))
    figures(
        payloads=len(payloads),
        reads_refused=sum(refused.values()),
        reads_attempted=len(payloads) * 7,
        unclear_or_accepted=len(unclear),
        executed=marker.exists(),
        example=next(iter(unclear), ""),
    )
    assert not marker.exists(), "a tampered checkpoint executed code"
    assert not unclear, unclear[:3]


def test_tampered_router_artifacts_are_clear_errors_never_code_execution(
    settings: Settings, tmp_path: Path, figures
) -> None:  # type: ignore[no-untyped-def]
    """A router model's files replaced (pickle, hostile skops, edited metadata, with and without
    a matching hash): every load is a ModelArtifactError, nothing executes."""
    import hashlib
    import json
    import pickle
    import shutil
    from datetime import date

    import skops.io as sio

    from lakehouse.publish.wap import accept_all
    from lakehouse.router import training, versions
    from lakehouse.router.model import ARTIFACT, METADATA, ModelArtifactError, RouterModel
    from lakehouse.simulate.routing import RoutingWorkload, simulate_day

    lh = Lakehouse(settings)
    day = date(2026, 11, 2)
    lh.append("routing_decisions", simulate_day(RoutingWorkload(start=day, seed=5), day, n=300)[0])
    training.build_training_set(lh, [day], audit=accept_all)
    model = versions.train(lh, [day], max_iter=10)
    good = Path(urlsplit(versions.artifact_root(lh)).path) / model.version
    marker = tmp_path / "executed"
    hostile = {
        "pickle": pickle.dumps(_Trap(marker)),
        "skops function": sio.dumps({"quality": os.system, "cost": os.system}),
        "skops object": sio.dumps({"quality": _Trap(marker), "cost": _Trap(marker)}),
        "garbage": os.urandom(256),
        "empty": b"",
    }
    cases = 0
    unclear: list[str] = []
    for kind, data in hostile.items():
        for rehash in (False, True):
            target = tmp_path / f"{kind}-{rehash}".replace(" ", "_")
            shutil.copytree(good, target)
            (target / ARTIFACT).write_bytes(data)
            if rehash:  # the attacker also fixed the hash in the metadata
                document = json.loads((target / METADATA).read_text())
                document["artifact_sha256"] = hashlib.sha256(data).hexdigest()
                (target / METADATA).write_text(json.dumps(document))
            cases += 1
            try:
                RouterModel.load(target)
                unclear.append(f"{kind} (rehash={rehash}) loaded")
            except ModelArtifactError as exc:
                if str(target) not in str(exc):
                    unclear.append(str(exc))
            except Exception as exc:
                unclear.append(f"{kind} (rehash={rehash}): {type(exc).__name__}: {exc}")
    for kind, text in {"metadata not JSON": "{", "metadata fields missing": "{}"}.items():
        target = tmp_path / kind.replace(" ", "_")
        shutil.copytree(good, target)
        (target / METADATA).write_text(text)
        cases += 1
        try:
            RouterModel.load(target)
            unclear.append(f"{kind} loaded")
        except ModelArtifactError:
            pass
        except Exception as exc:
            unclear.append(f"{kind}: {type(exc).__name__}: {exc}")
    assert RouterModel.load(good).version == model.version
    figures(
        tampered_artifacts=cases,
        refused_clearly=cases - len(unclear),
        executed=marker.exists(),
        example=next(iter(unclear), ""),
    )
    assert not marker.exists(), "a tampered router model executed code"
    assert not unclear, unclear[:3]
