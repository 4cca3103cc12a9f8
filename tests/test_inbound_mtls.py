"""Inbound mutual TLS, real TLS on loopback: the API asks for client certificates from its client CA, and a
certificate's subject names its caller (``auth.certificates``), beside bearer tokens."""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client import CollectorRegistry
from pydantic import ValidationError

from conftest import AUTH, Peers, config_dict
from lienthong.app import Lienthong, build, server_tls
from lienthong.config import Config
from lienthong.sandbox.dossiers import generate
from lienthong.serving import HttpServer
from lienthong.store import units
from test_certs_loading import Pki

HANOI = "CN=hcc.hanoi.example,OU=certs,O=Lienthong tests"

Serve = Callable[..., Any]


@pytest.fixture
def clients(tmp_path: Path) -> Pki:
    """The CA the API trusts for its callers (and which issued its own certificate)."""
    where = tmp_path / "clients"
    where.mkdir()
    return Pki(where)


@pytest.fixture
async def serve(tmp_path: Path, peers: Peers, clients: Pki) -> AsyncIterator[Serve]:
    """Start a node whose API serves HTTPS with ``server.tls`` (overrides given); stopped at teardown."""
    started: list[HttpServer] = []

    async def start(**tls: Any) -> tuple[Lienthong, str]:
        cert, key = clients.pem("server", clients.issue("127.0.0.1"))
        server = {"tls": {"cert": str(cert), "key": str(key), "client_ca": str(clients.ca_file()), **tls}}
        auth = {**config_dict(tmp_path, peers)["auth"], "certificates": [{"name": "hanoi", "subject": HANOI}]}
        data = config_dict(tmp_path, peers, server=server, auth=auth)
        node = build(Config.model_validate(data), registry=CollectorRegistry())
        http = HttpServer(node.api, lifespan="on", tls=server_tls(node))
        await http.start()
        started.append(http)
        return node, http.url

    yield start
    for http in started:
        await http.stop()


def context(clients: Pki, cert: Path | None = None, key: Path | None = None) -> ssl.SSLContext:
    """A client context trusting the API's CA, presenting ``cert`` (dates not checked: the server's job)."""
    made = ssl.create_default_context(cafile=str(clients.where / "ca.pem"))
    if cert is not None:
        made.load_cert_chain(cert, key)
    return made


async def post_one(url: str, verify: ssl.SSLContext, headers: dict[str, str] | None = None) -> httpx.Response:
    async with httpx.AsyncClient(base_url=url, verify=verify) as http:
        return await http.post("/v1/events", json=generate(1)[0].events[0], headers=headers or {})


async def test_a_mapped_client_certificate_is_accepted_as_its_caller(serve: Serve, clients: Pki) -> None:
    node, url = await serve()
    assert url.startswith("https://")
    cert, key = clients.pem("hanoi", clients.issue("hcc.hanoi.example"))
    answer = await post_one(url, context(clients, cert, key))
    assert answer.status_code == 202, answer.text
    (message_id, *_) = answer.json()["message_ids"]
    view = await node.store.run(units.message, message_id)
    assert view is not None
    assert view.caller == "hanoi"
    async with httpx.AsyncClient(base_url=url, verify=context(clients, cert, key)) as http:
        assert (await http.get(f"/v1/messages/{message_id}")).status_code == 200  # its own, by certificate


@pytest.mark.parametrize("who", ["other CA", "expired", "none"])
async def test_a_certificate_of_another_ca_an_expired_one_and_none_are_refused_in_the_handshake(
    serve: Serve, clients: Pki, tmp_path: Path, who: str
) -> None:
    _, url = await serve()
    cert: Path | None = None
    key: Path | None = None
    if who == "other CA":
        stranger = Pki(tmp_path)
        cert, key = stranger.pem("stranger", stranger.issue("hcc.hanoi.example"))  # the right subject, too
    elif who == "expired":
        now = datetime.now(UTC)
        made = clients.issue(
            "hcc.hanoi.example", not_before=now - timedelta(days=60), not_after=now - timedelta(days=1)
        )
        cert, key = clients.pem("expired", made)
    with pytest.raises(httpx.TransportError):
        await post_one(url, context(clients, cert, key), headers=AUTH)  # a valid token does not help


async def test_with_client_certificates_optional_a_token_still_works_and_an_unmapped_subject_is_named(
    serve: Serve, clients: Pki
) -> None:
    _, url = await serve(require_client_cert=False)
    assert (await post_one(url, context(clients), headers=AUTH)).status_code == 202
    refused = await post_one(url, context(clients))
    assert refused.status_code == 401
    assert "missing bearer token" in refused.text
    cert, key = clients.pem("unknown", clients.issue("someone.example"))
    unknown = await post_one(url, context(clients, cert, key))
    assert unknown.status_code == 401
    assert "CN=someone.example,OU=certs,O=Lienthong tests" in unknown.text
    assert "names no caller (auth.certificates)" in unknown.text
    assert (await post_one(url, context(clients, cert, key), headers=AUTH)).status_code == 202  # the token's


async def test_the_server_certificates_expiry_is_a_gauge_by_name_and_purpose(serve: Serve) -> None:
    node, _ = await serve()
    found = {(c.name, c.purpose) for c in node.certificates}
    assert {("server", "server"), ("server", "client_ca")} <= found
    gauge = "lienthong_certificate_expiry_timestamp_seconds"
    for purpose in ("server", "client_ca"):
        sample = node.metrics.registry.get_sample_value(gauge, {"name": "server", "purpose": purpose})
        assert sample is not None
        assert sample > datetime.now(UTC).timestamp()


def test_a_subject_that_is_not_rfc_4514_is_refused_when_the_config_loads(
    tmp_path: Path, peers: Peers
) -> None:

    auth = {"certificates": [{"name": "hanoi", "subject": "hcc.hanoi.example"}]}
    with pytest.raises(ValidationError, match="not an RFC 4514 subject"):
        Config.model_validate(config_dict(tmp_path, peers, auth=auth))
