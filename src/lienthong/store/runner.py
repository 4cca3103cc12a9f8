"""Runners: one transaction per unit of work, with group commit, on a thread, in a process, or inline.

Durable ingest means a commit (an fsync with ``synchronous=full``) before each 202. Committing every
request on its own caps throughput at the disk's fsync rate; batching every unit that arrived while the
previous commit ran into one transaction pays that cost once per batch. If a unit raises, the batch is
rolled back and each of its units is run again in a transaction of its own, so only the failing one fails.
(Savepoints around every unit would do the same but cost two statements each on the common path, and
every statement hands the GIL to the runner's thread and back.) No library we use offers this for
sqlite3 or psycopg, hence this small module.

``Store`` is the async face the rest of lienthong uses: ``await store.run(units.claim, now, limit, lease)``.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Concatenate, Generic, ParamSpec, Protocol, TypeVar

from lienthong.errors import LienthongError, StoreError, StoreUnavailable
from lienthong.store.contract import Backend, Tx

T = TypeVar("T")
P = ParamSpec("P")

OpenBackend = Callable[[], Backend]
"""Opens the backend; for the process runner it must pickle (``functools.partial(SqliteBackend, path)``)."""


@dataclass(frozen=True)
class Bound(Generic[T]):
    """A unit of work with its arguments, waiting for its transaction. Pickles when its parts do."""

    unit: Callable[..., T]
    args: tuple[Any, ...]
    kwargs: dict[str, Any]

    def __call__(self, tx: Tx) -> T:
        return self.unit(tx, *self.args, **self.kwargs)


@dataclass
class Op:
    """One caller's unit: ``fn(tx)``, and ``key`` to find the caller again once it has run."""

    fn: Callable[[Tx], Any]
    key: Any
    result: Any = None
    error: BaseException | None = None


class Runner(Protocol):
    """Runs units on a backend in shared transactions."""

    def start(self) -> None:
        """Open the backend; raises what opening raised (a missing file, a held lock, an unknown schema)."""
        ...

    async def call(self, fn: Callable[[Tx], T]) -> T: ...

    def close(self) -> None: ...

    @property
    def pid(self) -> int | None:
        """The backend's own process, or None when it runs in this one."""
        ...

    @property
    def healthy(self) -> bool:
        """False when the runner cannot get its backend back (a supervisor should restart the node)."""
        ...

    @property
    def commits(self) -> int:
        """Transactions committed so far: the figure group commit is judged by."""
        ...


class Store:
    """The store as lienthong sees it: typed units of work, each one transaction, under a deadline.

    ``deadline_s`` bounds every call: a hung disk answers StoreUnavailable (503 with Retry-After) instead
    of hanging requests. A unit that ran past its deadline may still commit later; whatever the caller
    does next (send the event again) is idempotent.

    Outcomes of deliveries are written many at a time by the dispatcher's cycles
    (``units.settle_and_claim``). Ingests are not merged: a request already carries its events in a few
    multi-row statements, and merging them made the event loop and the store take turns instead of working
    side by side (measured on a thread: 9k against 14k events/s in batches of 100).
    """

    def __init__(self, runner: Runner, *, deadline_s: float = 10.0, shared: bool = False) -> None:
        """``shared``: other nodes use the same database (PostgreSQL), so messages in flight at start
        may be theirs: they return to pending by their leases only, never all at once."""
        self._runner = runner
        self.shared = shared
        self._deadline_s = deadline_s
        self._opened = False

    def open(self) -> None:
        """Open the backend (creating or checking its schema). Blocks briefly; a second call does nothing."""
        if not self._opened:
            self._runner.start()
            self._opened = True

    def close(self) -> None:
        self._runner.close()

    @property
    def pid(self) -> int | None:
        return self._runner.pid

    @property
    def healthy(self) -> bool:
        return self._runner.healthy

    @property
    def commits(self) -> int:
        """Transactions committed so far by this store's runner."""
        return self._runner.commits

    async def run(self, unit: Callable[Concatenate[Tx, P], T], /, *args: P.args, **kwargs: P.kwargs) -> T:
        """Run ``unit(tx, *args, **kwargs)`` in a transaction; its result once committed."""
        return await self._call(Bound(unit, args, kwargs))

    async def _call(self, fn: Callable[[Tx], T]) -> T:
        try:
            # wait_for, not asyncio.timeout, though it makes a task per call: when a busy loop handles the
            # answer and the deadline in one pass, wait_for returns the answer, while timeout cancels the
            # call after its result is in, and a committed unit would be answered 503.
            return await asyncio.wait_for(self._runner.call(fn), self._deadline_s)
        except TimeoutError:
            raise StoreUnavailable(f"the store did not answer within {self._deadline_s:g} s") from None


