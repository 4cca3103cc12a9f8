"""What the dead-letter tests share (``test_dlq_*``, ``test_admin_*``, ``test_console*``): a node whose
dispatcher is off, with dead letters made through its real store, an operator's token, and the config file
the ``lienthong dlq`` commands read. No tests here."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from conftest import AUTH, Peers, Running, RunNode, config_dict
from lienthong.api.auth import hash_token
from lienthong.model import Outcome
from lienthong.sandbox.dossiers import generate
from lienthong.store import units

ADMIN_TOKEN = "an-operator-token-for-the-admin-api-and-console"
ADMIN = {"authorization": f"Bearer {ADMIN_TOKEN}"}
PROVINCE = AUTH  # an ordinary caller's token: valid for /v1, never for /admin
ADMIN_SECTION: dict[str, Any] = {
    "tokens": [{"name": "lan", "sha256": hash_token(ADMIN_TOKEN)}],
    "replays_per_second": 1000,
}
STILL = {"enabled": False, "poll_interval_s": 0.02, "shutdown_grace_s": 2}
"""A dispatcher that delivers nothing: the tests make dead letters themselves, with the errors they need."""
T0 = 1_764_000_000_000  # 2025-11-24T23:00:00+07:00: the first dead letter dies then, the next an hour later
HOUR = 3_600_000


def overrides(**more: Any) -> dict[str, Any]:
    return {"dispatcher": STILL, "admin": ADMIN_SECTION, **more}


async def still_node(run_node: RunNode, **more: Any) -> Running:
    running: Running = await run_node(**overrides(**more))
    return running


def config_file(tmp_path: Path, peers: Peers, **more: Any) -> Path:
    """The running node's config as a file, for ``lienthong dlq``."""
    path = tmp_path / "lienthong.yaml"
    path.write_text(json.dumps(config_dict(tmp_path, peers, **overrides(**more))), encoding="utf-8")
    return path


async def dead_letters(running: Running, *errors: tuple[str, int | None], seed: int = 7) -> list[str]:
    """One dead letter for the portal per (error, http status), each of a dossier of its own; their ids."""
    streams = generate(len(errors), seed=seed)
    ids: list[str] = []
    for stream in streams:
        answer = await running.post(stream.events[0])
        assert answer.status_code == 202, answer.text
        ids.append(answer.json()["message_ids"][0])
    claimed = await running.node.store.run(units.claim, 10**13, 1000, 60_000)
    lease = {c.message_id: c.lease_until_ms for c in claimed}
    finished = [
        Outcome(i, "dead", 1, T0, T0 + n * HOUR, None, error, status, lease_until_ms=lease[i])
        for n, (i, (error, status)) in enumerate(zip(ids, errors, strict=True))
    ]
    await running.node.store.run(units.complete, finished)
    others = [c.message_id for c in claimed if c.message_id not in ids]
    if others:  # the events' deliveries to other destinations: back to pending, out of the way
        await running.node.store.run(units.recover)
    return ids


PERSONAL = (
    'portal.DongBoHoSoMC: portal refused: "HoVaTen": "Nguyễn Văn An", so CCCD 001099012345 (remote code 7)'
)
REFUSED = ("portal.DongBoHoSoMC: the service refused the request: unknown procedure (remote code 400)", None)
TIMEOUT = (
    "portal.DongBoHoSoMC: the service did not answer in time: ReadTimeout; gave up after 4 attempts",
    None,
)
HTTP_422 = ("portal.DongBoHoSoMC: the service answered http 422 (http 422)", 422)
