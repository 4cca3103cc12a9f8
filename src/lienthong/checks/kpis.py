"""Per-unit KPIs against the directives' targets, from the dossier ledger.

For a period ending at the run's window end (``kpis.period_days``, 30 by default), per unit code:

- ``online``: dossiers received in the period with ``channel`` online ÷ dossiers received in the
  period; target 60% (80% for a unit in ``kpis.provincial_centres``);
- ``fully_online``: received in the period online at ``level`` 4 ÷ dossiers received in the period;
  target 20%;
- ``on_time``: returned in the period at or before their ``due_at`` ÷ returned in the period with a
  ``due_at``; target 100%;
- ``ecopy``: returned in the period with a result that is an electronic document (a hash) ÷ returned in
  the period; target 100%;
- ``signed``: returned in the period with results whose PDF signatures are valid (``signed_valid``) ÷
  returned in the period with a verdict on their results' signatures (a ``result_check`` destination
  gives one; a dossier whose results were never checked is left out); target 100%.

"Received" is ``received_at`` and "returned" ``returned_at`` (ISO 8601 with an offset; a time without
one, or none, leaves the dossier out of that KPI). A unit with an empty denominator has no rate for that
KPI, and is never "below target" for it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime

from lienthong.model import LedgerEntry

KPIS = ("online", "fully_online", "on_time", "ecopy", "signed")
FULLY_ONLINE_LEVEL = 4
SIGNED_VALID = "signed_valid"
"""The verdict (``certs.pdf``) that counts as signed."""


@dataclass(frozen=True)
class Targets:
    """The directives' targets, as shares (0.6 is 60%)."""

    online: float = 0.6
    online_provincial_centre: float = 0.8
    fully_online: float = 0.2
    on_time: float = 1.0
    ecopy: float = 1.0
    signed: float = 1.0

    def of(self, kpi: str, *, centre: bool) -> float:
        if kpi == "online" and centre:
            return self.online_provincial_centre
        return float(getattr(self, kpi))


@dataclass
class Tally:
    """One unit's counts for the period."""

    received: int = 0
    online: int = 0
    fully_online: int = 0
    returned: int = 0
    returned_with_due: int = 0
    on_time: int = 0
    ecopy: int = 0
    checked: int = 0
    signed: int = 0

    def rates(self) -> dict[str, float | None]:
        def share(part: int, whole: int) -> float | None:
            return part / whole if whole else None

        return {
            "online": share(self.online, self.received),
            "fully_online": share(self.fully_online, self.received),
            "on_time": share(self.on_time, self.returned_with_due),
            "ecopy": share(self.ecopy, self.returned),
            "signed": share(self.signed, self.checked),
        }


@dataclass(frozen=True)
class Shortfall:
    """A unit below a target: its rate, the target, and the counts behind the rate."""

    unit: str
    kpi: str
    value: float
    target: float
    numerator: int
    denominator: int


@dataclass
class Kpis:
    """Tallies the entries given to ``add`` by unit, for [start, end)."""

    start: datetime
    end: datetime
    tallies: dict[str, Tally] = field(default_factory=dict)

    def add(self, entry: LedgerEntry) -> None:
        tally = self.tallies.get(entry.unit_code)
        if tally is None:
            tally = self.tallies[entry.unit_code] = Tally()
        received = _moment(entry.received_at)
        if received is not None and self.start <= received < self.end:
            tally.received += 1
            if (entry.channel or "").casefold() == "online":
                tally.online += 1
                if entry.level == FULLY_ONLINE_LEVEL:
                    tally.fully_online += 1
        returned = _moment(entry.returned_at)
        if returned is not None and self.start <= returned < self.end:
            tally.returned += 1
            if entry.result_sha256:
                tally.ecopy += 1
            if entry.result_signature is not None:
                tally.checked += 1
                tally.signed += entry.result_signature == SIGNED_VALID
            due = _moment(entry.due_at)
            if due is not None:
                tally.returned_with_due += 1
                if returned <= due:
                    tally.on_time += 1

    def rates(self) -> dict[str, dict[str, float | None]]:
        """Every unit's rates, by KPI (None: nothing to measure it on)."""
        return {unit: tally.rates() for unit, tally in sorted(self.tallies.items())}

    def shortfalls(self, targets: Targets, centres: Iterable[str] = ()) -> list[Shortfall]:
        """Every (unit, KPI) below its target, by unit then KPI."""
        centres = frozenset(centres)
        found = []
        for unit, tally in sorted(self.tallies.items()):
            parts = _parts(tally)
            for kpi, rate in tally.rates().items():
                target = targets.of(kpi, centre=unit in centres)
                if rate is not None and rate < target:
                    numerator, denominator = parts[kpi]
                    found.append(Shortfall(unit, kpi, rate, target, numerator, denominator))
        return found


def _parts(tally: Tally) -> Mapping[str, tuple[int, int]]:
    return {
        "online": (tally.online, tally.received),
        "fully_online": (tally.fully_online, tally.received),
        "on_time": (tally.on_time, tally.returned_with_due),
        "ecopy": (tally.ecopy, tally.returned),
        "signed": (tally.signed, tally.checked),
    }


def _moment(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else None
