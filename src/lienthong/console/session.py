"""Console sessions: a signed cookie naming the operator until it expires, and the CSRF token bound to it.

The cookie is ``<name, base64url>.<expiry, unix seconds>.<HMAC-SHA256>`` under a key made when the node
starts: a node restarted logs everyone out, and a cookie made without the key (forged, or edited to another
name or a later expiry) is refused. What is stored is the sessions ended by logging out, until they would
have expired: a copy of the cookie kept from before the logout opens nothing (found in review).

The token every form carries is an HMAC of the cookie under the same key: another site can make a browser
send the cookie (it cannot, SameSite=Strict, but older browsers) but cannot read the token.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
import time
from collections.abc import Callable

COOKIE = "lienthong_admin"


class Sessions:
    def __init__(
        self, ttl_s: float, *, clock: Callable[[], float] = time.time, key: bytes | None = None
    ) -> None:
        self.ttl_s = ttl_s
        self._clock = clock
        self._key = key if key is not None else secrets.token_bytes(32)
        self._ended: dict[str, int] = {}  # signature of a logged-out cookie -> its expiry

    def issue(self, operator: str) -> str:
        """A session cookie's value for ``operator``, valid for ``ttl_s``."""
        name = base64.urlsafe_b64encode(operator.encode()).decode().rstrip("=")
        body = f"{name}.{int(self._clock() + self.ttl_s)}"
        return f"{body}.{self._sign(body)}"

    def operator(self, cookie: str | None) -> str | None:
        """The operator a cookie names, or None: no cookie, a bad signature, or expired."""
        if not cookie or cookie.count(".") != 2:
            return None
        name, expiry, signature = cookie.split(".")
        if not hmac.compare_digest(self._sign(f"{name}.{expiry}"), signature):
            return None
        if not expiry.isdigit() or int(expiry) < self._clock() or signature in self._ended:
            return None
        try:
            return base64.urlsafe_b64decode(name + "=" * (-len(name) % 4)).decode()
        except (binascii.Error, UnicodeDecodeError):
            return None

    def end(self, cookie: str | None) -> None:
        """Log the session of ``cookie`` out for good (a valid one; anything else names no session)."""
        if self.operator(cookie) is None:
            return
        assert cookie is not None
        _, expiry, signature = cookie.split(".")
        now = self._clock()
        self._ended = {s: e for s, e in self._ended.items() if e >= now}  # bounded: live sessions only
        self._ended[signature] = int(expiry)

    def csrf(self, cookie: str) -> str:
        """The token forms of this session carry."""
        return self._sign(f"csrf:{cookie}")

    def csrf_ok(self, cookie: str | None, token: str | None) -> bool:
        return bool(cookie and token) and hmac.compare_digest(self.csrf(str(cookie)), str(token))

    def _sign(self, text: str) -> str:
        return hmac.new(self._key, text.encode(), hashlib.sha256).hexdigest()
