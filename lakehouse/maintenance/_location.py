"""Where a backup lies: a local directory or an ``s3://bucket/prefix``.

Every read, write, listing and deletion under a backup goes through a :class:`Location`, over
the pyarrow file system of :mod:`lakehouse.table.storage` (for a bucket, the warehouse's S3
endpoint and keys: :meth:`lakehouse.settings.Settings.s3_properties`). The two kinds differ
only where the stores do:

* a **directory** is written atomically (a temporary file renamed into place); a file that is
  not a regular file, or is reached through a symlink, is unsafe and never read; emptied
  directories are removed;
* a **bucket**'s object appears whole when its upload completes (an upload that fails part
  way is deleted); an object is never a symlink; a bucket has no directories.

Paths below a location are relative POSIX paths (checked by the caller,
:func:`lakehouse.maintenance._manifest.safe_rel`). A location's ``uri`` holds no secret.
"""

from __future__ import annotations

import abc
import contextlib
import hashlib
import os
import re
import stat
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from pyarrow import fs
from pyiceberg.io import FileIO
from pyiceberg.io.pyarrow import PyArrowFileIO

from lakehouse.table import storage
from lakehouse.table.paths import join

_CHUNK = 8 * 1024 * 1024
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


class Location(abc.ABC):
    """A backup directory or bucket prefix (or a folder below one, :meth:`child`)."""

    def __init__(self, uri: str, properties: Mapping[str, str]) -> None:
        self.uri = uri.rstrip("/")
        self._properties = dict(properties)  # may hold the S3 secret key: never shown
        self.fs, self._base = storage.filesystem(self.uri, self._properties)

    @staticmethod
    def of(dest: str | Path, properties: Mapping[str, str]) -> Location:
        """``dest`` as a location: ``s3://bucket/prefix`` or a local directory.

        Raises:
            ValueError: ``dest`` is a URI of another scheme, or names no bucket.
        """
        text = str(dest)
        if text.startswith("s3://"):
            if not text[len("s3://") :].split("/", 1)[0]:
                raise ValueError(f"{dest!r} names no bucket; give s3://BUCKET/PREFIX")
            return _Bucket(text, properties)
        if _SCHEME.match(text):
            raise ValueError(f"{dest!r}: a backup goes to a local directory or an s3:// prefix")
        return _Directory(Path(dest).expanduser().resolve())

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.uri!r})"

    def __str__(self) -> str:
        return self.uri

    @property
    def local(self) -> bool:
        return False

    def child(self, name: str) -> Location:
        """The folder ``name`` below this location."""
        return type(self)(join(self.uri, name), self._properties)

    def path(self, rel: str) -> str:
        """The location of ``rel`` as pyiceberg's FileIO (:attr:`io`) names it."""
        return join(self.uri, rel)

    @property
    def io(self) -> FileIO:
        """A FileIO that reads :meth:`path` locations."""
        return PyArrowFileIO(self._properties)

    def _fs_path(self, rel: str) -> str:
        return join(self._base, rel)

    # -- reads

    def size(self, rel: str) -> int | None:
        """The size of the regular file (object) ``rel``; None when there is none."""
        info = self.fs.get_file_info(self._fs_path(rel))
        return info.size if info.type == fs.FileType.File else None

    def read_bytes(self, rel: str) -> bytes:
        """The content of ``rel``.

        Raises:
            FileNotFoundError: nothing is stored there.
        """
        with self.fs.open_input_stream(self._fs_path(rel)) as stream:
            data: bytes = stream.read()
        return data

    def open_input(self, rel: str) -> Any:
        """``rel`` opened for random access (a pyarrow ``NativeFile``; close it)."""
        return self.fs.open_input_file(self._fs_path(rel))

    def sha256(self, rel: str) -> str:
        digest = hashlib.sha256()
        with self.fs.open_input_stream(self._fs_path(rel)) as stream:
            while chunk := stream.read(_CHUNK):
                digest.update(chunk)
        return digest.hexdigest()

    def is_file(self) -> bool:
        """Whether this location itself is a file (an object), not a folder."""
        return bool(self.fs.get_file_info(self._base).type == fs.FileType.File)

    def files(self) -> list[str]:
        """Every file below this location (relative paths, sorted)."""
        prefix = self.uri + "/"
        found = storage.list_files(self.uri, self._properties)
        return sorted(f.path[len(prefix) :] for f in found if f.path.startswith(prefix))

    def unsafe(self, rels: Iterable[str]) -> list[str]:
        """Of ``rels``, those that are not regular files reached without a symlink."""
        return []

    def reachable(self) -> bool:
        """Whether the location can be written (a bucket exists and these keys can see it)."""
        return True

    # -- writes

    @abc.abstractmethod
    def writer(self, rel: str) -> contextlib.AbstractContextManager[Any]:
        """A stream whose content becomes ``rel`` once the block ends without an error."""

    def write_bytes(self, rel: str, data: bytes) -> None:
        with self.writer(rel) as out:
            out.write(data)

    def delete(self, rel: str) -> None:
        """Delete ``rel`` (nothing when it is already gone)."""
        with contextlib.suppress(FileNotFoundError):
            self.fs.delete_file(self._fs_path(rel))

    def tidy(self) -> None:  # noqa: B027 (a bucket has no directories: nothing to remove)
        """Remove the directories below this location that are empty (a bucket has none)."""


