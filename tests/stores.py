"""Stores for tests: every backend behind one fixture, PostgreSQL in a schema of its own per test.

PostgreSQL runs at 127.0.0.1:5432 with trust auth on every development and CI machine. Where no server
answers, its tests skip with the reason; under CI (``CI=true``) they fail instead.
"""

from __future__ import annotations

import functools
import os
import secrets
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Concatenate, ParamSpec, TypeVar

import pytest

from lienthong.store.contract import Backend, Tx
from lienthong.store.memory import MemoryBackend
from lienthong.store.process import ProcessRunner
from lienthong.store.runner import InlineRunner, Store, ThreadRunner
from lienthong.store.sqlite import SqliteBackend

PG_DSN = os.environ.get("LIENTHONG_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
BACKENDS = ["memory", "sqlite", "sqlite-process", "postgres", "postgres-process"]
P = ParamSpec("P")
T = TypeVar("T")


def postgres_or_skip() -> None:
    """Skip (locally) or fail (under CI) when PostgreSQL does not answer."""
    try:
        import psycopg  # noqa: PLC0415

        with psycopg.connect(PG_DSN, connect_timeout=3) as connection:
            connection.execute("SELECT 1")
    except Exception as exc:
        if os.environ.get("CI") == "true":
            pytest.fail(f"PostgreSQL is required under CI and does not answer at {PG_DSN}: {exc}")
        pytest.skip(f"no PostgreSQL at {PG_DSN}: {exc}")


def pg_schema() -> Iterator[str]:
    """A fresh schema; yields a DSN whose search_path is that schema, then drops it."""
    postgres_or_skip()
    import psycopg  # noqa: PLC0415

    schema = f"t_{secrets.token_hex(6)}"
    with psycopg.connect(PG_DSN, autocommit=True) as connection:
        connection.execute(f"CREATE SCHEMA {schema}")
    try:
        yield f"{PG_DSN}?options=-csearch_path%3D{schema}"
    finally:
        with psycopg.connect(PG_DSN, autocommit=True) as connection:
            connection.execute(f"DROP SCHEMA {schema} CASCADE")


def make_store(kind: str, tmp_path: Path, pg_dsn: str | None = None) -> Store:
    """An unopened store of ``kind``."""
    if kind == "memory":
        return Store(InlineRunner(MemoryBackend))
    if kind in ("sqlite", "sqlite-process"):
        open_backend = functools.partial(SqliteBackend, tmp_path / "lienthong.db", synchronous="normal")
        return Store(ProcessRunner(open_backend) if kind == "sqlite-process" else ThreadRunner(open_backend))
    assert kind in ("postgres", "postgres-process")
    assert pg_dsn is not None
    from lienthong.store import postgres  # noqa: PLC0415

    if kind == "postgres-process":
        return Store(ProcessRunner(functools.partial(postgres.open_backend, pg_dsn)), shared=True)
    return Store(postgres.PostgresPool(pg_dsn, size=2, init=False).runner(), shared=True)


def in_tx(backend: Backend, unit: Callable[Concatenate[Tx, P], T], *args: P.args, **kwargs: P.kwargs) -> T:
    """Run one unit on an open backend in a transaction of its own, on this thread."""
    backend.begin()
    try:
        result = unit(backend, *args, **kwargs)
    except BaseException:
        backend.rollback()
        raise
    backend.commit()
    return result
