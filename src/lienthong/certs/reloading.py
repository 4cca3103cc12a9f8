"""Certificates that change without a restart: a context that makes each new connection with the context
most recently built from its files, and the set of them a node polls (and reloads on SIGHUP).

Why a delegating context rather than ``load_cert_chain`` again on the live one (decision 0019): a failed
load leaves a live context half-changed (the new certificate without its key: every handshake then fails),
and a trust store can only grow, so a CA removed from ``ca_file`` would stay trusted until a restart. Here a
new context is built aside; only when it is whole does it become the one new connections use. Connections
already open keep the context they were made with: during a rotation old and new certificates are both in
use, each on its own connections (the dual-certificate window).

``ReloadingContext`` is an ``ssl.SSLContext``, so aiohttp, httpx, zeep's transport and uvicorn take it as
they take any: each of them wraps every new connection with ``wrap_socket`` or ``wrap_bio``, which is
where it hands over to the current context.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import ssl
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from lienthong.errors import ConfigError

log = logging.getLogger("lienthong.certs")

DEFAULT_POLL_S = 30.0
"""How often a node looks at its certificate files for changes, in seconds."""

Stamp = tuple[tuple[str, str | None], ...]


def stamp(files: Iterable[Path]) -> Stamp:
    """What the files hold now: each one's SHA-256 (None when it cannot be read)."""
    found = []
    for path in files:
        try:
            digest: str | None = hashlib.sha256(path.read_bytes()).hexdigest()
        except OSError:
            digest = None
        found.append((str(path), digest))
    return tuple(found)


class ReloadingContext(ssl.SSLContext):
    """An SSL context whose new connections are made by the context ``build`` made last.

    ``build`` raises ConfigError when the files are not usable: at construction that error is raised; on a
    reload it is logged as a warning and the context in use is kept.
    """

    name: str
    _build: Callable[[], ssl.SSLContext]
    _files: tuple[Path, ...]
    _current: ssl.SSLContext
    _stamp: Stamp

    def __new__(
        cls, name: str, build: Callable[[], ssl.SSLContext], files: Iterable[Path]
    ) -> ReloadingContext:
        first = build()
        self = super().__new__(cls, first.protocol)
        self._current = first
        return self

    def __init__(self, name: str, build: Callable[[], ssl.SSLContext], files: Iterable[Path]) -> None:
        # The outer context's own settings mirror the first built one's, for whoever reads them
        # (check_hostname, verify_mode, minimum_version); connections are never made with it.
        self.name = name
        self._build = build
        self._files = tuple(files)
        self._stamp = stamp(self._files)
        first = self._current
        if first.protocol == ssl.PROTOCOL_TLS_CLIENT:
            self.check_hostname = first.check_hostname
        self.verify_mode = first.verify_mode
        self.minimum_version = first.minimum_version

    @property
    def current(self) -> ssl.SSLContext:
        """The context new connections are made with."""
        return self._current

    @property
    def files(self) -> tuple[Path, ...]:
        return self._files

    def wrap_socket(self, *args: Any, **kwargs: Any) -> ssl.SSLSocket:
        return self._current.wrap_socket(*args, **kwargs)

    def wrap_bio(self, *args: Any, **kwargs: Any) -> ssl.SSLObject:
        return self._current.wrap_bio(*args, **kwargs)

    def check(self) -> bool:
        """Build again when a file changed since the last attempt; whether the context changed."""
        now = stamp(self._files)
        if now == self._stamp:
            return False
        return self._reload(now)

    def reload(self) -> bool:
        """Build again whatever the files hold (SIGHUP); whether the context changed."""
        return self._reload(stamp(self._files))

    def _reload(self, now: Stamp) -> bool:
        self._stamp = now  # a file that fails is tried again once it changes again (or on SIGHUP)
        try:
            built = self._build()
        except (ConfigError, ssl.SSLError, OSError) as exc:
            log.warning("%s: certificates not reloaded, the ones in use are kept: %s", self.name, exc)
            return False
        self._current = built
        log.info("%s: certificates reloaded from %s", self.name, ", ".join(map(str, self._files)))
        return True


class Reloader:
    """The node's reloading contexts: polled for changed files, reloaded together on SIGHUP.

    ``on_reload`` is called with each context that changed (the node updates its expiry gauges)."""

    def __init__(self, on_reload: Callable[[ReloadingContext], None] | None = None) -> None:
        self._contexts: dict[str, ReloadingContext] = {}
        self._on_reload = on_reload

    def add(self, context: ReloadingContext) -> ReloadingContext:
        self._contexts.setdefault(context.name, context)
        return self._contexts[context.name]

    def get(self, name: str) -> ReloadingContext | None:
        return self._contexts.get(name)

    def __len__(self) -> int:
        return len(self._contexts)

    def check(self) -> list[str]:
        """Reload the contexts whose files changed; the names of those that changed."""
        return self._each(ReloadingContext.check)

    def reload(self) -> list[str]:
        """Reload every context (SIGHUP); the names of those that changed."""
        return self._each(ReloadingContext.reload)

    def _each(self, step: Callable[[ReloadingContext], bool]) -> list[str]:
        changed = []
        for context in self._contexts.values():
            if step(context):
                changed.append(context.name)
                if self._on_reload is not None:
                    self._on_reload(context)
        return changed

    async def poll(self, interval_s: float = DEFAULT_POLL_S) -> None:
        """Check the files every ``interval_s`` seconds, until cancelled."""
        while True:
            await asyncio.sleep(interval_s)
            try:
                await asyncio.to_thread(self.check)  # file reads and key parsing: off the event loop
            except Exception:  # the poller outlives any one surprise: the contexts in use are kept
                log.exception("checking the certificate files failed; checking again in %.0f s", interval_s)
