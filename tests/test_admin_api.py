"""The admin API, ``/admin/v1/…``, over real HTTP on loopback (issue 14 §4): operators only, the same
filters as ``lienthong dlq``, every replay, discard and reveal recorded with who and why, replays rate-limited,
the OpenAPI document declaring it all with the one error shape."""

from __future__ import annotations

import asyncio

from conftest import RunNode
from lienthong.store import units
from lienthong.timefmt import moment
from test_dlq_support import (
    ADMIN,
    ADMIN_SECTION,
    ADMIN_TOKEN,
    HOUR,
    HTTP_422,
    PERSONAL,
    PROVINCE,
    REFUSED,
    T0,
    TIMEOUT,
    dead_letters,
    still_node,
)


async def test_only_an_operators_token_is_let_in_a_callers_gets_403_and_no_token_401(
    run_node: RunNode,
) -> None:
    running = await still_node(run_node)
    for path in ("/admin/v1/dead-letters", "/admin/v1/backlog", "/admin/v1/circuits", "/admin/v1/runs"):
        assert (await running.client.get(path, headers=PROVINCE)).status_code == 403
        no_token = await running.client.get(path)
        assert no_token.status_code == 401
        assert no_token.json()["error"]["code"] == "unauthorized"
        assert (await running.client.get(path, headers={"authorization": "Bearer guess"})).status_code == 401
        assert (await running.client.get(path, headers=ADMIN)).status_code == 200
    refused = await running.client.post(
        "/admin/v1/dead-letters/discard", json={"message_ids": ["m-x"], "reason": "x"}, headers=PROVINCE
    )
    assert refused.status_code == 403
    assert refused.json() == {
        "error": {
            "code": "forbidden",
            "message": "this token is a caller's, not an operator's (admin.tokens)",
        }
    }
    # The operator's token is no caller's: /v1 refuses it.
    assert (await running.client.get("/v1/messages/m-x", headers=ADMIN)).status_code == 401


async def test_a_token_listed_as_a_callers_too_is_never_an_operators(run_node: RunNode) -> None:
    from conftest import TOKEN  # noqa: PLC0415
    from lienthong.api.auth import hash_token  # noqa: PLC0415

    both = {"tokens": [*ADMIN_SECTION["tokens"], {"name": "slip", "sha256": hash_token(TOKEN)}]}
    running = await still_node(run_node, admin=both)
    assert (await running.client.get("/admin/v1/backlog", headers=PROVINCE)).status_code == 403


async def test_dead_letters_listed_with_filters_shown_masked_and_revealed_on_record(
    run_node: RunNode,
) -> None:
    running = await still_node(run_node)
    _, timeout, http = await dead_letters(running, REFUSED, TIMEOUT, HTTP_422)
    (personal,) = await dead_letters(running, (PERSONAL, None), seed=11)
    get = running.client.get

    async def listed(**params: str) -> list[str]:
        answer = await get("/admin/v1/dead-letters", params=params, headers=ADMIN)
        assert answer.status_code == 200, answer.text
        return [m["message_id"] for m in answer.json()["dead_letters"]]

    assert await listed(error_class="timeout") == [timeout]
    assert await listed(error_class="http_4xx") == [http]
    assert await listed(since=moment(T0 + HOUR), until=moment(T0 + 2 * HOUR)) == [timeout]
    assert await listed(destination="emc") == []
    bad = await get("/admin/v1/dead-letters", params={"error_class": "gremlins"}, headers=ADMIN)
    assert (bad.status_code, bad.json()["error"]["code"]) == (422, "invalid_request")
    letter = (await get("/admin/v1/dead-letters", params={"error_class": "refused"}, headers=ADMIN)).json()
    assert {m["error_class"] for m in letter["dead_letters"]} == {"refused"}

    shown = (await get(f"/admin/v1/messages/{personal}", headers=ADMIN)).json()
    assert "001099012345" not in str(shown)
    assert shown["revealed"] is False
    assert shown["actions"] == []
    revealed = await get(
        f"/admin/v1/messages/{personal}", params={"reveal": "true", "reason": "a call"}, headers=ADMIN
    )
    assert "001099012345" in revealed.json()["message"]["last_error"]
    (action,) = revealed.json()["actions"]
    assert (action["actor"], action["action"], action["reason"]) == ("lan", "reveal", "a call")
    missing = await get("/admin/v1/messages/m-nope", headers=ADMIN)
    assert (missing.status_code, missing.json()["error"]["code"]) == (404, "not_found")


