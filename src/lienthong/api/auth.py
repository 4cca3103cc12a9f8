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
import secrets
from collections.abc import Mapping
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

    async def __call__(self, request: Request) -> Caller:
        # async so that FastAPI calls it on the event loop, not through a thread pool (measured: a thread
        # hop per request is a large share of a small request's cost).
        subject = client_subject(request)
        if subject is not None:
            holder = self._subjects.get(canonical_subject(subject))
            if holder is not None:
                return Caller(holder, holder in self._read_all)
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
        return Caller(name, name in self._read_all)


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
