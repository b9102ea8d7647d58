"""DuckDB over an object store and a REST catalog: the S3 secret, the attached catalog, and the
prefixes a session may read.

On a REST catalog the session attaches it read-only (``ATTACH ... (TYPE iceberg, READ_ONLY)``)
and a view of main, of a time or of a snapshot reads ``lake.aura.<table> AT (VERSION => id)``;
branches and tags are resolved to their snapshot id by AURA first (DuckDB cannot read Iceberg
refs yet). On any catalog with an ``s3://`` warehouse, ``iceberg_scan`` and ``read_parquet`` read
through httpfs with an S3 secret scoped to the warehouse bucket. The credentials come from the
catalog's own properties (what pyiceberg was given), are handed to DuckDB as secrets, which
``duckdb_secrets()`` shows redacted, and never appear in a view's SQL or an error.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import duckdb
from pyiceberg.catalog import Catalog
from pyiceberg.catalog.rest import RestCatalog

from lakehouse.settings import DEFAULT_REGION, NAMESPACE, is_object_store
from lakehouse.sql._guard import quote_identifier, quote_literal
from lakehouse.table.rest import client_credential

ATTACHED = "aura_lake"
"""The name of the attached REST catalog inside a session."""


@dataclass(frozen=True)
class Remote:
    """How a session reaches an object-store warehouse and (optionally) a REST catalog."""

    s3: Mapping[str, str] = field(default_factory=dict, repr=False)
    """pyiceberg ``s3.*`` properties (endpoint, keys, region)."""
    buckets: tuple[str, ...] = ()
    """``s3://bucket`` scopes of the S3 secret: the warehouse's and the tables' buckets."""
    rest_uri: str | None = None
    rest_warehouse: str | None = None
    credential: str | None = field(default=None, repr=False)

    @property
    def attached(self) -> bool:
        return self.rest_uri is not None

    def prepare(self, con: duckdb.DuckDBPyConnection, extension: str) -> None:
        """Load httpfs (``extension`` is its signed file), create the secrets, attach."""
        con.execute(f"LOAD {quote_literal(extension)}")
        endpoint = self.s3.get("s3.endpoint")
        options = ["TYPE s3", f"REGION {quote_literal(self.s3.get('s3.region', DEFAULT_REGION))}"]
        params: list[str] = []
        if "s3.access-key-id" in self.s3:
            options += ["KEY_ID ?", "SECRET ?"]
            params += [self.s3["s3.access-key-id"], self.s3["s3.secret-access-key"]]
        if endpoint:
            parts = urlsplit(endpoint)
            options += [
                f"ENDPOINT {quote_literal(parts.netloc + parts.path.rstrip('/'))}",
                "URL_STYLE 'path'",
                f"USE_SSL {'true' if parts.scheme == 'https' else 'false'}",
            ]
        for i, bucket in enumerate(self.buckets):
            scoped = [*options, f"SCOPE {quote_literal(bucket)}"]
            con.execute(f"CREATE SECRET aura_s3_{i} ({', '.join(scoped)})", params)
        if not self.attached:
            return
        rest = ["TYPE iceberg"]
        rest_params: list[str] = []
        if self.credential:
            client_id, _, secret = self.credential.partition(":")
            rest += ["CLIENT_ID ?", "CLIENT_SECRET ?", "OAUTH2_SERVER_URI ?"]
            token_uri = f"{(self.rest_uri or '').rstrip('/')}/v1/oauth/tokens"
            rest_params += [client_id, secret, token_uri]
        con.execute(f"CREATE SECRET aura_rest ({', '.join(rest)})", rest_params)
        con.execute(
            f"ATTACH {quote_literal(self.rest_warehouse or '')} AS {ATTACHED} (TYPE iceberg, "
            f"SECRET aura_rest, ENDPOINT {quote_literal(self.rest_uri or '')}, "
            "ACCESS_DELEGATION_MODE 'none', READ_ONLY)"
        )

    def table_sql(self, name: str, snapshot_id: int | None) -> str:
        """SQL reading ``name`` from the attached catalog at a snapshot (None: current main)."""
        at = "" if snapshot_id is None else f" AT (VERSION => {int(snapshot_id)})"
        return f"SELECT * FROM {ATTACHED}.{NAMESPACE}.{quote_identifier(name)}{at}"


def remote_for(catalog: Catalog, locations: list[str]) -> Remote | None:
    """The :class:`Remote` of a catalog whose warehouse or tables are in S3 (else None)."""
    s3 = {k: str(v) for k, v in catalog.properties.items() if k.startswith("s3.")}
    buckets = sorted({bucket_of(loc) for loc in locations if is_object_store(loc)})
    rest = isinstance(catalog, RestCatalog)
    if not buckets and not rest:
        return None
    return Remote(
        s3=s3,
        buckets=tuple(buckets),
        rest_uri=str(catalog.properties["uri"]) if rest else None,
        rest_warehouse=str(catalog.properties.get("warehouse") or "") if rest else None,
        credential=_credential(catalog) if isinstance(catalog, RestCatalog) else None,
    )


def _credential(catalog: RestCatalog) -> str | None:
    return client_credential(catalog) or catalog.properties.get("credential") or None


def bucket_of(location: str) -> str:
    """``s3://bucket`` of an object-store location."""
    return "s3://" + location.split("://", 1)[1].split("/", 1)[0]


def object_prefix(location: str) -> str:
    """An object-store location as an allowed-directory prefix (``s3a://`` read as ``s3://``)."""
    return "s3://" + location.split("://", 1)[1].rstrip("/") + "/"
