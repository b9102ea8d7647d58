"""Running a long-lived child (``dagster dev``) so that stopping ``aura`` stops all of it.

``dagster dev`` starts a webserver, a daemon and code servers. Killing only the process ``aura``
started would leave them running. The child gets its own session (process group); SIGTERM and
SIGINT received by ``aura`` are forwarded to the whole group, and whatever still runs after a
grace period (the processes seen while it ran included) is killed.
"""

import contextlib
import os
import signal
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import FrameType

import psutil

GRACE_SECONDS = 20.0


def supervise(
    args: Sequence[str], env: Mapping[str, str], cwd: Path, grace: float = GRACE_SECONDS
) -> int:
    """Run ``args`` until it exits or this process gets SIGTERM/SIGINT; leave nothing behind."""
    child = subprocess.Popen(list(args), env=dict(env), cwd=cwd, start_new_session=True)
    seen: dict[int, psutil.Process] = {}
    stopping: list[int] = []

    def _forward(signum: int, _frame: FrameType | None) -> None:
        stopping.append(signum)
        _signal_group(child.pid, signal.SIGTERM)

    previous = {s: signal.signal(s, _forward) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        while True:
            _remember(child.pid, seen)
            try:
                code = child.wait(timeout=1.0)
                break
            except subprocess.TimeoutExpired:
                if stopping:
                    try:
                        code = child.wait(timeout=grace)
                    except subprocess.TimeoutExpired:
                        _signal_group(child.pid, signal.SIGKILL)
                        code = child.wait()
                    break
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        _reap(child.pid, seen, grace)
    return 128 + stopping[0] if stopping and code < 0 else code


def _remember(pid: int, seen: dict[int, psutil.Process]) -> None:
    """Record the child's descendants (a code server may leave the group)."""
    try:
        for proc in psutil.Process(pid).children(recursive=True):
            seen.setdefault(proc.pid, proc)
    except psutil.NoSuchProcess:
        pass


def _signal_group(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, sig)


def _reap(pid: int, seen: dict[int, psutil.Process], grace: float) -> None:
    """Terminate, then kill, every remembered descendant still running."""
    _signal_group(pid, signal.SIGTERM)
    alive = [p for p in seen.values() if p.is_running()]
    for proc in alive:
        with contextlib.suppress(psutil.NoSuchProcess):
            proc.terminate()
    _, still = psutil.wait_procs(alive, timeout=min(grace, 10.0))
    for proc in still:
        with contextlib.suppress(psutil.NoSuchProcess):
            proc.kill()
    _signal_group(pid, signal.SIGKILL)
