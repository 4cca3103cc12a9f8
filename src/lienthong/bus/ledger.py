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
    # On the ingest hot path: plain dict reads, no helper per field.
    event = parsed.event
    dossier = event.dossier
    procedure = dossier.get("procedure")
    fees = dossier.get("fees")
    fees_total = fees_paid = None
    if isinstance(fees, list):
        amounts = [(f.get("amount"), f.get("paid") is True) for f in fees if isinstance(f, dict)]
        fees_total = sum(a for a, _ in amounts if type(a) is int)
        fees_paid = sum(a for a, paid in amounts if paid and type(a) is int)
    results = dossier.get("results")
    hashes: tuple[str, ...] = ()
    count = None
    if isinstance(results, list):
        count = len(results)
        hashes = tuple(
            h for r in results if isinstance(r, dict) and isinstance(h := r.get("sha256"), str) and h
        )
    level = dossier.get("level")
    return LedgerEntry(
        dossier_code=parsed.dossier_code,
        unit_code=event.unit_code,
        last_event_id=event.event_id,
        last_event_type=event.type,
        occurred_ms=int(event.occurred_at.timestamp() * 1000),
        status=_text(dossier.get("status")),
        procedure_code=_text(procedure.get("code")) if isinstance(procedure, dict) else None,
        channel=_text(dossier.get("channel")),
        level=level if type(level) is int else None,
        received_at=_text(dossier.get("received_at")),
        due_at=_text(dossier.get("due_at")),
        returned_at=_text(dossier.get("returned_at")),
        fees_total=fees_total,
        fees_paid=fees_paid,
        result_sha256=hashes,
        results=count,
    )


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None
