"""``lienthong statement show FILE``: how lienthong reads a bank file, before any matching."""

from __future__ import annotations

import argparse
import json
import os
import sys
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lienthong.cli.exits import EXIT_FAILED, EXIT_OK, EXIT_USAGE
from lienthong.errors import ConfigError

if TYPE_CHECKING:
    from lienthong.bank.csvfile import CsvLayout
    from lienthong.bank.records import StatementSummary


def add_commands(sub: Any) -> None:
    statement = sub.add_parser("statement", help="bank statement files (camt.053, camt.054, CSV)")
    statement_sub = statement.add_subparsers(title="statement commands", metavar="COMMAND")
    show = statement_sub.add_parser(
        "show",
        help="how lienthong reads a bank file: per statement its account, currency, balances by code,"
        " entry count, signed sum of the entries, and whether the balances roll forward",
    )
    show.add_argument("file", type=Path, help="a camt.053 or camt.054 XML file, or a CSV export")
    show.add_argument("--json", action="store_true", help="one JSON object per statement, in a list")
    show.add_argument("--config", type=Path, help="the config whose bank_statements.layouts read a CSV file")
    show.add_argument("--layout", help="the CSV layout's name (needed when the config has several)")
    show.set_defaults(handler=_show)


def _show(args: argparse.Namespace) -> int:
    """Exit 1 when the file is there but cannot be read as statements; 2 when there is no such file."""
    # The bank's modules load when a statement is read, not for `lienthong --help`.
    from lienthong.bank.records import StatementError, StatementSummary  # noqa: PLC0415
    from lienthong.bank.statements import read_statements  # noqa: PLC0415

    if args.layout is not None and args.config is None:
        print("--layout needs --config, where the layouts are", file=sys.stderr)
        return EXIT_USAGE
    if not args.file.is_file():
        print(f"{args.file}: no such file", file=sys.stderr)
        return EXIT_USAGE
    layout, max_bytes = _layout(args)
    try:
        items = read_statements(args.file, csv_layout=layout, max_bytes=max_bytes)
        summaries = [item for item in items if isinstance(item, StatementSummary)]
    except StatementError as exc:
        print(f"cannot read the statement file: {exc}", file=sys.stderr)
        return EXIT_FAILED
    if args.json:
        print(json.dumps([s.as_json() for s in summaries], ensure_ascii=False, indent=2))
        return EXIT_OK
    kinds = sorted({f"{s.kind}.{s.version}" if s.version else s.kind for s in summaries})
    print(f"{args.file}: {', '.join(kinds) or 'no statements'}, {len(summaries)} statement(s)")
    for summary in summaries:
        print(_describe(summary))
    return EXIT_OK


def _layout(args: argparse.Namespace) -> tuple[CsvLayout | None, int]:
    from lienthong.bank.records import DEFAULT_MAX_BYTES  # noqa: PLC0415

    if args.config is None:
        return None, DEFAULT_MAX_BYTES
    from lienthong.config import load_config  # noqa: PLC0415 (only when asked for)

    config = load_config(args.config, env=os.environ).bank_statements
    layouts = config.layouts
    if args.layout is not None:
        if args.layout not in layouts:
            known = ", ".join(sorted(layouts)) or "none"
            raise ConfigError.single(
                str(args.config),
                f"no CSV layout named {args.layout!r} ({known})",
                path="bank_statements.layouts",
            )
        return layouts[args.layout], config.max_file_bytes
    if len(layouts) == 1:
        return next(iter(layouts.values())), config.max_file_bytes
    return None, config.max_file_bytes


def _describe(summary: StatementSummary) -> str:
    name = f"statement {summary.index}" + (f" ({summary.id})" if summary.id else "")
    lines = [f"{name}, line {summary.line}: account {summary.account or '(none)'} {summary.currency}"]
    if summary.balances:
        lines.append(
            "  balances: " + ", ".join(f"{code} {_amount(v)}" for code, v in summary.balances.items())
        )
    lines.append(
        f"  entries: {summary.entries}, sum {_amount(summary.entries_sum, signed=True)}"
        f" (booked {_amount(summary.booked_sum, signed=True)}, {summary.pending} not booked)"
    )
    rolls = summary.rolls_forward
    if rolls is None:
        lines.append("  rolls forward: cannot tell (no opening or no closing balance)")
    elif rolls:
        lines.append("  rolls forward: yes")
    else:
        opening, closing = summary.opening, summary.closing
        assert opening is not None
        assert closing is not None
        expected = opening + summary.booked_sum
        lines.append(
            f"  rolls forward: NO: opening {_amount(opening)} + booked entries"
            f" {_amount(summary.booked_sum, signed=True)} = {_amount(expected)}, but the closing balance"
            f" is {_amount(closing)} (off by {_amount(closing - expected, signed=True)})"
        )
    return "\n".join(lines)


def _amount(value: Decimal, *, signed: bool = False) -> str:
    return f"{value:+,}" if signed else f"{value:,}"
