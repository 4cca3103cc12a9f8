"""The message log's Merkle tree: appends per second, and a full verification against a bare SHA-256 pass.

In one run, over the same records (``--records N`` of about 400 bytes, default 200,000; ``--smoke``:
20,000):

- appends: records hashed as leaves and appended to the tree, with its root read every 1,000 (a
  checkpoint's worth), per second;
- verification: every record's leaf hash, the tree rebuilt and its root compared with the checkpoint's,
  against a bare ``hashlib.sha256`` of each record: the ratio is bare time over ours (issue 13: at least
  0.5).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import time

from lienthong.msglog.merkle import Tree, leaf_hash, leaf_hashes


def records(n: int) -> list[bytes]:
    rng = random.Random(13)
    return [
        json.dumps(
            {
                "seq": i,
                "what": "delivery",
                "message_id": f"m-{i:020x}",
                "destination": rng.choice(["portal", "emc", "paygov"]),
                "request_sha256": rng.randbytes(32).hex(),
                "response_sha256": rng.randbytes(32).hex(),
                "outcome": "delivered",
                "at": 1_796_000_000_000 + i,
                "by": "lienthong",
            }
        ).encode()
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


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--records", type=int, default=200_000)
    parser.add_argument("--smoke", action="store_true", help="20,000 records: checks the benchmark works")
    args = parser.parse_args()
    data = records(20_000 if args.smoke else args.records)
    size = sum(map(len, data))
    expected = appends(data)
    assert verify(data, expected)
    append_s = best(appends, data)
    bare_s, verify_s = best(bare, data), best(verify, data, expected)
    print(f"message log benchmark: {len(data):,} records, {size / 1e6:,.1f} MB (best of 3 each)")
    print(f"  appends          {len(data) / append_s:12,.0f} records/s")
    print(
        f"  verification     {verify_s:7.3f} s   bare sha256 pass {bare_s:6.3f} s"
        f"   bare/ours {bare_s / verify_s:.2f} (>= 0.5)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