async def test_replay_dry_run_then_replay_and_discard_each_need_a_reason_and_are_recorded(
    run_node: RunNode,
) -> None:
    running = await still_node(run_node)
    first, second = await dead_letters(running, REFUSED, REFUSED)
    post = running.client.post
    for body in (
        {"message_ids": [first]},
        {"message_ids": [first], "reason": "   "},
        {"message_ids": [], "reason": "x"},
    ):
        for path in ("/admin/v1/dead-letters/replay", "/admin/v1/dead-letters/discard"):
            answer = await post(path, json=body, headers=ADMIN)
            assert (answer.status_code, answer.json()["error"]["code"]) == (422, "invalid_request"), body
    dry = await post(
        "/admin/v1/dead-letters/replay",
        json={"message_ids": [first], "reason": "try", "dry_run": True},
        headers=ADMIN,
    )
    assert dry.status_code == 200
    assert dry.json()["replayed"] == []
    (plan,) = dry.json()["plans"]
    assert (plan["message_id"], plan["problem"]) == (first, None)
    view = await running.node.store.run(units.message, first)
    assert view is not None
    assert view.status == "dead"  # a dry run changes nothing
    done = await post(
        "/admin/v1/dead-letters/replay", json={"message_ids": [first], "reason": "peer fixed"}, headers=ADMIN
    )
    assert done.json()["replayed"] == [first]
    thrown = await post(
        "/admin/v1/dead-letters/discard", json={"message_ids": [second], "reason": "by hand"}, headers=ADMIN
    )
    assert thrown.json() == {"discarded": [second]}
    again = await post(
        "/admin/v1/dead-letters/discard", json={"message_ids": [second], "reason": "x"}, headers=ADMIN
    )
    assert (again.status_code, again.json()["error"]["code"]) == (409, "not_dead_letter")
    actions = (await running.client.get("/admin/v1/actions", headers=ADMIN)).json()["actions"]
    assert [(a["actor"], a["action"], a["message_id"], a["reason"]) for a in actions] == [
        ("lan", "discard", second, "by hand"),
        ("lan", "replay", first, "peer fixed"),
    ]


async def test_a_replay_storm_is_held_back_with_429_and_retry_after(run_node: RunNode) -> None:
    running = await still_node(run_node, admin={**ADMIN_SECTION, "replays_per_second": 2})
    ids = await dead_letters(running, REFUSED, REFUSED, REFUSED, REFUSED, REFUSED)
    post = running.client.post
    body = {"reason": "storm"}
    answers = await asyncio.gather(
        *(
            post("/admin/v1/dead-letters/replay", json={**body, "message_ids": [i]}, headers=ADMIN)
            for i in ids
        )
    )
    statuses = sorted(a.status_code for a in answers)
    assert statuses == [200, 200, 429, 429, 429]
    limited = next(a for a in answers if a.status_code == 429)
    assert limited.json()["error"]["code"] == "rate_limited"
    assert int(limited.headers["retry-after"]) >= 1
    held = [i for i, a in zip(ids, answers, strict=True) if a.status_code == 429]  # still dead letters
    too_many = await post("/admin/v1/dead-letters/replay", json={**body, "message_ids": held}, headers=ADMIN)
    assert too_many.status_code == 429
    assert "at most 2 in one replay" in too_many.json()["error"]["message"]
    # A dry run is never limited: it changes nothing.
    dry = await post(
        "/admin/v1/dead-letters/replay", json={**body, "message_ids": held, "dry_run": True}, headers=ADMIN
    )
    assert dry.status_code == 200
    assert len(await running.node.store.run(units.operator_actions, 10, None)) == 2


async def test_circuits_backlog_and_runs_are_read_from_the_node(run_node: RunNode) -> None:
    running = await still_node(run_node)
    await dead_letters(running, REFUSED)
    circuits = (await running.client.get("/admin/v1/circuits", headers=ADMIN)).json()["circuits"]
    assert circuits == [
        {"destination": "portal", "state": "closed"},
        {"destination": "emc", "state": "closed"},
    ]
    backlog = (await running.client.get("/admin/v1/backlog", headers=ADMIN)).json()["destinations"]
    assert {b["destination"]: b["dead"] for b in backlog} == {"portal": 1, "emc": 0}
    assert (await running.client.get("/admin/v1/runs", headers=ADMIN)).json() == {"runs": []}


async def test_the_openapi_document_declares_the_admin_operations_with_the_error_shape(
    run_node: RunNode,
) -> None:
    running = await still_node(run_node)
    doc = (await running.client.get("/openapi.json", headers=ADMIN)).json()
    paths = doc["paths"]
    for path in (
        "/admin/v1/dead-letters",
        "/admin/v1/dead-letters/replay",
        "/admin/v1/dead-letters/discard",
        "/admin/v1/messages/{message_id}",
        "/admin/v1/circuits",
        "/admin/v1/runs",
        "/admin/v1/backlog",
    ):
        operation = next(iter(paths[path].values()))
        assert operation["security"] == [{"admin": []}], path
        for status in ("401", "403"):
            schema = operation["responses"][status]["content"]["application/json"]["schema"]
            assert schema == {"$ref": "#/components/schemas/Error"}, (path, status)
    assert not any(p.startswith("/admin/") and "/v1/" not in p for p in paths)  # the console is not API
    assert ADMIN_TOKEN not in str(doc)
