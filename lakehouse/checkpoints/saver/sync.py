"""The synchronous checkpointer: opens a psycopg connection (or pool) or a SQLite file.

Example:
    >>> with AuraCheckpointSaver.from_conn_string("sqlite:///state.db") as saver:
    ...     saver.setup()
    ...     graph = builder.compile(checkpointer=saver)
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from langgraph.checkpoint.serde.base import SerializerProtocol

from lakehouse.checkpoints._exec import (
    PostgresExecutor,
    connect_sqlite,
    pg_conninfo,
)
from lakehouse.checkpoints.records import ColdCheckpoints
from lakehouse.checkpoints.saver.base import _AuraSaverBase, open_error
from lakehouse.settings import Settings, is_postgres_url


class AuraCheckpointSaver(_AuraSaverBase):
    """Synchronous LangGraph checkpointer on PostgreSQL or SQLite, with optional archive.

    The async methods also work (they run the sync code in a worker thread), so one saver can
    serve ``graph.invoke`` and ``graph.ainvoke``.
    """

    _postgres_executor = PostgresExecutor  # on a psycopg ``Connection`` or ``ConnectionPool``

    @classmethod
    @contextmanager
    def from_conn_string(
        cls,
        conn_string: str | None = None,
        *,
        schema: str | None = None,
        serde: SerializerProtocol | None = None,
        archive: ColdCheckpoints | None = None,
    ) -> Iterator[AuraCheckpointSaver]:
        """Open a saver on ``postgresql://...``, ``sqlite:///path`` or a file path.

        Without ``conn_string`` the hot store comes from :class:`Settings` (``AURA_PG_URL``,
        else SQLite in ``AURA_HOME``).
        """
        url = conn_string or Settings.from_env().checkpoint_url
        if is_postgres_url(url):
            from psycopg import Connection

            try:
                conn = Connection.connect(pg_conninfo(url), autocommit=True)
            except Exception as exc:
                raise open_error(url, exc) from None
            with conn:
                saver = cls(conn, schema=schema, serde=serde, archive=archive)
                try:
                    yield saver
                finally:
                    reopened = saver._exec
                    if isinstance(reopened, PostgresExecutor) and reopened.conn is not conn:
                        reopened.conn.close()  # reopened after the server went away
        else:
            sconn = connect_sqlite(url)
            try:
                yield cls(sconn, schema=schema, serde=serde, archive=archive)
            finally:
                sconn.close()

    @classmethod
    @contextmanager
    def from_settings(
        cls, settings: Settings | None = None, *, archive: bool = True
    ) -> Iterator[AuraCheckpointSaver]:
        """The configured hot store (set up), reading through to the configured archive."""
        settings = settings or Settings.from_env()
        cold = archive_for(settings) if archive else None
        with cls.from_conn_string(settings.checkpoint_url, archive=cold) as saver:
            saver.setup()
            yield saver


def archive_for(settings: Settings) -> ColdCheckpoints:
    """The configured Iceberg archive (imported lazily: the archive pulls in pyiceberg)."""
    from lakehouse.checkpoints.archive import CheckpointArchive
    from lakehouse.core import Lakehouse

    return CheckpointArchive(Lakehouse(settings))
