"""Run benchmarks: ``python -m bench [NAME ...]`` (all when no name is given)."""

from __future__ import annotations

import importlib
import pkgutil
import sys

import bench


def _names() -> list[str]:
    return sorted(
        m.name for m in pkgutil.iter_modules(bench.__path__) if not m.name.startswith("_")
    )


def main(argv: list[str]) -> int:
    names = argv or _names()
    unknown = [n for n in names if n not in _names()]
    if unknown:
        sys.stderr.write(f"unknown benchmark(s) {unknown}; available: {_names()}\n")
        return 2
    for name in names:
        sys.stderr.write(f"== bench {name}\n")
        importlib.import_module(f"bench.{name}").main()
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
