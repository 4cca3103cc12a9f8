"""``lienthong check --connect``: try each destination before going live, without sending business data.

For every destination: a TCP connection and, for HTTPS, the TLS handshake with the destination's own
trust store and client certificate, and the server certificate's dates; then what the destination's kind
allows without business data: the OAuth2 token endpoint (``auth: oauth2``), VNPT's WSDLs and their
operations, and an adapter's own ``probe`` (the portal's login, Viettel's). One line per destination.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol, runtime_checkable
from urllib.parse import urlsplit

import httpx

from lienthong.adapters.base import Adapter
from lienthong.config import Config, Destination, OAuth2Config
from lienthong.errors import LienthongError

CERT_WARN_DAYS = 30


@runtime_checkable
class Probing(Protocol):
    """An adapter that can show it reaches its peer without business data (a login, say)."""

    async def probe(self) -> str:
        """What was tried and what came back; raises on failure."""
        ...


@dataclass(frozen=True)
class Probe:
    destination: str
    ok: bool
    detail: str

    def line(self) -> str:
        return f"{self.destination:<14} {'ok' if self.ok else 'FAILED':<7} {self.detail}"


async def probe_all(
    config: Config,
    adapters: dict[str, Adapter],
    *,
    wsdl_problems: Callable[[str], list[str]],
    timeout_s: float = 10.0,
    now: datetime | None = None,
) -> list[Probe]:
    """Try every destination; ``wsdl_problems(name)`` lists a VNPT destination's missing operations."""
    results = []
    for name, dest in config.destinations.items():
        steps: list[Callable[[], Awaitable[str]]] = [
            lambda dest=dest: _reach(dest, config, timeout_s, now or datetime.now(UTC))  # type: ignore[misc]
        ]
        if isinstance(dest.auth, OAuth2Config):
            steps.append(lambda dest=dest: _token(dest, config, timeout_s))  # type: ignore[misc]
        if getattr(dest, "kind", "") == "vnpt":
            steps.append(lambda name=name: _wsdls(name, wsdl_problems))  # type: ignore[misc]
        adapter = adapters.get(name)
        if isinstance(adapter, Probing):
            steps.append(adapter.probe)
        results.append(await _run(name, steps, timeout_s))
    return results


async def _run(name: str, steps: list[Callable[[], Awaitable[str]]], timeout_s: float) -> Probe:
    done: list[str] = []
    for step in steps:
        try:
            async with asyncio.timeout(timeout_s * 2):
                done.append(await step())
        except Exception as exc:
            return Probe(name, False, "; ".join([*done, _failure(exc)]))
    return Probe(name, True, "; ".join(done))


def _failure(exc: BaseException) -> str:
    if isinstance(exc, LienthongError):
        return str(exc)
    if isinstance(exc, TimeoutError):
        return "no answer in time"
    return f"{type(exc).__name__}: {str(exc)[:200] or 'failed'}"


async def _reach(dest: Destination, config: Config, timeout_s: float, now: datetime) -> str:
    """TCP, and for https the TLS handshake with the destination's context and the certificate's dates."""
    from lienthong.app import tls_context  # noqa: PLC0415 (the composition root builds TLS contexts)

    url = urlsplit(dest.base_url)
    https = url.scheme == "https"
    port = url.port or (443 if https else 80)
    context: ssl.SSLContext | None = None
    if https:
        context = tls_context(dest, config.base_dir) or ssl.create_default_context()
    reader, writer = await asyncio.wait_for(
        asyncio.open_connection(url.hostname, port, ssl=context), timeout_s
    )
    try:
        if not https:
            return f"reached {url.hostname}:{port} (plain http: no TLS)"
        cert: Any = writer.get_extra_info("peercert") or {}
        return _dates(cert, writer.get_extra_info("ssl_object"), now)
    finally:
        writer.close()
        await writer.wait_closed()
        del reader


def _dates(cert: dict[str, Any], tls: ssl.SSLObject | None, now: datetime) -> str:
    version = tls.version() if tls is not None else "TLS"
    expires = datetime.strptime(cert["notAfter"], "%b %d %H:%M:%S %Y %Z").replace(tzinfo=UTC)
    days = (expires - now).days
    if days < 0:
        raise ssl.SSLError(f"the server's certificate expired on {expires:%Y-%m-%d}")
    warn = f" (fewer than {CERT_WARN_DAYS} days left)" if days < CERT_WARN_DAYS else ""
    return f"{version} ok, certificate valid until {expires:%Y-%m-%d}, {days} days{warn}"


async def _token(dest: Destination, config: Config, timeout_s: float) -> str:
    from lienthong.adapters.http import make_transport  # noqa: PLC0415
    from lienthong.app import oauth2, tls_context  # noqa: PLC0415

    auth = dest.auth
    assert isinstance(auth, OAuth2Config)
    transport = make_transport(max_connections=1, ssl_context=tls_context(dest, config.base_dir))
    try:
        await oauth2(auth, transport, timeout_s).headers()
    finally:
        await transport.aclose()
    return f"OAuth2 token from {httpx.URL(auth.token_url).host}"


async def _wsdls(name: str, problems: Callable[[str], list[str]]) -> str:
    missing = await asyncio.to_thread(problems, name)
    if missing:
        raise LienthongError("; ".join(missing))
    return "WSDLs read, operations present"
