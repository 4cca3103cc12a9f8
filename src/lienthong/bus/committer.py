"""Group commit: one thread owns the store's connection and runs callers' operations in shared transactions.

Durable ingest means a commit (an fsync with ``synchronous=full``) before each 202. Committing every
request on its own caps throughput at the disk's fsync rate; batching every operation that arrived while
the previous commit ran into one transaction pays that cost once per batch. If an operation raises, the
batch is rolled back and each of its operations is run again in a transaction of its own, so only the
failing one fails. (Savepoints around every operation would do the same but cost two statements each on
the common path, and every statement hands the GIL to this thread and back.) No library we use offers this
for sqlite3 or psycopg, hence this small module.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

from lienthong.bus.store import OutboxStore
from lienthong.errors import LienthongError, StoreError

T = TypeVar("T")
S = TypeVar("S", bound=OutboxStore)
S_co = TypeVar("S_co", bound=OutboxStore, covariant=True)


@dataclass
class Op:
    """One caller's operation: ``fn(store)``, and ``key`` to find the caller again once it has run."""

    fn: Callable[[Any], Any]
    key: Any
    result: Any = None
    error: BaseException | None = None


_STOP = object()


class Runner(Protocol[S_co]):
    """Runs operations on a store in shared transactions: on a thread (Committer) or in a child process
    (bus.storeproc.ProcessCommitter)."""

    def start(self) -> None: ...

    async def call(self, fn: Callable[[S_co], T]) -> T: ...

    def close(self) -> None: ...


class Committer(Generic[S]):
    """Runs operations on a store from any number of coroutines, committing them together.

    ``max_batch`` bounds how many operations share one transaction.
    """

    def __init__(
        self, open_store: Callable[[], S], *, max_batch: int = 512, name: str = "lienthong-store"
    ) -> None:
        self._open_store = open_store
        self._max_batch = max_batch
        self._queue: queue.SimpleQueue[Op | object] = queue.SimpleQueue()
        self._ready = threading.Event()
        self._open_error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._closed = False

    def start(self) -> None:
        """Open the store on its thread; raises what opening raised (a bad path, an unknown schema)."""
        self._thread.start()
        self._ready.wait()
        if self._open_error is not None:
            raise self._open_error

    async def call(self, fn: Callable[[S], T]) -> T:
        """Run ``fn(store)`` inside a transaction and return its result once that transaction committed."""
        if self._closed:
            raise StoreError("the store is closed")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._queue.put(Op(fn, (loop, future)))
        return await future

    def close(self) -> None:
        """Finish queued operations, then close the store. Safe to call twice."""
        if self._closed:
            return
        self._closed = True
        if self._thread.is_alive():
            self._queue.put(_STOP)
            self._thread.join()

    def _run(self) -> None:
        try:
            store = self._open_store()
        except BaseException as exc:
            self._open_error = exc
            self._ready.set()
            return
        self._ready.set()
        try:
            while (batch := self._next_batch()) is not None:
                execute(store, batch)
                _resolve(batch)
        finally:
            store.close()

    def _next_batch(self) -> list[Op] | None:
        first = self._queue.get()
        if first is _STOP:
            return None
        batch = [first]
        while len(batch) < self._max_batch:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if item is _STOP:
                self._queue.put(_STOP)  # finish this batch, then stop
                break
            batch.append(item)
        return batch  # type: ignore[return-value]


def execute(store: OutboxStore, batch: list[Op]) -> None:
    """Run ``batch`` in one transaction; if that fails, each operation alone, so only the failing one fails.

    Every operation ends with its ``result`` or its ``error`` set.
    """
    try:
        _transaction(store, batch)
    except Exception:  # only a batch of several raises: a lone operation records its own failure
        for op in batch:  # isolate the failure: each operation alone
            with contextlib.suppress(Exception):
                _transaction(store, [op])


def _transaction(store: OutboxStore, ops: list[Op]) -> None:
    """Run ``ops`` in one transaction. On failure roll back; a lone operation records its own error."""
    try:
        store.begin()
        for op in ops:
            op.result = op.fn(store)
        store.commit()
    except Exception as exc:
        with contextlib.suppress(Exception):
            store.rollback()
        for op in ops:
            op.result = None
        if len(ops) > 1:
            raise
        ops[0].error = exc if isinstance(exc, LienthongError) else _store_error(exc)


def _store_error(exc: Exception) -> StoreError:
    """The boundary for the database driver's errors (and any other surprise inside an operation)."""
    error = StoreError(f"the store failed: {type(exc).__name__}: {exc}")
    error.__cause__ = exc
    return error


def _resolve(batch: list[Op]) -> None:
    by_loop: dict[asyncio.AbstractEventLoop, list[Op]] = {}
    for op in batch:
        by_loop.setdefault(op.key[0], []).append(op)
    for loop, ops in by_loop.items():
        with contextlib.suppress(RuntimeError):  # the loop closed while we worked: nobody waits any more
            loop.call_soon_threadsafe(_settle, ops)


def _settle(ops: list[Op]) -> None:
    for op in ops:
        future: asyncio.Future[Any] = op.key[1]
        if future.done():
            continue
        if op.error is not None:
            future.set_exception(op.error)
        else:
            future.set_result(op.result)
