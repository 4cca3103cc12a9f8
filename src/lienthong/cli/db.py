"""``lienthong db``: create the store, or bring its schema up to this version, for either backend.

``db upgrade`` applies the versioned migrations and says from which version to which. ``db init`` creates
an empty store where one ran before and was removed: a node refuses to do that by itself, so that a
deleted database is never silently replaced (SQLite); it is also the way to create a store before the
first start.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from lienthong.cli.exits import EXIT_OK, EXIT_STORE
from lienthong.errors import StoreError

CONFIG_HELP = "the YAML config file whose store section names the store"


def add_commands(sub: Any) -> None:
    db = sub.add_parser("db", help="the store: create it, or migrate its schema")
    commands = db.add_subparsers(title="db commands", metavar="COMMAND")
    upgrade = commands.add_parser("upgrade", help="apply the schema migrations this version knows")
    upgrade.add_argument("config", type=Path, help=CONFIG_HELP)
    upgrade.set_defaults(handler=_upgrade)
    init = commands.add_parser("init", help="create the store, even where one ran before and was removed")
    init.add_argument("config", type=Path, help=CONFIG_HELP)
    init.set_defaults(handler=_init)


def _store_config(path: Path) -> Any:
    from lienthong.config import load_config  # noqa: PLC0415 (keep `lienthong --help` fast)

    return load_config(path, env=os.environ).store


def _upgrade(args: Any) -> int:
    return _open(_store_config(args.config), init=False)


def _init(args: Any) -> int:
    return _open(_store_config(args.config), init=True)


def _open(config: Any, *, init: bool) -> int:
    from lienthong.config import PostgresStoreConfig, SqliteStoreConfig  # noqa: PLC0415

    try:
        if isinstance(config, SqliteStoreConfig):
            from lienthong.store import node_name  # noqa: PLC0415
            from lienthong.store.sqlite import SCHEMA_VERSION, SqliteBackend, schema_version  # noqa: PLC0415

            before = schema_version(config.path)
            SqliteBackend(config.path, synchronous=config.synchronous, init=init, node=node_name()).close()
            where, after = config.path, SCHEMA_VERSION
        elif isinstance(config, PostgresStoreConfig):
            from lienthong.store.postgres import upgrade  # noqa: PLC0415

            before, after = upgrade(config.dsn.get_secret_value())
            where = "PostgreSQL"
        else:
            print("the memory store keeps nothing: there is no schema to create", file=sys.stderr)
            return EXIT_OK
    except StoreError as exc:
        print(f"store error: {exc}", file=sys.stderr)
        return EXIT_STORE
    if before is None:
        print(f"created the store at {where} (schema version {after})")
    elif before == after:
        print(f"the store at {where} is at schema version {after}: nothing to do")
    else:
        print(f"upgraded the store at {where} from schema version {before} to {after}")
    return EXIT_OK
