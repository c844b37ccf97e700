"""Headless Chromium for the HTML leaderboard: a screenshot of what a reader sees, and the DOM after
the page's script ran (for tests that sort and filter in a real browser).

Chromium is an optional system program (Debian: `apt-get install chromium`), not a Python dependency:
the reports are built without it; only the screenshot and the browser test need it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from bench.util.errors import UserError

CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
ENV_VAR = "GLIP_BENCH_CHROMIUM"
TIMEOUT_S = 120


def find_chromium() -> str | None:
    """The browser binary: $GLIP_BENCH_CHROMIUM, else the first of CANDIDATES on PATH; None if none."""
    given = os.environ.get(ENV_VAR)
    if given:
        return shutil.which(given) or (given if Path(given).is_file() else None)
    return next((p for p in map(shutil.which, CANDIDATES) if p), None)


def _run(args: list[str]) -> subprocess.CompletedProcess:
    binary = find_chromium()
    if binary is None:
        raise UserError(f"no Chromium found (looked for {', '.join(CANDIDATES)} on PATH and ${ENV_VAR}); "
                        "install it, e.g. `apt-get install chromium`, or leave out --screenshot")
    with tempfile.TemporaryDirectory(prefix="glip-bench-chromium-") as profile:
        # --no-sandbox: CI containers run as root, where Chromium's sandbox refuses to start
        cmd = [binary, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--no-first-run",
               f"--user-data-dir={profile}", *args]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=TIMEOUT_S, check=False)
    if proc.returncode != 0:
        raise UserError(f"{binary} failed (rc {proc.returncode}): {proc.stderr.strip()[-500:]}")
    return proc


def screenshot(page: str | Path, png: str | Path, width: int = 1366, height: int = 900) -> Path:
    """PNG of the page's first screen at width x height CSS pixels."""
    png = Path(png).resolve()
    png.parent.mkdir(parents=True, exist_ok=True)
    _run([f"--window-size={width},{height}", f"--screenshot={png}", Path(page).resolve().as_uri()])
    if not png.is_file():
        raise UserError(f"Chromium wrote no screenshot to {png}")
    return png


def dump_dom(page: str | Path, width: int = 1366, height: int = 900) -> str:
    """The page's DOM (serialised HTML) after its scripts ran, laid out at width x height."""
    return _run([f"--window-size={width},{height}", "--dump-dom", Path(page).resolve().as_uri()]).stdout
