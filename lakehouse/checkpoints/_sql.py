"""One SQL schema for the checkpoint hot store, rendered for two dialects (SQLite, PostgreSQL).

Statements are written once with ``?`` placeholders and ``{name}`` slots for the few places where
the dialects differ (column types, the JSON table function, JSON parameters); :class:`Dialect`
renders them. Tables:

``aura_checkpoints``
    One row per checkpoint. ``checkpoint`` holds the serialized checkpoint *without* the channel
    values that live in ``aura_checkpoint_blobs``; ``blob_versions`` maps those channels to the
    version to load, so a checkpoint never repeats a value it shares with its parent.
``aura_checkpoint_blobs``
    Channel values, once per (thread, namespace, channel, version).
``aura_checkpoint_writes``
    Pending writes of a checkpoint, keyed like LangGraph's (task id, idx).
``aura_checkpoint_archived_threads``
    Threads with rows in the Iceberg archive, written before the archive commit, so a saver
    (in any process) reads through to the archive only for them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from typing import Any, Literal

from lakehouse.exceptions import ConfigurationError

DialectName = Literal["sqlite", "postgres"]

_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")

MIGRATIONS: tuple[str, ...] = (
    """CREATE TABLE IF NOT EXISTS {checkpoints} (
        thread_id TEXT NOT NULL,
        checkpoint_ns TEXT NOT NULL DEFAULT '',
        checkpoint_id TEXT NOT NULL,
        parent_checkpoint_id TEXT,
        run_id TEXT,
        ts TEXT NOT NULL,
        type TEXT NOT NULL,
        checkpoint {bytes} NOT NULL,
        metadata {json} NOT NULL,
        blob_versions {json} NOT NULL,
        PRIMARY KEY (thread_id, checkpoint_ns, checkpoint_id)
    )""",
    """CREATE TABLE IF NOT EXISTS {blobs} (
        thread_id TEXT NOT NULL,
        checkpoint_ns TEXT NOT NULL DEFAULT '',
        channel TEXT NOT NULL,
        version TEXT NOT NULL,
        type TEXT NOT NULL,
        blob {bytes},
        PRIMARY KEY (thread_id, checkpoint_ns, channel, version)
    )""",
    """CREATE TABLE IF NOT EXISTS {writes} (
        thread_id TEXT NOT NULL,
        checkpoint_ns TEXT NOT NULL DEFAULT '',
        checkpoint_id TEXT NOT NULL,
        task_id TEXT NOT NULL,
        idx INTEGER NOT NULL,
        task_path TEXT NOT NULL DEFAULT '',
        channel TEXT NOT NULL,
        type TEXT,
        blob {bytes} NOT NULL,
        PRIMARY KEY (thread_id, checkpoint_ns, checkpoint_id, task_id, idx)
    )""",
    "CREATE INDEX IF NOT EXISTS aura_checkpoints_run_id_idx ON {checkpoints} (run_id)",
    "CREATE INDEX IF NOT EXISTS aura_checkpoints_ts_idx ON {checkpoints} (ts)",
    # Threads with rows in the archive: list() reads through only for these.
    """CREATE TABLE IF NOT EXISTS {archived} (
        thread_id TEXT NOT NULL PRIMARY KEY
    )""",
)

# Every read returns rows of this one shape, so a checkpoint, its channel values and its pending
# writes come back in a single round trip:
#   kind ('c' checkpoint, 'b' blob, 'w' write), thread_id, checkpoint_ns, checkpoint_id,
#   a, b, c (text), n (integer), type, data (bytes)
# 'c': a = parent_checkpoint_id, b = metadata JSON, c = ts
# 'b': a = channel, b = version
# 'w': a = task_id, b = channel, c = task_path, n = idx
_SELECT_TUPLES = """
WITH sel AS (
    SELECT thread_id, checkpoint_ns, checkpoint_id, parent_checkpoint_id, ts, type, checkpoint,
           metadata, blob_versions
    FROM {checkpoints}
    {where}
)
SELECT 'c', thread_id, checkpoint_ns, checkpoint_id, parent_checkpoint_id,
       CAST(metadata AS TEXT), ts, CAST(NULL AS INTEGER), type, checkpoint
FROM sel
UNION ALL
SELECT 'b', s.thread_id, s.checkpoint_ns, s.checkpoint_id, bl.channel, bl.version,
       CAST(NULL AS TEXT), CAST(NULL AS INTEGER), bl.type, bl.blob
FROM sel s
CROSS JOIN {json_each}(s.blob_versions) AS je
JOIN {blobs} bl
  ON bl.thread_id = s.thread_id AND bl.checkpoint_ns = s.checkpoint_ns
 AND bl.channel = je.key AND bl.version = je.value
