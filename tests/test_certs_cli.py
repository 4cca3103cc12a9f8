"""``lienthong certs``: dev-init's throwaway PKI works for real TLS, show prints what each certificate says,
check fails on what expires soon and on a chain its trust store does not verify."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from lienthong.certs import Passphrase, TlsFiles, build_client, build_server
from lienthong.certs.devpki import CLIENT_SUBJECT, FILES
from lienthong.cli import main
from lienthong.cli.exits import EXIT_FAILED, EXIT_OK, EXIT_USAGE
from lienthong.serving import ThreadedServer
from test_certs_loading import Pki
from test_certs_tls import whoami


@pytest.fixture
def dev(tmp_path: Path) -> Path:
    assert main(["certs", "dev-init", str(tmp_path / "pki")]) == EXIT_OK
    return tmp_path / "pki"


def config(tmp_path: Path, dev: Path, **tls: str) -> Path:
    client = {
        "ca_file": str(dev / "ca.pem"),
        "client_cert": str(dev / "client.p12"),
        "passphrase_file": str(dev / "client.p12.pass"),
        **tls,
    }
    text = {
        "server": {
            "tls": {
                "cert": str(dev / "server.pem"),
                "key": str(dev / "server.key"),
                "client_ca": str(dev / "ca.pem"),
            }
        },
        "destinations": {
            "province": {
                "kind": "provincial",
                "base_url": "https://localhost:9",
                "secret": "s",
                "tls": client,
            }
        },
    }
    path = tmp_path / "lienthong.yaml"
    path.write_text(json.dumps(text))  # JSON is YAML
    return path


def test_dev_init_makes_a_pki_that_real_tls_accepts_both_ways(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    dev = tmp_path / "made" / "here"
    assert main(["certs", "dev-init", str(dev)]) == EXIT_OK
    assert CLIENT_SUBJECT in capsys.readouterr().out  # for auth.certificates
    assert sorted(p.name for p in dev.iterdir()) == sorted(FILES)
    assert (dev / "client.key").stat().st_mode & 0o077 == 0  # keys and the passphrase: the owner's only
    server = build_server(
        TlsFiles(cert_file=dev / "server.pem", key_file=dev / "server.key", ca_file=dev / "ca.pem"),
        environ={},
    )
    files = TlsFiles(
        ca_file=dev / "ca.pem",
        cert_file=dev / "client.p12",
        passphrase=Passphrase(file=dev / "client.p12.pass"),
        system_trust=False,
    )
    with (
        ThreadedServer(lambda: whoami, tls=server) as served,
        httpx.Client(verify=build_client(files, environ={})) as http,
    ):
        assert http.get(served.url).text == CLIENT_SUBJECT  # 127.0.0.1
        assert http.get(served.url.replace("127.0.0.1", "localhost")).status_code == 200


def test_dev_init_never_writes_over_a_file(dev: Path, capsys: pytest.CaptureFixture[str]) -> None:
    before = (dev / "ca.key").read_bytes()
    (dev / "client.p12").unlink()
    assert main(["certs", "dev-init", str(dev)]) == EXIT_USAGE
    assert "ca.pem exists" in capsys.readouterr().err
    assert (dev / "ca.key").read_bytes() == before
    assert not (dev / "client.p12").exists()  # nothing written at all


def test_show_prints_each_certificate_with_its_subject_issuer_and_days_left(
    tmp_path: Path, dev: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = config(tmp_path, dev)
    capsys.readouterr()
    assert main(["certs", "show", str(path), "--json"]) == EXIT_OK
    shown = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(s["name"], s["purpose"]) for s in shown] == [
        ("province", "client"),
        ("province", "ca"),
        ("server", "server"),
        ("server", "client_ca"),
    ]
    client = shown[0]
    assert client["subject"] == CLIENT_SUBJECT
    assert client["issuer"] == "CN=lienthong dev CA,O=lienthong dev"
    assert client["not_after"].endswith("+07:00")
    assert 89 <= client["days_left"] <= 90
    assert main(["certs", "show", str(path)]) == EXIT_OK
    text = capsys.readouterr().out
    assert f"subject: {CLIENT_SUBJECT}" in text
    assert "days left" in text


def test_check_passes_a_sound_config_and_fails_one_expiring_within_the_days_given(
    tmp_path: Path, dev: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = config(tmp_path, dev)
    assert main(["certs", "check", str(path), "--days", "30"]) == EXIT_OK
    assert main(["certs", "check", str(path), "--days", "100"]) == EXIT_FAILED
    out = capsys.readouterr().out
    assert f"province client {dev / 'client.p12'}: {CLIENT_SUBJECT} expires in" in out


def test_check_fails_a_chain_its_trust_store_does_not_verify_and_an_expired_certificate(
    tmp_path: Path, dev: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    other = Pki(tmp_path)
    cert, key = other.pem("stranger", other.issue("client.example"))
    path = config(
        tmp_path,
        dev,
        client_cert=str(cert),
        client_key=str(key),
        passphrase_file=str(dev / "client.p12.pass"),
    )
    assert main(["certs", "check", str(path)]) == EXIT_FAILED
    assert f"stranger.pem: the chain does not verify against {dev / 'ca.pem'}" in capsys.readouterr().out
    now = datetime.now(UTC)
    cert, key = other.pem(
        "old", other.issue("c", not_before=now - timedelta(days=9), not_after=now - timedelta(days=1))
    )
    path = config(tmp_path, dev, client_cert=str(cert), client_key=str(key), ca_file=str(other.ca_file()))
    assert main(["certs", "check", str(path)]) == EXIT_FAILED
    out = capsys.readouterr().out
    assert "old.pem: CN=c,OU=certs,O=Lienthong tests expired on" in out
    assert "old.pem: the chain does not verify" in out  # outside its validity, too


def test_check_names_a_file_that_does_not_load_and_a_config_that_does_not_load_is_a_usage_error(
    tmp_path: Path, dev: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    wrong = tmp_path / "wrong.pass"
    wrong.write_text("not the passphrase\n")
    path = config(tmp_path, dev, passphrase_file=str(wrong))
    assert main(["certs", "check", str(path)]) == EXIT_FAILED
    assert "client.p12 wrong passphrase" in capsys.readouterr().out
    assert main(["certs", "show", str(path)]) == EXIT_FAILED
    broken = tmp_path / "broken.yaml"
    broken.write_text("server: {tls: {key: k.pem}}\n")
    assert main(["certs", "check", str(broken)]) == EXIT_USAGE
    assert main(["certs", "show", str(tmp_path / "nowhere.yaml")]) == EXIT_USAGE


def test_lienthong_check_names_a_server_or_destination_certificate_that_does_not_load(
    tmp_path: Path, dev: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = config(tmp_path, dev)
    assert main(["check", str(path)]) == EXIT_OK
    wrong = tmp_path / "wrong.pass"
    wrong.write_text("not the passphrase\n")
    text = json.loads(path.read_text())
    text["server"]["tls"]["key"] = str(dev / "client.key")  # another certificate's key
    text["destinations"]["province"]["tls"]["passphrase_file"] = str(wrong)
    path.write_text(json.dumps(text))
    capsys.readouterr()
    assert main(["check", str(path)]) == EXIT_FAILED
    err = capsys.readouterr().err
    assert "server.pem the certificate and key do not load together" in err
    assert "client.p12 wrong passphrase" in err
