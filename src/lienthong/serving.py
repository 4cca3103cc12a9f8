"""Serving an ASGI app with uvicorn on loopback: in the current event loop, or on a thread of its own.

Used for the bus's API and for the sandbox peers. Binding the socket ourselves lets callers ask for port 0
and learn the port the kernel chose.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import signal
import socket
import ssl
import sys
import threading
from collections.abc import Callable, Coroutine, Generator, Iterator
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

import uvicorn
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from starlette.types import ASGIApp
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from lienthong.request_limits import RequestLimits, limited_protocol

Lifespan = Literal["auto", "on", "off"]
T = TypeVar("T")
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
log = logging.getLogger("lienthong.serving")


class _Server(uvicorn.Server):
    """uvicorn's server without its signal handling: stopping is the caller's (``on_stop_signals``).

    uvicorn's own handlers re-raise the signal after shutdown, so Ctrl-C or systemd's SIGTERM would end the
    process with a traceback or a signal status after an orderly stop, rather than exit 0.
    """

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


def bind(host: str = "127.0.0.1", port: int = 0) -> socket.socket:
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.setblocking(False)
    return sock


@dataclass(frozen=True)
class ServerTls:
    """Serve HTTPS from PEM certificate and key files; with ``client_ca``, require client certificates."""

    cert_file: str
    key_file: str
    client_ca: str | None = None


def tls_scope(protocol: type[HttpToolsProtocol]) -> type[HttpToolsProtocol]:
    """``protocol`` putting the ASGI TLS extension (``scope["extensions"]["tls"]``) on each request of a TLS
    connection: the client certificate's subject (``client_cert_name``, RFC 4514) and PEM
    (``client_cert_chain``: the certificate itself), read once per connection. uvicorn does not yet."""
    return type(f"Tls{protocol.__name__}", (_TlsScope, protocol), {})


class _TlsScope(HttpToolsProtocol):
    _tls: dict[str, Any] | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        tls = transport.get_extra_info("ssl_object")
        if isinstance(tls, ssl.SSLObject):
            self._tls = _tls_extension(tls)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if self._tls is not None:
            self.scope["extensions"] = {"tls": self._tls}  # type: ignore[dict-item]


_TLS_VERSIONS = {"TLSv1.2": 0x0303, "TLSv1.3": 0x0304}


def _tls_extension(tls: ssl.SSLObject) -> dict[str, Any]:
    der = tls.getpeercert(binary_form=True)
    name = pem = None
    if der:
        certificate = x509.load_der_x509_certificate(der)
        name = certificate.subject.rfc4514_string()
        pem = certificate.public_bytes(serialization.Encoding.PEM).decode()
    return {
        "server_cert": None,
        "client_cert_chain": [pem] if pem else [],
        "client_cert_name": name,
        "client_cert_error": None,
        "tls_version": _TLS_VERSIONS.get(tls.version() or ""),
        "cipher_suite": None,
    }


class HttpServer:
    """One ASGI app on one socket, served in the running event loop.

    ``limits`` bound each request's head and how slowly it may arrive (``RequestLimits``: 16 KiB and 100
    headers, 10 s for a head, 60 s for a body, by default), before the app sees it.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        lifespan: Lifespan = "auto",
        tls: ServerTls | ssl.SSLContext | None = None,
        limits: RequestLimits | None = None,
    ) -> None:
        """``tls``: PEM files, or a context made by ``certs`` (which may follow its files: a
        ``certs.ReloadingContext``)."""
        self._sock = bind(host, port)
        self._scheme = "https" if tls is not None else "http"
        extra: dict[str, Any] = {}
        if isinstance(tls, ssl.SSLContext):
            context = tls
            extra = {"ssl_context_factory": lambda _config, _default: context}
        elif tls is not None:
            extra = {"ssl_certfile": tls.cert_file, "ssl_keyfile": tls.key_file}
            if tls.client_ca is not None:
                extra |= {"ssl_ca_certs": tls.client_ca, "ssl_cert_reqs": ssl.CERT_REQUIRED}
        config = uvicorn.Config(
            app,
            http=tls_scope(limited_protocol(limits or RequestLimits())),
            lifespan=lifespan,
            log_level="warning",
            access_log=False,
            timeout_keep_alive=30,
            **extra,
        )
        self._server = _Server(config)
        self._task: asyncio.Task[None] | None = None

    @property
    def port(self) -> int:
        port: int = self._sock.getsockname()[1]
        return port

    @property
    def url(self) -> str:
        host = self._sock.getsockname()[0]
        return f"{self._scheme}://{host}:{self.port}"

    async def start(self) -> None:
        """Start serving; returns once the app's startup finished. Raises if startup failed."""
        self._task = asyncio.create_task(self._server.serve(sockets=[self._sock]))
        while not self._server.started:
            if self._task.done():
                self._task.result()
                raise RuntimeError("the HTTP server stopped during startup")
            await asyncio.sleep(0.005)

    def close(self) -> None:
        """Let go of the socket of a server that never started."""
        self._sock.close()

    async def stop(self) -> None:
        self._server.should_exit = True
        if self._task is not None:
            await self._task

    async def serve_forever(self) -> None:
        await self.start()
        assert self._task is not None
        await self._task

    async def serve_until(self, stop: asyncio.Event) -> None:
        """Serve until ``stop`` is set (or the server ends by itself), then stop in order."""
        await self.start()
        assert self._task is not None
        stopping = asyncio.ensure_future(stop.wait())
        try:
            await asyncio.wait({self._task, stopping}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopping.cancel()
            await self.stop()


class ThreadedServer:
    """An ASGI app served on a thread with its own event loop (uvloop), so it does not share the caller's."""

    def __init__(
        self,
        app_factory: Callable[[], ASGIApp],
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        tls: ServerTls | ssl.SSLContext | None = None,
    ) -> None:
        self._factory = app_factory
        self._host, self._port = host, port
        self._tls = tls
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: HttpServer | None = None
        self._started = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="lienthong-http", daemon=True)

    @property
    def url(self) -> str:
        assert self._server is not None
        return self._server.url

    def start(self) -> ThreadedServer:
        self._thread.start()
        self._started.wait()
        if self._error is not None:
            raise self._error
        return self

    def stop(self) -> None:
        if self._loop is not None and self._server is not None and self._thread.is_alive():
            asyncio.run_coroutine_threadsafe(self._server.stop(), self._loop).result(timeout=10)
        self._thread.join(timeout=10)

    def _run(self) -> None:
        run(self._serve())

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        try:
            self._server = HttpServer(
                self._factory(), host=self._host, port=self._port, lifespan="off", tls=self._tls
            )
            await self._server.start()
        except BaseException as exc:
            self._error = exc
            self._started.set()
            return
        self._started.set()
        assert self._server._task is not None
        await self._server._task

    def __enter__(self) -> ThreadedServer:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()