UNION ALL
SELECT 'w', s.thread_id, s.checkpoint_ns, s.checkpoint_id, w.task_id, w.channel, w.task_path,
       w.idx, w.type, w.blob
FROM sel s
JOIN {writes} w
  ON w.thread_id = s.thread_id AND w.checkpoint_ns = s.checkpoint_ns
 AND w.checkpoint_id = s.checkpoint_id
"""

STATEMENTS: dict[str, str] = {
    "get_by_id": _SELECT_TUPLES.replace(
        "{where}", "WHERE thread_id = ? AND checkpoint_ns = ? AND checkpoint_id = ?"
    ),
    "get_latest": _SELECT_TUPLES.replace(
        "{where}",
        "WHERE thread_id = ? AND checkpoint_ns = ? ORDER BY checkpoint_id DESC LIMIT 1",
    ),
    "upsert_blob": """
        INSERT INTO {blobs} (thread_id, checkpoint_ns, channel, version, type, blob)
        VALUES (?, ?, ?, ?, ?, ?)
        ON CONFLICT (thread_id, checkpoint_ns, channel, version) DO NOTHING""",
    "upsert_checkpoint": """
        INSERT INTO {checkpoints} (thread_id, checkpoint_ns, checkpoint_id, parent_checkpoint_id,
            run_id, ts, type, checkpoint, metadata, blob_versions)
        VALUES (?, ?, ?, ?, ?, ?, ?, ?, {json_param}, {json_param})
        ON CONFLICT (thread_id, checkpoint_ns, checkpoint_id) DO UPDATE SET
            type = excluded.type, checkpoint = excluded.checkpoint,
            metadata = excluded.metadata, blob_versions = excluded.blob_versions,
            run_id = excluded.run_id, ts = excluded.ts""",
    "insert_checkpoint_if_absent": """
        INSERT INTO {checkpoints} (thread_id, checkpoint_ns, checkpoint_id, parent_checkpoint_id,
            run_id, ts, type, checkpoint, metadata, blob_versions)
        VALUES (?, ?, ?, ?, ?, ?, ?, ?, {json_param}, {json_param})
        ON CONFLICT (thread_id, checkpoint_ns, checkpoint_id) DO NOTHING""",
    "upsert_write": """
        INSERT INTO {writes} (thread_id, checkpoint_ns, checkpoint_id, task_id, task_path, idx,
            channel, type, blob)
        VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
        ON CONFLICT (thread_id, checkpoint_ns, checkpoint_id, task_id, idx) DO UPDATE SET
            channel = excluded.channel, type = excluded.type, blob = excluded.blob""",
    "insert_write": """
        INSERT INTO {writes} (thread_id, checkpoint_ns, checkpoint_id, task_id, task_path, idx,
            channel, type, blob)
        VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
        ON CONFLICT (thread_id, checkpoint_ns, checkpoint_id, task_id, idx) DO NOTHING""",
    "delete_thread_checkpoints": "DELETE FROM {checkpoints} WHERE thread_id = ?",
    "delete_thread_blobs": "DELETE FROM {blobs} WHERE thread_id = ?",
    "delete_thread_writes": "DELETE FROM {writes} WHERE thread_id = ?",
    "delete_thread_archived": "DELETE FROM {archived} WHERE thread_id = ?",
    "mark_archived": "INSERT INTO {archived} (thread_id) VALUES (?) ON CONFLICT DO NOTHING",
    "archived_thread": "SELECT 1 FROM {archived} WHERE thread_id = ?",
    "archived_any": "SELECT 1 FROM {archived} LIMIT 1",
    "threads_of_run": "SELECT DISTINCT thread_id FROM {checkpoints} WHERE run_id = ?",
    "delete_run_writes": """
        DELETE FROM {writes} AS w WHERE EXISTS (
            SELECT 1 FROM {checkpoints} c
            WHERE c.run_id = ? AND c.thread_id = w.thread_id
              AND c.checkpoint_ns = w.checkpoint_ns AND c.checkpoint_id = w.checkpoint_id)""",
    "delete_run_checkpoints": "DELETE FROM {checkpoints} WHERE run_id = ?",
    # Blobs no remaining checkpoint of the thread refers to.
    "gc_blobs": """
        DELETE FROM {blobs} AS b WHERE b.thread_id = ? AND NOT EXISTS (
            SELECT 1 FROM {checkpoints} c CROSS JOIN {json_each}(c.blob_versions) AS je
            WHERE c.thread_id = b.thread_id AND c.checkpoint_ns = b.checkpoint_ns
              AND je.key = b.channel AND je.value = b.version)""",
    "copy_checkpoints": """
        INSERT INTO {checkpoints} (thread_id, checkpoint_ns, checkpoint_id, parent_checkpoint_id,
            run_id, ts, type, checkpoint, metadata, blob_versions)
        SELECT ?, checkpoint_ns, checkpoint_id, parent_checkpoint_id, run_id, ts, type,
            checkpoint, metadata, blob_versions
        FROM {checkpoints} WHERE thread_id = ?
        ON CONFLICT (thread_id, checkpoint_ns, checkpoint_id) DO NOTHING""",
    "copy_blobs": """
        INSERT INTO {blobs} (thread_id, checkpoint_ns, channel, version, type, blob)
        SELECT ?, checkpoint_ns, channel, version, type, blob FROM {blobs} WHERE thread_id = ?
        ON CONFLICT (thread_id, checkpoint_ns, channel, version) DO NOTHING""",
    "copy_writes": """
        INSERT INTO {writes} (thread_id, checkpoint_ns, checkpoint_id, task_id, task_path, idx,
            channel, type, blob)
        SELECT ?, checkpoint_ns, checkpoint_id, task_id, task_path, idx, channel, type, blob
        FROM {writes} WHERE thread_id = ?
        ON CONFLICT (thread_id, checkpoint_ns, checkpoint_id, task_id, idx) DO NOTHING""",
    "delta_thread": """
        SELECT 1 FROM {checkpoints} WHERE thread_id = ?
        AND CAST(metadata AS TEXT) LIKE '%counters_since_delta_snapshot%' LIMIT 1""",
    "prune_writes": """
        DELETE FROM {writes} AS w WHERE w.thread_id = ? AND w.checkpoint_id < (
            SELECT MAX(c.checkpoint_id) FROM {checkpoints} c
            WHERE c.thread_id = w.thread_id AND c.checkpoint_ns = w.checkpoint_ns)""",
    "prune_checkpoints": """
        DELETE FROM {checkpoints} AS d WHERE d.thread_id = ? AND d.checkpoint_id < (
            SELECT MAX(c.checkpoint_id) FROM {checkpoints} c
            WHERE c.thread_id = d.thread_id AND c.checkpoint_ns = d.checkpoint_ns)""",
    "orphan_parents": """
        UPDATE {checkpoints} SET parent_checkpoint_id = NULL
        WHERE thread_id = ? AND parent_checkpoint_id IS NOT NULL AND NOT EXISTS (
            SELECT 1 FROM {checkpoints} p
            WHERE p.thread_id = {checkpoints}.thread_id
              AND p.checkpoint_ns = {checkpoints}.checkpoint_ns
              AND p.checkpoint_id = {checkpoints}.parent_checkpoint_id)""",
    # Row export for the archive and for retention (raw rows, nothing decoded).
    "export_checkpoints": """
        SELECT thread_id, checkpoint_ns, checkpoint_id, parent_checkpoint_id, run_id, ts, type,
               checkpoint, CAST(metadata AS TEXT), CAST(blob_versions AS TEXT)
        FROM {checkpoints} WHERE ts >= ? AND ts < ?""",
    "export_writes": """
        SELECT w.thread_id, w.checkpoint_ns, w.checkpoint_id, w.task_id, w.idx, w.task_path,
               w.channel, w.type, w.blob, c.ts
        FROM {writes} w JOIN {checkpoints} c
          ON c.thread_id = w.thread_id AND c.checkpoint_ns = w.checkpoint_ns
         AND c.checkpoint_id = w.checkpoint_id
        WHERE c.ts >= ? AND c.ts < ?""",
    "export_blobs": """
        SELECT bl.thread_id, bl.checkpoint_ns, bl.channel, bl.version, bl.type, bl.blob, k.ts
        FROM (
            SELECT c.thread_id, c.checkpoint_ns, je.key AS channel, je.value AS version,
                   MIN(c.ts) AS ts
            FROM {checkpoints} c CROSS JOIN {json_each}(c.blob_versions) AS je
            WHERE c.ts >= ? AND c.ts < ?
            GROUP BY c.thread_id, c.checkpoint_ns, je.key, je.value
        ) k
        JOIN {blobs} bl
          ON bl.thread_id = k.thread_id AND bl.checkpoint_ns = k.checkpoint_ns
         AND bl.channel = k.channel AND bl.version = k.version""",
    "write_counts": """
        SELECT thread_id, checkpoint_ns, checkpoint_id, COUNT(*) FROM {writes}
        WHERE thread_id = ? GROUP BY thread_id, checkpoint_ns, checkpoint_id""",
    "retention_candidates": """
        SELECT thread_id, checkpoint_ns, checkpoint_id, ts FROM {checkpoints}
        ORDER BY thread_id, checkpoint_ns, checkpoint_id DESC""",
    "delete_checkpoint_writes": """
        DELETE FROM {writes}
        WHERE thread_id = ? AND checkpoint_ns = ? AND checkpoint_id = ?""",
    "delete_checkpoint": """
        DELETE FROM {checkpoints}
        WHERE thread_id = ? AND checkpoint_ns = ? AND checkpoint_id = ?""",
    "count_rows": """
        SELECT (SELECT COUNT(*) FROM {checkpoints}), (SELECT COUNT(*) FROM {blobs}),
               (SELECT COUNT(*) FROM {writes})""",
    "count_checkpoints": "SELECT COUNT(*) FROM {checkpoints}",
}


@dataclass(frozen=True)
class Dialect:
    """How the shared statements are spelled for one database."""

    name: DialectName
    schema: str | None = None

    def __post_init__(self) -> None:
        if self.schema is not None:
            if self.name != "postgres":
                raise ConfigurationError(
                    "a checkpoint schema applies to PostgreSQL only; drop `schema=` for SQLite "
                    "(each SQLite file is its own namespace)"
                )
            if not _IDENT.match(self.schema):
                raise ConfigurationError(
                    f"invalid checkpoint schema name {self.schema!r}: use letters, digits and _"
                )

    @property
    def _slots(self) -> dict[str, str]:
        qualify = f'"{self.schema}".' if self.schema else ""
        pg = self.name == "postgres"
        return {
            "checkpoints": f"{qualify}aura_checkpoints",
            "blobs": f"{qualify}aura_checkpoint_blobs",
            "writes": f"{qualify}aura_checkpoint_writes",
            "migrations": f"{qualify}aura_checkpoint_migrations",
            "archived": f"{qualify}aura_checkpoint_archived_threads",
            "bytes": "BYTEA" if pg else "BLOB",
            "json": "JSONB" if pg else "TEXT",
            "json_each": "jsonb_each_text" if pg else "json_each",
            "json_param": "CAST(? AS JSONB)" if pg else "?",
        }

    def render(self, template: str) -> str:
        """Fill the dialect slots of ``template`` and switch to the driver's placeholder."""
        sql = template
        for key, value in self._slots.items():
            sql = sql.replace("{" + key + "}", value)
        if self.name == "postgres":
            sql = sql.replace("%", "%%").replace("?", "%s")
        return sql

    def sql(self, key: str) -> str:
        """A named statement of :data:`STATEMENTS`, rendered (cached)."""
        return _render_cached(self, key)

    def migrations(self) -> list[str]:
        """DDL that creates the schema; every statement is idempotent."""
        head = []
        if self.schema:
            head.append(f'CREATE SCHEMA IF NOT EXISTS "{self.schema}"')
        head.append(self.render("CREATE TABLE IF NOT EXISTS {migrations} (v INTEGER PRIMARY KEY)"))
        return head + [self.render(m) for m in MIGRATIONS]

    def metadata_filter(self, filter: dict[str, Any]) -> tuple[list[str], list[Any]]:
        """WHERE predicates (and their parameters) selecting checkpoints by metadata values."""
        import json

        if not filter:
            return [], []
        if self.name == "postgres":
            return ["metadata @> CAST(? AS JSONB)"], [json.dumps(filter)]
        clauses: list[str] = []
        params: list[Any] = []
        for key, value in filter.items():
            path = '$."' + str(key).replace('"', '\\"') + '"'
            if value is None:
                clauses.append("json_type(metadata, ?) = 'null'")
                params.append(path)
            elif isinstance(value, bool):
                clauses.append("json_type(metadata, ?) = ?")
                params += [path, "true" if value else "false"]
            elif isinstance(value, (int, float, str)):
                clauses.append("json_extract(metadata, ?) = ?")
                params += [path, value]
            else:
                clauses.append("json_extract(metadata, ?) = json(?)")
                params += [path, json.dumps(value, separators=(",", ":"))]
        return clauses, params

    def select_tuples(self, where: list[str], limit: int | None) -> str:
        """The one-round-trip read of checkpoints matching ``where`` (newest first)."""
        clause = ("WHERE " + " AND ".join(where)) if where else ""
        clause += " ORDER BY checkpoint_id DESC"
        if limit is not None:
            clause += f" LIMIT {int(limit)}"
        sql = self.render(_SELECT_TUPLES.replace("{where}", "{where_clause}"))
        if self.name == "postgres":
            clause = clause.replace("?", "%s")
        return sql.replace("{where_clause}", clause)


@cache
def _render_cached(dialect: Dialect, key: str) -> str:
    return dialect.render(STATEMENTS[key])
