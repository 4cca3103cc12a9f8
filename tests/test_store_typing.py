"""Units of work are checked by mypy against the store's contract: renaming a repository method fails
``mypy --strict`` at every unit that calls it, and in every backend that still has the old name.

(Before the store package, calls crossed to the store's process as ``methodcaller("name")``: a rename
passed mypy and failed only at run time, in the child process.)"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import lienthong

pytestmark = pytest.mark.slow


def mypy_after(tmp_path: Path, path: str, old: str, new: str) -> subprocess.CompletedProcess[str]:
    """mypy --strict over ``lienthong.store`` in a copy of the package where ``old`` became ``new`` in
    ``path`` (relative to the package)."""
    package = tmp_path / "src" / "lienthong"
    shutil.copytree(Path(lienthong.__file__).parent, package, ignore=shutil.ignore_patterns("__pycache__"))
    target = package / path
    text = target.read_text(encoding="utf-8")
    assert old in text
    target.write_text(text.replace(old, new), encoding="utf-8")
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy",
            "--strict",
            "--follow-imports=silent",
            "--no-incremental",
            "--config-file=/dev/null",
            "-p",
            "lienthong.store",
        ],
        cwd=tmp_path / "src",
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )


def test_the_copy_checks_clean_before_any_rename(tmp_path: Path) -> None:
    result = mypy_after(tmp_path, "store/contract.py", "class KnownEvent", "class KnownEvent")
    assert result.returncode == 0, result.stdout


def test_renaming_a_contract_method_fails_mypy_at_the_units_that_call_it(tmp_path: Path) -> None:
    result = mypy_after(tmp_path, "store/contract.py", "    def known(self,", "    def seen(self,")
    assert result.returncode == 1
    assert "units.py" in result.stdout
    assert '"Events" has no attribute "known"' in result.stdout


def test_renaming_a_method_in_one_backend_fails_mypy_where_it_is_used_as_a_backend(tmp_path: Path) -> None:
    result = mypy_after(
        tmp_path, "store/sqlite.py", "    def finish(self, outcomes", "    def finished(self, outcomes"
    )
    assert result.returncode == 1
    assert "store/__init__.py" in result.stdout
