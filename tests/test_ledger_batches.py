"""The dossier ledger is the same whether a dossier's events come apart, in one batch, in requests sharing
one store transaction, or in a polled feed page, on every backend.

A stored row reflects an event at 10:00. Then come an older event (09:00: late news, which changes nothing
when sent alone) and a newer partial one (11:00: fees only). Found in review: folding the newer over the
older in one transaction carried the older event's status and channel into the row at 11:00's time.
"""

from __future__ import annotations

from typing import Any

import pytest

from lienthong.errors import IdempotencyConflict
from lienthong.store import Store, units
from test_store_contract import NOW, item

CODE = "000.20.31.H56-261123-99999"


def event(eid: str, at: str, **dossier: Any) -> dict[str, Any]:
    return {
        "event_id": eid,
        "type": "dossier.status_changed",
        "occurred_at": f"2026-11-23T{at}:00+07:00",
        "unit_code": "000.20.31.H56",
        "dossier": {"code": CODE, **dossier},
    }


STORED = event("e-10", "10:00", status="processing", channel="online", level=2)
OLDER = event("e-09", "09:00", status="received", channel="in_person", level=1)  # late news
NEWER = event("e-11", "11:00", fees=[{"amount": 5, "paid": True}])  # partial: no status, channel, level


async def ingest(store: Store, requests: list[list[dict[str, Any]]]) -> None:
    answers = await store.run(units.ingest, [[item(e) for e in r] for r in requests], NOW)
    assert not any(isinstance(a, IdempotencyConflict) for a in answers)


@pytest.mark.parametrize("backend", ["memory", "sqlite", "postgres"], indirect=True)
@pytest.mark.parametrize("mode", ["separate", "one_batch", "group_commit", "feed_page"])
async def test_an_older_event_in_a_batch_does_not_roll_the_ledger_back(store: Store, mode: str) -> None:
    await ingest(store, [[STORED]])
    if mode == "separate":
        await ingest(store, [[OLDER]])
        await ingest(store, [[NEWER]])
    elif mode == "one_batch":
        await ingest(store, [[OLDER, NEWER]])
    elif mode == "group_commit":  # two requests sharing one store transaction
        await ingest(store, [[OLDER], [NEWER]])
    else:  # a polled feed page: units.ingest_from_feed, each event a request of its own
        await store.run(units.ingest_from_feed, [item(OLDER), item(NEWER)], "feed", "c1", NOW)
    entry = await store.run(units.ledger_entry, CODE)
    assert entry is not None
    assert entry.last_event_id == "e-11"
    assert (entry.status, entry.channel, entry.level) == ("processing", "online", 2)
