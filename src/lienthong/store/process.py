"""The process runner: group commit in a child process, on its own core, under its own interpreter lock.

The thread runner (store/runner.py) shares the GIL with the event loop. SQLite releases the GIL around
every statement and must win it back afterwards, and every answer must wait for the busy loop to pick it
up: the loop and the store ended up taking turns, each idle about half the time, while ingest stalled
near 15,000 events/s (decision 0006). Here the store runs in a process of its own. The event loop writes
each call (a unit of work with its arguments, ``runner.Bound``) to a socket pair as a
length-prefixed pickle and reads the answers from it, both without blocking and without a helper thread;
the child runs every call that has arrived in one transaction, exactly as the thread runner does, and
answers them together. Nothing in the standard library or our dependencies runs a group commit across
processes, hence this module.

The parent and child are the only ends of an unnamed socket pair, so the pickles are our own. If the
child dies, every waiting call fails with StoreUnavailable naming its exit code; what it had committed
stays committed, and what it had not was never acknowledged. A later call starts a new child, with a
backoff between failed starts (1 s doubling to 30 s); after ``unhealthy_after`` failed starts in a row the
runner reports itself unhealthy, so ``/healthz`` fails and a supervisor restarts the node. Each change of
state is logged once. If the parent dies (kill -9), the child reads end-of-file, finishes the transaction
it is in and exits.

A ProcessRunner belongs to the event loop that first calls it.
"""

from __future__ import annotations

import asyncio
import contextlib
import copyreg
import io
import itertools
import logging
import pickle
import select
import signal
import socket
import struct
import subprocess
import sys
import time
from collections import deque
from collections.abc import Callable
from typing import Any, TypeVar

from lienthong.errors import StoreError, StoreUnavailable
from lienthong.model import IngestItem, reduce_ingest_item
from lienthong.store.contract import Backend, Tx
from lienthong.store.runner import Op, OpenBackend, execute

T = TypeVar("T")
log = logging.getLogger("lienthong.store")
_STABLE_S = 10.0
"""A store process that answers this long after it started is taken to be up for good."""

_HEADER = struct.Struct("!I")
_STOP = "stop"
_PROTOCOL = pickle.HIGHEST_PROTOCOL
_BUFFER = (
    4 * 1024 * 1024
)  # socket buffers: a few requests' worth of events, so neither side waits on the other


def _loads(data: bytes | memoryview) -> Any:
    # Only this process and the child it spawned hold the socket pair (see the module docstring).
    return pickle.loads(data)  # noqa: S301


def _dumps(message: Any) -> bytes:
    """``pickle.dumps``, with the records of every ingest as plain tuples (``model.reduce_ingest_item``).
    ``copyreg``'s table is read at each call, as ``pickle.dumps`` reads it: a reducer registered later
    counts."""
    buffer = io.BytesIO()
    pickler = pickle.Pickler(buffer, _PROTOCOL)
    pickler.dispatch_table = {**copyreg.dispatch_table, IngestItem: reduce_ingest_item}
    pickler.dump(message)
    return buffer.getvalue()


def _frame(message: Any) -> bytes:
    data = _dumps(message)
    return _HEADER.pack(len(data)) + data


class _Frames:
    """Splits a byte stream into length-prefixed frames."""

    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, data: bytes) -> list[Any]:
        self._buffer += data
        messages: list[Any] = []
        start, end = 0, len(self._buffer)
        view = memoryview(self._buffer)
        try:
            while end - start >= _HEADER.size:
                (size,) = _HEADER.unpack_from(view, start)
                if end - start - _HEADER.size < size:
                    break
                body = start + _HEADER.size
                messages.append(_loads(view[body : body + size]))
                start = body + size
        finally:
            view.release()
        del self._buffer[:start]
        return messages