def execute(backend: Backend, batch: list[Op]) -> int:
    """Run ``batch`` in one transaction; if that fails, each unit alone, so only the failing one fails.

    Every op ends with its ``result`` or its ``error`` set. Returns the number of commits made.
    """
    try:
        _transaction(backend, batch)
    except Exception:  # only a batch of several raises: a lone op records its own failure
        commits = 0
        for op in batch:  # isolate the failure: each op alone
            with contextlib.suppress(Exception):
                _transaction(backend, [op])
                commits += op.error is None
        return commits
    return 1 if batch[0].error is None else 0


def _transaction(backend: Backend, ops: list[Op]) -> None:
    """Run ``ops`` in one transaction. On failure roll back; a lone op records its own error."""
    try:
        backend.begin()
        for op in ops:
            op.result = op.fn(backend)
        backend.commit()
    except Exception as exc:
        with contextlib.suppress(Exception):
            backend.rollback()
        for op in ops:
            op.result = None
        if len(ops) > 1:
            raise
        ops[0].error = exc if isinstance(exc, LienthongError) else _store_error(exc)


def _store_error(exc: Exception) -> StoreError:
    """The boundary for the database driver's errors (and any other surprise inside a unit)."""
    error = StoreError(f"the store failed: {type(exc).__name__}: {exc}")
    error.__cause__ = exc
    return error


STOP = object()
"""Put on a runner's queue: finish what is queued before it, then stop."""


class ThreadRunner:
    """Runs units on a backend owned by one thread, from any number of coroutines, committing together.

    ``max_batch`` bounds how many units share one transaction.
    """

    def __init__(
        self, open_backend: OpenBackend, *, max_batch: int = 512, name: str = "lienthong-store"
    ) -> None:
        self._open_backend = open_backend
        self._max_batch = max_batch
        self._queue: queue.SimpleQueue[Op | object] = queue.SimpleQueue()
        self._ready = threading.Event()
        self._open_error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._closed = False
        self.commits = 0

    @property
    def pid(self) -> int | None:
        return None

    @property
    def healthy(self) -> bool:
        return self._closed or self._thread.is_alive()

    def start(self) -> None:
        self._thread.start()
        self._ready.wait()
        if self._open_error is not None:
            raise self._open_error

    async def call(self, fn: Callable[[Tx], T]) -> T:
        if self._closed:
            raise StoreError("the store is closed")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._queue.put(Op(fn, (loop, future)))
        return await future

    def close(self) -> None:
        """Finish queued units, then close the backend. Safe to call twice."""
        if self._closed:
            return
        self._closed = True
        if self._thread.is_alive():
            self._queue.put(STOP)
            self._thread.join()

    def _run(self) -> None:
        try:
            backend = self._open_backend()
        except BaseException as exc:
            self._open_error = exc
            self._ready.set()
            return
        self._ready.set()
        try:
            while (batch := next_batch(self._queue, self._max_batch)) is not None:
                self.commits += execute(backend, batch)
                answer(batch)
        finally:
            backend.close()


class InlineRunner:
    """Runs each unit at once on the caller's thread, in a transaction of its own: for the memory stub,
    so a test drives the dispatcher, ingest or payments without threads."""

    def __init__(self, open_backend: OpenBackend) -> None:
        self._open_backend = open_backend
        self._backend: Backend | None = None
        self.commits = 0

    @property
    def pid(self) -> int | None:
        return None

    @property
    def healthy(self) -> bool:
        return True

    def start(self) -> None:
        self._backend = self._open_backend()

    async def call(self, fn: Callable[[Tx], T]) -> T:
        if self._backend is None:
            raise StoreError("the store is closed")
        op = Op(fn, None)
        self.commits += execute(self._backend, [op])
        await asyncio.sleep(0)  # a store call yields to the loop, as the other runners' calls do
        if op.error is not None:
            raise op.error
        return op.result  # type: ignore[no-any-return]

    def close(self) -> None:
        if self._backend is not None:
            self._backend.close()
            self._backend = None


def next_batch(ops: queue.SimpleQueue[Op | object], max_batch: int) -> list[Op] | None:
    """The next op and whatever else is queued behind it (up to ``max_batch``); None at ``STOP``."""
    first = ops.get()
    if first is STOP:
        return None
    batch = [first]
    while len(batch) < max_batch:
        try:
            item = ops.get_nowait()
        except queue.Empty:
            break
        if item is STOP:
            ops.put(STOP)  # finish this batch, then stop
            break
        batch.append(item)
    return batch  # type: ignore[return-value]


def answer(batch: list[Op]) -> None:
    """Hand each op's result or error to its caller, on the caller's event loop (from any thread)."""
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
