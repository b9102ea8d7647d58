"""SQL time travel over every aura table, in a read-only DuckDB session.

>>> from lakehouse.sql import connect
>>> with connect(settings) as session:
...     session.execute("SELECT count(*) FROM routing_decisions").fetchall()

What a session contains
-----------------------
**Table views.** Every registered aura table (and any other table in namespace ``aura``) is a view
with the table's name, in schema ``main`` and again as ``aura.<table>``. By default a view shows the
table's current main; ``connect(as_of=...)`` shows every table as of one moment (consistently:
the same instant for all tables), ``connect(ref=...)`` shows a branch or tag, and
``connect(snapshots={"routing_decisions": ID})`` pins single tables (pins win). A session is a
consistent picture taken when it opens; open a new one to see later commits. A table with no
snapshot yet is an empty view with the table's columns. When a table has no state at the asked
time or lacks the asked ref, it has no view and a query naming it fails with that reason.

**Time-travel macros,** for comparing moments inside one statement. For each table ``<t>``:

========================================= =======================================================
``<t>_at(TIMESTAMP '2026-11-20 14:05')``  the table as main was at that time (TIMESTAMP values
                                          and strings are UTC; TIMESTAMPTZ values keep their zone)
``<t>_at_snapshot(8268586415635083937)``  one snapshot (of main, a branch or a tag)
``<t>_at_ref('exp-1')``                   a branch or tag (``'main'`` too)
========================================= =======================================================

e.g. ``SELECT count(*) FROM routing_decisions_at(TIMESTAMP '2026-11-20 14:05')``.

**Metadata views.** ``aura_snapshots`` (one row per snapshot of every table: id, parent, commit
time, operation, the ``aura.*`` lineage - commit, run id, asset, partition, code version - record
counts, the branches and tags pointing at it, whether it is on main and whether it is an
intermediate snapshot of a multi-snapshot commit), ``aura_refs`` (branches and tags),
``aura_history`` (main's history: when each snapshot became current) and ``aura_views`` (how
each view was resolved and read).

"As of" never lands inside a commit
-----------------------------------
An overwrite of a day commits a DELETE and an APPEND snapshot together (same ``aura.commit``).
Only the APPEND was ever visible as main, so a time between them resolves to the state before the
commit. Times before a table's first snapshot on main are errors (:class:`TimeTravelError`).

Reading
-------
Views read the resolved snapshot's Parquet data files directly with ``read_parquet`` (columns
mapped by Iceberg field id, so renamed and added columns are right) when the snapshot has no
delete files, no struct columns and the table has no name mapping (files added without field
ids), and through ``iceberg_scan(..., snapshot_from_id => ...)`` otherwise; macros always use
``iceberg_scan``. The extensions are loaded from the signed files of the
``duckdb-extension-iceberg`` / ``-avro`` wheels; nothing is downloaded and unsigned extensions
are refused.

Read-only
---------
:meth:`SqlSession.execute` runs only queries (``SELECT``, ``FROM``, ``VALUES``, ``WITH``,
``DESCRIBE``, ``SHOW``, ``SUMMARIZE``, ``EXPLAIN``), classified by DuckDB's own parser; anything
else raises :class:`~lakehouse.exceptions.ReadOnlyError`. One statement per ``execute``
(:meth:`SqlSession.statements` splits a script; ``aura sql`` prints every statement's result).
Table names must be plain identifiers and ref names are compared as values, so nothing can be
injected through them.

Time limit
----------
A statement that runs longer than ``statement_timeout`` seconds (default
:data:`DEFAULT_STATEMENT_TIMEOUT`, ``aura sql --timeout``) is interrupted and raises
:class:`~lakehouse.exceptions.QueryTimeoutError`; the session stays usable.

Tenant sessions
---------------
``connect(tenant=T)`` (``aura sql --tenant T``) filters every memory table's view and macros to
T's rows (time travel included) and checks each statement's syntax tree, as DuckDB's
``json_serialize_sql`` serializes it: a table reference must name an aura view, a metadata
view or a CTE in scope, and a table function an aura macro or a generator (``range``,
``unnest``, ...). File readers (``read_parquet``, ``iceberg_scan``, ``glob``, ``read_text``,
``FROM 'file.parquet'``...), catalog functions (``duckdb_views()``), ``query()`` and statements
DuckDB cannot serialize raise :class:`~lakehouse.exceptions.ReadOnlyError`. The filter on the
tenant runs inside the scan, before a query's own predicates. Nothing names another tenant:
columns a spec marks ``tenant_private`` (a model's one-hot feature names, sampled values) show as
NULL, the metadata views hide run ids, partition keys and ref names other than main, and errors
do not list refs. The tenant id is validated as the memory commands validate it.

Confined to the warehouse
-------------------------
Once the extensions are loaded, the session sets ``allowed_directories`` to the warehouse and the
tables' locations (plus data files a table registered elsewhere), turns ``enable_external_access``
off and locks the configuration: ``read_csv('/etc/passwd')``, ``read_text``, ``read_blob`` and
``glob`` outside the warehouse raise ``duckdb.PermissionException``.
"""

from lakehouse.exceptions import TimeTravelError
from lakehouse.sql._confine import extension_path
from lakehouse.sql._views import ViewInfo
from lakehouse.sql.session import DEFAULT_STATEMENT_TIMEOUT, SqlSession, connect, parse_time

__all__ = [
    "DEFAULT_STATEMENT_TIMEOUT",
    "SqlSession",
    "TimeTravelError",
    "ViewInfo",
    "connect",
    "extension_path",
    "parse_time",
]
