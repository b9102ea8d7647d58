"""The file-system layer of warehouse locations: one pyarrow ``FileSystem`` for ``file:`` URIs,
plain paths and ``s3://`` URIs alike.

Everything that lists, reads, writes or deletes under a warehouse outside pyiceberg's own FileIO
(orphan removal's listing, model artifacts, bucket scans) goes through here, with the same
properties pyiceberg's FileIO takes (``s3.endpoint``, ``s3.access-key-id``,
``s3.secret-access-key``, ``s3.region``: a table's ``table.io.properties`` or
:meth:`lakehouse.settings.Settings.s3_properties`). Never ``os.path`` on a warehouse location.

Locations come back in the form they were given (``s3://bucket/x``, ``file:///x`` or ``/x``),
so they compare with the paths Iceberg metadata names (after :func:`.paths.normalise`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

from pyarrow import fs


@dataclass(frozen=True)
class StoredFile:
    """A file (an object) found under a location."""

    path: str
    size: int
    mtime_ms: int


def filesystem(location: str, properties: Mapping[str, str]) -> tuple[fs.FileSystem, str]:
    """The pyarrow file system of ``location`` and the location's path within it."""
    parts = urlsplit(location)
    if parts.scheme in ("s3", "s3a", "s3n"):
        options: dict[str, object] = {
            "region": properties.get("s3.region") or properties.get("client.region"),
            "endpoint_override": properties.get("s3.endpoint"),
            "access_key": properties.get("s3.access-key-id"),
            "secret_key": properties.get("s3.secret-access-key"),
            "session_token": properties.get("s3.session-token"),
        }
        endpoint = properties.get("s3.endpoint")
        if endpoint:
            options["scheme"] = urlsplit(endpoint).scheme or "https"
        s3 = fs.S3FileSystem(**{k: v for k, v in options.items() if v is not None})
        return s3, f"{parts.netloc}{parts.path}".rstrip("/")
    if parts.scheme in ("", "file"):
        path = unquote(parts.path) if parts.scheme else location
        return fs.LocalFileSystem(), path.rstrip("/") or "/"
    raise ValueError(f"{location!r}: only file: URIs, paths and s3:// URIs are warehouse locations")


def list_files(location: str, properties: Mapping[str, str]) -> list[StoredFile]:
    """Every file under ``location`` (recursively; an object store's listing), with size and
    modification time; empty when nothing is there."""
    filesystem_, root = filesystem(location, properties)
    prefix = location.rstrip("/")
    try:
        infos = filesystem_.get_file_info(fs.FileSelector(root, recursive=True))
    except FileNotFoundError:
        return []
    files = []
    for info in infos:
        if info.type != fs.FileType.File:
            continue
        mtime = info.mtime_ns // 1_000_000 if info.mtime_ns is not None else 0
        files.append(StoredFile(prefix + info.path[len(root) :], info.size or 0, mtime))
    return sorted(files, key=lambda f: f.path)


def read_bytes(location: str, properties: Mapping[str, str]) -> bytes:
    """The content of the file at ``location``.

    Raises:
        FileNotFoundError: nothing is stored there.
    """
    filesystem_, path = filesystem(location, properties)
    with filesystem_.open_input_stream(path) as stream:
        data: bytes = stream.read()
    return data


def write_bytes(location: str, properties: Mapping[str, str], data: bytes) -> None:
    """Store ``data`` at ``location`` (creating parent directories on a file system)."""
    filesystem_, path = filesystem(location, properties)
    if isinstance(filesystem_, fs.LocalFileSystem):
        filesystem_.create_dir(path.rsplit("/", 1)[0], recursive=True)
    with filesystem_.open_output_stream(path) as out:
        out.write(data)


def exists(location: str, properties: Mapping[str, str]) -> bool:
    """Whether a file is stored at ``location``."""
    filesystem_, path = filesystem(location, properties)
    return bool(filesystem_.get_file_info(path).type == fs.FileType.File)


def delete_files(locations: list[str], properties: Mapping[str, str]) -> int:
    """Delete the files at ``locations``; returns how many existed and were removed."""
    removed = 0
    for location in locations:
        filesystem_, path = filesystem(location, properties)
        try:
            filesystem_.delete_file(path)
        except FileNotFoundError:
            continue
        removed += 1
    return removed


def child(location: str, name: str) -> str:
    """``name`` below ``location`` (a URI or a path)."""
    return f"{location.rstrip('/')}/{name}"


def delete_empty_directory(location: str, properties: Mapping[str, str]) -> None:
    """Remove the directory at ``location`` once it is empty (an object store has none)."""
    filesystem_, path = filesystem(location, properties)
    if isinstance(filesystem_, fs.LocalFileSystem):
        with contextlib.suppress(OSError):
            filesystem_.delete_dir(path)
