"""What a peer answers when it refuses is kept with the message (``outbox.last_error``, ``attempts.error``)
and logged; peers often echo the request ("ID_QG 015736819303 khong hop le"). Personal data in it is
masked before it is kept: those columns outlive the payload's retention and are never sealed. Found by a
hostile review (issue 13 §4)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from starlette.types import Receive, Scope, Send

from conftest import Peers, RunNode, config_dict
from lienthong.sandbox.dossiers import generate
from lienthong.serving import ThreadedServer

ID_NUMBER = "015736819303"  # synthetic


async def refuses_echoing(scope: Scope, receive: Receive, send: Send) -> None:
    """A destination answering 400 with the applicant's ID number in its error, as validation errors do."""
    if scope["type"] != "http":
        return
    while (await receive()).get("more_body"):
        pass
    await send(
        {"type": "http.response.start", "status": 400, "headers": [(b"content-type", b"application/json")]}
    )
    await send(
        {"type": "http.response.body", "body": f'{{"error":"ID_QG {ID_NUMBER} khong hop le"}}'.encode()}
    )


async def test_a_refusal_echoing_personal_data_is_kept_masked(
    run_node: RunNode, tmp_path: Path, peers: Peers
) -> None:
    with ThreadedServer(lambda: refuses_echoing) as echo:
        data = config_dict(tmp_path, peers)
        data["destinations"]["emc"]["base_url"] = echo.url
        data["routes"] = [{"on": "dossier.received", "deliver": [{"to": "emc", "operation": "TrackingMCDT"}]}]
        running = await run_node(**{k: v for k, v in data.items() if k in ("destinations", "routes")})
        (stream,) = generate(1)
        assert (await running.post(stream.events[0])).status_code == 202
        await running.settle()
    with sqlite3.connect(tmp_path / "lienthong.db") as db:
        (last_error,) = db.execute("SELECT last_error FROM outbox WHERE status = 'dead'").fetchone()
        (attempt_error,) = db.execute("SELECT error FROM attempts").fetchone()
    for kept in (last_error, attempt_error):
        assert "http 400" in kept
        assert "ID_QG" in kept  # what the peer said stays readable
        assert ID_NUMBER not in kept
