"""``lienthong dlq``: list, show, replay and discard dead letters in the store a config names.

Who acts (``--by``) is the OS user unless given; replays, discards and reveals (``show --reveal``) are
recorded in the store with who, when and why. Exit codes (``cli/exits.py``): 1 when a dry run finds dead
letters that would fail again; 2 for a destination, error class, time or message the store and config do
not know, or neither messages nor ``--all`` to replay.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import os
import re
import sys
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from lienthong.cli.exits import EXIT_FAILED, EXIT_OK, EXIT_USAGE
from lienthong.cli.terminal import shown
from lienthong.model import ERROR_CLASSES
from lienthong.timefmt import DISPLAY_ZONE, moment, with_moments

if TYPE_CHECKING:
    from lienthong.bus.deadletters import Filter

CONFIG_HELP = "the node's YAML config file (its store is opened beside the running node)"


def add_commands(sub: Any) -> None:
    dlq = sub.add_parser("dlq", help="list, show, replay and discard dead letters")
    commands = dlq.add_subparsers(title="dlq commands", metavar="COMMAND")

    listing = commands.add_parser("list", help="dead letters, oldest first")
    listing.add_argument("config", type=Path, help=CONFIG_HELP)
    _filters(listing)
    listing.add_argument("--limit", type=int, default=100, metavar="N", help="at most N (default 100)")
    listing.add_argument(
        "--json",
        action="store_true",
        help="one JSON object per line; each *_ms moment also as ISO 8601 text (updated_ms → updated)",
    )
    listing.set_defaults(handler=_list)

    show = commands.add_parser(
        "show", help="one message: its error and every attempt, personal data masked (***) unless --reveal"
    )
    show.add_argument("config", type=Path, help=CONFIG_HELP)
    show.add_argument("message_id", help="the message's id, as dlq list prints it")
    show.add_argument(
        "--reveal",
        action="store_true",
        help="show personal data unmasked (recorded in the store with who, when and why, and logged)",
    )
    _who(show, "reveals")
    show.add_argument("--reason", default="", help="with --reveal: why (recorded)")
    show.set_defaults(handler=_show)

    replay = commands.add_parser("replay", help="deliver dead letters again (records who and why)")
    replay.add_argument("config", type=Path, help=CONFIG_HELP)
    replay.add_argument(
        "message_ids", nargs="*", metavar="MESSAGE_ID", help="the dead letters to replay (or --all)"
    )
    replay.add_argument("--all", action="store_true", help="every dead letter (that the filters pick)")
    _filters(replay, "with --all: ")
    replay.add_argument(
        "--mapping",
        choices=("original", "current"),
        default="original",
        help="map with the version the row was planned with (default) or the config's current one",
    )
    _who(replay, "replays")
    replay.add_argument("--reason", required=True, help="why (recorded)")
    replay.add_argument(
        "--rate",
        type=_rate,
        metavar="N/s",
        help="at most N dead letters made pending a second (e.g. 5/s, 0.5/s); default: all at once",
    )
    replay.add_argument(
        "--dry-run",
        action="store_true",
        help="show what would happen and change nothing; exit 1 if any would fail again",
    )
    replay.set_defaults(handler=_replay)

    discard = commands.add_parser("discard", help="set dead letters aside for good (records who and why)")
    discard.add_argument("config", type=Path, help=CONFIG_HELP)
    discard.add_argument("message_ids", nargs="+", metavar="MESSAGE_ID", help="the dead letters to discard")
    _who(discard, "discards")
    discard.add_argument("--reason", required=True, help="why (recorded): e.g. 'delivered by hand'")
    discard.set_defaults(handler=_discard)


def _filters(parser: argparse.ArgumentParser, prefix: str = "") -> None:
    parser.add_argument("--destination", help=f"{prefix}only this destination's dead letters")
    parser.add_argument(
        "--error-class",
        choices=ERROR_CLASSES,
        help=f"{prefix}only dead letters whose last error is of this class",
    )
    parser.add_argument(
        "--since",
        type=_when,
        metavar="TIME",
        help=f"{prefix}dead at or after TIME (ISO 8601; +07:00 if no zone)",
    )
    parser.add_argument("--until", type=_when, metavar="TIME", help=f"{prefix}dead before TIME")


def _who(parser: argparse.ArgumentParser, verb: str) -> None:
    parser.add_argument("--by", default=None, help=f"who {verb} (recorded; default: the OS user)")


def _when(text: str) -> int:
    """ISO 8601 (a date, or a date and time) as milliseconds; without a zone, Vietnam's (+07:00)."""
    try:
        moment_ = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"not an ISO 8601 time: {text!r} (e.g. 2026-11-23 or 2026-11-23T09:05:00+07:00)"
        ) from None
    if moment_.tzinfo is None:
        moment_ = moment_.replace(tzinfo=DISPLAY_ZONE)
    return int(moment_.timestamp() * 1000)