@contextlib.contextmanager
def on_stop_signals(stop: asyncio.Event) -> Iterator[None]:
    """Within the running loop, SIGINT and SIGTERM set ``stop``: an orderly stop, then exit 0.

    A second signal while stopping ends the process at once (exit 130): nothing is lost by that either,
    since every acknowledged event is committed and deliveries left in flight are made again at start.
    For the command line's edge only; library code never handles signals.
    """
    loop = asyncio.get_running_loop()

    def handle(sig: signal.Signals) -> None:
        if stop.is_set():
            log.warning("%s again while stopping: exiting now", sig.name)
            os._exit(130)
        log.info("%s: stopping (deliveries under way may finish; a second signal exits at once)", sig.name)
        stop.set()

    for sig in STOP_SIGNALS:
        loop.add_signal_handler(sig, handle, sig)
    try:
        yield
    finally:
        for sig in STOP_SIGNALS:
            loop.remove_signal_handler(sig)


@contextlib.contextmanager
def on_reload_signal(reload: Callable[[], object]) -> Iterator[None]:
    """Within the running loop, SIGHUP calls ``reload`` (off the loop: it reads files): certificates are
    read again without a restart. For the command line's edge only, as ``on_stop_signals``."""
    loop = asyncio.get_running_loop()

    def handle() -> None:
        log.info("SIGHUP: reloading certificates")
        loop.run_in_executor(None, reload)

    loop.add_signal_handler(signal.SIGHUP, handle)
    try:
        yield
    finally:
        loop.remove_signal_handler(signal.SIGHUP)


def tune_runtime() -> None:
    """Interpreter settings for a long-running server; called once by the CLI, never by library code.

    - Fewer cyclic-GC passes: ingest allocates many short-lived, acyclic objects (decoded JSON), which
      reference counting frees, yet CPython's default gen-0 threshold of 700 runs a collection every few
      events. Objects alive at start-up are frozen out of collections altogether.
    - A 1 ms GIL switch interval (default 5 ms): the store's thread gives up the GIL inside every SQLite
      statement and must win it back from the event loop; measured, a store beside a busy thread managed
      2,464 events/s at 5 ms and 8,727 at 0.5 ms.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 20)
    sys.setswitchinterval(0.001)


def run(main: Coroutine[Any, Any, T]) -> T:
    """Run ``main`` to completion in a new event loop (uvloop where installed), then close the loop."""
    loop = new_event_loop()
    try:
        return loop.run_until_complete(main)
    finally:
        loop.close()


def new_event_loop() -> asyncio.AbstractEventLoop:
    """uvloop where it is installed, else asyncio's default loop."""
    try:
        import uvloop  # noqa: PLC0415 (optional: not on Windows)
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()
