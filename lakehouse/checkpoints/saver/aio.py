"""The asynchronous checkpointer: opens a psycopg ``AsyncConnection`` (or pool) or SQLite."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from langgraph.checkpoint.serde.base import SerializerProtocol

from lakehouse.checkpoints._exec import (
    AsyncPostgresExecutor,
    connect_sqlite,
    pg_conninfo,
)
from lakehouse.checkpoints.records import ColdCheckpoints
from lakehouse.checkpoints.saver.base import _AuraSaverBase, open_error
from lakehouse.checkpoints.saver.sync import archive_for
from lakehouse.settings import Settings, is_postgres_url


class AsyncAuraCheckpointSaver(_AuraSaverBase):
    """Asynchronous LangGraph checkpointer on PostgreSQL (psycopg async) or SQLite.

    Its sync methods may be called from threads other than the event loop's, as with
    LangGraph's ``AsyncPostgresSaver``.
    """

    _postgres_executor = AsyncPostgresExecutor  # on a psycopg ``AsyncConnection`` or async pool

    @classmethod
    @asynccontextmanager
    async def from_conn_string(
        cls,
        conn_string: str | None = None,
        *,
        schema: str | None = None,
        serde: SerializerProtocol | None = None,
        archive: ColdCheckpoints | None = None,
    ) -> AsyncIterator[AsyncAuraCheckpointSaver]:
        """Async twin of :meth:`AuraCheckpointSaver.from_conn_string`."""
        url = conn_string or Settings.from_env().checkpoint_url
        if is_postgres_url(url):
            from psycopg import AsyncConnection

            try:
                conn = await AsyncConnection.connect(pg_conninfo(url), autocommit=True)
            except Exception as exc:
                raise open_error(url, exc) from None
            async with conn:
                yield cls(conn, schema=schema, serde=serde, archive=archive)
        else:
            sconn = await asyncio.to_thread(connect_sqlite, url)
            try:
                yield cls(sconn, schema=schema, serde=serde, archive=archive)
            finally:
                sconn.close()

    @classmethod
    @asynccontextmanager
    async def from_settings(
        cls, settings: Settings | None = None, *, archive: bool = True
    ) -> AsyncIterator[AsyncAuraCheckpointSaver]:
        """The configured hot store (set up), reading through to the configured archive."""
        settings = settings or Settings.from_env()
        cold = archive_for(settings) if archive else None
        async with cls.from_conn_string(settings.checkpoint_url, archive=cold) as saver:
            await saver.setup()
            yield saver

    async def setup(self) -> None:  # type: ignore[override]
        """Create the hot-store tables (idempotent). Async, as in LangGraph's async savers."""
        await self.asetup()
