"""`aura ui` stops cleanly: SIGTERM or SIGINT leaves no Dagster process behind."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

import psutil
import pytest
from helpers import ROOT


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_for_descendants(
    proc: psutil.Process, at_least: int, timeout: float
) -> list[psutil.Process]:
    deadline = time.monotonic() + timeout
    found: dict[int, psutil.Process] = {}
    while time.monotonic() < deadline:
        for child in proc.children(recursive=True):
            found.setdefault(child.pid, child)
        if len(found) >= at_least:
            time.sleep(3)  # let dagster dev start the rest (daemon, code server)
            for child in proc.children(recursive=True):
                found.setdefault(child.pid, child)
            return list(found.values())
        time.sleep(0.5)
    return list(found.values())


@pytest.mark.process
@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_aura_ui_leaves_no_process_behind(in_aura_env, sig: signal.Signals) -> None:  # type: ignore[no-untyped-def]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    ui = subprocess.Popen(
        [sys.executable, "-m", "aura_assets.cli", "ui", "--port", str(_free_port())],
        env=env,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        children = _wait_for_descendants(psutil.Process(ui.pid), at_least=3, timeout=120)
        assert len(children) >= 2, "dagster dev did not start its webserver and daemon"
        ui.send_signal(sig)
        ui.wait(timeout=60)  # raises if aura ui did not stop
        gone, alive = psutil.wait_procs(children, timeout=30)
        assert not alive, f"left running: {[(p.pid, p.cmdline()) for p in alive]}"
    finally:
        if ui.poll() is None:
            ui.kill()
