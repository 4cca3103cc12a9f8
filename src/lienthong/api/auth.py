"""Bearer-token authentication for the provincial system.

Tokens are configured as SHA-256 hashes, never as plain text. A plain hash (not a slow password hash) is
right here because tokens are long random strings (``lienthong token new`` makes 32 random bytes), so
there is nothing to brute-force; comparing in constant time keeps timing from leaking a hash prefix.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
from dataclasses import dataclass

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

    def __init__(self, tokens: dict[str, str], *, read_all: frozenset[str] = frozenset()) -> None:
        """``tokens`` maps each token's SHA-256 hex to the name of its holder; holders named in
        ``read_all`` may read every caller's messages."""
        self.model = HTTPBearerModel(
            description="A token from `lienthong token new`; the node holds only its SHA-256 (`auth.tokens`)."
        )
        self.scheme_name = "bearer"
        self._tokens = [(bytes.fromhex(digest), name) for digest, name in tokens.items()]
        self._read_all = read_all

    async def __call__(self, request: Request) -> Caller:
        # async so that FastAPI calls it on the event loop, not through a thread pool (measured: a thread
        # hop per request is a large share of a small request's cost).
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise _unauthorized(request, "missing bearer token: send 'Authorization: Bearer <token>'")
        presented = hashlib.sha256(token.strip().encode()).digest()
        name = None
        for digest, holder in self._tokens:  # check every entry: time does not depend on which matched
            if hmac.compare_digest(presented, digest):
                name = holder
        if name is None:
            raise _unauthorized(request, "invalid bearer token")
        return Caller(name, name in self._read_all)


def _unauthorized(request: Request, message: str) -> HTTPException:
    client = request.client.host if request.client else "unknown"
    log.warning("refused %s %s from %s: %s", request.method, request.url.path, client, message)
    return HTTPException(
        401, detail={"code": "unauthorized", "message": message}, headers={"WWW-Authenticate": "Bearer"}
    )