class ProcessRunner:
    """Runs picklable units ``fn(tx)`` in a child process, committing them together.

    ``open_backend`` must be picklable too (``functools.partial(SqliteBackend, path)``): the child calls it.
    """

    def __init__(
        self,
        open_backend: OpenBackend,
        *,
        max_batch: int = 512,
        unhealthy_after: int = 3,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._open_backend = open_backend
        self._max_batch = max_batch
        self._unhealthy_after = unhealthy_after
        self._monotonic = monotonic
        self._failed_starts = 0
        self._backoff_s = 1.0
        self._retry_at = 0.0
        self._restarting: asyncio.Task[None] | None = None
        self._started_at = monotonic()
        self._commits_before = 0  # by store processes that ended
        self._commits_now = 0  # by the current one, as its last answer said
        self._ids = itertools.count()
        self._waiting: dict[int, asyncio.Future[Any]] = {}
        self._process: subprocess.Popen[bytes] | None = None
        self._sock: socket.socket | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._transport: asyncio.Transport | None = None
        self._connecting: asyncio.Future[None] | None = None
        self._failure: StoreError | None = None
        self._closed = False

    @property
    def pid(self) -> int | None:
        """The store process's id, once started."""
        return self._process.pid if self._process is not None else None

    @property
    def healthy(self) -> bool:
        return self._failed_starts < self._unhealthy_after

    @property
    def commits(self) -> int:
        return self._commits_before + self._commits_now

    def start(self) -> None:
        """Start the child and open the store there; raises what opening raised."""
        parent, child = socket.socketpair()
        for sock in (parent, child):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, _BUFFER)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, _BUFFER)
        # A fresh interpreter running child_main, rather than multiprocessing: its "spawn" re-imports the
        # parent's __main__ (a script without a main guard would start again), and "fork" would copy a
        # running server's threads.
        process = subprocess.Popen(  # noqa: S603 (our own interpreter and module, no shell)
            [
                sys.executable,
                "-c",
                f"from lienthong.store.process import child_main; child_main({child.fileno()})",
            ],
            pass_fds=[child.fileno()],
            stdin=subprocess.DEVNULL,
            # Its own session: Ctrl-C at a terminal and a signal to our process group (systemd's SIGTERM)
            # reach the parent only. The parent stops in order and then closes the store; the child
            # ignores those signals too (child_main), for a supervisor that signals every process.
            start_new_session=True,
        )
        child.close()
        try:
            parent.sendall(_frame((self._open_backend, self._max_batch)))
            opened = _read_frame(parent, _Frames())
        except (OSError, EOFError):
            parent.close()
            code = process.wait()
            raise StoreError(f"the store process exited while opening the store (exit code {code})") from None
        if opened is not None:
            parent.close()
            process.wait()
            raise opened
        self._process = process
        self._sock = parent
        self._sock.setblocking(False)
        self._started_at = self._monotonic()

    async def call(self, fn: Callable[[Tx], T]) -> T:
        """Run ``fn(tx)`` in the child inside a transaction; return its result once committed."""
        if self._closed:
            raise StoreError("the store is closed")
        loop = asyncio.get_running_loop()
        if self._failure is not None:
            await self._restart(loop)
        if self._transport is None:
            await self._connect(loop)
        elif loop is not self._loop:
            raise StoreError("the store process is bound to another event loop")
        if self._failure is not None:
            raise self._failure
        assert self._transport is not None
        op_id = next(self._ids)
        # First: a call that cannot be pickled raises here, leaving no trace. The unit is pickled on its own
        # so that the child can refuse one it cannot load (its module is not importable there) alone.
        frame = _frame((op_id, _dumps(fn)))
        future: asyncio.Future[T] = loop.create_future()
        self._waiting[op_id] = future
        self._transport.write(frame)
        return await future

    async def _restart(self, loop: asyncio.AbstractEventLoop) -> None:
        """Start a new child in place of the lost one, unless the last failed start is too recent.

        The start runs as a task of its own, shielded from callers: a caller giving up at its deadline
        does not cancel it, so a slow failing start still counts, and only one start runs at a time.
        """
        if self._restarting is None:
            if self._monotonic() < self._retry_at:
                assert self._failure is not None
                raise self._failure
            self._restarting = loop.create_task(self._start_again(loop), name="lienthong-store-restart")
        await asyncio.shield(self._restarting)
        if self._failure is not None:
            raise self._failure

    async def _start_again(self, loop: asyncio.AbstractEventLoop) -> None:
        try:
            await loop.run_in_executor(None, self.start)
        except Exception as exc:
            self._failure = StoreUnavailable(f"the store process could not be started again: {exc}")
            self._count_failure(f"could not be started again: {exc}")
            return
        finally:
            self._restarting = None
        self._transport = None
        self._connecting = None
        self._failure = None
        self._commits_before += self._commits_now
        self._commits_now = 0
        log.warning("the store process was started again (pid %s)", self.pid)

    def _count_failure(self, what: str) -> None:
        """A start that failed, or a process that died soon after it started: back off, and past
        ``unhealthy_after`` in a row, report the node unhealthy."""
        self._failed_starts += 1
        self._retry_at = self._monotonic() + self._backoff_s
        log.warning(
            "the store process %s (%d in a row; next try in %g s)", what, self._failed_starts, self._backoff_s
        )
        self._backoff_s = min(30.0, self._backoff_s * 2)
        if self._failed_starts == self._unhealthy_after:
            log.critical("the store cannot be reached: the node reports itself unhealthy (/healthz)")

    async def _connect(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._failure is not None:
            raise self._failure
        if self._closed or self._sock is None:
            raise StoreError("the store is closed")
        if self._connecting is None:
            self._loop = loop
            self._connecting = loop.create_future()
            transport, _ = await loop.create_unix_connection(lambda: _Channel(self), sock=self._sock)
            self._transport = transport
            self._connecting.set_result(None)
        elif loop is not self._loop:
            raise StoreError("the store process is bound to another event loop")
        else:
            await self._connecting

    def close(self) -> None:
        """Stop the child once it has run the calls already written. Safe to call twice."""
        if self._closed:
            return
        self._closed = True
        if self._process is None:
            return
        transport = self._transport if self._loop is not None and not self._loop.is_closed() else None
        if transport is not None and transport.is_closing():
            transport = None  # the child already hung up: nothing to write, only the socket to close
        if transport is not None:
            if transport.get_write_buffer_size() == 0:
                transport.write(_frame(_STOP))  # an empty buffer writes at once, without the loop
            # else: writes are still queued behind a full socket; end-of-file stops the child instead.
            transport.abort()
        elif self._sock is not None:
            if self._transport is None:  # nothing was ever written: the socket is ours alone
                with contextlib.suppress(OSError):
                    self._sock.setblocking(True)
                    self._sock.sendall(_frame(_STOP))
            self._sock.close()  # after its loop closed, end-of-file stops the child
        try:
            self._process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        self._fail_waiting(StoreError("the store is closed"))

    # -- answers, read on the event loop ----------------------------------------------------------------
    def _answered(self, commits: int, answers: list[tuple[int, bool, Any]]) -> None:
        self._commits_now = commits
        if self._failed_starts and self._monotonic() - self._started_at >= _STABLE_S:
            self._failed_starts, self._backoff_s = 0, 1.0  # it has stayed up: forget the failures
        for op_id, ok, value in answers:
            future = self._waiting.pop(op_id, None)
            if future is None or future.done():
                continue
            if ok:
                future.set_result(value)
            else:
                future.set_exception(value)

    def _lost(self) -> None:
        if self._closed:
            return
        assert self._process is not None
        with contextlib.suppress(subprocess.TimeoutExpired):
            self._process.wait(timeout=5)
        self._failure = StoreUnavailable(
            f"the store process stopped unexpectedly (exit code {self._process.returncode})"
        )
        if self._monotonic() - self._started_at < _STABLE_S:
            # Dead soon after it started (a connection cut each time, a crash in the first transaction):
            # as a failed start, so a process that cannot stay up is not spawned again at every call.
            self._count_failure(f"stopped {_STABLE_S:g} s or less after it started")
        else:
            log.warning("%s; starting it again at the next call", self._failure)
        self._fail_waiting(self._failure)

    def _fail_waiting(self, error: StoreError) -> None:
        waiting, self._waiting = self._waiting, {}
        for future in waiting.values():
            if not future.done():
                future.set_exception(error)


class _Channel(asyncio.Protocol):
    def __init__(self, owner: ProcessRunner) -> None:
        self._owner = owner
        self._frames = _Frames()

    def data_received(self, data: bytes) -> None:
        for commits, answers in self._frames.feed(data):
            self._owner._answered(commits, answers)

    def connection_lost(self, exc: Exception | None) -> None:
        self._owner._lost()


# -- the child -----------------------------------------------------------------------------------------
def _read_frame(sock: socket.socket, frames: _Frames) -> Any:
    """Block until one whole frame has arrived; raises EOFError if the other end closed first."""
    messages = frames.feed(b"")
    while not messages:
        data = sock.recv(_BUFFER)
        if not data:
            raise EOFError
        messages = frames.feed(data)
    (message,) = messages
    return message


def child_main(fd: int) -> None:
    """Entry point of the store's process, given its end of the socket pair.

    The parent decides when the store closes: it sends a stop, or the socket reaches end-of-file when the
    parent is gone. Stop signals are ignored, so a signal meant for the service does not cut the store off
    under a parent that is still finishing its deliveries.
    """
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, signal.SIG_IGN)
    sock = socket.socket(fileno=fd)
    frames = _Frames()
    try:
        open_backend, max_batch = _read_frame(sock, frames)
        backend = open_backend()
    except EOFError:
        return
    except BaseException as exc:
        with contextlib.suppress(OSError):
            sock.sendall(_dumps_error(exc))
        return
    sock.sendall(_frame(None))
    _serve(sock, frames, backend, max_batch)


