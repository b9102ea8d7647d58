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
