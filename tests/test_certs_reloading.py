"""Certificates rotated without a restart, against real TLS servers on loopback: new connections take the new
certificate, connections already open keep theirs, a file that fails to load keeps the one in use."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import ssl
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import httpx
import pytest
import trustme
from cryptography import x509
from prometheus_client import CollectorRegistry

from conftest import Peers, Running, RunNode, config_dict
from lienthong.app import build
from lienthong.certs import Reloader, ReloadingContext, TlsFiles
from lienthong.certs.tls import reloading_client, reloading_server
from lienthong.config import Config
from lienthong.serving import HttpServer, ThreadedServer, on_reload_signal
from test_certs_loading import Pki
from test_certs_tls import server_context, whoami
from test_outbound_auth import notify_config

ONE = "CN=client-one,OU=certs,O=Lienthong tests"
TWO = "CN=client-two,OU=certs,O=Lienthong tests"


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    return Pki(tmp_path)


@pytest.fixture
def mtls_url(pki: Pki) -> Iterator[str]:
    with ThreadedServer(lambda: whoami, tls=server_context(pki, client_ca=pki.ca_file())) as server:
        yield server.url


def client(pki: Pki, name: str = "client-one") -> ReloadingContext:
    cert, key = pki.pem("client", pki.issue(name))
    files = TlsFiles(ca_file=pki.ca_file(), cert_file=cert, key_file=key)
    return reloading_client("destinations.province", files, environ={})


def rotate(pki: Pki, name: str, **dates: datetime) -> None:
    """Write a new certificate and key over the files in use, as an operator's copy would."""
    pki.pem("client", pki.issue(name, **dates))


async def who(session: aiohttp.ClientSession, url: str) -> str:
    async with session.get(url) as answer:
        return await answer.text()


def test_reloading_a_live_context_in_place_breaks_it_when_the_load_fails(pki: Pki, mtls_url: str) -> None:
    # Why contexts are built aside and swapped (decision 0019): ssl's load_cert_chain on a context in use
    # takes the new certificate before it finds the key does not match, and leaves no usable pair.
    cert, key = pki.pem("client", pki.issue("client-one"))
    live = ssl.create_default_context(cafile=str(pki.where / "ca.pem"))
    live.load_cert_chain(cert, key)
    other_cert, _ = pki.pem("other", pki.issue("client-two"))
    with pytest.raises(ssl.SSLError, match="KEY_VALUES_MISMATCH"):
        live.load_cert_chain(other_cert, key)
    with httpx.Client(verify=live) as http, pytest.raises(httpx.HTTPError):
        http.get(mtls_url)


async def test_new_connections_take_the_new_certificate_and_open_ones_keep_theirs(
    pki: Pki, mtls_url: str
) -> None:
    context = client(pki)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=context)) as kept:
        assert await who(kept, mtls_url) == ONE
        rotate(pki, "client-two")
        assert context.check() is True
        assert await who(kept, mtls_url) == ONE  # the connection already open: the dual window
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=context)) as fresh:
            assert await who(fresh, mtls_url) == TWO
    assert context.check() is False  # nothing changed since