def _serve(sock: socket.socket, frames: _Frames, backend: Backend, max_batch: int) -> None:
    """The child's loop: take every call that has arrived, run them in one transaction, answer them."""
    pending: deque[Any] = deque()
    commits = 0
    try:
        while True:
            while not pending:  # wait for the next call
                data = _recv(sock)
                if not data:
                    return  # the parent is gone: what was committed stays, nobody waits for the rest
                pending.extend(frames.feed(data))
            while select.select([sock], [], [], 0)[0]:  # and take whatever else has arrived
                data = _recv(sock)
                if not data:
                    break
                pending.extend(frames.feed(data))
            batch: list[Op] = []
            unloadable: list[Op] = []
            stopping = False
            while pending and len(batch) < max_batch:
                message = pending.popleft()
                if message == _STOP:
                    stopping = True
                    break
                op = _op(message)
                (batch if op.error is None else unloadable).append(op)
            if batch:
                commits += execute(backend, batch)
            if batch or unloadable:
                with contextlib.suppress(OSError):
                    sock.sendall(_answers(commits, batch + unloadable))
            if stopping or getattr(backend, "broken", False):
                # A lost database connection (PostgreSQL restarted): this process ends, and the parent
                # starts another, with a new connection, at its next call.
                return
    finally:
        backend.close()
        sock.close()


