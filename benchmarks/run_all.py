"""Run every benchmark in turn: ``make bench`` (full sizes) or ``make bench-smoke`` (CI: it works)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

BENCHMARKS = [
    "bench_bus.py",
    "bench_mapping.py",
    "bench_citizens.py",
    "bench_hostile.py",
    "bench_reconcile.py",
    "bench_msglog.py",
    "bench_xmldsig.py",
]


# Runs with options of their own, in the smoke run only: they show the option works from a clean clone.
SMOKE_ONLY = [
    ["bench_bus.py", "--smoke", "--only", "ingest", "--against", "HEAD"],
]


def main() -> int:
    here = Path(__file__).parent
    runs = [[name, *sys.argv[1:]] for name in BENCHMARKS]
    if "--smoke" in sys.argv[1:]:
        if _in_git_checkout(here):
            runs += SMOKE_ONLY
        else:  # an exported tree: --against has no history to read
            print("run_all: not a git checkout, so bench_bus.py --against is not run", file=sys.stderr)
    for name, *args in runs:
        code = subprocess.call([sys.executable, str(here / name), *args])
        if code != 0:
            return code
    return 0


def _in_git_checkout(here: Path) -> bool:
    """Whether this project's tree is a git checkout of its own (not an export inside another one)."""
    found = subprocess.run(
        ["git", "rev-parse", "--show-toplevel"], cwd=here, capture_output=True, text=True, check=False
    )
    return found.returncode == 0 and Path(found.stdout.strip()).resolve() == here.resolve().parent


if __name__ == "__main__":
    sys.exit(main())
