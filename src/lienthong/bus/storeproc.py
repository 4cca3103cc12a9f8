"""Group commit in a child process: the store's work on its own core, under its own GIL.

The thread committer (bus/committer.py) shares the interpreter lock with the event loop. SQLite releases
the lock around every statement and must win it back afterwards, so the store thread and the loop end up
taking turns: measured, each was idle about half the time while ingest stalled near 15,000 events/s
(decision 0004). Here the store runs in a process of its own: the loop pickles each call (a
``methodcaller`` on the store, or any other picklable callable) onto a pipe, and the child runs every call
that has arrived in one transaction, exactly as the thread committer does, then answers them together.

Two helper threads in the parent move bytes: a writer (so a full pipe never blocks the event loop) and a
reader (which settles the callers' futures on their own loops). multiprocessing gives us the child and
the framed pipe; nothing in the standard library or our dependencies runs a group commit across
processes, hence this module.

If the child dies, every waiting call and every later call fails with StoreError naming its exit code;
what it had committed stays committed, and what it had not was never acknowledged.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import multiprocessing
import pickle
import queue
import threading
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any, Generic, TypeVar

from lienthong.bus.committer import Op, execute
from lienthong.bus.store import OutboxStore
from lienthong.errors import StoreError

T = TypeVar("T")
S = TypeVar("S", bound=OutboxStore)

_STOP = "stop"
_PROTOCOL = pickle.HIGHEST_PROTOCOL


def _loads(data: bytes) -> Any:
    # The pipe is an unnamed socket pair between this process and the child it spawned: nobody else can
    # write to it, so its pickles are our own.
    return pickle.loads(data)  # noqa: S301


class ProcessCommitter(Generic[S]):
    """Runs picklable operations ``fn(store)`` in a child process, committing them together.

    ``open_store`` must be picklable too (``functools.partial(SqliteOutbox, path)``): the child calls it.
    """

    def __init__(self, open_store: Callable[[], S], *, max_batch: int = 512, name: str = "lienthong-store"):
        self._open_store = open_store
        self._max_batch = max_batch
        self._name = name
        self._ids = itertools.count()
        self._waiting: dict[int, tuple[asyncio.AbstractEventLoop, asyncio.Future[Any]]] = {}
        self._lock = threading.Lock()
        self._outgoing: queue.SimpleQueue[bytes | None] = queue.SimpleQueue()
        self._process: multiprocessing.process.BaseProcess | None = None
        self._conn: Connection | None = None
        self._threads: list[threading.Thread] = []
        self._failure: StoreError | None = None
        self._closed = False

    def start(self) -> None:
        """Start the child and open the store there; raises what opening raised."""
        context = multiprocessing.get_context("spawn")  # fork would copy a running server's threads
        parent, child = context.Pipe(duplex=True)
        process = context.Process(
            target=_serve, args=(child, self._open_store, self._max_batch), name=self._name, daemon=True
        )
        process.start()
        child.close()
        try:
            opened: BaseException | None = _loads(parent.recv_bytes())
        except EOFError:
            process.join()
            code = process.exitcode
            raise StoreError(f"the store process exited while opening the store (exit code {code})") from None
        if opened is not None:
            process.join()
            raise opened
        self._process, self._conn = process, parent
        self._threads = [
            threading.Thread(target=self._write, name=f"{self._name}-writer", daemon=True),
            threading.Thread(target=self._read, name=f"{self._name}-reader", daemon=True),
        ]
        for thread in self._threads:
            thread.start()

    async def call(self, fn: Callable[[S], T]) -> T:
        """Run ``fn(store)`` in the child inside a transaction; return its result once committed."""
        if self._failure is not None:
            raise self._failure
        if self._closed or self._conn is None:
            raise StoreError("the store is closed")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        op_id = next(self._ids)
        with self._lock:
            self._waiting[op_id] = (loop, future)
        self._outgoing.put(pickle.dumps((op_id, fn), _PROTOCOL))
        return await future

    def close(self) -> None:
        """Finish the calls sent so far, then stop the child. Safe to call twice."""
        if self._closed:
            return
        self._closed = True
        if self._process is None:
            return
        self._outgoing.put(None)
        for thread in self._threads:
            thread.join(timeout=30)
        self._process.join(timeout=30)
        if self._process.is_alive():
            self._process.kill()
            self._process.join()
        if self._conn is not None:
            self._conn.close()

    # -- parent's helper threads -----------------------------------------------------------------------
    def _write(self) -> None:
        assert self._conn is not None
        while True:
            data = self._outgoing.get()
            try:
                self._conn.send_bytes(pickle.dumps(_STOP) if data is None else data)
            except OSError:
                return  # the child is gone; the reader reports it
            if data is None:
                return

    def _read(self) -> None:
        assert self._conn is not None
        while True:
            try:
                answers: list[tuple[int, bool, Any]] = _loads(self._conn.recv_bytes())
            except (EOFError, OSError):
                self._child_gone()
                return
            by_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[Any], bool, Any]]] = {}
            with self._lock:
                for op_id, ok, value in answers:
                    loop, future = self._waiting.pop(op_id)
                    by_loop.setdefault(loop, []).append((future, ok, value))
            for loop, settled in by_loop.items():
                with contextlib.suppress(RuntimeError):  # that loop closed: nobody waits any more
                    loop.call_soon_threadsafe(_settle, settled)

    def _child_gone(self) -> None:
        assert self._process is not None
        self._process.join(timeout=5)
        if not self._closed:
            self._failure = StoreError(
                f"the store process stopped unexpectedly (exit code {self._process.exitcode})"
            )
        failure = self._failure or StoreError("the store is closed")
        with self._lock:
            waiting, self._waiting = list(self._waiting.values()), {}
        for loop, future in waiting:
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(_settle, [(future, False, failure)])


def _settle(settled: list[tuple[asyncio.Future[Any], bool, Any]]) -> None:
    for future, ok, value in settled:
        if future.done():
            continue
        if ok:
            future.set_result(value)
        else:
            future.set_exception(value)


# -- the child -----------------------------------------------------------------------------------------
def _serve(conn: Connection, open_store: Callable[[], OutboxStore], max_batch: int) -> None:
    """The child's loop: take every call that has arrived, run them in one transaction, answer them."""
    try:
        store = open_store()
    except BaseException as exc:
        conn.send_bytes(_dumps_error(exc))
        return
    conn.send_bytes(pickle.dumps(None))
    try:
        stopping = False
        while not stopping:
            batch: list[Op] = []
            while not batch or (len(batch) < max_batch and conn.poll()):
                message = _loads(conn.recv_bytes())
                if message == _STOP:
                    stopping = True
                    break
                op_id, fn = message
                batch.append(Op(fn, op_id))
            if batch:
                execute(store, batch)
                conn.send_bytes(_answers(batch))
    except EOFError:
        pass  # the parent is gone (killed): what was committed stays, nobody waits for the rest
    finally:
        store.close()


def _answers(batch: list[Op]) -> bytes:
    answers = [(op.key, op.error is None, op.result if op.error is None else op.error) for op in batch]
    try:
        return pickle.dumps(answers, _PROTOCOL)
    except Exception:
        return pickle.dumps([_picklable(answer) for answer in answers], _PROTOCOL)


def _picklable(answer: tuple[int, bool, Any]) -> tuple[int, bool, Any]:
    try:
        pickle.dumps(answer[2], _PROTOCOL)
    except Exception as exc:
        what = "result" if answer[1] else "error"
        problem = StoreError(f"the store's {what} could not be sent back: {type(exc).__name__}: {exc}")
        return answer[0], False, problem
    return answer


def _dumps_error(exc: BaseException) -> bytes:
    try:
        return pickle.dumps(exc, _PROTOCOL)
    except Exception:
        return pickle.dumps(StoreError(f"{type(exc).__name__}: {exc}"), _PROTOCOL)