def _op(message: tuple[int, bytes]) -> Op:
    """The call in ``message``, or an Op already failed with why it could not be loaded here."""
    op_id, data = message
    try:
        return Op(_loads(data), op_id)
    except Exception as exc:
        error = StoreError(f"the store's process cannot load this call: {type(exc).__name__}: {exc}")
        return Op(None, op_id, error=error)  # type: ignore[arg-type]


def _recv(sock: socket.socket) -> bytes:
    """What has arrived; b"" when the parent is gone, by a clean close or a reset (it exited at once)."""
    try:
        return sock.recv(_BUFFER)
    except ConnectionError:
        return b""


def _answers(commits: int, batch: list[Op]) -> bytes:
    """The answers of ``batch``, with how many transactions this process has committed so far."""
    answers = [
        (op.key, True, op.result) if op.error is None else (op.key, False, _crossing(op.error))
        for op in batch
    ]
    try:
        return _frame((commits, answers))
    except Exception:  # one unpicklable result must not cost the others theirs
        return _frame((commits, [_picklable(answer) for answer in answers]))


def _crossing(error: BaseException) -> BaseException:
    """``error`` if it survives the trip to the parent, else a StoreError saying what it was.

    An exception whose ``__init__`` wants other arguments than those it gave ``Exception`` pickles fine but
    fails to unpickle, and in the parent that would break the answer frame of every call in the batch.
    Errors are rare, so the round trip is tried on each one.
    """
    try:
        _loads(pickle.dumps(error, _PROTOCOL))
    except Exception:
        return StoreError(f"{type(error).__name__}: {error}")
    return error


def _picklable(answer: tuple[int, bool, Any]) -> tuple[int, bool, Any]:
    try:
        pickle.dumps(answer[2], _PROTOCOL)
    except Exception as exc:
        problem = StoreError(f"the store's result could not be sent back: {type(exc).__name__}: {exc}")
        return answer[0], False, problem
    return answer


def _dumps_error(exc: BaseException) -> bytes:
    return _frame(_crossing(exc))
