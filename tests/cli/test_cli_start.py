"""`aura` starts light: its help and simple commands load neither Dagster nor Qdrant, pyiceberg
or the topology code, and say nothing a user cannot act on."""

import json
import subprocess
import sys

import click
import pytest
from click.testing import CliRunner
from helpers import ROOT

from aura_assets.cli import LAZY_COMMANDS, main
from aura_assets.cli.reference import _help
from aura_assets.instance import prepare_dagster_home
from lakehouse import Settings

HEAVY = ("dagster", "qdrant_client", "gudhi", "pyiceberg", "pyarrow", "langgraph", "duckdb")


def _loaded_after(code: str, env: dict[str, str]) -> tuple[list[str], str]:
    """Heavy modules imported by ``code`` in a fresh interpreter, and what it printed."""
    probe = (
        f"{code}\nimport sys, json\nprint(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**env, "PYTHONPATH": str(ROOT)},
        timeout=300,
        check=True,
    )
    *printed, last = done.stdout.strip().splitlines()
    return json.loads(last), "\n".join(printed) + done.stderr


@pytest.fixture
def env(aura_env: dict[str, str]) -> dict[str, str]:
    import os

    return {k: v for k, v in os.environ.items() if not k.startswith("AURA_")} | aura_env


def test_importing_the_cli_loads_no_heavy_library(env: dict[str, str]) -> None:
    loaded, _ = _loaded_after("import aura_assets.cli", env)
    assert loaded == []


@pytest.mark.parametrize(
    "args", [["--help"], ["config"], ["doctor", "--help"], ["backfill", "--help"]]
)
def test_help_and_simple_commands_stay_light(env: dict[str, str], args: list[str]) -> None:
    code = (
        "from click.testing import CliRunner\n"
        "from aura_assets.cli import main\n"
        f"out = CliRunner().invoke(main, {args!r})\n"
        "assert out.exit_code == 0, out.output\n"
        "print(out.output)"
    )
    loaded, printed = _loaded_after(code, env)
    assert {"dagster", "qdrant_client", "gudhi", "pyiceberg", "langgraph"}.isdisjoint(loaded)
    assert "Warning" not in printed


def test_help_lists_every_command_with_its_own_help() -> None:
    ctx = click.Context(main)
    for name, (module, text) in LAZY_COMMANDS.items():
        command = main.get_command(ctx, name)
        assert command is not None and command.callback is not None, name
        assert command.callback.__module__ == module, name
        assert " ".join(_help(command).split()) == text, name
    listed = CliRunner().invoke(main, ["--help"]).output
    for name in main.list_commands(ctx):
        assert f"  {name} " in listed, name


def test_a_fresh_instance_prints_nothing(settings: Settings, capfd: pytest.CaptureFixture) -> None:
    prepare_dagster_home(settings)
    out, err = capfd.readouterr()
    assert "Updating" not in out + err
