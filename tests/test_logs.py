"""Logs an operator can follow (issue 14 §1): JSON or text, a delivery's ids on every line about it, the
request's id, the lines the issue asks for at their levels, and personal data masked at every level,
third-party loggers included."""

from __future__ import annotations

import json
import logging
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from conftest import AUTH, Peers, Running, RunNode, config_dict
from lienthong.observability.logs import MASK, configure, redact
from lienthong.sandbox import FaultPlan
from lienthong.sandbox.dossiers import generate
from lienthong.sandbox.population import PopulationSandbox, synthetic_citizen
from lienthong.serving import ThreadedServer
from processes import free_port, wait_until
from test_citizens import AUDIT_KEY, WHO, with_population

ID = "046090000123"
NAME = "Nguyễn Thị Thu Hà"


def test_personal_data_is_masked_in_xml_json_reprs_and_bare_id_numbers() -> None:
    xml = (
        f"<ns0:SoDinhDanh>{ID}</ns0:SoDinhDanh><HoVaTen><Ho>Nguyễn</Ho><Ten>Hà</Ten></HoVaTen>"
        "<NgayThangNam>19900102</NgayThangNam><GioiTinh>2</GioiTinh>"
    )
    said = redact(xml)
    for secret in (ID, "Nguyễn", ">Hà<", "19900102"):
        assert secret not in said, said
    assert "<GioiTinh>2</GioiTinh>" in said  # what is not personal stays readable
    as_json = json.dumps({"full_name": NAME, "id_number": ID, "birth_date": "1990-01-02", "code": "H56-1"})
    said = redact(as_json)
    for secret in (NAME, ID, "1990-01-02"):
        assert secret not in said
    assert '"code": "H56-1"' in said
    said = redact(str({"full_name": NAME, "phone": "0912345678", "unit_code": "000.00.12.H56"}))
    assert NAME not in said
    assert "0912345678" not in said
    assert "000.00.12.H56" in said
    said = redact(f"looked up {ID} and 123456789; dossier 000.00.12.H56-261123-00003 at 1796232675099")
    assert said == f"looked up {MASK} and {MASK}; dossier 000.00.12.H56-261123-00003 at 1796232675099"


