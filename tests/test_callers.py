"""Callers are kept apart: each event is stored with the token that sent it; a caller reads only the
messages of its own events unless its token may read all; another caller's event id is never shared."""

from __future__ import annotations

from pathlib import Path

from conftest import TOKEN, Peers, Running, RunNode
from lienthong.api.auth import hash_token
from lienthong.sandbox.dossiers import generate

OTHER, OPERATOR = "token-of-another-district-system", "token-of-the-operations-team"


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


async def start(run_node: RunNode) -> Running:
    tokens = [
        {"name": "tests", "sha256": hash_token(TOKEN)},
        {"name": "district", "sha256": hash_token(OTHER)},
        {"name": "ops", "sha256": hash_token(OPERATOR), "read_all": True},
    ]
    running: Running = await run_node(auth={"tokens": tokens})
    return running


async def test_a_caller_reads_its_own_messages_and_not_anothers(
    run_node: RunNode, tmp_path: Path, peers: Peers
) -> None:
    node = await start(run_node)
    event = generate(1)[0].events[0]
    (message_id, *_) = (await node.post(event)).json()["message_ids"]

    mine = await node.client.get(f"/v1/messages/{message_id}", headers=bearer(TOKEN))
    theirs = await node.client.get(f"/v1/messages/{message_id}", headers=bearer(OTHER))
    operator = await node.client.get(f"/v1/messages/{message_id}", headers=bearer(OPERATOR))

    assert mine.status_code == 200
    assert mine.json()["caller"] == "tests"
    assert (theirs.status_code, theirs.json()["error"]["code"]) == (
        404,
        "not_found",
    )  # not even its existence
    assert operator.status_code == 200


async def test_another_callers_event_id_is_refused_whatever_the_content(
    run_node: RunNode, tmp_path: Path, peers: Peers
) -> None:
    node = await start(run_node)
    event = generate(1)[0].events[0]
    first = await node.post(event)
    same = await node.post(event, headers=bearer(OTHER))  # the very same event, from another caller
    again = await node.post(event)  # its own retry

    assert first.status_code == 202
    assert (same.status_code, same.json()["error"]["code"]) == (409, "event_id_reused")
    assert "message_ids" not in same.json()
    assert (again.status_code, again.json()["duplicate"]) == (202, True)
