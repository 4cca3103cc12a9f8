"""``lienthong dlq``: list, show and replay dead letters in the store a config names."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from lienthong.store import units

EXIT_OK, EXIT_FAILED = 0, 1


def add_commands(sub: Any) -> None:
    dlq = sub.add_parser("dlq", help="list, show and replay dead letters")
    commands = dlq.add_subparsers(title="dlq commands", metavar="COMMAND")

    listing = commands.add_parser("list", help="dead letters, oldest first")
    listing.add_argument("config", type=Path)
    listing.add_argument("--destination", help="only this destination")
    listing.add_argument("--limit", type=int, default=100)
    listing.add_argument("--json", action="store_true", help="one JSON object per line")
    listing.set_defaults(handler=_list)

    show = commands.add_parser("show", help="one message: its error and every attempt")
    show.add_argument("config", type=Path)
    show.add_argument("message_id")
    show.set_defaults(handler=_show)

    replay = commands.add_parser("replay", help="deliver dead letters again (records who and why)")
    replay.add_argument("config", type=Path)
    replay.add_argument("message_ids", nargs="*", metavar="MESSAGE_ID")
    replay.add_argument("--all", action="store_true", help="every dead letter (of --destination)")
    replay.add_argument("--destination")
    replay.add_argument(
        "--mapping",
        choices=("original", "current"),
        default="original",
        help="map with the version the row was planned with (default) or the config's current one",
    )
    replay.add_argument("--by", required=True, help="who replays (recorded)")
    replay.add_argument("--reason", required=True, help="why (recorded)")
    replay.add_argument("--dry-run", action="store_true", help="show what would happen; change nothing")
    replay.set_defaults(handler=_replay)


def _node(path: Path) -> Any:
    from lienthong.app import build  # noqa: PLC0415
    from lienthong.config import load_config  # noqa: PLC0415

    # An operator's tool beside a running node: it opens the node's store without claiming it as a node.
    return build(load_config(path, env=os.environ), as_node=False)


def run_on_store(path: Path, work: Any) -> int:
    """Build the node ``path`` configures and run ``work(node)`` with its store open."""
    node = _node(path)
    return asyncio.run(_on_store(node, work))


async def _on_store(node: Any, work: Any) -> int:
    """Run ``work(node)`` with the store open; closed on this loop, to which the store's process is bound."""
    node.store.open()
    try:
        code: int = await work(node)
    finally:
        node.store.close()
    return code


def when(ms: int) -> str:
    """Milliseconds since the epoch, as UTC text."""
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def _list(args: argparse.Namespace) -> int:
    async def work(node: Any) -> int:
        letters = await node.dead_letters.listing(args.destination, args.limit)
        for m in letters:
            if args.json:
                print(orjson.dumps(_as_json(m)).decode())
            else:
                print(
                    f"{m.message_id}  {m.destination}.{m.operation}  {m.dossier_code}  {when(m.updated_ms)}"
                )
                print(f"    {m.last_error}")
        if not args.json:
            print(f"{len(letters)} dead letters", file=sys.stderr)
        return EXIT_OK

    return run_on_store(args.config, work)


def _show(args: argparse.Namespace) -> int:
    async def work(node: Any) -> int:
        message = await node.store.run(units.message, args.message_id)
        if message is None:
            print(f"no message {args.message_id}", file=sys.stderr)
            return EXIT_FAILED
        print(orjson.dumps(_as_json(message), option=orjson.OPT_INDENT_2).decode())
        return EXIT_OK

    return run_on_store(args.config, work)


def _replay(args: argparse.Namespace) -> int:
    if bool(args.message_ids) == args.all:
        print("name the messages to replay, or give --all", file=sys.stderr)
        return EXIT_FAILED

    async def work(node: Any) -> int:
        ids = None if args.all else args.message_ids
        try:
            plans = await node.dead_letters.plan(ids, destination=args.destination, mapping=args.mapping)
        except LookupError as exc:
            print(str(exc), file=sys.stderr)
            return EXIT_FAILED
        for plan in plans:
            version = (plan.mapping_hash or "")[:12]
            change = " (new mapping version)" if plan.changes_version else ""
            verdict = f"would fail again: {plan.problem}" if plan.problem else "maps cleanly"
            print(f"{plan.message.message_id}  {plan.message.mapping}@{version}{change}  {verdict}")
        if args.dry_run:
            print(f"dry run: {len(plans)} dead letters would be replayed; nothing changed", file=sys.stderr)
            return EXIT_OK
        done = await node.dead_letters.replay(plans, by=args.by, reason=args.reason)
        print(f"replayed {len(done)} dead letters", file=sys.stderr)
        return EXIT_OK

    return run_on_store(args.config, work)


def _as_json(message: Any) -> dict[str, Any]:
    from dataclasses import asdict  # noqa: PLC0415

    return asdict(message)
