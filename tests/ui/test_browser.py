"""The Dagster UI after a demo, in a real headless Chromium: what a person would check.

Debian's chromium is driven by Playwright's Python package (``executable_path``; Playwright's own
browser download does not work here). Screenshots go to ``tests/ui/artifacts/``. Without
chromium or playwright the test is skipped with the reason, never passed.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
CHROMIUM = os.environ.get("AURA_CHROMIUM", "/usr/bin/chromium")
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.timeout(1800)]


def _require_browser() -> None:
    if not (Path(CHROMIUM).exists() or shutil.which("chromium")):
        pytest.skip(f"no chromium at {CHROMIUM}: `apt-get install -y chromium` (.ci/run does)")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        pytest.skip("playwright is not installed: pip install -e '.[dev]'")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[tuple[dict[str, str], str]]:
    """A demo's AURA_HOME (embedded stores) and its output."""
    _require_browser()
    env = {k: v for k, v in os.environ.items() if not k.startswith("AURA_")}
    env |= {"AURA_HOME": str(tmp_path / "aura"), "PYTHONPATH": str(ROOT)}
    # The default days and traffic (what `make demo` shows): enough for a champion router.
    args = ["demo", "--workflows", "2"]
    out = subprocess.run(
        [sys.executable, "-m", "aura_assets.cli", *args],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=1500,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    yield env, out.stdout


@pytest.fixture
def webserver(demo: tuple[dict[str, str], str], tmp_path: Path) -> Iterator[str]:
    """dagster-webserver on this code location and the demo's instance; its base URL."""
    from aura_assets.instance import dagster_env
    from lakehouse import Settings

    env, _ = demo
    settings = Settings.from_env(env)
    env = {**env, **dagster_env(settings)}
    port = _free_port()
    log = (tmp_path / "webserver.log").open("w")
    server = subprocess.Popen(
        [sys.executable, "-m", "dagster_webserver", "-h", "127.0.0.1", "-p", str(port)]
        + ["-w", str(ROOT / "workspace.yaml")],
        env=env,
        cwd=settings.dagster_home,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while True:
            try:
                urllib.request.urlopen(f"{url}/server_info", timeout=2).read()
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    log.flush()
                    pytest.fail(
                        f"webserver did not start: {(tmp_path / 'webserver.log').read_text()}"
                    )
                time.sleep(1)
        yield url
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
        log.close()


def _dismiss_dialogs(page, wait: float = 0.0) -> None:  # type: ignore[no-untyped-def]
    """Close first-visit dialogs ("Join the Dagster community": Skip), whatever they say."""
    names = re.compile(r"^(Skip|Dismiss|Close|Got it|No thanks|Not now)$", re.I)
    deadline = time.monotonic() + wait
    while True:
        buttons = page.get_by_role("dialog").get_by_role("button", name=names)
        if buttons.count():
            buttons.first.click()
            continue
        if time.monotonic() >= deadline:
            break
        time.sleep(0.5)
    page.keyboard.press("Escape")


def _shot(page, name: str) -> None:  # type: ignore[no-untyped-def]
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def test_ui_shows_assets_runs_champion_memory_and_branch_experiment(
    demo: tuple[dict[str, str], str], webserver: str
) -> None:
    from playwright.sync_api import expect, sync_playwright

    from lakehouse import Lakehouse, Settings, router

    env, output = demo
    lh = Lakehouse(Settings.from_env(env))
    snapshot_id = str(lh.table("routing_decisions").current_snapshot().snapshot_id)
    run_ids = re.findall(r"routing_ingest run ([0-9a-f-]{36})", output)
    # Three demo days, and the day the champion routed.
    assert len(run_ids) == 4, output
    last_day = re.findall(r"(\d{4}-\d{2}-\d{2}): routing_ingest", output)[-1]
    day_rows = lh.read("routing_decisions", day=date.fromisoformat(last_day))
    champion_version = router.champion_row(lh)["version"]  # type: ignore[index]
    branch, branch_run = re.findall(
        r"branch experiment (\S+): routing_model_daily \S+ run ([0-9a-f-]{36})", output
    )[0]

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1600, "height": 1000})
            page.set_default_timeout(60_000)
            expect.set_options(timeout=60_000)

            page.goto(f"{webserver}/asset-groups")  # the global asset graph, by group
            _dismiss_dialogs(page, wait=8)
            for group in ("routing", "checkpoints"):
                expect(page.get_by_text(group, exact=True).first).to_be_visible()
            _shot(page, "1-asset-graph")

            page.goto(f"{webserver}/locations/aura/asset-groups/routing")
            _dismiss_dialogs(page)
            for asset in ("routing_decisions", "routing_decisions_rejected"):
                expect(page.get_by_text(asset, exact=True).first).to_be_visible()
            _shot(page, "2-routing-group")

            page.goto(f"{webserver}/assets/routing_decisions?view=events")
            _dismiss_dialogs(page)
            expect(page.get_by_text(f"materialized in run {run_ids[-1][:8]}")).to_be_visible()
            rows = page.get_by_role("row")
            count = rows.filter(has_text="dagster/row_count").first.get_by_role("cell").nth(1)
            n = day_rows.num_rows
            expect(count).to_have_text(re.compile(rf"^\s*({n:,}|{n})\s*$"))
            snapshot = rows.filter(has_text="iceberg/snapshot_id").first.get_by_role("cell").nth(1)
            expect(snapshot).to_have_text(snapshot_id)
            _shot(page, "3-routing_decisions-materialisation")

            page.goto(f"{webserver}/locations/aura/jobs/routing_ingest/runs")
            _dismiss_dialogs(page)
            for run_id in run_ids:
                expect(page.get_by_text(run_id[:8], exact=True).first).to_be_visible()
            _shot(page, "4-routing_ingest-runs")

            # The champion: the router's promotion names it.
            page.goto(f"{webserver}/assets/router_model?view=events")
            _dismiss_dialogs(page)
            champion = rows.filter(has_text="champion_version").first.get_by_role("cell").nth(1)
            expect(champion).to_have_text(champion_version)
            _shot(page, "5-router_model-champion")

            # The memory story's assets, materialised by its runs.
            for asset in ("memory_events", "memory_warm_index", "memory_cold_archive"):
                page.goto(f"{webserver}/assets/{asset}?view=events")
                _dismiss_dialogs(page)
                expect(
                    page.get_by_text(re.compile(r"materialized in run", re.I)).first
                ).to_be_visible()
            _shot(page, "6-memory_cold_archive")

            # The branch experiment: its aggregate materialised on the branch, in its own run.
            page.goto(f"{webserver}/assets/routing_model_daily?view=events")
            _dismiss_dialogs(page)
            on = rows.filter(has_text="iceberg/branch").first.get_by_role("cell").nth(1)
            expect(on).to_have_text(branch)
            expect(page.get_by_text(f"materialized in run {branch_run[:8]}")).to_be_visible()
            _shot(page, "7-branch-experiment")
        finally:
            browser.close()
