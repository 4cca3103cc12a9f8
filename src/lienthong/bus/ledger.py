"""The dossier ledger: a compact projection of each dossier's latest known state.

It is updated in the same transaction that accepts an event, and only by events that occurred later than
the one it already reflects, so events arriving out of order cannot roll a dossier back. Reconciliation
and KPIs read it. The projection reads the reference provincial format (docs/provincial-format.md) and
tolerates anything missing: it records what it can and never rejects an event.
"""

from __future__ import annotations

from typing import Any

from lienthong.bus.envelope import ParsedEvent
from lienthong.model import LedgerEntry


def project(parsed: ParsedEvent) -> LedgerEntry:
    # On the ingest hot path (3.3 µs an event before these choices): plain dict reads, one loop over the
    # fees, and the entry built by position, which is 0.5 µs faster than by keyword for 16 fields.
    event = parsed.event
    dossier = event.dossier
    get = dossier.get
    procedure = get("procedure")
    fees = get("fees")
    fees_total = fees_paid = None
    if isinstance(fees, list):
        fees_total = fees_paid = 0
        for fee in fees:
            if isinstance(fee, dict) and type(amount := fee.get("amount")) is int:
                fees_total += amount
                if fee.get("paid") is True:
                    fees_paid += amount
    results = get("results")
    hashes: tuple[str, ...] = ()
    count = None
    if isinstance(results, list):
        count = len(results)
        hashes = tuple(
            h for r in results if isinstance(r, dict) and isinstance(h := r.get("sha256"), str) and h
        )
    level = get("level")
    return LedgerEntry(
        parsed.dossier_code,
        event.unit_code,
        event.event_id,
        event.type,
        int(event.occurred_at.timestamp() * 1000),
        _text(get("status")),  # status
        _text(procedure.get("code")) if isinstance(procedure, dict) else None,  # procedure_code
        _text(get("channel")),  # channel
        level if type(level) is int else None,  # level
        _text(get("received_at")),  # received_at
        _text(get("due_at")),  # due_at
        _text(get("returned_at")),  # returned_at
        fees_total,
        fees_paid,
        hashes,  # result_sha256
        count,  # results
    )


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None
