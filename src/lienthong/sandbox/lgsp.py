"""Sandbox LGSP gateway token endpoint: OAuth2 client credentials (RFC 6749 §4.4).

Peers behind the gateway (the sandbox EMC, for one) accept only tokens it issued and that have not
expired; ``revoke_all`` plays the gateway rotating its tokens.
"""

from __future__ import annotations

import base64
import secrets
import time
from collections.abc import Callable
from urllib.parse import parse_qs

from lienthong.sandbox.base import Answer, FaultPlan, Peer, Request


class LgspSandbox(Peer):
    def __init__(
        self,
        *,
        client_id: str = "lienthong-h56",
        client_secret: str = "sandbox-client-secret",  # noqa: S107 (a simulator's own test secret)
        token_ttl_s: float = 3600.0,
        faults: FaultPlan | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(faults)
        self.client_id, self.client_secret = client_id, client_secret
        self.token_ttl_s = token_ttl_s
        self._clock = clock
        self._tokens: dict[str, float] = {}
        self.issued = 0
        self.routes[("POST", "/oauth2/token")] = self._token

    def valid(self, token: str) -> bool:
        expires = self._tokens.get(token)
        return expires is not None and self._clock() < expires

    def revoke_all(self) -> None:
        self._tokens.clear()

    async def _token(self, request: Request) -> Answer:
        form = {k: v[0] for k, v in parse_qs(request.body.decode()).items()}
        if form.get("grant_type") != "client_credentials":
            return Answer.json({"error": "unsupported_grant_type"}, 400)
        scheme, _, encoded = request.headers.get("authorization", "").partition(" ")
        try:
            client, _, secret = base64.b64decode(encoded).decode().partition(":")
        except ValueError:
            client, secret = "", ""
        if scheme.lower() != "basic" or (client, secret) != (self.client_id, self.client_secret):
            return Answer.json({"error": "invalid_client"}, 401)
        token = secrets.token_urlsafe(24)
        self._tokens[token] = self._clock() + self.token_ttl_s
        self.issued += 1
        return Answer.json(
            {"access_token": token, "token_type": "Bearer", "expires_in": int(self.token_ttl_s)}
        )
