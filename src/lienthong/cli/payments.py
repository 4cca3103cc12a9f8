"""``lienthong payments``: the callbacks received (refused or not) and the findings about payments."""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path
from typing import Any

import orjson

from lienthong.cli.dlq import CONFIG_HELP, run_on_store
from lienthong.cli.exits import EXIT_OK
from lienthong.cli.terminal import shown
from lienthong.timefmt import moment, with_moments

JSON_HELP = "one JSON object per line; each *_ms moment also as ISO 8601 text (received_ms → received)"


def add_commands(sub: Any) -> None:
    payments = sub.add_parser("payments", help="payment callbacks and findings (duplicate payments)")
    commands = payments.add_subparsers(title="payments commands", metavar="COMMAND")

    callbacks = commands.add_parser("callbacks", help="callbacks received, newest first, with their verdicts")
    callbacks.add_argument("config", type=Path, help=CONFIG_HELP)
    callbacks.add_argument("--reference", help="only callbacks naming this reference (as recorded)")
    callbacks.add_argument("--limit", type=int, default=100, metavar="N", help="at most N (default 100)")
    callbacks.add_argument("--json", action="store_true", help=JSON_HELP)
    callbacks.set_defaults(handler=_callbacks)

    findings = commands.add_parser("findings", help="payments a person must look at: duplicate payments")
    findings.add_argument("config", type=Path, help=CONFIG_HELP)
    findings.add_argument("--limit", type=int, default=100, metavar="N", help="at most N (default 100)")
    findings.add_argument("--json", action="store_true", help=JSON_HELP)
    findings.set_defaults(handler=_findings)


def _callbacks(args: argparse.Namespace) -> int:
    async def work(node: Any) -> int:
        from lienthong.store import units  # noqa: PLC0415 (keep `lienthong --help` fast)

        records = await node.store.run(units.callbacks, args.limit, args.reference)
        for r in records:
            if args.json:
                print(orjson.dumps(with_moments(dataclasses.asdict(r))).decode())
                continue
            # What a callback said is a stranger's text (it is recorded before it is verified): shown.
            print(
                f"{moment(r.received_ms)}  {r.channel:<8} {r.verdict:<18} {shown(r.status) or '-':<8}"
                f" ref={shown(r.reference) or '-'}  txn={shown(r.transaction_id) or '-'}"
                f"  from={shown(r.source) or '-'}  {r.body_bytes} B sha256={r.body_sha256[:12]}"
            )
            if r.detail:
                print(f"    {shown(r.detail)}")
        if not args.json:
            print(f"{len(records)} callbacks", file=sys.stderr)
        return EXIT_OK

    return run_on_store(args.config, work)


def _findings(args: argparse.Namespace) -> int:
    async def work(node: Any) -> int:
        from lienthong.store import units  # noqa: PLC0415 (keep `lienthong --help` fast)

        findings = await node.store.run(units.payment_findings, args.limit)
        for f in findings:
            if args.json:
                print(orjson.dumps(with_moments(dataclasses.asdict(f))).decode())
            else:
                print(
                    f"{moment(f.at_ms)}  {f.kind}  ref={shown(f.reference)}  {f.amount} đ  {shown(f.detail)}"
                )
        if not args.json:
            print(f"{len(findings)} findings", file=sys.stderr)
        return EXIT_OK

    return run_on_store(args.config, work)
