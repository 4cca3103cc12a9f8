"""The message log: appends per second, and a full verification against a bare SHA-256 pass.

In one run, over the same records (``--records N`` delivery records as a node writes them, about 250
bytes, default 200,000; ``--smoke``: 20,000), best of three each:

- appends: records hashed as leaves and appended to the tree, with its root read every 1,000 (a
  checkpoint's worth), per second;
- ``log verify`` on a SQLite store holding them, with a checkpoint every 1,000: every record read, hashed
  and compared with its leaf, the tree rebuilt and its root compared with each checkpoint's; against
  reading the same records from the same store and a bare ``hashlib.sha256`` of each. The ratio is bare
  time over ours (issue 13: at least 0.5). Also with ``--forms`` (every record parsed too), and the tree
  alone in memory against a bare pass in memory.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import hashlib
import random
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

from lienthong.msglog import verify as verifying
from lienthong.msglog.merkle import Tree, leaf_hash, leaf_hashes
from lienthong.msglog.records import LogRecord, StoredCheckpoint
from lienthong.store import Store, Tx, units
from lienthong.store.runner import ThreadRunner
from lienthong.store.sqlite import SqliteBackend


def log_records(n: int) -> list[LogRecord]:
    """Delivery attempts as the dispatcher records them (``store.units.complete``)."""
    rng = random.Random(13)
    return [
        LogRecord(
            1_796_000_000_000 + 7 * i,
            "delivery",
            f"{uuid.UUID(int=rng.getrandbits(128))}",
            rng.choice(["portal.push", "portal.progress", "emc.tracking", "paygov.init"]),
            "delivered",
            rng.randbytes(32).hex(),
            rng.randbytes(32).hex(),
            "attempt 1, http 200",
        )
        for i in range(n)
    ]


def bare(data: list[bytes]) -> bytes:
    sha256 = hashlib.sha256
    last = b""
    for record in data:
        last = sha256(record).digest()
    return last


def verify(data: list[bytes], expected: bytes) -> bool:
    tree = Tree()
    tree.add_leaves(leaf_hashes(data))
    return tree.root() == expected


def appends(data: list[bytes]) -> bytes:
    """As a node appends: a record at a time, the root read for a checkpoint every 1,000."""
    tree = Tree()
    for i, record in enumerate(data, 1):
        tree.append(leaf_hash(record))
        if i % 1000 == 0:
            tree.root()
    return tree.root()


def best(fn: object, *args: object) -> float:
    times = []
    for _ in range(3):
        started = time.perf_counter()
        fn(*args)  # type: ignore[operator]
        times.append(time.perf_counter() - started)
    return min(times)


async def on_store(records: list[LogRecord], workdir: Path) -> tuple[float, float, float]:
    """Best of 3, interleaved: (bare read and sha256, ``log verify``, ``log verify --forms``), seconds."""
    store = Store(ThreadRunner(functools.partial(SqliteBackend, workdir / "lienthong.db")))
    store.open()
    try:
        tree = Tree()
        for start in range(0, len(records), 1000):  # appended as a node appends, a checkpoint each 1,000
            chunk = records[start : start + 1000]
            await store.run(append, chunk)
            tree.add_leaves(leaf_hashes(r.data() for r in chunk))
            frontier = tuple(h.hex() for h in tree.frontier)
            await store.run(
                units.add_log_checkpoint, StoredCheckpoint(tree.size, tree.root().hex(), 0, "", frontier)
            )

        async def bare() -> None:
            sha256 = hashlib.sha256
            async for page in verifying.pages(store):
                for _, data, _ in page:
                    sha256(data).digest()

        async def ours(forms: bool) -> None:
            verdict = await verifying.verify(store, forms=forms)
            assert verdict.ok, verdict.problems
            assert verdict.records == len(records)

        runs: list[Callable[[], Awaitable[None]]] = [
            bare,
            functools.partial(ours, False),
            functools.partial(ours, True),
        ]
        times: list[list[float]] = [[], [], []]
        for _ in range(3):
            for i, run in enumerate(runs):
                started = time.perf_counter()
                await run()
                times[i].append(time.perf_counter() - started)
        return min(times[0]), min(times[1]), min(times[2])
    finally:
        store.close()


def append(tx: Tx, records: list[LogRecord]) -> None:
    tx.log.append(records)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--records", type=int, default=200_000)
    parser.add_argument("--smoke", action="store_true", help="20,000 records: checks the benchmark works")
    args = parser.parse_args()
    records = log_records(20_000 if args.smoke else args.records)
    data = [r.data() for r in records]
    size = sum(map(len, data))
    expected = appends(data)
    assert verify(data, expected)
    append_s = best(appends, data)
    bare_s, verify_s = best(bare, data), best(verify, data, expected)
    with tempfile.TemporaryDirectory(prefix="lienthong-bench-") as tmp:
        read_s, store_s, forms_s = asyncio.run(on_store(records, Path(tmp)))
    print(f"message log benchmark: {len(data):,} records, {size / 1e6:,.1f} MB (best of 3 each)")
    print(f"  appends            {len(data) / append_s:12,.0f} records/s")
    print(
        f"  log verify         {store_s:7.3f} s   reading them and a bare sha256 pass {read_s:6.3f} s"
        f"   bare/ours {read_s / store_s:.2f} (issue 13: >= 0.5)"
    )
    print(
        f"  log verify --forms {forms_s:7.3f} s   bare/ours {read_s / forms_s:.2f} (every record parsed too)"
    )
    print(
        f"  the tree alone     {verify_s:7.3f} s   a bare sha256 pass in memory {bare_s:6.3f} s"
        f"   bare/ours {bare_s / verify_s:.2f}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
