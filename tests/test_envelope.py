"""Parsing request bodies into events: shapes, paths in errors, derived fields."""

from __future__ import annotations

import orjson
import pytest

from lienthong.bus.envelope import parse_body
from lienthong.errors import InvalidEvent
from lienthong.sandbox.dossiers import generate


def parse(body: object, max_events: int = 10) -> object:
    return parse_body(orjson.dumps(body), dossier_code_field="code", max_events=max_events)


def test_one_event_and_a_batch_are_both_accepted() -> None:
    event = generate(1)[0].events[0]
    (single,), is_batch = parse_body(orjson.dumps(event), dossier_code_field="code", max_events=10)
    assert not is_batch
    assert single.dossier_code == event["dossier"]["code"]
    batch, is_batch = parse_body(
        orjson.dumps({"events": [event, event]}), dossier_code_field="code", max_events=10
    )
    assert is_batch
    assert len(batch) == 2


def test_the_payload_hash_ignores_key_order() -> None:
    event = generate(1)[0].events[0]
    reordered = dict(reversed(list(event.items())))
    (a,), _ = parse_body(orjson.dumps(event), dossier_code_field="code", max_events=1)
    (b,), _ = parse_body(orjson.dumps(reordered), dossier_code_field="code", max_events=1)
    assert a.payload_sha256 == b.payload_sha256


@pytest.mark.parametrize(
    ("change", "path", "message"),
    [
        ({"occurred_at": "2026-11-23T08:00:00"}, "occurred_at", "timezone"),
        ({"event_id": ""}, "event_id", "at least 1 character"),
        ({"event_id": "has space"}, "event_id", "pattern"),
        ({"extra": 1}, "extra", "Extra inputs are not permitted"),
        ({"dossier": []}, "dossier", "Input should be a JSON object"),
    ],
)
def test_each_invalid_field_is_named(change: dict[str, object], path: str, message: str) -> None:
    event = {**generate(1)[0].events[0], **change}
    with pytest.raises(InvalidEvent) as caught:
        parse(event)
    assert caught.value.path == path
    assert message in caught.value.message
    assert not caught.value.malformed


def test_a_dossier_code_field_can_be_configured() -> None:
    event = generate(1)[0].events[0]
    event["dossier"]["MaHoSo"] = "X-1"
    (parsed,), _ = parse_body(orjson.dumps(event), dossier_code_field="MaHoSo", max_events=1)
    assert parsed.dossier_code == "X-1"


def test_a_missing_event_field_in_a_batch_names_its_index() -> None:
    event = generate(1)[0].events[0]
    broken = {k: v for k, v in event.items() if k != "unit_code"}
    with pytest.raises(InvalidEvent) as caught:
        parse({"events": [event, broken]})
    assert caught.value.path == "events[1].unit_code"
