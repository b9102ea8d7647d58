"""The DuckDB engine of a session: signed local extensions only, file access confined.

A session's DuckDB loads the iceberg and avro extensions from the signed files of their wheels
(nothing is downloaded, unsigned extensions are refused). Once they are loaded, file access is
confined to the warehouse and the tables' locations, external access is turned off and the
configuration is locked, so no query can read a file elsewhere or undo the confinement.
"""

from __future__ import annotations

import importlib.resources
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import urlsplit
from urllib.request import url2pathname

import duckdb
from pyiceberg.catalog import Catalog

from lakehouse.exceptions import ConfigurationError
from lakehouse.sql._guard import quote_literal
from lakehouse.sql._remote import object_prefix
from lakehouse.sql._state import TableState


def extension_path(name: str) -> Path:
    """The signed extension file shipped in the ``duckdb-extension-<name>`` wheel.

    Raises:
        ConfigurationError: the package for this DuckDB version is not installed.
    """
    version = duckdb.__version__
    package = f"duckdb_extension_{name}"
    try:
        root: Path | None = Path(str(importlib.resources.files(package)))
    except ModuleNotFoundError:
        root = None
    path = root / "extensions" / f"v{version}" / f"{name}.duckdb_extension" if root else None
    if path is None or not path.is_file():
        raise ConfigurationError(
            f"DuckDB's {name} extension for DuckDB {version} is not installed; "
            f"run `pip install duckdb-extension-{name}=={version}` (AURA never downloads "
            "extensions at run time)"
        )
    return path


def open_duckdb() -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB with only signed, locally installed extensions and UTC time."""
    con = duckdb.connect(
        ":memory:",
        config={
            "autoinstall_known_extensions": False,
            "autoload_known_extensions": False,
            "allow_unsigned_extensions": False,
            "allow_community_extensions": False,
        },
    )
    # LOAD '<file>' checks the signature and copies nothing into ~/.duckdb.
    for name in ("avro", "iceberg"):  # httpfs too when the warehouse is in S3 (_remote)
        con.execute(f"LOAD {quote_literal(str(extension_path(name)))}")
    con.execute("LOAD icu")  # built in; needed for TIMESTAMPTZ and the UTC session time zone
    con.execute("SET TimeZone = 'UTC'")
    return con


def local_dir(location: str) -> str | None:
    """The local directory of a ``file:`` URI or plain path, with a trailing slash."""
    if location.startswith("file:"):
        path = Path(url2pathname(urlsplit(location).path))
    elif "://" in location:
        return None  # object stores cannot be read with external access off
    else:
        path = Path(location)
    return str(path).rstrip("/") + "/"


def locations(catalog: Catalog, states: Mapping[str, TableState]) -> list[str]:
    """The warehouse and every table's location."""
    found = [str(catalog.properties.get("warehouse") or "")]
    found += [s.table.location() for s in states.values() if s.table is not None]
    return [loc for loc in found if loc]


def allowed_directories(catalog: Catalog, states: Mapping[str, TableState]) -> list[str]:
    """The warehouse and every table's location: the only places a session may read (in an
    object store, those prefixes of their bucket)."""
    places = locations(catalog, states)
    found = {d for d in (local_dir(loc) for loc in places) if d}
    # The same directories through any symlink, as DuckDB may see either spelling.
    found |= {str(Path(d).resolve()).rstrip("/") + "/" for d in found}
    found |= {object_prefix(loc) for loc in places if loc.startswith(("s3://", "s3a://"))}
    return sorted(found)


def outside(files: set[str], allowed: list[str]) -> list[str]:
    """Local data files of the views that lie outside ``allowed`` (added with ``add_files``)."""
    paths = {d for d in (local_dir(f) for f in files) if d}
    return sorted(p.rstrip("/") for p in paths if not any(p.startswith(a) for a in allowed))


def confine(con: duckdb.DuckDBPyConnection, allowed: list[str], files: list[str]) -> None:
    """Confine file access to ``allowed`` directories (and ``files``) and lock the configuration.

    Must run after the extensions are loaded: with external access off, no file outside
    ``allowed`` (``read_csv('/etc/passwd')``, ``read_text``, ``glob``, ``ATTACH``) can be opened.
    ``files`` are data files a view reads that a table registered outside its location; a macro
    reading an older snapshot's such files is refused.
    """
    # duckdb_extensions() lists DuckDB's extension directory; INSTALL and LOAD stay refused.
    row = con.execute("SELECT current_setting('extension_directory')").fetchone()
    extensions = (row[0] if row and row[0] else None) or str(Path.home() / ".duckdb" / "extensions")
    dirs = ", ".join(quote_literal(d) for d in [*allowed, extensions.rstrip("/") + "/"])
    con.execute(f"SET allowed_directories = [{dirs}]")
    if files:
        con.execute(f"SET allowed_paths = [{', '.join(quote_literal(f) for f in files)}]")
    con.execute("SET enable_external_access = false")
    con.execute("SET lock_configuration = true")
