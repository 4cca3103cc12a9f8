"""The ``lienthong`` command: check, config schema, token, demo."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import EXAMPLE_ENV
from lienthong.api.auth import hash_token
from lienthong.cli import main

EXAMPLE = Path(__file__).parent.parent / "examples" / "lienthong.yaml"


def test_check_accepts_the_example(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name, value in EXAMPLE_ENV.items():
        monkeypatch.setenv(name, value)
    assert main(["check", str(EXAMPLE)]) == 0
    out = capsys.readouterr().out
    assert "ok (7 destinations, 14 deliveries in 8 routes, 9 mappings: portal_dossier@" in out
    assert "e-forms: default@" in out


def test_check_lists_the_problems_and_fails(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("routes:\n  - on: dossier.received\n    deliver:\n      - {to: portl, operation: X}\n")
    assert main(["check", str(path)]) == 1
    err = capsys.readouterr().err
    assert f"{path}:4 routes[0].deliver[0].to: unknown destination 'portl' (known: none configured)" in err


def test_config_schema_prints_json_schema(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["config", "schema"]) == 0
    assert json.loads(capsys.readouterr().out)["title"] == "lienthong configuration"


def test_token_new_prints_a_token_and_its_hash(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["token", "new"]) == 0
    out = capsys.readouterr().out.splitlines()
    token = out[0].removeprefix("token:").strip()
    assert out[1].removeprefix("sha256:").strip() == hash_token(token)


def test_no_command_prints_help(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    assert "demo" in capsys.readouterr().out


@pytest.mark.slow
def test_demo_json_prints_one_summary_object_with_nothing_pending(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--json", "--events", "30", "--fault-rate", "0.2"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["events"] == 120
    assert summary["pending"] == 0
    assert set(summary["deliveries"]) == {"emc", "portal", "paygov", "vnpt", "viettel", "province"}
    settled = sum(
        summary["deliveries"][d]["delivered"] + summary["deliveries"][d]["dead"] for d in ("emc", "portal")
    )
    assert settled == 240  # every dossier event goes to the portal and to EMC
    fees = summary["fees"]
    assert fees["requested"] > 0
    assert fees["paid"] + fees["failed"] + fees.get("not_initiated", 0) == fees["requested"]
    assert sum(summary["receipts"].values()) == fees["paid"]  # one e-receipt per paid fee, never two
    assert summary["receipts"]["vnpt"] > 0
    assert summary["receipts"]["viettel"] > 0
    assert summary["province_notified"]["receipt.issued"] == fees["paid"]
    assert sum(summary["faults_injected"].values()) > 0
    assert summary["elapsed_s"] > 0
    assert summary["deliveries_per_s"] > 0
    assert sum(summary["prefill"].values()) == 30  # one look-up per dossier
    assert summary["prefill"]["found"] > 0
    assert set(summary["prefill"]) <= {"found", "not_found", "unavailable"}  # faults may hit look-ups too
    log = summary["message_log"]  # every attempt, look-up and callback, signed and verified
    attempts = sum(d["delivered"] + d["retried"] + d["dead"] for d in summary["deliveries"].values())
    assert log["verified"], log["problems"]
    assert log["records"] >= attempts + 30
    assert log["checkpoints"] >= 1


@pytest.mark.slow
def test_demo_prints_a_summary_table(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--events", "10", "--fault-rate", "0"]) == 0
    out = capsys.readouterr().out
    assert "destination" in out
    assert "portal" in out
    assert "pending           0" in out
    assert "e-forms prefilled found 10" in out
