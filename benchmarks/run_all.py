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


def main() -> int:
    here = Path(__file__).parent
    for name in BENCHMARKS:
        code = subprocess.call([sys.executable, str(here / name), *sys.argv[1:]])
        if code != 0:
            return code
    return 0


if __name__ == "__main__":
    sys.exit(main())
