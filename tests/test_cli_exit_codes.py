"""The ``lienthong`` command's exit codes, on real commands (the table is in the README's CLI section):
0 ok, 1 the command ran and found problems, 2 usage or bad input, 3 the store cannot be used, 130
interrupted, 141 the reader of the output went away."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest


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
