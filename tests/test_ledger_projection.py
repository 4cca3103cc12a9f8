"""What the dossier ledger keeps of an event (``bus.ledger.project``): each field from its own place."""

from __future__ import annotations

from typing import Any

import orjson

from lienthong.bus.envelope import parse_body
from lienthong.bus.ledger import project
from lienthong.model import LedgerEntry


def projected(dossier: dict[str, Any]) -> LedgerEntry:
    event = {
        "event_id": "e-1",
        "type": "dossier.status_changed",
        "occurred_at": "2026-11-23T10:00:00+07:00",
        "unit_code": "000.00.12.H56",
        "dossier": {"code": "H56-0001", **dossier},
    }
    (parsed,), _ = parse_body(orjson.dumps(event), dossier_code_field="code", max_events=1)
    return project(parsed)


def test_every_field_is_taken_from_its_own_place() -> None:
    entry = projected(
        {
            "status": "4",
            "procedure": {"code": "1.001757"},
            "channel": "online",
            "level": 4,
            "received_at": "2026-11-20T08:00:00+07:00",
            "due_at": "2026-11-25T08:00:00+07:00",
            "returned_at": "2026-11-23T10:00:00+07:00",
            "fees": [
                {"amount": 8000, "paid": True},
                {"amount": 2000, "paid": False},
                {"amount": 500},
                {"amount": True, "paid": True},  # no amount: a bool is not a number of dong
                {"amount": "9000", "paid": True},
                "LP01",
            ],
            "results": [{"sha256": "a" * 64}, {"sha256": ""}, {"name": "no hash"}, "x"],
        }
    )
    assert entry == LedgerEntry(
        dossier_code="H56-0001",
        unit_code="000.00.12.H56",
        last_event_id="e-1",
        last_event_type="dossier.status_changed",
        occurred_ms=1_795_402_800_000,
        status="4",
        procedure_code="1.001757",
        channel="online",
        level=4,
        received_at="2026-11-20T08:00:00+07:00",
        due_at="2026-11-25T08:00:00+07:00",
        returned_at="2026-11-23T10:00:00+07:00",
        fees_total=10_500,
        fees_paid=8000,
        result_sha256=("a" * 64,),
        results=4,
    )


def test_what_an_event_leaves_out_or_sends_malformed_is_none_and_kept_by_the_upsert() -> None:
    entry = projected(
        {"status": "", "procedure": "1.001757", "channel": 3, "level": "4", "received_at": None, "fees": {}}
    )
    assert entry == LedgerEntry(
        "H56-0001", "000.00.12.H56", "e-1", "dossier.status_changed", 1_795_402_800_000
    )
    assert projected({"fees": [], "results": []})[12:16] == (0, 0, (), 0)
