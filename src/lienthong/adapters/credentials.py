"""One credential cache for every login an adapter keeps: the portal's session, Viettel's token, an OAuth2
access token.

A credential is fetched under a lock, once however many callers want it at the same time, and kept until
it expires (``expires_at`` on the injected clock; None: until the peer refuses it). When the peer refuses
one (a 401, or its own word for an expired session), ``invalidate`` forgets it only if it is still the one
held: the refusal of an older credential, heard after another caller renewed it, does not throw the fresh
one away. ``call`` does both for one exchange: send with the current credential and, if it is refused,
renew once and send once more.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")

Fetch = Callable[[], Awaitable[tuple[T, float | None]]]
"""Get a new credential: (the credential, when it expires on the cache's clock, or None for never)."""


class CredentialCache(Generic[T]):
    """The credential ``fetch`` gives, kept until ``clock()`` reaches its expiry or the peer refuses it.

    ``fetches`` counts the credentials fetched (tests and ``check --connect`` read it)."""

    def __init__(self, fetch: Fetch[T], *, clock: Callable[[], float] = time.monotonic) -> None:
        self._fetch = fetch
        self._clock = clock
        self._held: tuple[T, float | None] | None = None
        self._lock = asyncio.Lock()
        self.fetches = 0

    def _current(self) -> tuple[T, float | None] | None:
        held = self._held
        if held is None or (held[1] is not None and self._clock() >= held[1]):
            return None
        return held

    async def get(self) -> T:
        """The credential held, or a new one when there is none or it has expired. A fetch's failure is
        raised to the caller and nothing is kept."""
        held = self._current()
        if held is None:
            async with self._lock:  # the callers that wait here take what the first one fetched
                held = self._current()
                if held is None:
                    self.fetches += 1
                    held = await self._fetch()
                    self._held = held
        return held[0]

    def invalidate(self, refused: T) -> bool:
        """The peer refused ``refused``: forget it if it is still the credential held (True), else keep the
        newer one (False)."""
        if self._held is not None and self._held[0] == refused:
            self._held = None
            return True
        return False

    async def call(self, attempt: Callable[[T], Awaitable[R]], *, refused: Callable[[R], bool]) -> R:
        """``attempt`` with the current credential; when ``refused`` says its result is a refusal, once more
        with a renewed one. The second result is returned whatever it is: the caller judges it."""
        credential = await self.get()
        result = await attempt(credential)
        if refused(result):
            self.invalidate(credential)
            result = await attempt(await self.get())
        return result
