"""Tests share helpers via tests/helpers.py and fixtures (`make lint` checks the imports)."""

from __future__ import annotations

from helpers import ROOT


def test_tests_share_helpers_not_test_modules() -> None:
    """Shared test code lives in tests/helpers.py or fixtures, never in another test module."""
    import ast

    offenders = []
    for path in (ROOT / "tests").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names: list[str] = []
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            elif isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            offenders += [
                f"{path.relative_to(ROOT)} imports {name}"
                for name in names
                if name.split(".")[-1] == "conftest" or name.split(".")[-1].startswith("test_")
            ]
    assert not offenders, offenders
