"""TLS contexts against real servers on loopback: a client certificate (PEM or PKCS#12) presented over
aiohttp and httpx, a destination's own trust store, the lowest TLS version."""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from starlette.types import Receive, Scope, Send

from lienthong.adapters.http import make_transport
from lienthong.certs import Passphrase, TlsFiles, build_client, build_server
from lienthong.errors import ConfigError
from lienthong.serving import ThreadedServer
from test_certs_loading import PASS, Pki


async def whoami(scope: Scope, receive: Receive, send: Send) -> None:
    """Answers with the subject of the client certificate its connection presented ('-' for none)."""
    tls = scope.get("extensions", {}).get("tls", {})
    body = (tls.get("client_cert_name") or "-").encode()
    await send(
        {"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"%d" % len(body))]}
    )
    await send({"type": "http.response.body", "body": body})


def server_context(
    pki: Pki, *, client_ca: Path | None, max_version: ssl.TLSVersion | None = None
) -> ssl.SSLContext:
    cert, key = pki.pem("server", pki.issue("127.0.0.1"))
    context = build_server(TlsFiles(cert_file=cert, key_file=key, ca_file=client_ca), environ={})
    if max_version is not None:
        context.maximum_version = max_version
    return context


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    return Pki(tmp_path)


@pytest.fixture
def mtls_url(pki: Pki) -> Iterator[str]:
    """An HTTPS server asking for client certificates from ``pki``'s CA."""
    with ThreadedServer(lambda: whoami, tls=server_context(pki, client_ca=pki.ca_file())) as server:
        yield server.url


async def test_a_pkcs12_client_certificate_is_presented_over_aiohttp_and_httpx(
    pki: Pki, mtls_url: str
) -> None:
    bundle = pki.p12("client", pki.issue("client.example"), PASS)
    files = TlsFiles(ca_file=pki.where / "ca.pem", cert_file=bundle, passphrase=Passphrase(env="P12_PASS"))
    context = build_client(files, environ={"P12_PASS": PASS})
    transport = make_transport(max_connections=1, ssl_context=context)  # the adapters' aiohttp session
    async with httpx.AsyncClient(transport=transport) as client:
        answer = await client.get(mtls_url)
    assert answer.text == "CN=client.example,OU=certs,O=Lienthong tests"
    with httpx.Client(verify=context) as client:  # zeep's WSDL fetcher: httpx over its own sockets
        assert client.get(mtls_url).text == answer.text


async def test_without_a_client_certificate_the_server_refuses_the_handshake(pki: Pki, mtls_url: str) -> None:
    context = build_client(TlsFiles(ca_file=pki.where / "ca.pem"), environ={})
    with httpx.Client(verify=context) as client, pytest.raises(httpx.HTTPError):
        client.get(mtls_url)


def test_a_destination_trusting_only_its_ca_refuses_a_server_of_another_ca(pki: Pki, tmp_path: Path) -> None:
    other = Pki(tmp_path / "other")
    other.where.mkdir()
    only_ours = build_client(TlsFiles(ca_file=pki.ca_file(), system_trust=False), environ={})
    assert len(only_ours.get_ca_certs()) == 1  # not the system's CAs
    with (
        ThreadedServer(lambda: whoami, tls=server_context(other, client_ca=None)) as theirs,
        ThreadedServer(lambda: whoami, tls=server_context(pki, client_ca=None)) as ours,
        httpx.Client(verify=only_ours) as client,
    ):
        with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY"):
            client.get(theirs.url)
        assert client.get(ours.url).text == "-"


def test_tls_1_2_is_the_lowest_version_and_1_3_can_be_required(pki: Pki) -> None:
    default = build_client(TlsFiles(ca_file=pki.ca_file()), environ={})
    assert default.minimum_version == ssl.TLSVersion.TLSv1_2
    strict = build_client(TlsFiles(ca_file=pki.ca_file(), min_version="1.3"), environ={})
    with ThreadedServer(
        lambda: whoami, tls=server_context(pki, client_ca=None, max_version=ssl.TLSVersion.TLSv1_2)
    ) as server:
        with httpx.Client(verify=default) as client:
            assert client.get(server.url).status_code == 200
        with httpx.Client(verify=strict) as client, pytest.raises(httpx.ConnectError):
            client.get(server.url)


def test_a_server_needs_its_certificate_and_asks_clients_only_from_its_client_ca(pki: Pki) -> None:
    with pytest.raises(ConfigError, match="a TLS server needs its certificate"):
        build_server(TlsFiles(), environ={})
    context = server_context(pki, client_ca=pki.ca_file())
    assert context.verify_mode == ssl.CERT_REQUIRED
    assert len(context.get_ca_certs()) == 1
    cert, key = pki.pem("server", pki.issue("127.0.0.1"))
    optional = build_server(
        TlsFiles(cert_file=cert, key_file=key, ca_file=pki.where / "ca.pem", require_client_cert=False),
        environ={},
    )
    assert optional.verify_mode == ssl.CERT_OPTIONAL
