"""What the bus keeps, and the interface every store implements.

A store's methods are synchronous and run inside a transaction that ``bus.committer.Committer`` opens on
the store's own thread; several callers' operations share one transaction (group commit). SQLite is the
embedded default; PostgreSQL implements the same protocol for several nodes.
"""

from __future__ import annotations

from typing import Protocol

from lienthong.citizens.records import LookupRecord
from lienthong.errors import IdempotencyConflict
from lienthong.model import (
    DestinationStats,
    IngestItem,
    IngestResult,
    LedgerEntry,
    MappingVersion,
    Message,
    MessageView,
    Outcome,
    Replay,
    StoredEvent,
)
from lienthong.payments.records import CallbackRecord, PaymentFinding, PaymentRecord, Settlement
from lienthong.payments.state import Verdict


class OutboxStore(Protocol):
    """The operations the bus needs. Each runs inside a transaction opened by the committer."""

    def begin(self) -> None: ...
    def commit(self) -> None: ...
    def rollback(self) -> None: ...
    def close(self) -> None: ...

    def recover(self) -> int:
        """Return rows left in flight by a crash to pending; returns how many."""
        ...

    def ingest(
        self, requests: list[list[IngestItem]], now_ms: int
    ) -> list[list[IngestResult] | IdempotencyConflict]:
        """Store the events of several requests with their outbox rows and ledger updates.

        Each request is all or nothing: a request reusing an event id with other content stores nothing
        and gets its IdempotencyConflict back; the other requests are stored.
        """
        ...

    def claim(self, now_ms: int, limit: int) -> list[Message]:
        """Take up to ``limit`` due rows, at most one per (destination, dossier), oldest first."""
        ...

    def complete(self, outcomes: list[Outcome]) -> None: ...

    def message(self, message_id: str) -> MessageView | None: ...

    def stats(self) -> list[DestinationStats]: ...

    def ledger_entry(self, dossier_code: str) -> LedgerEntry | None: ...

    def save_mappings(self, versions: list[MappingVersion], now_ms: int) -> None:
        """Remember mapping versions (known hashes are left as they are)."""
        ...

    def record_lookups(self, records: list[LookupRecord]) -> None: ...

    def save_payment(self, payment: PaymentRecord) -> None:
        """Create or replace the payment with ``payment.reference``."""
        ...

    def payment(self, reference: str) -> PaymentRecord | None: ...

    def record_callback(self, record: CallbackRecord) -> None: ...

    def settle_payment(self, settlement: Settlement, now_ms: int) -> Verdict:
        """Judge a verified callback against its payment (``payments.state.judge``) and apply the verdict:
        move the payment forward and store ``payment.confirmed`` when it pays; record a duplicate payment
        as a finding; record the callback with its verdict in every case."""
        ...

    def callbacks(self, limit: int, reference: str | None = None) -> list[CallbackRecord]:
        """The latest callbacks, newest first; of one reference when given."""
        ...

    def payment_findings(self, limit: int) -> list[PaymentFinding]:
        """Findings about payments (duplicate payments), newest first."""
        ...

    def lookups(self, limit: int) -> list[LookupRecord]:
        """The latest look-ups, newest first."""
        ...

    def mapping_version(self, mapping_hash: str) -> MappingVersion | None: ...

    def dead_letters(self, destination: str | None, limit: int) -> list[MessageView]:
        """Dead letters, oldest first, of one destination or all."""
        ...

    def stored_event(self, event_id: str) -> StoredEvent | None: ...

    def replay(self, replays: list[Replay], *, by: str, reason: str, now_ms: int) -> list[str]:
        """Make dead letters pending again, due now, with a fresh retry budget; record who and why.

        Returns the ids replayed; ids that are not dead letters are skipped.
        """
        ...
