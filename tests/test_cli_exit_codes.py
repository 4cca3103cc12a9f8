"""The ``lienthong`` command's exit codes, on real commands (the table is in the README's CLI section):
0 ok, 1 the command ran and found problems, 2 usage or bad input, 3 the store cannot be used, 130
interrupted, 141 the reader of the output went away."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from lienthong.cli import main
from lienthong.cli.exits import EXIT_CODES
from processes import wait_until


def closed_pipe_run(*args: str) -> subprocess.CompletedProcess[bytes]:
    """``lienthong ARGS`` writing to a pipe whose reader has gone (``lienthong … | head -1``), with
    stdout buffered as it is outside tests."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
    read, write = os.pipe()
    os.close(read)
    try:
        return subprocess.run(
            [sys.executable, "-m", "lienthong.cli", *args],
            stdout=write,
            stderr=subprocess.PIPE,
            env=env,
            timeout=30,
            check=False,
        )
    finally:
        os.close(write)


@pytest.mark.parametrize(
    "args",
    [("token", "new"), ("mapping", "functions"), ("config", "schema"), ("--help",), ("mapping", "--help")],
    ids=" ".join,
)
def test_a_reader_that_goes_away_ends_the_command_quietly_with_141(args: tuple[str, ...]) -> None:
    done = closed_pipe_run(*args)
    assert b"Traceback" not in done.stderr
    assert b"BrokenPipeError" not in done.stderr
    assert b"Exception ignored" not in done.stderr
    assert done.returncode == 141


# -- 0, 1, 2, 3 on real commands ------------------------------------------------------------------------------
XML_BROKEN = """<?xml version="1.0"?>
<Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.053.001.08"><BkToCstmrStmt><Stmt>
"""


@pytest.fixture
def store_config(tmp_path: Path) -> Path:
    """A config whose SQLite store exists and is empty."""
    path = tmp_path / "lienthong.yaml"
    store = {"path": str(tmp_path / "lienthong.db"), "synchronous": "normal", "process": False}
    jobs = {"integrity-check": {"cron": "0 2 * * *"}}
    path.write_text(json.dumps({"store": store, "scheduler": {"jobs": jobs}}))
    assert main(["db", "init", str(path)]) == 0
    return path


def test_0_the_command_did_what_was_asked(store_config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["config", "schema"]) == 0
    assert main(["dlq", "list", str(store_config)]) == 0
    assert main(["runs", str(store_config)]) == 0
    assert main(["about"]) == 0


def test_1_the_command_ran_and_found_problems(
    store_config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("routes:\n  - on: dossier.received\n    deliver:\n      - {to: portl, operation: X}\n")
    assert main(["check", str(bad)]) == 1  # check's finding: the config has problems
    assert "unknown destination 'portl'" in capsys.readouterr().err
    statement = tmp_path / "bank.xml"
    statement.write_text(XML_BROKEN)
    assert main(["statement", "show", str(statement)]) == 1  # the file is there, not a statement
    window = ["--window", "2026-11-01"]
    assert main(["reconcile", str(store_config), "integrity-check", *window]) == 0
    assert main(["reconcile", str(store_config), "integrity-check", *window]) == 1  # run already: refused
    assert "has been run already" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("args", "says"),
    [
        ([], "usage: lienthong"),
        (["dlq", "list", "CONFIG", "--limit", "many"], "invalid int value"),
        (["check", "MISSING"], "cannot read"),
        (["config", "show", "MISSING"], "cannot read"),
        (["dlq", "list", "MISSING"], "cannot read"),
        (["--env-file", "MISSING", "config", "schema"], "cannot read the env file"),
        (["dlq", "list", "CONFIG", "--destination", "portl"], "unknown destination 'portl'"),
        (["dlq", "show", "CONFIG", "m-nope"], "no message m-nope"),
        (["dlq", "replay", "CONFIG", "--by", "an", "--reason", "x"], "name the messages to replay"),
        (["dlq", "replay", "CONFIG", "m-nope", "--by", "an", "--reason", "x"], "not dead letters: m-nope"),
        (
            ["dlq", "replay", "CONFIG", "--all", "--destination", "portl", "--by", "a", "--reason", "x"],
            "portl",
        ),
        (["reconcile", "CONFIG", "kpi"], "no job 'kpi' in scheduler.jobs"),
        (["reconcile", "CONFIG", "integrity-check", "--window", "yesterday"], "not an ISO 8601 date"),
        (["reconcile", "CONFIG", "integrity-check", "--force"], "--force needs --by WHO"),
        (["statement", "show", "MISSING"], "no such file"),
        (["statement", "show", "CONFIG", "--layout", "x"], "--layout needs --config"),
        (["mapping", "run", "bundled:emc_tracking", "MISSING"], "cannot read the input"),
    ],
    ids=lambda v: " ".join(v) if isinstance(v, list) else None,
)
def test_2_usage_or_bad_input_nothing_was_done(
    args: list[str], says: str, store_config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    named = {"CONFIG": str(store_config), "MISSING": str(tmp_path / "missing.yaml")}
    assert main([named.get(a, a) for a in args]) == 2
    captured = capsys.readouterr()
    assert says in captured.out + captured.err


def test_2_a_config_that_does_not_load_outside_check(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("store: {kind: sqlite, pth: x}\n")
    assert main(["dlq", "list", str(bad)]) == 2
    assert main(["config", "show", str(bad), "--resolved"]) == 2
    assert main(["db", "upgrade", str(bad)]) == 2
    assert "store.pth: unknown key" in capsys.readouterr().err


def test_3_the_store_cannot_be_used(
    store_config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for removed in tmp_path.glob("lienthong.db*"):
        removed.unlink()  # the store ran here (its lock file says so) and is gone
    assert main(["dlq", "list", str(store_config)]) == 3
    assert main(["runs", str(store_config)]) == 3
    assert main(["payments", "callbacks", str(store_config)]) == 3
    assert main(["db", "upgrade", str(store_config)]) == 3
    assert "store error: " in capsys.readouterr().err


@pytest.mark.skipif(not Path("/proc/self/syscall").exists(), reason="needs Linux's /proc/PID/syscall")
def test_130_interrupted_by_ctrl_c() -> None:
    with subprocess.Popen(
        [sys.executable, "-m", "lienthong.cli", "token", "hash"],
        stdin=subprocess.PIPE,
        stderr=subprocess.PIPE,
    ) as child:
        try:
            wait_until(lambda: reads_stdin(child.pid), 20, "`token hash` to wait for its token on stdin")
            child.send_signal(signal.SIGINT)
            _, err = child.communicate(timeout=20)
        finally:
            child.kill()
    assert child.returncode == 130
    assert b"Traceback" not in err


def reads_stdin(pid: int) -> bool:
    """Whether ``pid`` is blocked in read(0, …)."""
    try:
        return Path(f"/proc/{pid}/syscall").read_text().startswith("0 0x0 ")
    except OSError:
        return False


def test_the_readme_documents_every_exit_code() -> None:
    readme = (Path(__file__).parent.parent / "README.md").read_text(encoding="utf-8")
    section = readme.split("#### Exit codes", 1)[1].split("\n#", 1)[0]
    documented = [int(m) for m in re.findall(r"^\| `(\d+)` \|", section, flags=re.MULTILINE)]
    assert documented == list(EXIT_CODES)
