"""Outbound authentication per destination: basic, OAuth2 client credentials, mutual TLS (throwaway CAs)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import trustme

from conftest import Peers, Running, RunNode, config_dict
from lienthong.certs import client_context
from lienthong.errors import ConfigError
from lienthong.sandbox.dossiers import generate
from lienthong.sandbox.emc import EmcSandbox
from lienthong.sandbox.lgsp import LgspSandbox
from lienthong.sandbox.provincial import ProvincialSandbox
from lienthong.serving import ServerTls, ThreadedServer
from lienthong.store import units

SECRET = "province-webhook-secret"


def notify_config(tmp_path: Path, peers: Peers, url: str, **destination: Any) -> dict[str, Any]:
    base = config_dict(tmp_path, peers)
    province = {"kind": "provincial", "base_url": url, "secret": SECRET, **destination}
    spec = tmp_path / "notice.yaml"  # the province hears of every dossier received
    spec.write_text(
        "fields:\n  kind: {const: received}\n  dossier_code: {from: dossier.code, required: true}\n"
    )
    return {
        "destinations": {**base["destinations"], "province": province},
        "routes": [
            {
                "on": "dossier.received",
                "deliver": [{"to": "province", "operation": "notify", "mapping": str(spec)}],
            }
        ],
    }


async def received_once(running: Running) -> str:
    event = generate(1)[0].events[0]
    (message_id,) = (await running.post(event)).json()["message_ids"]
    await running.settle()
    return str(message_id)


async def test_basic_credentials_are_sent_and_wrong_ones_are_not_retried(
    run_node: RunNode, tmp_path: Path, peers: Peers
) -> None:
    province = ProvincialSandbox(secret=SECRET, basic=("lienthong", "gateway-pass"))
    with ThreadedServer(lambda: province) as server:
        good: Running = await run_node(
            **notify_config(
                tmp_path,
                peers,
                server.url,
                auth={"kind": "basic", "username": "lienthong", "password": "gateway-pass"},
            )
        )
        await received_once(good)
        assert len(province.received) == 1
    other = tmp_path / "wrong"
    other.mkdir()
    with ThreadedServer(lambda: province) as server:
        data = notify_config(
            other, peers, server.url, auth={"kind": "basic", "username": "lienthong", "password": "wrong"}
        )
        data["store"] = {"path": str(other / "db.sqlite"), "synchronous": "normal"}
        wrong: Running = await run_node(**data)
        message_id = await received_once(wrong)
        view = await wrong.node.store.run(units.message, message_id)
        assert view is not None
        assert view.status == "dead"
        assert view.attempts == 1  # a refused credential is permanent
        assert "http 401" in str(view.last_error)


@pytest.fixture
def lgsp_and_emc() -> Iterator[tuple[LgspSandbox, EmcSandbox, str, str]]:
    lgsp = LgspSandbox()
    emc = EmcSandbox(token_check=lgsp.valid)
    with ThreadedServer(lambda: lgsp) as lgsp_srv, ThreadedServer(lambda: emc) as emc_srv:
        yield lgsp, emc, lgsp_srv.url, emc_srv.url


def oauth_config(
    tmp_path: Path, peers: Peers, lgsp_url: str, emc_url: str, secret: str = "sandbox-client-secret"
) -> dict[str, Any]:
    base = config_dict(tmp_path, peers)
    emc = {
        **base["destinations"]["emc"],
        "base_url": emc_url,
        "auth": {
            "kind": "oauth2",
            "token_url": f"{lgsp_url}/oauth2/token",
            "client_id": "lienthong-h56",
            "client_secret": secret,
        },
    }
    return {
        "destinations": {**base["destinations"], "emc": emc},
        "routes": [{"on": "dossier.received", "deliver": [{"to": "emc", "operation": "TrackingMCDT"}]}],
    }


async def test_an_oauth2_token_is_fetched_once_reused_and_renewed_once_after_a_401(
    run_node: RunNode, tmp_path: Path, peers: Peers, lgsp_and_emc: tuple[LgspSandbox, EmcSandbox, str, str]
) -> None:
    lgsp, emc, lgsp_url, emc_url = lgsp_and_emc
    running: Running = await run_node(**oauth_config(tmp_path, peers, lgsp_url, emc_url))
    streams = generate(3)
    for stream in streams[:2]:
        await running.post(stream.events[0])
    await running.settle()
    assert len(emc.received) == 2
    assert lgsp.issued == 1
    lgsp.revoke_all()  # the gateway rotated its tokens: EMC answers 401, lienthong fetches a new one once
    await running.post(streams[2].events[0])
    await running.settle()
    assert len(emc.received) == 3
    assert lgsp.issued == 2
    assert (
        running.sample(
            "lienthong_deliveries_total", destination="emc", operation="TrackingMCDT", outcome="delivered"
        )
        == 3
    )


async def test_a_client_the_gateway_refuses_makes_a_dead_letter_saying_so(
    run_node: RunNode, tmp_path: Path, peers: Peers, lgsp_and_emc: tuple[LgspSandbox, EmcSandbox, str, str]
) -> None:
    _, emc, lgsp_url, emc_url = lgsp_and_emc
    running: Running = await run_node(**oauth_config(tmp_path, peers, lgsp_url, emc_url, secret="wrong"))
    message_id = await received_once(running)
    view = await running.node.store.run(units.message, message_id)
    assert view is not None
    assert view.status == "dead"
    assert "the token endpoint refused the client: http 401" in str(view.last_error)
    assert emc.received == []


@pytest.fixture
def pki(tmp_path: Path) -> dict[str, Path]:
    """A throwaway CA, a server certificate for 127.0.0.1, and client certificates: good and expired."""
    ca = trustme.CA()
    files = {
        "ca": tmp_path / "ca.pem",
        "server": tmp_path / "server.pem",
        "server_key": tmp_path / "server.key",
    }
    ca.cert_pem.write_to_path(str(files["ca"]))
    server = ca.issue_cert("127.0.0.1")
    server.cert_chain_pems[0].write_to_path(str(files["server"]))
    server.private_key_pem.write_to_path(str(files["server_key"]))
    for name, cert in (
        ("client", ca.issue_cert("lienthong.h56.example")),
        (
            "expired",
            ca.issue_cert(
                "lienthong.h56.example",
                not_before=datetime.now(UTC) - timedelta(days=400),
                not_after=datetime.now(UTC) - timedelta(days=35),
            ),
        ),
    ):
        files[name] = tmp_path / f"{name}.pem"
        files[f"{name}_key"] = tmp_path / f"{name}.key"
        cert.cert_chain_pems[0].write_to_path(str(files[name]))
        cert.private_key_pem.write_to_path(str(files[f"{name}_key"]))
    return files


@pytest.fixture
def mtls_province(pki: dict[str, Path]) -> Iterator[tuple[ProvincialSandbox, str]]:
    """A province whose webhook is HTTPS and requires a client certificate from the throwaway CA."""
    province = ProvincialSandbox(secret=SECRET)
    tls = ServerTls(str(pki["server"]), str(pki["server_key"]), client_ca=str(pki["ca"]))
    with ThreadedServer(lambda: province, tls=tls) as server:
        yield province, server.url


async def test_mutual_tls_delivers_with_the_client_certificate_and_fails_without(
    mtls_province: tuple[ProvincialSandbox, str],
    run_node: RunNode,
    tmp_path: Path,
    peers: Peers,
    pki: dict[str, Path],
) -> None:
    province, url = mtls_province
    assert url.startswith("https://")
    client_tls = {
        "ca_file": str(pki["ca"]),
        "client_cert": str(pki["client"]),
        "client_key": str(pki["client_key"]),
    }
    running: Running = await run_node(**notify_config(tmp_path, peers, url, tls=client_tls))
    await received_once(running)
    assert len(province.received) == 1
    bare = tmp_path / "bare"
    bare.mkdir()
    data = notify_config(bare, peers, url, tls={"ca_file": str(pki["ca"])}, timeout_s=1)
    data["store"] = {"path": str(bare / "db.sqlite"), "synchronous": "normal"}
    without: Running = await run_node(**data)
    message_id = await received_once(without)
    view = await without.node.store.run(units.message, message_id)
    assert view is not None
    assert view.status == "dead"  # retried, then given up: the server refuses the handshake
    assert "gave up after 4 attempts" in str(view.last_error)
    assert len(province.received) == 1


def test_an_expired_or_missing_client_certificate_is_refused_when_the_config_loads(
    pki: dict[str, Path],
) -> None:
    with pytest.raises(ConfigError, match=r"expired.pem the certificate expired on \d{4}-\d{2}-\d{2}"):
        client_context(
            ca_file=str(pki["ca"]), cert_file=str(pki["expired"]), key_file=str(pki["expired_key"])
        )
    with pytest.raises(ConfigError, match="nowhere.pem cannot read: No such file or directory"):
        client_context(cert_file=str(pki["ca"].parent / "nowhere.pem"))
    with pytest.raises(ConfigError, match="the certificate and key do not load together"):
        client_context(cert_file=str(pki["client"]), key_file=str(pki["server_key"]))
    not_pem = pki["ca"].parent / "not.pem"
    not_pem.write_text("hello")
    with pytest.raises(ConfigError, match="not.pem not a PEM certificate"):
        client_context(cert_file=str(not_pem))
