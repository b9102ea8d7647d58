"""README and docs/ are true: the CLI table is current, runnable examples run after a demo."""

from __future__ import annotations

import os
import re
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import ROOT

from aura_assets.cli import reference

BLOCK = re.compile(r"```(bash|python) runnable\n(.*?)```", re.S)
# Every file whose blocks marked `runnable` must run after a demo.
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"\]\(((?:docs/)?[\w.-]+\.md)\)")


def test_command_table_matches_the_cli() -> None:
    doc = reference.CLI_DOC.read_text()
    assert reference.render(doc) == doc, (
        "docs/cli.md's command table is stale: run `python -m aura_assets.cli.reference`"
    )


def test_readme_has_runnable_examples_of_both_kinds() -> None:
    kinds = [kind for kind, _ in BLOCK.findall((ROOT / "README.md").read_text())]
    assert "bash" in kinds and "python" in kinds


def test_links_between_readme_and_docs_resolve() -> None:
    broken = [
        f"{doc.relative_to(ROOT)} -> {target}"
        for doc in DOCS
        for target in LINK.findall(doc.read_text())
        if not (doc.parent / target).exists()
    ]
    assert not broken, broken


@pytest.mark.process
@pytest.mark.slow
@pytest.mark.timeout(1800)  # a demo, every block twice, a backup and a restore
def test_runnable_examples_run_after_a_demo_and_after_its_restore(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    aura = bin_dir / "aura"
    aura.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m aura_assets.cli "$@"\n')
    aura.chmod(aura.stat().st_mode | stat.S_IEXEC)
    env = {k: v for k, v in os.environ.items() if not k.startswith("AURA_")}
    env |= {
        "AURA_HOME": str(tmp_path / "aura"),
        "PYTHONPATH": str(ROOT),
        "PATH": f"{bin_dir}:{Path(sys.executable).parent}:{os.environ['PATH']}",
    }
    demo = ["aura", "demo", "--days", "2", "--per-day", "200", "--workflows", "2"]
    done = subprocess.run(demo, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    _run_blocks(env, tmp_path)

    # After a restore into a new home every block runs too, and what lives outside the tables
    # (memories, the topology index) answers there.
    restored = {**env, "AURA_HOME": str(tmp_path / "restored")}
    for command in (
        ["aura", "backup", str(tmp_path / "backup")],
        ["aura", "restore", str(tmp_path / "backup"), "--home", restored["AURA_HOME"]],
    ):
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stdout + done.stderr
    _run_blocks(restored, tmp_path)
    run_id = _aura(restored, "sql", "SELECT min(run_id) FROM topology_history", "--format", "csv")
    similar = _aura(restored, "topology", "similar", run_id.splitlines()[-1].strip(), "-k", "2")
    assert "closest in shape" in similar, similar
    found = _aura(restored, "memory", "search", "demo-agent", "ledger database", "-k", "1")
    assert "PostgreSQL 16" in found, found


def _aura(env: dict[str, str], *args: str) -> str:
    done = subprocess.run(["aura", *args], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"aura {' '.join(args)}:\n{done.stdout}{done.stderr}"
    return done.stdout


def _run_blocks(env: dict[str, str], cwd: Path) -> None:
    """Every block marked `runnable` in README.md and docs/, in the home of ``env``."""
    blocks = [(doc, *block) for doc in DOCS for block in BLOCK.findall(doc.read_text())]
    for doc, kind, code in blocks:
        args = ["bash", "-euo", "pipefail", "-c", code] if kind == "bash" else [sys.executable]
        out = subprocess.run(
            args,
            input=code if kind == "python" else None,
            env=env,
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=300,
        )
        where = doc.relative_to(ROOT)
        failed = f"{where} {kind} block failed in {env['AURA_HOME']}:\n{code}\n"
        assert out.returncode == 0, failed + out.stdout + out.stderr
