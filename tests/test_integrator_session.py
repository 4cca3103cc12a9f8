"""A new integrator's session, through the CLI alone, as the README tells it: a new config and env file,
a new mapping with golden cases, a broken case caught, a route condition, check, run, events posted
and seen delivered to real sandbox peers."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from conftest import TOKEN, Peers
from lienthong.api.auth import hash_token
from lienthong.sandbox.dossiers import generate
from processes import free_port

pytestmark = pytest.mark.slow

SPEC = """\
# A province's EMC report: the procedure's name in capitals, as its EMC dashboard shows them.
extends: bundled:emc_tracking
fields:
  NameTTHC: {from: dossier.procedure.name, required: true, apply: upper}
"""
CONFIG = """\
auth:
  tokens: [{name: one-stop, sha256: "${TOKEN_SHA256}"}]
store: {path: lienthong.db}
server: {port: "${PORT}"}
dispatcher:
  poll_interval_s: 0.05
  retry: {initial_delay_s: 0.05, max_delay_s: 0.2, jitter: 0}
destinations:
  portal:
    kind: portal
    base_url: ${PORTAL_URL}
    dstcode: ${PORTAL_DSTCODE}
    username: ${PORTAL_USERNAME}
    password: ${PORTAL_PASSWORD}
  emc: {kind: emc, base_url: "${EMC_URL}", site_id: SANDBOX-SITE, province_code: H56}
routes:
  - on: dossier.received
    deliver:
      - to: portal
        operation: DongBoHoSoMC
        when: {path: dossier.procedure.field_code, equals: "${PORTAL_FIELD}"}
      - {to: emc, operation: TrackingMCDT, mapping: mappings/emc_h56.yaml}
"""


def lienthong(cwd: Path, *args: str, check: int | None = 0) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [sys.executable, "-m", "lienthong.cli", *args],
        check=False,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        env={k: v for k, v in os.environ.items() if not k.startswith("LIENTHONG_")},
    )
    if check is not None:
        assert done.returncode == check, (args, done.returncode, done.stdout, done.stderr)
    return done


def test_a_new_integrator_gets_from_an_empty_folder_to_delivered_events(tmp_path: Path, peers: Peers) -> None:
    events = [dossier.events[0] for dossier in generate(10)]
    field = events[0]["dossier"]["procedure"]["field_code"]
    to_portal = {e["dossier"]["code"] for e in events if e["dossier"]["procedure"]["field_code"] == field}
    assert 0 < len(to_portal) < len(events)

    # A mapping of their own, with a golden case: --update writes what it makes, and says so.
    golden = tmp_path / "mappings" / "golden" / "emc_h56"
    golden.mkdir(parents=True)
    (tmp_path / "mappings" / "emc_h56.yaml").write_text(SPEC, encoding="utf-8")
    (golden / "received.input.json").write_text(json.dumps(events[0], ensure_ascii=False), encoding="utf-8")
    (golden / "params.json").write_text('{"site_id": "SANDBOX-SITE", "province_code": "H56"}')
    written = lienthong(tmp_path, "mapping", "test", "mappings", "--update")
    assert "new" in written.stdout, written.stdout
    assert "received.expected.json" in written.stdout, written.stdout
    expected = json.loads((golden / "received.expected.json").read_text(encoding="utf-8"))
    assert expected["NameTTHC"] == events[0]["dossier"]["procedure"]["name"].upper()
    lienthong(tmp_path, "mapping", "test", "mappings")

    # A slip in the spec is caught by the case, and --update will not bury it.
    (tmp_path / "mappings" / "emc_h56.yaml").write_text(SPEC.replace("procedure.name", "procedure.nmae"))
    caught = lienthong(tmp_path, "mapping", "test", "mappings", check=1)
    assert "received" in caught.stdout + caught.stderr
    refused = lienthong(tmp_path, "mapping", "test", "mappings", "--update", check=1)
    assert "--accept-errors" in refused.stdout + refused.stderr
    assert json.loads((golden / "received.expected.json").read_text(encoding="utf-8")) == expected
    (tmp_path / "mappings" / "emc_h56.yaml").write_text(SPEC, encoding="utf-8")

    # The config reads its secrets from an env file; check names what is missing, then passes.
    port = free_port()
    env_file = tmp_path / "lienthong.env"
    env_file.write_text(
        f"TOKEN_SHA256={hash_token(TOKEN)}\nPORT={port}\nPORTAL_URL={peers.portal_url}\n"
        f"PORTAL_DSTCODE={peers.portal.dstcode}\nPORTAL_USERNAME={peers.portal.username}\n"
        f"EMC_URL={peers.emc_url}\nPORTAL_FIELD={field}\n",
        encoding="utf-8",
    )
    (tmp_path / "lienthong.yaml").write_text(CONFIG, encoding="utf-8")
    missing = lienthong(tmp_path, "--env-file", "lienthong.env", "check", "lienthong.yaml", check=None)
    assert missing.returncode != 0
    assert "destinations.portal.password: environment variable PORTAL_PASSWORD is not set" in missing.stderr
    with env_file.open("a", encoding="utf-8") as out:
        out.write(f"PORTAL_PASSWORD='{peers.portal.password}'\n")
    checked = lienthong(tmp_path, "--env-file", "lienthong.env", "check", "lienthong.yaml")
    assert "ok" in checked.stdout
    assert "emc_h56@" in checked.stdout

    # Run it, post the province's events, and see each delivered where its route says.
    with (tmp_path / "node.log").open("wb") as log:
        node = subprocess.Popen(
            [sys.executable, "-m", "lienthong.cli", "--env-file", "lienthong.env", "run", "lienthong.yaml"],
            cwd=tmp_path,
            stdout=subprocess.DEVNULL,
            stderr=log,
            start_new_session=True,
        )
    try:
        url = f"http://127.0.0.1:{port}"
        _wait(lambda: _ready(url), f"the node to start: {(tmp_path / 'node.log').read_text()[-2000:]}")
        headers = {"Authorization": f"Bearer {TOKEN}"}
        ids: list[str] = []
        for event in events:
            answer = httpx.post(f"{url}/v1/events", json=event, headers=headers, timeout=10)
            assert answer.status_code == 202, answer.text
            ids += answer.json()["message_ids"]
        assert len(ids) == len(events) + len(to_portal)
        _wait(lambda: all(_status(url, i, headers) == "delivered" for i in ids), "every message delivered")
        assert set(peers.portal.dossiers) == to_portal
        reports = peers.emc.received
        assert len(reports) == len(events)
        names = {r.body["NameTTHC"] for r in reports}
        assert names == {e["dossier"]["procedure"]["name"].upper() for e in events}
    finally:
        node.send_signal(signal.SIGTERM)
        node.wait(timeout=20)


def _ready(url: str) -> bool:
    try:
        return httpx.get(f"{url}/readyz", timeout=1).status_code == 200
    except httpx.TransportError:
        return False


def _status(url: str, message_id: str, headers: dict[str, str]) -> Any:
    return httpx.get(f"{url}/v1/messages/{message_id}", headers=headers, timeout=5).json()["status"]


def _wait(condition: Any, what: str, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")
