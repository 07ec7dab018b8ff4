"""`mlflow ui` in a subprocess and Debian's Chromium driven by Playwright.

Shared by tests/test_browser.py and docs/screenshots.py (which puts tests/ on sys.path).
MLflow 3.17's UI routes (hash router): `#/experiments/<id>` (the runs table in "Model training"
mode), `#/compare-runs?runs=[...]&experiments=[...]` (JSON arrays, as the UI builds them),
`#/experiments/<id>/runs/<run id>/artifacts/<path>`; the image behind an artifact preview is
`get-artifact?path=<path>&run_uuid=<run id>`.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

CHROMIUM = Path("/usr/bin/chromium")  # Debian's package; Playwright's own browsers are not used
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# The UI's own preferences, as its toggles store them: the "Model training" side of the
# GenAI / Model training switch (else an experiment opens on a GenAI traces overview), and the
# MLflow Assistant panel closed (it opens itself on first load and takes a third of the width).
UI_PREFERENCES = {
    "mlflow.workflowType_v1": json.dumps("machine_learning"),
    "mlflow.assistant.panelOpen_v1": "false",
    "mlflow.assistant.fab.autoOpenedOnFirstLoad_v1": "true",
}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _wait_for_health(url: str, process: subprocess.Popen, log: Path, timeout: float):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"mlflow ui exited ({process.returncode}):\n{log.read_text()}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.25)
    raise TimeoutError(f"mlflow ui did not answer {url} in {timeout:.0f} s:\n{log.read_text()}")


@contextlib.contextmanager
def mlflow_ui(tracking_uri: str, cwd: Path, log: Path, timeout: float = 90) -> Iterator[str]:
    """`mlflow ui` on a free loopback port until the block ends; yields its base URL."""
    port = free_port()
    command = [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", tracking_uri]
    command += ["--host", "127.0.0.1", "--port", str(port), "--workers", "1"]
    # no telemetry; no job runner (GenAI judges and scheduled tasks: 9 processes, ~2 GB here)
    env = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true"}
    env["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] = "false"
    with open(log, "wb") as output:  # its own process group: uvicorn's processes end with it
        process = subprocess.Popen(
            command,
            cwd=cwd,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        base_url = f"http://127.0.0.1:{port}"
        _wait_for_health(f"{base_url}/health", process, log, timeout)
        yield base_url
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()


@contextlib.contextmanager
def chromium_page(user_data_dir: Path, width: int = 1400, height: int = 900):
    """A page of headless Chromium with a fresh profile in `user_data_dir`."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            user_data_dir,
            executable_path=CHROMIUM,
            headless=True,
            args=CHROMIUM_ARGS,
            viewport={"width": width, "height": height},
        )
        context.set_default_timeout(30_000)
        context.add_init_script(
            "".join(
                f"window.localStorage.setItem({json.dumps(key)}, {json.dumps(value)});"
                for key, value in UI_PREFERENCES.items()
            )
        )
        try:
            yield context.new_page()
        finally:
            context.close()


def experiment_url(base_url: str, experiment_id: str) -> str:
    return f"{base_url}/#/experiments/{experiment_id}"


def compare_url(base_url: str, experiment_id: str, run_ids: list[str]) -> str:
    runs = json.dumps(run_ids, separators=(",", ":"))
    return f"{base_url}/#/compare-runs?runs={runs}&experiments={json.dumps([experiment_id])}"


def chart_url(base_url: str, experiment_id: str) -> str:
    return f"{base_url}/#/experiments/{experiment_id}/runs?compareRunsMode=CHART"


def artifact_url(base_url: str, experiment_id: str, run_id: str, path: str) -> str:
    return f"{base_url}/#/experiments/{experiment_id}/runs/{run_id}/artifacts/{path}"


def artifact_file_url(base_url: str, run_id: str, path: str) -> str:
    return f"{base_url}/get-artifact?path={path}&run_uuid={run_id}"


def show_columns(page, names: list[str], hide: tuple[str, ...] = ("Source", "Models")):
    """Params / metrics as columns of the runs table, as a user adds them: Columns, search, tick.
    Unticks the default columns `hide`, so that the new ones fit the width."""
    page.get_by_role("button", name="Columns").click()
    tree = page.get_by_test_id("column-selector-tree")
    for name in [*hide, *names]:
        page.get_by_placeholder("Search columns").fill(name)
        tree.locator("[class*=tree-title]").filter(has_text=re.compile(f"^{name}$")).click()
    page.keyboard.press("Escape")


def column_values(page, column: str) -> list[str]:
    """The runs table's cells of one column (`params.`name`` / `metrics.`name``), top down."""
    cells = page.locator(f'[role=gridcell][col-id="{column}"]')
    return [cells.nth(index).inner_text().strip() for index in range(cells.count())]
