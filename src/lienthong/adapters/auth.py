"""Outbound authentication, chosen per destination: none, HTTP basic, or a Bearer token from OAuth2
client credentials (as provincial LGSP gateways issue). The portal's session login lives in its adapter;
mutual TLS is the transport's ``ssl.SSLContext`` (``certs.client_context``).

A strategy wraps the destination's httpx transport, so every adapter over HTTP gets it without knowing.
An OAuth2 token is cached until shortly before it expires (``credentials.CredentialCache``), and fetched
again once when the destination answers 401 to it, not when it answers 401 to a token already replaced; the
request is then sent once more with the new token.
"""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Protocol
from urllib.parse import urlencode

import httpx
import orjson
import yarl
from multidict import CIMultiDict

from lienthong.adapters.credentials import CredentialCache
from lienthong.adapters.failures import TOKEN_ENDPOINT, answered, delivery_errors
from lienthong.adapters.http import Answer, read_capped, send_over
from lienthong.errors import PermanentError


class AuthStrategy(Protocol):
    async def headers(self) -> dict[str, str]: ...

    async def rejected(self, sent: Mapping[str, str]) -> bool:
        """The destination said 401 to a request carrying ``sent`` (what ``headers`` gave): forget those
        credentials unless they were replaced since; True when sending again may help."""
        ...


class BasicAuth:
    def __init__(self, username: str, password: str) -> None:
        token = base64.b64encode(f"{username}:{password}".encode()).decode()
        self._header = {"authorization": f"Basic {token}"}

    async def headers(self) -> dict[str, str]:
        return self._header

    async def rejected(self, sent: Mapping[str, str]) -> bool:
        return False  # the same credentials would be refused again


class StaticBearer:
    """A fixed token the peer issued, sent as ``Authorization: Bearer`` (the payment platform's
    ``AccessToken`` in a public client). A 401 is final: the same token would be refused again."""

    def __init__(self, token: str) -> None:
        self._header = {"authorization": f"Bearer {token}"}

    async def headers(self) -> dict[str, str]:
        return self._header

    async def rejected(self, sent: Mapping[str, str]) -> bool:
        return False


TOKEN_ANSWER_BYTES = 65_536
"""The most a token endpoint may answer (bytes); a token is a few hundred."""


class OAuth2ClientCredentials:
    """RFC 6749 §4.4: POST the token endpoint with the client's id and secret (HTTP basic)."""

    def __init__(
        self,
        transport: httpx.AsyncBaseTransport,
        *,
        token_url: str,
        client_id: str,
        client_secret: str,
        scope: str | None = None,
        timeout_s: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
        refresh_margin_s: float = 60.0,
    ) -> None:
        self._transport = transport
        self._url = httpx.URL(token_url)
        self._credentials = BasicAuth(client_id, client_secret)
        self._form = {"grant_type": "client_credentials", **({"scope": scope} if scope else {})}
        self._timeout = httpx.Timeout(timeout_s).as_dict()
        self._clock = clock
        self._margin = refresh_margin_s
        self._token = CredentialCache(self._fetch, clock=clock)

    @property
    def fetches(self) -> int:
        """How many tokens were fetched."""
        return self._token.fetches

    async def headers(self) -> dict[str, str]:
        return {"authorization": f"Bearer {await self._token.get()}"}

    async def rejected(self, sent: Mapping[str, str]) -> bool:
        self._token.invalidate(sent.get("authorization", "").removeprefix("Bearer "))
        return True

    async def _fetch(self) -> tuple[str, float]:
        headers = {"content-type": "application/x-www-form-urlencoded", **(await self._credentials.headers())}
        request = httpx.Request(
            "POST",
            self._url,
            headers=headers,
            content=urlencode(self._form).encode(),
            extensions={"timeout": self._timeout},
        )
        with delivery_errors("", "oauth2", who=TOKEN_ENDPOINT):
            response = await self._transport.handle_async_request(request)
            try:
                body = await read_capped(response, TOKEN_ANSWER_BYTES)
            finally:
                await response.aclose()
        status = response.status_code
        if not 200 <= status < 300:
            failure = answered(status, TOKEN_ENDPOINT, retry_after=response.headers.get("retry-after"))
            if not failure.retryable:  # 400 invalid_client, 401: the same request would be refused again
                failure = replace(failure, message=f"the token endpoint refused the client: http {status}")
            raise failure.error("", "oauth2")
        try:
            answer = orjson.loads(body)
        except orjson.JSONDecodeError:
            answer = None
        if not isinstance(answer, dict):  # a garbled answer (a proxy's page): as any peer's, retried
            raise answered(status, TOKEN_ENDPOINT, detail=f"{body[:120]!r}").error("", "oauth2")
        try:
            token = answer["access_token"]
            lifetime = float(answer.get("expires_in") or 300)
        except (KeyError, TypeError, ValueError) as exc:
            raise PermanentError(
                f"the token endpoint gave no usable access_token: http {status}",
                operation="oauth2",
                status=status,
            ) from exc
        return str(token), self._clock() + max(0.0, lifetime - self._margin)


class AuthenticatedTransport(httpx.AsyncBaseTransport):
    """Adds ``strategy``'s headers to every request; on 401, asks it once for new ones and resends."""

    def __init__(self, inner: httpx.AsyncBaseTransport, strategy: AuthStrategy) -> None:
        self._inner = inner
        self._strategy = strategy

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        sent = await self._strategy.headers()
        request.headers.update(sent)
        response = await self._inner.handle_async_request(request)
        if response.status_code == 401 and await self._strategy.rejected(sent):
            await response.aclose()
            request.headers.update(await self._strategy.headers())
            response = await self._inner.handle_async_request(request)
        return response

    async def send(
        self,
        method: str,
        url: yarl.URL,
        body: bytes,
        headers: Mapping[str, str],
        *,
        max_bytes: int,
        timeout_s: float,
    ) -> Answer:
        """``http.Sender.send`` with the strategy's headers, and once more with new ones on a 401; all of
        it (a token fetched on the way, the second request) within ``timeout_s``."""
        async with asyncio.timeout(timeout_s):
            sent = await self._strategy.headers()
            merged = CIMultiDict(headers)
            merged.update(sent)
            answer = await send_over(
                self._inner, method, url, body, merged, max_bytes=max_bytes, timeout_s=timeout_s
            )
            if answer.status_code == 401 and await self._strategy.rejected(sent):
                merged.update(await self._strategy.headers())
                answer = await send_over(
                    self._inner, method, url, body, merged, max_bytes=max_bytes, timeout_s=timeout_s
                )
            return answer

    async def aclose(self) -> None:
        await self._inner.aclose()