class _Bucket(Location):
    """An ``s3://bucket/prefix``."""

    @property
    def bucket(self) -> str:
        return self._base.split("/", 1)[0]

    def reachable(self) -> bool:
        return bool(self.fs.get_file_info(self.bucket).type != fs.FileType.NotFound)

    @contextlib.contextmanager
    def writer(self, rel: str) -> Iterator[Any]:
        path = self._fs_path(rel)
        stream = self.fs.open_output_stream(path)
        try:
            yield stream
        except BaseException:
            # closing completes the upload: take back what the failed write stored
            with contextlib.suppress(Exception):
                stream.close()
                self.fs.delete_file(path)
            raise
        stream.close()


class _Directory(Location):
    """A local directory (resolved: no symlink above it)."""

    def __init__(self, root: Path) -> None:
        super().__init__(str(root), {})
        self.root = root

    def child(self, name: str) -> Location:
        return _Directory(self.root / name)

    @property
    def local(self) -> bool:
        return True

    def path(self, rel: str) -> str:
        return str(self.root / rel)

    def is_file(self) -> bool:
        return self.root.exists() and not self.root.is_dir()

    def files(self) -> list[str]:
        """Every file and symlink below the directory (relative paths, sorted)."""
        if not self.root.is_dir():
            return []
        return sorted(
            path.relative_to(self.root).as_posix()
            for path in self.root.rglob("*")
            if path.is_file() or path.is_symlink()
        )

    def unsafe(self, rels: Iterable[str]) -> list[str]:
        unsafe = []
        base = str(self.root)
        for rel in rels:
            path = self.root / rel
            try:
                mode = path.lstat().st_mode
            except FileNotFoundError:
                continue  # reported as missing
            if not stat.S_ISREG(mode) or os.path.realpath(path) != os.path.join(base, rel):
                unsafe.append(rel)
        return unsafe

    @contextlib.contextmanager
    def writer(self, rel: str) -> Iterator[Any]:
        target = self.root / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.tmp")
        try:
            with tmp.open("wb") as out:
                yield out
            os.replace(tmp, target)
        finally:
            tmp.unlink(missing_ok=True)

    def delete(self, rel: str) -> None:
        (self.root / rel).unlink(missing_ok=True)

    def tidy(self) -> None:  # noqa: B027 (a bucket has no directories: nothing to remove)
        if not self.root.is_dir():
            return
        for directory in sorted(self.root.rglob("*"), key=lambda p: -len(p.parts)):
            if directory.is_dir() and not directory.is_symlink() and not any(directory.iterdir()):
                directory.rmdir()