_RATE = re.compile(r"(\d+(?:\.\d+)?)(?:/s)?")


def _rate(text: str) -> float:
    found = _RATE.fullmatch(text.strip())
    if found is None or float(found.group(1)) <= 0:
        raise argparse.ArgumentTypeError(f"not a rate: {text!r} (dead letters a second, more than 0: 5/s)")
    return float(found.group(1))


def _by(args: argparse.Namespace) -> str:
    return str(args.by) if args.by is not None else getpass.getuser()


def _where(args: argparse.Namespace) -> Filter:
    from lienthong.bus.deadletters import Filter  # noqa: PLC0415 (keep `lienthong --help` fast)

    return Filter(args.destination, args.error_class, args.since, args.until)


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
    from lienthong.bus.deadletters import error_class  # noqa: PLC0415 (keep `lienthong --help` fast)

    async def work(node: Any) -> int:
        letters = await node.dead_letters.listing(args.destination, args.limit, where=_where(args))
        if not letters and unknown_destination(node, args.destination):
            return EXIT_USAGE
        for m in letters:
            if args.json:
                print(orjson.dumps({**_as_json(m), "error_class": error_class(m.last_error)}).decode())
            else:
                print(
                    f"{m.message_id}  {m.destination}.{m.operation}  {shown(m.dossier_code)}"
                    f"  {moment(m.updated_ms)}  {error_class(m.last_error)}"
                )
                print(f"    {shown(m.last_error or '')}")  # a peer's words: shown, not obeyed
        if not args.json:
            print(f"{len(letters)} dead letters", file=sys.stderr)
        return EXIT_OK

    return run_on_store(args.config, work)


def _show(args: argparse.Namespace) -> int:
    if not args.reveal and (args.by is not None or args.reason):
        print("--by and --reason go with --reveal", file=sys.stderr)
        return EXIT_USAGE

    async def work(node: Any) -> int:
        reveal_by = _by(args) if args.reveal else None
        try:
            message = await node.dead_letters.show(args.message_id, reveal_by=reveal_by, reason=args.reason)
        except LookupError as exc:
            print(str(exc).strip("'\""), file=sys.stderr)
            return EXIT_USAGE
        print(orjson.dumps(_as_json(message), option=orjson.OPT_INDENT_2).decode())
        return EXIT_OK

    return run_on_store(args.config, work)


def _replay(args: argparse.Namespace) -> int:
    if bool(args.message_ids) == args.all:
        print("name the messages to replay, or give --all", file=sys.stderr)
        return EXIT_USAGE
    from lienthong.bus.deadletters import Filter, RateLimit  # noqa: PLC0415 (keep `lienthong --help` fast)

    if _where(args) != Filter() and not args.all:
        print("--destination, --error-class, --since and --until go with --all", file=sys.stderr)
        return EXIT_USAGE

    async def work(node: Any) -> int:
        ids = None if args.all else args.message_ids
        try:
            plans = await node.dead_letters.plan(ids, mapping=args.mapping, where=_where(args))
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
        rate = RateLimit(args.rate) if args.rate is not None else None
        try:
            done = await node.dead_letters.replay(plans, by=_by(args), reason=args.reason, rate=rate)
        except ValueError as exc:
            print(str(exc), file=sys.stderr)
            return EXIT_USAGE
        print(f"replayed {len(done)} dead letters", file=sys.stderr)
        return EXIT_OK

    return run_on_store(args.config, work)


def _discard(args: argparse.Namespace) -> int:
    async def work(node: Any) -> int:
        try:
            done = await node.dead_letters.discard(args.message_ids, by=_by(args), reason=args.reason)
        except (LookupError, ValueError) as exc:
            print(str(exc).strip("'\""), file=sys.stderr)
            return EXIT_USAGE
        for message_id in done:
            print(message_id)
        print(f"discarded {len(done)} dead letters", file=sys.stderr)
        return EXIT_OK

    return run_on_store(args.config, work)


def _as_json(message: Any) -> dict[str, Any]:
    from dataclasses import asdict  # noqa: PLC0415

    return dict(with_moments(asdict(message)))