@pytest.fixture
def captured(capsys: pytest.CaptureFixture[str]) -> Iterator[pytest.CaptureFixture[str]]:
    """The root logger as ``lienthong run`` sets it, at DEBUG in JSON; put back afterwards."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    configure("DEBUG", "json")
    try:
        yield capsys
    finally:
        for handler in list(root.handlers):
            root.removeHandler(handler)
        for handler in handlers:
            root.addHandler(handler)
        root.setLevel(level)
        logging.getLogger("httpx").setLevel(logging.WARNING)


async def test_zeeps_debug_log_of_a_population_answer_shows_no_personal_data(
    run_node: RunNode, tmp_path: Path, peers: Peers, captured: pytest.CaptureFixture[str]
) -> None:
    population = PopulationSandbox()
    population.add(synthetic_citizen(ID, NAME))
    with ThreadedServer(lambda: population) as server:
        node: Running = await run_node(**with_population(tmp_path, peers, server.url))
        answer = await node.client.get(f"/v1/citizens/{ID}", headers=WHO)
        assert answer.status_code == 200
    logged = captured.readouterr().err
    assert "zeep" in logged  # zeep did log the exchange at DEBUG
    for secret in (ID, "Nguyễn", "Thu Hà", AUDIT_KEY):
        assert secret not in logged
    for line in logged.splitlines():
        json.loads(line)  # every line is JSON


def test_a_bad_format_string_of_a_third_party_still_logs_and_masks(
    captured: pytest.CaptureFixture[str],
) -> None:
    logging.getLogger("thirdparty").warning("id %s and %s", ID)  # noqa: PLE1206 (one argument short)
    (line,) = captured.readouterr().err.splitlines()
    record = json.loads(line)
    assert record["level"] == "WARNING"
    assert ID not in line


def lines_of(log: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in log.splitlines() if line.strip()]


@pytest.mark.slow
def test_a_node_logs_json_lines_an_operator_can_follow_a_dossier_through(
    tmp_path: Path, peers: Peers
) -> None:
    port = free_port()
    config = config_dict(tmp_path, peers, server={"host": "127.0.0.1", "port": port})
    path = tmp_path / "lienthong.yaml"
    path.write_text(json.dumps(config), encoding="utf-8")
    log = tmp_path / "node.log"
    peers.emc.set_faults(
        FaultPlan(rate=1.0, kinds=("error",))
    )  # EMC is down: retries, a circuit, dead letters
    env = {k: v for k, v in os.environ.items() if not k.startswith("LIENTHONG_")}
    with log.open("wb") as out:
        node = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "lienthong.cli",
                "run",
                str(path),
                "--log-format",
                "json",
                "--log-level",
                "debug",
            ],
            stderr=out,
            stdout=subprocess.DEVNULL,
            env=env,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: _ready(url), 30, "the node to start")
        event, *others = [
            d.events[0] for d in generate(3)
        ]  # three for EMC: enough failures to open its circuit
        answer = httpx.post(
            f"{url}/v1/events", json=event, headers={**AUTH, "x-request-id": "req-42"}, timeout=5
        )
        for other in others:
            assert httpx.post(f"{url}/v1/events", json=other, headers=AUTH, timeout=5).status_code == 202
        assert answer.status_code == 202
        assert answer.headers["x-request-id"] == "req-42"
        made = httpx.get(f"{url}/healthz", timeout=5).headers["x-request-id"]
        assert re.fullmatch(r"r-[0-9a-f]{32}", made)  # made for a request that brought none
        portal_id, emc_id = answer.json()["message_ids"]
        wait_until(lambda: log.read_text().count('"dead letter') == 3, 30, "EMC's messages to die")
    finally:
        node.send_signal(signal.SIGTERM)
        node.wait(timeout=20)
    records = lines_of(log.read_text())
    started = next(r for r in records if r["message"].startswith("serving on"))
    assert "destinations portal (portal), emc (emc)" in started["message"]
    assert started["level"] == "INFO"
    assert records[-1]["message"] == "stopped"
    code = event["dossier"]["code"]
    about = [r for r in records if r.get("dossier_code") == code]
    accepted = next(r for r in about if "accepted" in r["message"])
    assert accepted["request_id"] == "req-42"
    assert accepted["event_id"] == event["event_id"]
    assert portal_id in accepted["message"]
    assert emc_id in accepted["message"]
    delivered = next(r for r in about if r["message"].startswith("delivered"))
    assert (delivered["message_id"], delivered["destination"], delivered["level"]) == (
        portal_id,
        "portal",
        "DEBUG",
    )
    retried = [r for r in about if r.get("message_id") == emc_id and "retry in" in r["message"]]
    assert retried
    assert {r["level"] for r in retried} == {"INFO"}
    dead = next(r for r in about if r["message"].startswith("dead letter") and r["destination"] == "emc")
    assert (dead["level"], dead["message_id"], dead["event_id"]) == ("WARNING", emc_id, event["event_id"])
    assert "http 503" in dead["message"]
    circuit = [r for r in records if "circuit open" in r["message"]]
    assert circuit
    assert (circuit[0]["level"], circuit[0]["destination"]) == ("WARNING", "emc")
    applicant = event["dossier"]["applicant"]
    assert applicant["full_name"] not in log.read_text()
    assert applicant["id_number"] not in log.read_text()


def _ready(url: str) -> bool:
    try:
        return httpx.get(f"{url}/readyz", timeout=1).status_code == 200
    except httpx.TransportError:
        return False


def test_a_line_break_in_what_a_peer_or_caller_sent_cannot_forge_a_log_line(
    captured: pytest.CaptureFixture[str],
) -> None:
    """A dead letter's error is the peer's answer, a refused callback's reference the caller's: with a line
    break in them, a text log would show a second, forged line."""
    configure("INFO", "text")
    forged = "http 503: busy\n2026-12-02T00:00:00+07:00 INFO lienthong: replayed by admin"
    logging.getLogger("lienthong.bus.dispatcher").warning("dead letter after attempt 4: %s", forged)
    (line,) = captured.readouterr().err.splitlines()
    assert "busy\\n2026-12-02" in line


def test_masking_takes_time_linear_in_a_hostile_value() -> None:
    """The quoted-value pattern let a backslash be read two ways: 34 backslashes after an open quote took
    1.7 s, each more doubling it, in the log filter every line passes (a peer's answer is logged)."""
    hostile = '"full_name": "' + "\\" * 5_000 + "x"
    started = time.perf_counter()
    redact(hostile)
    assert time.perf_counter() - started < 1.0
    assert redact('{"full_name": "Lê \\"Văn\\" A", "ok": 1}') == '{"full_name": "***", "ok": 1}'
    assert redact("{'id_number': 'x\\'y'}") == "{'id_number': '***'}"
    assert (
        redact("GET /v1/citizens?full_name=Nguyen+Van&unit=H56") == "GET /v1/citizens?full_name=***&unit=H56"
    )
