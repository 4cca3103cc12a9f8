"""A page opened in a real headless browser (Debian's ``chromium``), with the network cut off.

``open_page`` answers the DOM after scripts ran, the console messages the page logged (errors
included: a failed load, an uncaught exception), and a screenshot. Without chromium the tests skip
locally with a reason; under CI (``CI=true``, set by ``.ci/run``, which installs chromium) they fail.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

_CONSOLE = re.compile(r":CONSOLE\(\d+\)\] (.*)$|Uncaught .*|Failed to load resource.*")


@dataclass(frozen=True)
class Rendered:
    dom: str
    console: list[str]
    screenshot: bytes


def chromium_or_skip() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        reason = "Debian's chromium is not installed (.ci/run installs it)"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{reason}; under CI the browser tests are required")
        pytest.skip(reason)
    return found


def headless(tmp_path: Path, *, loopback: bool = False, budget_ms: int = 3000) -> list[str]:
    """chromium's command with no network: every host name fails to resolve (``loopback``: but
    127.0.0.1, where a test's node listens); logs on stderr; scripts given ``budget_ms`` of virtual time."""
    rules = "MAP * ~NOTFOUND, EXCLUDE 127.0.0.1" if loopback else "MAP * ~NOTFOUND"
    return [
        chromium_or_skip(),
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        "--disable-extensions",
        f"--user-data-dir={tmp_path / 'profile'}",
        f"--host-resolver-rules={rules}",
        "--enable-logging=stderr",
        "--v=0",
        f"--virtual-time-budget={budget_ms}",
    ]


def open_page(path: Path, tmp_path: Path) -> Rendered:
    """``path`` as chromium renders it with no network (every host name fails to resolve)."""
    shot = tmp_path / "page.png"
    common = headless(tmp_path)
    url = path.resolve().as_uri()
    dumped = subprocess.run(
        [*common, "--dump-dom", url], capture_output=True, text=True, timeout=120, check=False
    )
    subprocess.run(
        [*common, f"--screenshot={shot}", "--window-size=1200,900", url],
        capture_output=True,
        timeout=120,
        check=False,
    )
    console = [line.strip() for line in dumped.stderr.splitlines() if _CONSOLE.search(line)]
    return Rendered(dumped.stdout, console, shot.read_bytes() if shot.exists() else b"")
