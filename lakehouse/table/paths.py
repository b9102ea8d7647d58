"""Paths in a warehouse: one form for comparing them, and paths relative to a warehouse.

Iceberg metadata names files by full URI (``file:///x``), pyarrow and people by plain path
(``/x``), pyiceberg sometimes by ``file:/x``; every comparison goes through :func:`normalise`.
"""

from __future__ import annotations


def normalise(path: str) -> str:
    """``file:/x``, ``file:///x`` and ``/x`` as one form, without a trailing slash."""
    if path.startswith("file:"):
        path = path[len("file:") :]
        while path.startswith("//"):
            path = path[1:]
    return path.rstrip("/")


def under(path: str, root: str) -> bool:
    """Whether ``path`` lies strictly below ``root`` (both in any form :func:`normalise` takes)."""
    return normalise(path).startswith(normalise(root) + "/")


def relative(path: str, root: str) -> str | None:
    """``path`` relative to ``root`` (POSIX form); None when it does not lie below ``root`` or
    leaves it through ``..``."""
    if not under(path, root):
        return None
    rel = normalise(path)[len(normalise(root)) + 1 :]
    return None if ".." in rel.split("/") else rel


def join(root: str, rel: str) -> str:
    """``rel`` below ``root``."""
    return f"{root.rstrip('/')}/{rel}"


def artifact_rel(directory: str, uri: str) -> str | None:
    """The warehouse-relative path of the artifact a row names by ``uri``.

    Rows name an artifact directory relative to the warehouse (``router_models/<version>``), so
    a restored or moved warehouse needs no rewrite and every snapshot keeps its rows. Rows
    written before that hold an absolute URI (perhaps of another home, restored here); they
    resolve the same way, by the URI's last part under ``directory``: an artifact is always
    read from this warehouse. None when the URI has no usable last part.
    """
    name = uri.rstrip("/").rsplit("/", 1)[-1]
    if name in ("", ".", "..") or "\\" in name or ":" in name:
        return None
    return f"{directory}/{name}"
