"""Operator output: third-party logs quiet by default, structured JSON logs, progress bars."""

from __future__ import annotations

import json
import logging

import pytest

from aura_assets.cli._output import NOISY, configure_logging, progress


@pytest.fixture(autouse=True)
def _restore_logging():  # type: ignore[no-untyped-def]
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    levels = {n: logging.getLogger(n).level for n in NOISY}
    yield
    root.handlers[:], root.level = handlers, level
    for name, lvl in levels.items():
        logging.getLogger(name).setLevel(lvl)


def test_third_party_logs_are_quiet_by_default_and_shown_with_vv() -> None:
    configure_logging(0, "text")
    assert not logging.getLogger("dagster").isEnabledFor(logging.INFO)
    assert not logging.getLogger("great_expectations.core").isEnabledFor(logging.INFO)
    configure_logging(1, "text")
    assert logging.getLogger("lakehouse.table.writer").isEnabledFor(logging.INFO)
    assert not logging.getLogger("pyiceberg").isEnabledFor(logging.INFO)
    configure_logging(2, "text")
    assert logging.getLogger("pyiceberg").isEnabledFor(logging.INFO)


def test_json_logs_are_one_object_per_line_with_passwords_redacted(capsys) -> None:  # type: ignore[no-untyped-def]
    configure_logging(1, "json")
    logging.getLogger("lakehouse.test").info("connecting to postgresql://u:Secr3t@db/aura")
    line = capsys.readouterr().err.strip().splitlines()[-1]
    entry = json.loads(line)
    assert entry["level"] == "info" and entry["logger"] == "lakehouse.test"
    assert "Secr3t" not in line and "postgresql://u:" in entry["message"]


def test_progress_draws_nothing_when_stderr_is_not_a_terminal(capsys) -> None:  # type: ignore[no-untyped-def]
    with progress("work", 3) as bar:
        assert list(bar.track([1, 2, 3])) == [1, 2, 3]
    assert capsys.readouterr().err == ""
