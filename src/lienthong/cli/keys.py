"""``lienthong keys``: the keys that seal personal data at rest (``encryption``; issue 13 §4).

- ``keys new``: 32 random bytes, base64: a key for ``encryption.keys`` (put it in the environment or a
  file, never in the config text);
- ``keys rotate CONFIG``: seal every stored payload with ``encryption.current``, those sealed with an
  older key and those written before encryption was on; afterwards the older key can be dropped.
"""

from __future__ import annotations

import argparse
import base64
import os
import sys
from pathlib import Path
from typing import Any

from lienthong.cli.exits import EXIT_OK, EXIT_USAGE

PAGE = 500


def add_commands(sub: Any) -> None:
    keys = sub.add_parser("keys", help="the keys that seal personal data at rest: make one, rotate")
    commands = keys.add_subparsers(title="keys commands", metavar="COMMAND")
    new = commands.add_parser("new", help="print a new key (32 random bytes, base64) for encryption.keys")
    new.set_defaults(handler=_new)
    rotate = commands.add_parser("rotate", help="seal every stored payload with encryption.current")
    rotate.add_argument("config", type=Path, help="the YAML config whose encryption section names the keys")
    rotate.set_defaults(handler=_rotate)


def _new(args: argparse.Namespace) -> int:
    print(base64.b64encode(os.urandom(32)).decode())
    return EXIT_OK


def _rotate(args: argparse.Namespace) -> int:
    from lienthong.cli.dlq import run_on_store  # noqa: PLC0415
    from lienthong.store import units  # noqa: PLC0415

    async def work(node: Any) -> int:
        encryption = node.config.encryption
        if encryption is None:
            print("the config has no encryption section: nothing to seal with", file=sys.stderr)
            return EXIT_USAGE
        sealed = {"events' payloads": 0, "payments' dossiers": 0}
        for what, unit in zip(sealed, (units.reseal_payloads, units.reseal_payment_dossiers), strict=True):
            after = ""
            while True:
                last, count = await node.store.run(unit, after, PAGE)
                if last is None:
                    break
                after, sealed[what] = last, sealed[what] + count
        done = ", ".join(f"{count:,} {what}" for what, count in sealed.items())
        print(f"sealed anew with key {encryption.current!r}: {done}")
        return EXIT_OK

    return run_on_store(args.config, work)