async def test_a_file_caught_mid_write_keeps_the_certificate_in_use_and_warns_naming_it(
    pki: Pki, mtls_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    context = client(pki)
    whole = (pki.where / "client.pem").read_bytes()
    (pki.where / "client.pem").write_bytes(whole[: len(whole) // 2])
    with caplog.at_level(logging.WARNING, logger="lienthong.certs"):
        assert context.check() is False
    assert "client.pem" in caplog.text
    assert "the ones in use are kept" in caplog.text
    with httpx.Client(verify=context) as http:
        assert http.get(mtls_url).text == ONE
    rotate(pki, "client-two")  # the copy completes
    assert context.check() is True
    with httpx.Client(verify=context) as http:
        assert http.get(mtls_url).text == TWO


def test_an_expired_replacement_keeps_the_certificate_in_use(
    pki: Pki, caplog: pytest.LogCaptureFixture
) -> None:
    context = client(pki)
    before = context.current
    now = datetime.now(UTC)
    rotate(pki, "client-two", not_before=now - timedelta(days=30), not_after=now - timedelta(days=1))
    with caplog.at_level(logging.WARNING, logger="lienthong.certs"):
        assert context.check() is False
    assert context.current is before
    assert "client.pem the certificate expired on" in caplog.text


def test_a_trust_store_may_hold_the_old_and_the_new_ca_and_a_ca_removed_is_no_longer_trusted(
    pki: Pki, tmp_path: Path
) -> None:
    new = Pki(tmp_path / "new", trustme.CA())
    new.where.mkdir()
    trust = tmp_path / "trust.pem"
    trust.write_bytes(pki.ca.cert_pem.bytes())
    context = reloading_client(
        "destinations.province", TlsFiles(ca_file=trust, system_trust=False), environ={}
    )
    with (
        ThreadedServer(lambda: whoami, tls=server_context(pki, client_ca=None)) as old_server,
        ThreadedServer(lambda: whoami, tls=server_context(new, client_ca=None)) as new_server,
    ):
        with httpx.Client(verify=context) as http, pytest.raises(httpx.ConnectError):
            http.get(new_server.url)
        trust.write_bytes(pki.ca.cert_pem.bytes() + new.ca.cert_pem.bytes())  # the rotation's window
        assert context.check() is True
        with httpx.Client(verify=context) as http:
            assert http.get(old_server.url).status_code == http.get(new_server.url).status_code == 200
        trust.write_bytes(new.ca.cert_pem.bytes())  # the old CA retired
        assert context.check() is True
        with httpx.Client(verify=context) as http:
            assert http.get(new_server.url).status_code == 200
            with pytest.raises(httpx.ConnectError):
                http.get(old_server.url)


def test_a_server_context_reloads_its_own_certificate(pki: Pki) -> None:
    cert, key = pki.pem("server", pki.issue("127.0.0.1"))
    context = reloading_server("server.tls", TlsFiles(cert_file=cert, key_file=key), environ={})
    with ThreadedServer(lambda: whoami, tls=context) as server:
        serial = _served_serial(server.url, pki)
        pki.pem("server", pki.issue("127.0.0.1"))
        assert context.check() is True
        assert _served_serial(server.url, pki) != serial


def _served_serial(url: str, pki: Pki) -> int:
    port = int(url.rsplit(":", 1)[1])
    context = ssl.create_default_context(cafile=str(pki.ca_file()))
    with (
        socket.create_connection(("127.0.0.1", port)) as raw,
        context.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return x509.load_der_x509_certificate(der).serial_number


async def test_the_reloader_polls_the_files_and_tells_of_each_context_that_changed(pki: Pki) -> None:
    changed: list[str] = []
    reloader = Reloader(on_reload=lambda context: changed.append(context.name))
    context = reloader.add(client(pki))
    assert reloader.add(client(pki)) is context  # one per name
    poll = asyncio.create_task(reloader.poll(interval_s=0.02))
    try:
        rotate(pki, "client-two")
        async with asyncio.timeout(5):
            while not changed:
                await asyncio.sleep(0.01)
    finally:
        poll.cancel()
        await asyncio.gather(poll, return_exceptions=True)
    assert changed == ["destinations.province"]
    assert reloader.reload() == ["destinations.province"]  # SIGHUP: built again even when unchanged


async def test_sighup_reloads(pki: Pki) -> None:
    reloaded = asyncio.Event()
    loop = asyncio.get_running_loop()
    with on_reload_signal(lambda: loop.call_soon_threadsafe(reloaded.set)):
        os.kill(os.getpid(), signal.SIGHUP)
        async with asyncio.timeout(5):
            await reloaded.wait()


async def test_a_node_follows_its_destinations_certificate_files_and_its_expiry_gauge_with_them(
    run_node: RunNode, tmp_path: Path, peers: Peers, pki: Pki
) -> None:
    now = datetime.now(UTC)
    cert, key = pki.pem("client", pki.issue("client-one", not_after=now + timedelta(days=30)))
    tls = {"ca_file": str(pki.ca_file()), "client_cert": str(cert), "client_key": str(key)}
    running: Running = await run_node(**notify_config(tmp_path, peers, "https://127.0.0.1:9", tls=tls))
    gauge = "lienthong_certificate_expiry_timestamp_seconds"
    labels = {"name": "province", "purpose": "client"}
    before = running.registry.get_sample_value(gauge, labels) or 0.0
    assert before == pytest.approx((now + timedelta(days=30)).timestamp(), abs=5)
    rotate(pki, "client-two", not_after=now + timedelta(days=400))
    assert running.node.reloader.check() == ["destinations.province"]
    after = running.registry.get_sample_value(gauge, labels) or 0.0
    assert after - before == pytest.approx(370 * 86400, abs=5)


async def test_readiness_follows_a_renewed_client_certificate(tmp_path: Path, peers: Peers, pki: Pki) -> None:
    now = datetime.now(UTC)
    cert, key = pki.pem("client", pki.issue("client-one", not_after=now + timedelta(days=1)))
    tls = {"ca_file": str(pki.ca_file()), "client_cert": str(cert), "client_key": str(key)}
    data = config_dict(tmp_path, peers, **notify_config(tmp_path, peers, "https://127.0.0.1:9", tls=tls))
    in_two_days = (now + timedelta(days=2)).timestamp()
    node = build(Config.model_validate(data), registry=CollectorRegistry(), clock=lambda: in_two_days)
    server = HttpServer(node.api, lifespan="on")
    await server.start()
    try:
        async with httpx.AsyncClient(base_url=server.url) as http:
            refused = await http.get("/readyz")
            assert refused.status_code == 503
            assert "client.pem" in refused.text
            rotate(pki, "client-two", not_after=now + timedelta(days=400))
            assert node.reloader.check() == ["destinations.province"]
            assert (await http.get("/readyz")).status_code == 200
    finally:
        await server.stop()


async def test_the_poller_outlives_a_surprise_and_keeps_the_context_in_use(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    watched = tmp_path / "watched.pem"
    watched.write_text("one")
    first = ssl.create_default_context()
    calls: list[int] = []

    def build() -> ssl.SSLContext:
        calls.append(1)
        if len(calls) > 1:
            raise RuntimeError("a bug, not a bad file")
        return first

    reloader = Reloader()
    context = reloader.add(ReloadingContext("destinations.odd", build, [watched]))
    poll = asyncio.create_task(reloader.poll(interval_s=0.01))
    try:
        with caplog.at_level(logging.ERROR, logger="lienthong.certs"):
            watched.write_text("two")
            async with asyncio.timeout(5):
                while "checking the certificate files failed" not in caplog.text:
                    await asyncio.sleep(0.01)
        assert not poll.done()
        assert context.current is first
    finally:
        poll.cancel()
        await asyncio.gather(poll, return_exceptions=True)
