"""Integrity checks over the dossier ledger: what the directives call dossiers "completed" without their
real result.

Each check reads one ``LedgerEntry`` at a time (``Integrity.add``), so the whole ledger is scanned in pages
without being held; only the result hashes are kept whole, to find one document attached to several
dossiers. The statuses are config (``integrity``): the reference format says ``processed`` and
``returned``, the portal's codes 9 and 10 (docs/provincial-format.md).

- **completed without a result**: a completed status, and no result at all;
- **result shared**: one result document (by its SHA-256) attached to several dossiers;
- **overdue, not returned**: past its due date, not returned, not closed otherwise (refused, withdrawn…);
- **returned without an e-copy**: returned, but none of its results is an electronic document (a hash);
- **returned with an unsigned result**: returned, and the check of its results' PDF signatures
  (``adapters.results``) found them not validly signed: unsigned, changed after signing, signed by a
  certificate not trusted or expired, or unreadable.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from lienthong.checks.kpis import SIGNED_VALID
from lienthong.model import LedgerEntry

CheckKind = str
ADVICE: dict[str, str] = {
    "completed_without_result": "Open the dossier: attach its real result, or reopen it; a dossier is not"
    " completed without one.",
    "result_shared": "One document serves several dossiers: check each dossier's result, and who attached"
    " it.",
    "overdue_not_returned": "Past its due date and not returned: hand it to the unit's lead, and tell the"
    " citizen (apology letter) as the directives require.",
    "returned_without_ecopy": "Issue the result as an electronic copy (signed), and attach it to the"
    " dossier.",
    "returned_unsigned_result": "Have the competent official sign the result digitally with a certificate"
    " of a trusted CA (the directives ask 100% of results signed), attach the signed PDF again, and find"
    " out how an unsigned or altered one was returned.",
}
"""Each check, in the report's order, with what a person should do about it."""
MAX_FINDINGS = 100_000
"""Findings listed per run; past it they are only counted (``findings_not_listed``)."""
MAX_LISTED_DOSSIERS = 20
"""Dossiers named in one ``result_shared`` finding (the count says how many share it)."""


@dataclass(frozen=True)
class IntegrityRules:
    """Which statuses mean what (from config ``integrity``)."""

    completed: frozenset[str]
    returned: frozenset[str]
    closed: frozenset[str]

    def __post_init__(self) -> None:
        # Statuses compare without case: "Processed" is as completed as "processed".
        for name in ("completed", "returned", "closed"):
            object.__setattr__(self, name, frozenset(s.casefold() for s in getattr(self, name)))


@dataclass(frozen=True)
class IntegrityFinding:
    kind: CheckKind
    dossier_code: str
    unit_code: str
    detail: str


@dataclass
class Integrity:
    """Runs every check over the entries given to ``add``; ``finish`` answers the findings."""

    rules: IntegrityRules
    now: datetime
    max_findings: int = MAX_FINDINGS
    counts: Counter[str] = field(default_factory=Counter)
    findings: list[IntegrityFinding] = field(default_factory=list)
    _by_hash: dict[str, list[str]] = field(default_factory=dict)
    _units: dict[str, str] = field(default_factory=dict)

    def add(self, entry: LedgerEntry) -> None:
        self.counts["dossiers"] += 1
        status = (entry.status or "").casefold()
        rules = self.rules
        if status in rules.completed and not entry.results and not entry.result_sha256:
            self._found("completed_without_result", entry, f"status {status!r}, no result")
        returned = status in rules.returned or entry.returned_at is not None
        if returned and not entry.result_sha256:
            self._found(
                "returned_without_ecopy",
                entry,
                f"returned {entry.returned_at or ''}".rstrip() + ", no result with a document",
            )
        if returned and entry.result_signature not in (None, SIGNED_VALID):
            self._found(
                "returned_unsigned_result",
                entry,
                f"result {entry.result_signature}: {entry.result_signature_note or ''}".rstrip(": ")[:300],
            )
        if not returned and status not in rules.closed and entry.due_at:
            due = _moment(entry.due_at)
            if due is not None and due < self.now:
                self._found(
                    "overdue_not_returned", entry, f"due {entry.due_at}, status {status or 'unknown'!r}"
                )
        for digest in entry.result_sha256:
            self._by_hash.setdefault(digest, []).append(entry.dossier_code)
            if len(self._by_hash[digest]) == 2:
                self._units[digest] = entry.unit_code

    def finish(self) -> tuple[Counter[str], list[IntegrityFinding]]:
        for digest, codes in self._by_hash.items():
            if len(codes) > 1:
                named = ", ".join(sorted(codes)[:MAX_LISTED_DOSSIERS])
                more = (
                    f" and {len(codes) - MAX_LISTED_DOSSIERS} more"
                    if len(codes) > MAX_LISTED_DOSSIERS
                    else ""
                )
                self._add(
                    IntegrityFinding(
                        "result_shared",
                        sorted(codes)[0],
                        self._units.get(digest, ""),
                        f"result {digest[:16]}… is attached to {len(codes)} dossiers: {named}{more}",
                    )
                )
        self._by_hash = {}
        return self.counts, self.findings

    def _found(self, kind: CheckKind, entry: LedgerEntry, detail: str) -> None:
        self._add(IntegrityFinding(kind, entry.dossier_code, entry.unit_code, detail))

    def _add(self, finding: IntegrityFinding) -> None:
        self.counts[finding.kind] += 1
        if len(self.findings) >= self.max_findings:
            self.counts["findings_not_listed"] += 1
            return
        self.findings.append(finding)


def check_all(entries: Iterable[LedgerEntry], rules: IntegrityRules, now: datetime) -> Integrity:
    """Every check over ``entries`` (a convenience for tests and small ledgers)."""
    integrity = Integrity(rules, now)
    for entry in entries:
        integrity.add(entry)
    integrity.finish()
    return integrity


def _moment(text: str) -> datetime | None:
    """An ISO 8601 time with its offset; None for one without (it cannot be compared) or unreadable."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else None
