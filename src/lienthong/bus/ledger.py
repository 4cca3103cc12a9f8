"""The dossier ledger: a compact projection of each dossier's latest known state.

It is updated in the same transaction that accepts an event, and only by events that occurred later than
the one it already reflects, so events arriving out of order cannot roll a dossier back. Reconciliation
and KPIs read it. The projection reads the reference provincial format (docs/provincial-format.md) and
tolerates anything missing: it records what it can and never rejects an event.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from lienthong.bus.envelope import ParsedEvent


@dataclass(frozen=True)
class LedgerEntry:
    dossier_code: str
    unit_code: str
    last_event_id: str
    last_event_type: str
    occurred_ms: int
    status: str | None = None
    procedure_code: str | None = None
    channel: str | None = None
    level: int | None = None
    received_at: str | None = None
    due_at: str | None = None
    returned_at: str | None = None
    fees_total: int | None = None
    fees_paid: int | None = None
    result_sha256: tuple[str, ...] = ()


def project(parsed: ParsedEvent) -> LedgerEntry:
    event = parsed.event
    dossier = event.dossier
    fees = _dicts(dossier.get("fees"))
    return LedgerEntry(
        dossier_code=parsed.dossier_code,
        unit_code=event.unit_code,
        last_event_id=event.event_id,
        last_event_type=event.type,
        occurred_ms=int(event.occurred_at.timestamp() * 1000),
        status=_str(dossier.get("status")),
        procedure_code=_str(_get(dossier, "procedure", "code")),
        channel=_str(dossier.get("channel")),
        level=_int(dossier.get("level")),
        received_at=_str(dossier.get("received_at")),
        due_at=_str(dossier.get("due_at")),
        returned_at=_str(dossier.get("returned_at")),
        fees_total=_sum(fees, lambda f: True) if fees else None,
        fees_paid=_sum(fees, lambda f: f.get("paid") is True) if fees else None,
        result_sha256=tuple(s for r in _dicts(dossier.get("results")) if (s := _str(r.get("sha256")))),
    )


def _get(obj: dict[str, Any], *keys: str) -> Any:
    value: Any = obj
    for key in keys:
        if not isinstance(value, dict):
            return None
        value = value.get(key)
    return value


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _dicts(value: Any) -> list[dict[str, Any]]:
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def _sum(fees: list[dict[str, Any]], keep: Callable[[dict[str, Any]], bool]) -> int:
    return sum(a for f in fees if keep(f) and (a := _int(f.get("amount"))) is not None)
