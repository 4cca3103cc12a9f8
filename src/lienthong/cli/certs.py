"""``lienthong certs``: the certificates a config names (``show``), whether any expires soon or does not
verify (``check``), and a throwaway PKI for the demo and tests (``dev-init``).

``check`` exits 1 when it finds a problem (a certificate expiring within ``--days``, a chain that does not
verify against its trust store, a file that does not load), 2 when the config itself does not load.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from lienthong.cli.exits import EXIT_FAILED, EXIT_OK, EXIT_USAGE
from lienthong.errors import ConfigError
from lienthong.timefmt import moment

CONFIG_HELP = "the node's YAML config file"


def add_commands(sub: Any) -> None:
    """Register ``certs show``, ``certs check`` and ``certs dev-init``."""
    certs = sub.add_parser("certs", help="keys and certificates: show, check, dev-init")
    commands = certs.add_subparsers(title="certs commands", metavar="COMMAND")

    show = commands.add_parser(
        "show", help="each certificate the config names: name, purpose, subject, issuer, expiry, days left"
    )
    show.add_argument("config", type=Path, help=CONFIG_HELP)
    show.add_argument("--json", action="store_true", help="one JSON object per certificate, one per line")
    show.set_defaults(handler=_show)

    check = commands.add_parser(
        "check", help="exit 1 if a certificate expires within N days or a chain does not verify"
    )
    check.add_argument("config", type=Path, help=CONFIG_HELP)
    check.add_argument(
        "--days", type=int, default=30, metavar="N", help="expiring within N days is a problem (default 30)"
    )
    check.set_defaults(handler=_check)

    dev = commands.add_parser(
        "dev-init",
        help="write a throwaway CA, a server certificate for localhost and a client certificate (PEM and"
        " PKCS#12) into DIR, for the demo and tests; never over existing files",
    )
    dev.add_argument("dir", type=Path, help="the directory to write into (made if missing)")
    dev.set_defaults(handler=_dev_init)
    certs.set_defaults(handler=lambda _: _usage(certs))


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help(sys.stderr)
    return EXIT_USAGE


def _entries(path: Path) -> tuple[Any, list[Any]]:
    from lienthong.app import certificate_files  # noqa: PLC0415 (keep `lienthong --help` fast)
    from lienthong.config import load_config  # noqa: PLC0415

    config = load_config(path, env=os.environ)
    return config, certificate_files(config)


def _show(args: argparse.Namespace) -> int:
    from lienthong.certs import describe  # noqa: PLC0415

    _, entries = _entries(args.config)
    now = datetime.now(UTC)
    failed = False
    for entry in entries:
        try:
            found = describe(entry, os.environ)
        except ConfigError as exc:
            failed = True
            print(f"{entry.name} {entry.purpose}: {exc}", file=sys.stderr)
            continue
        for info in found:
            if args.json:
                record = info.as_json(now) | {
                    "not_before": _when(info.not_before),
                    "not_after": _when(info.not_after),
                }
                print(orjson.dumps(record).decode())
            else:
                print(_line(info, now))
    if not entries:
        print("the config names no certificate", file=sys.stderr)
    return EXIT_FAILED if failed else EXIT_OK


def _line(info: Any, now: datetime) -> str:
    days = info.days_left(now)
    left = f"{days:.0f} days left" if days >= 0 else f"EXPIRED {-days:.0f} days ago"
    return (
        f"{info.name}  {info.purpose}  {info.file}\n    subject: {info.subject}\n    issuer:  {info.issuer}\n"
        f"    not after: {_when(info.not_after)} ({left})"
    )


def _when(moment_utc: datetime) -> str:
    return moment(int(moment_utc.timestamp() * 1000))


def _check(args: argparse.Namespace) -> int:
    _, entries = _entries(args.config)
    problems = problems_of(entries, os.environ, datetime.now(UTC), days=args.days)
    for problem in problems:
        print(problem)
    summary = f"{len(entries)} certificate files, {len(problems)} problems"
    print(summary, file=sys.stderr)
    return EXIT_FAILED if problems else EXIT_OK


def problems_of(entries: list[Any], environ: Mapping[str, str], now: datetime, *, days: int) -> list[str]:
    """Each problem of ``entries``, one line each: a file that does not load, a certificate expiring
    within ``days`` days (or expired), a chain that does not verify against its trust store."""
    from lienthong.certs import chain_problem, describe  # noqa: PLC0415

    found = []
    for entry in entries:
        where = f"{entry.name} {entry.purpose} {entry.file}"
        try:
            infos = describe(entry, environ)
            chain = chain_problem(entry, environ, now)
        except ConfigError as exc:
            found.append(f"{where}: does not load: {exc}")
            continue
        for info in infos:
            left = info.days_left(now)
            if left < 0:
                found.append(f"{where}: {info.subject} expired on {_when(info.not_after)}")
            elif left < days:
                found.append(f"{where}: {info.subject} expires in {left:.0f} days ({_when(info.not_after)})")
        if chain is not None:
            found.append(f"{where}: {chain}")
    return found


def _dev_init(args: argparse.Namespace) -> int:
    from lienthong.certs.devpki import CLIENT_SUBJECT, AlreadyThere, dev_init  # noqa: PLC0415

    try:
        pki = dev_init(args.dir, datetime.now(UTC))
    except AlreadyThere as exc:
        print(f"nothing written: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except OSError as exc:
        print(f"cannot write into {args.dir}: {exc.strerror or exc}", file=sys.stderr)
        return EXIT_USAGE
    print(f"throwaway PKI written into {pki.directory} (never for production: the CA's key is beside it)")
    print(f"  CA:      {pki['ca.pem']}")
    print(f"  server:  {pki['server.pem']} {pki['server.key']} (localhost, 127.0.0.1)")
    print(f"  client:  {pki['client.pem']} {pki['client.key']}, and {pki['client.p12']}")
    print(f"  the PKCS#12 passphrase is in {pki['client.p12.pass']} (passphrase_file)")
    print(f"  client subject, for auth.certificates: {CLIENT_SUBJECT}")
    return EXIT_OK
