"""All persistence: the contract (``contract``), units of work (``units``), runners (``runner``,
``process``) and three backends (``sqlite``, the embedded default; ``postgres``, for several nodes;
``memory``, the stub for tests).

``build_store`` turns the config's ``store`` section into a ``Store``, not yet opened.
"""

from __future__ import annotations

import functools
import os
import socket

from lienthong.config import MemoryStoreConfig, PostgresStoreConfig, SqliteStoreConfig
from lienthong.sealing import Sealer
from lienthong.store.contract import Backend, Tx
from lienthong.store.memory import MemoryBackend
from lienthong.store.process import ProcessRunner
from lienthong.store.runner import InlineRunner, Runner, Store, ThreadRunner
from lienthong.store.sqlite import SqliteBackend

__all__ = ["Backend", "Store", "Tx", "build_store", "node_name"]


def node_name() -> str:
    """This node as the store names it to others: host and process id."""
    return f"{socket.gethostname()} pid {os.getpid()}"


def build_store(
    config: SqliteStoreConfig | PostgresStoreConfig | MemoryStoreConfig,
    *,
    init: bool = False,
    as_node: bool = True,
    message_log: bool = True,
    sealer: Sealer | None = None,
) -> Store:
    """The store ``config`` describes. ``init`` creates a store where one ran before and was removed
    (``lienthong db init``); without it, that is StoreMissing at open. ``as_node=False`` opens a SQLite
    store beside the node that holds it (operators' tools), without taking its lock. ``message_log=False``
    keeps no message log records (``message_log.enabled``); ``sealer`` seals events' payloads at rest
    (``encryption``; the memory store keeps nothing at rest)."""
    runner: Runner
    if isinstance(config, MemoryStoreConfig):
        return Store(InlineRunner(functools.partial(MemoryBackend, message_log=message_log)))
    if isinstance(config, PostgresStoreConfig):
        from lienthong.store import postgres  # noqa: PLC0415 (psycopg loads only when used)

        dsn = config.dsn.get_secret_value()
        if config.process:
            runner = ProcessRunner(
                functools.partial(postgres.open_backend, dsn, message_log=message_log, sealer=sealer)
            )
        else:
            pool = postgres.PostgresPool(
                dsn, size=config.pool_size, init=init, message_log=message_log, sealer=sealer
            )
            runner = pool.runner()
        return Store(runner, deadline_s=config.deadline_s, shared=True)
    open_backend = functools.partial(
        SqliteBackend,
        config.path,
        synchronous=config.synchronous,
        init=init,
        node=node_name() if as_node else None,
        message_log=message_log,
        sealer=sealer,
    )
    runner = ProcessRunner(open_backend) if config.process else ThreadRunner(open_backend)
    return Store(runner, deadline_s=config.deadline_s)
