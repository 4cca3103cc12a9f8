"""Bearer-token and client-certificate authentication for the provincial system.

A caller is known either by a bearer token or, where the server asks for client certificates
(``server.tls.client_ca``), by its certificate's subject (``auth.certificates``). The TLS handshake has
already refused a certificate from another CA, an expired one, and (``require_client_cert``) none; what
reaches here is a verified certificate, whose subject names the caller or no one.

Tokens are configured as SHA-256 hashes, never as plain text. A plain hash (not a slow password hash) is
right here because tokens are long random strings (``lienthong token new`` makes 32 random bytes), so
there is nothing to brute-force; comparing in constant time keeps timing from leaking a hash prefix.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import math
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from cryptography import x509
from fastapi import HTTPException, Request
from fastapi.openapi.models import HTTPBearer as HTTPBearerModel
from fastapi.security.base import SecurityBase

log = logging.getLogger("lienthong.api.auth")


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_token() -> str:
    return secrets.token_urlsafe(32)


@dataclass(frozen=True)
class Caller:
    """Who presented a valid token. ``read_all`` callers may read every caller's messages."""

    name: str
    read_all: bool = False

    def may_read(self, sender: str) -> bool:
        """Whether this caller may see what ``sender`` sent ('' is lienthong itself: anyone may)."""
        return self.read_all or not sender or sender == self.name


class BearerAuth(SecurityBase):
    """A FastAPI dependency: the caller named by a valid bearer token, or 401.

    As a ``SecurityBase`` it is what the OpenAPI document declares as the ``bearer`` scheme, on every
    operation that depends on it.
    """

    def __init__(
        self,
        tokens: dict[str, str],
        *,
        read_all: frozenset[str] = frozenset(),
        certificates: Mapping[str, str] | None = None,
        limits: CallerLimits | None = None,
    ) -> None:
        """``tokens`` maps each token's SHA-256 hex to the name of its holder; ``certificates`` each client
        certificate subject (RFC 4514) to its holder's name; holders named in ``read_all`` may read every
        caller's messages."""
        self.model = HTTPBearerModel(
            description="A token from `lienthong token new`; the node holds only its SHA-256 (`auth.tokens`)."
        )
        self.scheme_name = "bearer"
        self._tokens = [(bytes.fromhex(digest), name) for digest, name in tokens.items()]
        self._read_all = read_all
        self._subjects = {canonical_subject(s): name for s, name in (certificates or {}).items()}
        self._limits = limits

    async def __call__(self, request: Request) -> Caller:
        # async so that FastAPI calls it on the event loop, not through a thread pool (measured: a thread
        # hop per request is a large share of a small request's cost).
        subject = client_subject(request)
        if subject is not None:
            holder = self._subjects.get(canonical_subject(subject))
            if holder is not None:
                return self._admit(request, holder)
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            if subject is not None:
                raise _unauthorized(
                    request,
                    f"the client certificate {subject!r} names no caller (auth.certificates), and no bearer"
                    " token was sent",
                )
            raise _unauthorized(request, "missing bearer token: send 'Authorization: Bearer <token>'")
        presented = hashlib.sha256(token.strip().encode()).digest()
        name = None
        for digest, holder in self._tokens:  # check every entry: time does not depend on which matched
            if hmac.compare_digest(presented, digest):
                name = holder
        if name is None:
            raise _unauthorized(request, "invalid bearer token")
        return self._admit(request, name)

    def _admit(self, request: Request, name: str) -> Caller:
        """The caller ``name``, unless it is over its rate: 429 with Retry-After."""
        if self._limits is not None:
            wait_s = self._limits.take(name)
            if wait_s > 0:
                raise self._limits.refusal(request, name, wait_s)
        return Caller(name, name in self._read_all)


class CallerLimits:
    """A token bucket per caller (``auth.rate_limit``): ``per_second`` on average, ``burst`` at once. The
    callers are the config's, so the buckets are bounded in number."""

    def __init__(self, per_second: float, burst: int, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.per_second = per_second
        self.burst = burst
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}  # name -> (tokens, at)
        self._told: dict[str, float] = {}  # name -> when its last refusal was logged

    def take(self, name: str) -> float:
        """0 when ``name`` may go now (a token taken); otherwise the seconds until it may."""
        now = self._clock()
        tokens, at = self._buckets.get(name, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + (now - at) * self.per_second)
        if tokens >= 1:
            self._buckets[name] = (tokens - 1, now)
            return 0.0
        self._buckets[name] = (tokens, now)
        return (1 - tokens) / self.per_second

    def refusal(self, request: Request, name: str, wait_s: float) -> HTTPException:
        message = (
            f"caller {name!r} is over its rate (auth.rate_limit: {self.per_second:g}/s, burst {self.burst}):"
            f" send again in {math.ceil(wait_s)} s"
        )
        now = self._clock()
        if now - self._told.get(name, -1.0) >= 1.0:  # a line a second per caller: a flood is not logged whole
            self._told[name] = now
            log.info("refused %s %s: %s", request.method, request.url.path, message)
        return HTTPException(
            429,
            detail={"code": "rate_limited", "message": message},
            headers={"Retry-After": str(math.ceil(wait_s))},
        )


def client_subject(request: Request) -> str | None:
    """The subject (RFC 4514) of the verified client certificate of the request's connection, if any (the
    ASGI TLS extension, ``serving.tls_scope``)."""
    tls = request.scope.get("extensions", {}).get("tls")
    name = tls.get("client_cert_name") if isinstance(tls, dict) else None
    return name if isinstance(name, str) else None


def canonical_subject(subject: str) -> str:
    """``subject`` as cryptography writes it, so that spacing and escaping in the config do not matter.
    ValueError when it is not an RFC 4514 name."""
    return x509.Name.from_rfc4514_string(subject).rfc4514_string()


def _unauthorized(request: Request, message: str) -> HTTPException:
    client = request.client.host if request.client else "unknown"
    log.warning("refused %s %s from %s: %s", request.method, request.url.path, client, message)
    return HTTPException(
        401, detail={"code": "unauthorized", "message": message}, headers={"WWW-Authenticate": "Bearer"}
    )
