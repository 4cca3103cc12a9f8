"""Hostile values in valid events: nesting deeper than orjson can encode, integers orjson would change.
Each is refused once, as the body is decoded, with the standard error body naming where (issue 10: 9, 12)."""

from __future__ import annotations

import json
from typing import Any

import orjson
import pytest

from conftest import AUTH, RunNode
from lienthong.bus.decoding import MAX_DEPTH
from lienthong.bus.envelope import parse_body
from lienthong.errors import InvalidEvent
from lienthong.sandbox.dossiers import generate
from lienthong.store import units


def event(n: int = 0, **dossier: Any) -> dict[str, Any]:
    base = generate(n + 1)[n].events[0]
    return {**base, "dossier": {**base["dossier"], **dossier}}


def nested(levels: int) -> Any:
    """``levels`` levels of objects and arrays, alternating: {"a": [{"a": [... 1 ...]}]}."""
    value: Any = 1
    for level in range(levels):
        value = {"a": value} if level % 2 else [value]
    return value


def parse(body: Any, max_events: int = 10) -> tuple[list[Any], bool]:
    return parse_body(orjson.dumps(body), dossier_code_field="code", max_events=max_events)


# -- 9. depth ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("levels", [MAX_DEPTH - 1, 300, 1000])
def test_a_dossier_nested_past_the_limit_is_an_invalid_event_naming_the_dossier(levels: int) -> None:
    body = orjson.dumps(event(deep=nested(levels))) if levels < 250 else _deep_body(event(), levels)
    with pytest.raises(InvalidEvent) as caught:
        parse_body(body, dossier_code_field="code", max_events=10)
    assert caught.value.path == "dossier"
    assert f"nested deeper than {MAX_DEPTH} levels" in caught.value.message
    assert not caught.value.malformed


def _deep_body(base: dict[str, Any], levels: int) -> bytes:
    """orjson cannot write what it is asked to refuse: the body is assembled as text."""
    dossier = orjson.dumps(base["dossier"])[:-1] + b',"deep":' + b"[" * levels + b"1" + b"]" * levels + b"}"
    head = orjson.dumps({k: v for k, v in base.items() if k != "dossier"})[:-1]
    return head + b',"dossier":' + dossier + b"}"


def test_a_dossier_nested_up_to_the_limit_is_accepted_and_kept_whole() -> None:
    inner = nested(MAX_DEPTH - 2)  # the event is level 1, its dossier level 2
    (parsed,), _ = parse(event(deep=inner))
    assert orjson.loads(parsed.payload)["dossier"]["deep"] == inner


def test_the_depth_of_a_batch_event_is_named_with_its_index() -> None:
    with pytest.raises(InvalidEvent) as caught:
        parse({"events": [event(0), event(1, deep=nested(MAX_DEPTH + 5))]})
    assert caught.value.path == "events[1].dossier"


def test_brackets_inside_strings_do_not_count_as_nesting() -> None:
    text = "[[[[{{{{" * 100 + "]]]]}}}}" * 50
    (parsed,), _ = parse(event(note=text, balanced=["]", ["["]]))
    assert orjson.loads(parsed.payload)["dossier"]["note"] == text


async def test_a_deep_dossier_is_answered_422_with_the_standard_body(run_node: RunNode) -> None:
    node = await run_node()
    response = await node.client.post(
        "/v1/events",
        content=_deep_body(event(), 600),
        headers={**AUTH, "content-type": "application/json"},
    )
    assert response.status_code == 422
    error = response.json()["error"]
    assert (error["code"], error["path"]) == ("invalid_event", "dossier")
    assert "nested deeper" in error["message"]


# -- 12. integers beyond 64 bits -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "path"),
    [
        ({"so": 2**64}, "dossier.so"),
        ({"so": -(2**63) - 1}, "dossier.so"),
        ({"list": [1, {"x": 2**70}]}, "dossier.list[1].x"),
    ],
)
async def test_an_integer_beyond_64_bits_is_refused_naming_its_path(
    run_node: RunNode, value: dict[str, Any], path: str
) -> None:
    node = await run_node()
    body = orjson.dumps(event()).replace(b'"dossier":{', b'"dossier":' + _text(value)[:-1] + b",", 1)
    response = await node.client.post(
        "/v1/events", content=body, headers={**AUTH, "content-type": "application/json"}
    )
    assert response.status_code == 422
    error = response.json()["error"]
    assert (error["code"], error["path"]) == ("invalid_event", path)
    assert "64 bits" in error["message"]


def _text(value: Any) -> bytes:
    """JSON text with integers of any size (orjson writes 64 bits at most)."""
    return json.dumps(value, separators=(",", ":")).encode()


async def test_integers_at_the_64_bit_bounds_are_stored_exactly(run_node: RunNode) -> None:
    node = await run_node()
    bounds: dict[str, Any] = {"max": 2**64 - 1, "min": -(2**63), "digits_in_text": "1" * 40, "small": 7}
    sent = event(**bounds)
    response = await node.post(sent)
    assert response.status_code == 202
    stored = await node.node.store.run(units.stored_event, sent["event_id"])
    assert stored is not None
    assert {k: stored.dossier[k] for k in bounds} == bounds
    assert type(stored.dossier["max"]) is int


def test_a_wide_integer_in_a_batch_is_named_with_its_index() -> None:
    body = orjson.dumps({"events": [event(0), event(1)]})
    body = body.replace(b'"dossier":{', b'"dossier":{"n":123456789012345678901234567890,', 2)
    with pytest.raises(InvalidEvent) as caught:
        parse_body(body, dossier_code_field="code", max_events=10)
    assert caught.value.path == "events[0].dossier.n"
