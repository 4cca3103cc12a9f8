"""``lienthong dlq``: list, show and replay dead letters in the store a config names.

Exit codes (``cli/exits.py``): 1 when a dry run finds dead letters that would fail again; 2 for a
destination or message the store and config do not know, or neither messages nor ``--all`` to replay.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from pathlib import Path
from typing import Any

import orjson

from lienthong.cli.exits import EXIT_FAILED, EXIT_OK, EXIT_USAGE
from lienthong.store import units
from lienthong.timefmt import moment, with_moments

CONFIG_HELP = "the node's YAML config file (its store is opened beside the running node)"


def add_commands(sub: Any) -> None:
    dlq = sub.add_parser("dlq", help="list, show and replay dead letters")
    commands = dlq.add_subparsers(title="dlq commands", metavar="COMMAND")

    listing = commands.add_parser("list", help="dead letters, oldest first")
    listing.add_argument("config", type=Path, help=CONFIG_HELP)
    listing.add_argument("--destination", help="only this destination's dead letters")
    listing.add_argument("--limit", type=int, default=100, metavar="N", help="at most N (default 100)")
    listing.add_argument(
        "--json",
        action="store_true",
        help="one JSON object per line; each *_ms moment also as ISO 8601 text (updated_ms → updated)",
    )
    listing.set_defaults(handler=_list)

    show = commands.add_parser("show", help="one message: its error and every attempt")
    show.add_argument("config", type=Path, help=CONFIG_HELP)
    show.add_argument("message_id", help="the message's id, as dlq list prints it")
    show.set_defaults(handler=_show)

    replay = commands.add_parser("replay", help="deliver dead letters again (records who and why)")
    replay.add_argument("config", type=Path, help=CONFIG_HELP)
    replay.add_argument(
        "message_ids", nargs="*", metavar="MESSAGE_ID", help="the dead letters to replay (or --all)"
    )
    replay.add_argument("--all", action="store_true", help="every dead letter (of --destination)")
    replay.add_argument("--destination", help="with --all: only this destination's dead letters")
    replay.add_argument(
        "--mapping",
        choices=("original", "current"),
        default="original",
        help="map with the version the row was planned with (default) or the config's current one",
    )
    replay.add_argument("--by", required=True, help="who replays (recorded)")
    replay.add_argument("--reason", required=True, help="why (recorded)")
    replay.add_argument(
        "--dry-run",
        action="store_true",
        help="show what would happen and change nothing; exit 1 if any would fail again",
    )
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


def unknown_destination(node: Any, destination: str | None) -> bool:
    """True (and said on stderr) when ``destination`` is neither in the config nor the store's dead
    letters: a typo, which would otherwise list nothing and look like good news."""
    if destination is None or destination in node.config.destinations:
        return False
    known = ", ".join(sorted(node.config.destinations)) or "none configured"
    print(f"unknown destination {destination!r} (known: {known})", file=sys.stderr)
    return True


def _list(args: argparse.Namespace) -> int:
    async def work(node: Any) -> int:
        letters = await node.dead_letters.listing(args.destination, args.limit)
        if not letters and unknown_destination(node, args.destination):
            return EXIT_USAGE
        for m in letters:
            if args.json:
                print(orjson.dumps(_as_json(m)).decode())
            else:
                print(
                    f"{m.message_id}  {m.destination}.{m.operation}  {m.dossier_code}  {moment(m.updated_ms)}"
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
            return EXIT_USAGE
        print(orjson.dumps(_as_json(message), option=orjson.OPT_INDENT_2).decode())
        return EXIT_OK

    return run_on_store(args.config, work)


def _replay(args: argparse.Namespace) -> int:
    if bool(args.message_ids) == args.all:
        print("name the messages to replay, or give --all", file=sys.stderr)
        return EXIT_USAGE
    if args.destination is not None and not args.all:
        print("--destination goes with --all", file=sys.stderr)
        return EXIT_USAGE

    async def work(node: Any) -> int:
        ids = None if args.all else args.message_ids
        try:
            plans = await node.dead_letters.plan(ids, destination=args.destination, mapping=args.mapping)
        except LookupError as exc:
            print(str(exc), file=sys.stderr)
            return EXIT_USAGE
        if not plans and unknown_destination(node, args.destination):
            return EXIT_USAGE
        for plan in plans:
            version = (plan.mapping_hash or "")[:12]
            change = " (new mapping version)" if plan.changes_version else ""
            verdict = f"would fail again: {plan.problem}" if plan.problem else "maps cleanly"
            print(f"{plan.message.message_id}  {plan.message.mapping}@{version}{change}  {verdict}")
        if args.dry_run:
            failing = sum(1 for plan in plans if plan.problem)
            print(
                f"dry run: {len(plans)} dead letters would be replayed, {failing} would fail again;"
                " nothing changed",
                file=sys.stderr,
            )
            return EXIT_FAILED if failing else EXIT_OK
        done = await node.dead_letters.replay(plans, by=args.by, reason=args.reason)
        print(f"replayed {len(done)} dead letters", file=sys.stderr)
        return EXIT_OK

    return run_on_store(args.config, work)


def _as_json(message: Any) -> dict[str, Any]:
    from dataclasses import asdict  # noqa: PLC0415

    return dict(with_moments(asdict(message)))
