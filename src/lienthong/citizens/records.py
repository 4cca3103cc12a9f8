"""The audit record of a population-database look-up: plain data, imported by the store too."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class LookupRecord:
    """One population-database look-up, for the audit: who asked, why, when, and what came of it.

    ``subject_ref`` is a keyed hash (HMAC) of the SoDinhDanh: it answers "who looked at this citizen"
    for someone holding the key, and the citizen's record itself is never stored.
    """

    request_id: str
    at_ms: int
    caller: str
    official_id: str
    purpose: str
    subject_ref: str
    form: str
    outcome: str
