"""The one credential cache (adapters/credentials.py) and its three users: the portal's session, Viettel's
token and OAuth2's: one fetch for many callers, expiry on an injected clock, renew once on a refusal, and a
stale refusal never throws a fresh credential away."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from lienthong.adapters.auth import AuthenticatedTransport, OAuth2ClientCredentials
from lienthong.adapters.credentials import CredentialCache
from lienthong.errors import RetryableError


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Issuer:
    """Hands out t1, t2, ... ; ``lifetime_s`` None: they never expire. ``gate``, when set, holds each fetch
    until it is opened, so that callers pile up behind the first."""

    def __init__(self, clock: Clock, lifetime_s: float | None = None) -> None:
        self.clock = clock
        self.lifetime_s = lifetime_s
        self.issued = 0
        self.gate: asyncio.Event | None = None
        self.fail_next = False

    async def __call__(self) -> tuple[str, float | None]:
        if self.gate is not None:
            await self.gate.wait()
        if self.fail_next:
            self.fail_next = False
            raise RetryableError("the token endpoint answered http 503", status=503)
        self.issued += 1
        expires = None if self.lifetime_s is None else self.clock() + self.lifetime_s
        return f"t{self.issued}", expires


async def test_callers_that_come_together_share_one_fetch() -> None:
    issuer = Issuer(Clock())
    issuer.gate = asyncio.Event()
    cache = CredentialCache(issuer)
    waiting = [asyncio.ensure_future(cache.get()) for _ in range(10)]
    await asyncio.sleep(0)
    issuer.gate.set()
    assert await asyncio.gather(*waiting) == ["t1"] * 10
    assert (issuer.issued, cache.fetches) == (1, 1)


async def test_a_credential_is_kept_until_it_expires_on_the_injected_clock() -> None:
    clock = Clock()
    issuer = Issuer(clock, lifetime_s=100)
    cache = CredentialCache(issuer, clock=clock)
    assert await cache.get() == "t1"
    clock.now += 99.9
    assert await cache.get() == "t1"
    clock.now += 0.1
    assert await cache.get() == "t2"
    assert cache.fetches == 2


async def test_without_an_expiry_a_credential_is_kept_until_refused() -> None:
    clock = Clock()
    cache = CredentialCache(Issuer(clock), clock=clock)
    assert await cache.get() == "t1"
    clock.now += 10**9
    assert await cache.get() == "t1"
    assert cache.invalidate("t1")
    assert await cache.get() == "t2"


async def test_a_stale_refusal_does_not_forget_a_fresh_credential() -> None:
    cache = CredentialCache(Issuer(Clock()))
    assert await cache.get() == "t1"
    assert cache.invalidate("t1")  # one caller's request with t1 was refused: renewed
    assert await cache.get() == "t2"
    assert not cache.invalidate("t1")  # another request sent with t1, refused later: t2 stays
    assert await cache.get() == "t2"
    assert cache.fetches == 2


async def test_concurrent_refusals_of_one_credential_renew_it_once() -> None:
    cache = CredentialCache(Issuer(Clock()))
    await cache.get()
    sent: list[str] = []
    all_sent = asyncio.Event()

    async def attempt(credential: str) -> str:
        sent.append(credential)
        if len(sent) == 8:
            all_sent.set()
        await all_sent.wait()  # every first try is sent with t1 before any answer comes back
        return "401" if credential == "t1" else "ok"

    results = await asyncio.gather(*(cache.call(attempt, refused=lambda r: r == "401") for _ in range(8)))
    assert results == ["ok"] * 8
    assert cache.fetches == 2  # t1, then one renewal for all eight
    assert sent.count("t1") == 8
    assert sent.count("t2") == 8


async def test_a_refusal_renews_once_and_the_second_answer_is_the_callers() -> None:
    cache = CredentialCache(Issuer(Clock()))
    sent: list[str] = []

    async def attempt(credential: str) -> int:
        sent.append(credential)
        return 401

    assert await cache.call(attempt, refused=lambda status: status == 401) == 401
    assert sent == ["t1", "t2"]  # renewed once, not again
    assert cache.fetches == 2


async def test_a_failed_fetch_keeps_nothing_and_the_next_caller_fetches_again() -> None:
    issuer = Issuer(Clock())
    issuer.fail_next = True
    cache = CredentialCache(issuer)
    with pytest.raises(RetryableError, match="token endpoint"):
        await cache.get()
    assert await cache.get() == "t1"


TOKEN_URL = "https://gateway.test/oauth2/token"


class Gateway:
    """A token endpoint and a service behind it, on a mock network: the service answers 401 to a token
    the gateway no longer holds valid, and (``hold``) keeps every request until ``hold`` of them came."""

    def __init__(self) -> None:
        self.issued: list[str] = []
        self.valid: set[str] = set()
        self.seen: list[str] = []
        self.hold = 0
        self._arrived = asyncio.Event()

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        if str(request.url) == TOKEN_URL:
            token = f"t{len(self.issued) + 1}"
            self.issued.append(token)
            self.valid.add(token)
            return httpx.Response(200, json={"access_token": token, "expires_in": 3600})
        token = request.headers["authorization"].removeprefix("Bearer ")
        self.seen.append(token)
        if self.hold and len(self.seen) >= self.hold:
            self._arrived.set()
        if self.hold:
            await self._arrived.wait()
        return httpx.Response(200 if token in self.valid else 401)


async def test_oauth2_concurrent_401s_fetch_one_new_token_and_every_request_is_sent_again() -> None:
    gateway = Gateway()
    network = httpx.MockTransport(gateway)
    strategy = OAuth2ClientCredentials(network, token_url=TOKEN_URL, client_id="c", client_secret="s")
    client = httpx.AsyncClient(transport=AuthenticatedTransport(network, strategy))
    assert (await client.get("https://service.test/")).status_code == 200
    gateway.valid.clear()  # the gateway rotated its tokens
    gateway.seen.clear()
    gateway.hold = 8  # the eight requests are all in flight with t1 before any is answered
    answers = await asyncio.gather(*(client.get("https://service.test/") for _ in range(8)))
    await client.aclose()
    assert [a.status_code for a in answers] == [200] * 8
    assert gateway.issued == ["t1", "t2"]  # one renewal, not one per 401
    assert strategy.fetches == 2
    assert sorted(gateway.seen) == ["t1"] * 8 + ["t2"] * 8


async def test_oauth2_a_401_to_a_replaced_token_keeps_the_new_one() -> None:
    gateway = Gateway()
    strategy = OAuth2ClientCredentials(
        httpx.MockTransport(gateway), token_url=TOKEN_URL, client_id="c", client_secret="s"
    )
    old = await strategy.headers()
    assert await strategy.rejected(old)
    new = await strategy.headers()
    assert new == {"authorization": "Bearer t2"}
    assert await strategy.rejected(old)  # a late 401 to t1: sending again may help, t2 stays
    assert await strategy.headers() == new
    assert strategy.fetches == 2


async def test_oauth2_a_token_is_renewed_before_it_expires_on_the_injected_clock() -> None:
    clock = Clock()
    gateway = Gateway()
    strategy = OAuth2ClientCredentials(
        httpx.MockTransport(gateway), token_url=TOKEN_URL, client_id="c", client_secret="s", clock=clock
    )
    assert await strategy.headers() == {"authorization": "Bearer t1"}
    clock.now += 3600 - 61  # the default margin is a minute
    assert await strategy.headers() == {"authorization": "Bearer t1"}
    clock.now += 1
    assert await strategy.headers() == {"authorization": "Bearer t2"}
