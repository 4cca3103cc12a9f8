"""Fail unless a `lienthong demo --json` summary shows nothing pending, every destination delivered, and the
message log verified against its signed checkpoint."""

import json
import sys

EXPECTED = {"portal", "emc", "paygov", "vnpt", "viettel", "province"}


def main(path: str) -> int:
    with open(path, encoding="utf-8") as f:
        summary = json.load(f)
    problems = []
    if summary.get("pending") != 0:
        problems.append(f"pending is {summary.get('pending')!r}, not 0")
    deliveries = summary.get("deliveries", {})
    for kind in sorted(EXPECTED):
        delivered = deliveries.get(kind, {}).get("delivered", 0)
        if delivered <= 0:
            problems.append(f"destination {kind!r} delivered nothing")
    log = summary.get("message_log", {})
    if not log.get("verified") or not log.get("records"):
        problems.append(f"the message log did not verify: {log!r}")
    if problems:
        print("fresh install demo FAILED: " + "; ".join(problems), file=sys.stderr)
        print(json.dumps(summary, ensure_ascii=False), file=sys.stderr)
        return 1
    counts = ", ".join(f"{k} {deliveries[k]['delivered']}" for k in sorted(EXPECTED))
    records = log["records"]
    print(f"fresh install demo ok: pending 0; delivered {counts}; message log {records} records, verified")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
