"""``lienthong check CONFIG --connect``: each destination tried without business data, one line each."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import trustme

from conftest import Peers, config_dict
from lienthong.cli import main
from lienthong.sandbox.lgsp import LgspSandbox
from lienthong.sandbox.provincial import ProvincialSandbox
from lienthong.sandbox.vnpt import VnptSandbox
from lienthong.serving import ServerTls, ThreadedServer, bind


def https_server_files(tmp_path: Path, *, expired: bool = False) -> tuple[ServerTls, Path]:
    ca = trustme.CA()
    (tmp_path / "ca.pem").write_bytes(ca.cert_pem.bytes())
    kwargs: dict[str, Any] = {}
    if expired:
        kwargs = {
            "not_before": datetime.now(UTC) - timedelta(days=400),
            "not_after": datetime.now(UTC) - timedelta(days=2),
        }
    server = ca.issue_cert("127.0.0.1", **kwargs)
    suffix = "-expired" if expired else ""
    cert, key = tmp_path / f"server{suffix}.pem", tmp_path / f"server{suffix}.key"
    server.cert_chain_pems[0].write_to_path(str(cert))
    server.private_key_pem.write_to_path(str(key))
    return ServerTls(str(cert), str(key)), tmp_path / "ca.pem"


def write(tmp_path: Path, peers: Peers, destinations: dict[str, Any]) -> Path:
    data = config_dict(tmp_path, peers)
    data["destinations"] |= destinations
    data["routes"] = [*data["routes"], *[
        {"on": "payment.confirmed", "deliver": [{"to": name, "operation": "issue"}]}
        for name, d in destinations.items() if d["kind"] == "vnpt"
    ]]  # fmt: skip
    path = tmp_path / "lienthong.yaml"
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def vnpt(url: str) -> dict[str, Any]:
    return {
        "kind": "vnpt", "base_url": url, "account": "h56admin", "ac_password": "sandbox-acpass",
        "username": "h56service", "password": "sandbox-pass", "pattern": "1/001", "serial": "C26TAA",
        "seller_name": "S", "seller_tax_code": "3300000000", "publish_wsdl": f"{url}/PublishService.asmx?wsdl",
    }  # fmt: skip


def test_every_destination_is_tried_and_all_good_exits_zero(
    tmp_path: Path, peers: Peers, capsys: pytest.CaptureFixture[str]
) -> None:
    tls, ca = https_server_files(tmp_path)
    lgsp, province, tenant = LgspSandbox(), ProvincialSandbox(secret="s"), VnptSandbox()
    with (
        ThreadedServer(lambda: lgsp, tls=tls) as gateway,
        ThreadedServer(lambda: province, tls=tls) as webhook,
        ThreadedServer(lambda: tenant) as vnpt_server,
    ):
        oauth2 = {
            "kind": "oauth2", "token_url": f"{gateway.url}/oauth2/token", "client_id": lgsp.client_id,
            "client_secret": lgsp.client_secret,
        }  # fmt: skip
        province_dest = {
            "kind": "provincial",
            "base_url": webhook.url,
            "secret": "s",
            "auth": oauth2,
            "tls": {"ca_file": str(ca)},
        }
        config = write(tmp_path, peers, {"province": province_dest, "vnpt": vnpt(vnpt_server.url)})

        assert main(["check", str(config), "--connect"]) == 0

    lines = {line.split()[0]: line for line in capsys.readouterr().out.splitlines()[1:]}
    assert set(lines) == {"portal", "emc", "province", "vnpt"}
    assert lines["portal"].split()[1] == "ok"
    assert "portal login ok" in lines["portal"]
    assert peers.portal.received == []  # a login, no dossier
    assert "plain http: no TLS" in lines["emc"]
    assert "certificate valid until" in lines["province"]
    assert "OAuth2 token from 127.0.0.1" in lines["province"]
    assert lgsp.issued == 1
    assert "WSDLs read, operations present" in lines["vnpt"]
    assert tenant.received == []  # no business data was sent
    assert province.received == []


def test_an_unreachable_an_expired_and_an_incomplete_destination_each_fail_by_name(
    tmp_path: Path, peers: Peers, capsys: pytest.CaptureFixture[str]
) -> None:
    tls, ca = https_server_files(tmp_path, expired=True)
    closed = bind()
    closed_port = closed.getsockname()[1]
    closed.close()
    older = VnptSandbox(tt78=False)
    with (
        ThreadedServer(lambda: ProvincialSandbox(secret="s"), tls=tls) as expired,
        ThreadedServer(lambda: older) as tenant,
    ):
        config = write(
            tmp_path,
            peers,
            {
                "gone": {"kind": "provincial", "base_url": f"http://127.0.0.1:{closed_port}", "secret": "s"},
                "expired": {
                    "kind": "provincial",
                    "base_url": expired.url,
                    "secret": "s",
                    "tls": {"ca_file": str(ca)},
                },
                "vnpt": {**vnpt(tenant.url), "portal_wsdl": None},
            },
        )
        data = json.loads(config.read_text())
        data["destinations"]["portal"]["password"] = "not-the-password"
        config.write_text(json.dumps(data))
        data = json.loads(config.read_text())
        data["destinations"]["vnpt"]["portal_wsdl"] = f"{tenant.url}/Nowhere.asmx?wsdl"
        config.write_text(json.dumps(data))

        assert main(["check", str(config), "--connect"]) == 1

    captured = capsys.readouterr()
    lines = {line.split()[0]: line for line in captured.out.splitlines()[1:]}
    assert lines["gone"].split()[1] == "FAILED"
    assert "ConnectionRefusedError" in lines["gone"]
    assert lines["expired"].split()[1] == "FAILED"
    assert "certificate" in lines["expired"].lower()
    assert lines["vnpt"].split()[1] == "FAILED"
    assert "cannot read a VNPT WSDL" in lines["vnpt"] or "lack the operation" in lines["vnpt"]
    assert lines["portal"].split()[1] == "FAILED"
    assert "portal login refused" in lines["portal"]
    assert "4 of 5 destinations failed: portal, gone, expired, vnpt" in captured.err
