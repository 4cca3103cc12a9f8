"""What the bus keeps, and the interface every store implements.

A store's methods are synchronous and run inside a transaction that ``bus.committer.Committer`` opens on
the store's own thread; several callers' operations share one transaction (group commit). SQLite is the
embedded default; PostgreSQL implements the same protocol for several nodes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, NamedTuple, Protocol

from lienthong.bus.envelope import ParsedEvent
from lienthong.bus.ledger import LedgerEntry, project
from lienthong.errors import IdempotencyConflict
from lienthong.payments.state import Claim, Verdict

MessageStatus = Literal["pending", "inflight", "delivered", "dead"]
OutcomeKind = Literal["delivered", "retry", "dead"]


class PlannedDelivery(NamedTuple):
    """One outbox row to create for an event: a route's delivery to one destination operation."""

    message_id: str
    destination: str
    operation: str
    mapping: str | None = None
    mapping_hash: str | None = None


@dataclass(frozen=True)
class MappingVersion:
    """One version of a mapping spec: its resolved document, stored so a replay can use it again."""

    hash: str
    name: str
    document: dict[str, Any]


@dataclass(frozen=True)
class Replay:
    """Make a dead letter pending again; ``mapping_hash`` re-pins its mapping version (None keeps it)."""

    message_id: str
    mapping_hash: str | None = None


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


@dataclass(frozen=True)
class PaymentRecord:
    """A fee payment lienthong asked the payment platform for: keyed by our reference (MaThamChieu).

    ``dossier`` is the dossier as the request carried it (JSON), so the confirmation event can carry it on.
    ``channel`` and ``transaction_id`` name the payment that moved it last (the one that paid it, once paid).
    """

    reference: str
    dossier_code: str
    unit_code: str
    amount: int
    dossier: str
    pay_url: str
    status: str
    transaction_id: str
    updated_ms: int
    channel: str = ""
    caller: str = ""  # who asked for the payment (the payment.requested event's sender)


@dataclass(frozen=True)
class CallbackRecord:
    """One payment callback received, trusted or not: a bounded summary, never the body itself.

    ``reference`` and ``transaction_id`` are as sent, cut to ``CLIP`` characters (a refused callback's
    fields are whatever its sender chose); ``body_sha256`` and ``body_bytes`` identify the whole body.
    ``status`` is what the callback claimed; ``verdict`` what came of it; ``detail`` why, in a line.
    """

    received_ms: int
    channel: str
    reference: str
    transaction_id: str
    verdict: str
    status: str
    source: str = ""
    body_sha256: str = ""
    body_bytes: int = 0
    detail: str = ""


@dataclass(frozen=True)
class PaymentFinding:
    """Something about money a person must look at: another payment for a reference already paid."""

    at_ms: int
    kind: str
    reference: str
    channel: str
    transaction_id: str
    amount: int
    detail: str


class Settlement(NamedTuple):
    """A verified callback to apply to its payment in one transaction (``OutboxStore.settle_payment``).

    ``confirmed`` is the ``payment.confirmed`` event to store if, and only if, this callback pays the
    payment; ``record`` is the callback's summary, stored with the verdict whatever it is.
    """

    claim: Claim
    record: CallbackRecord
    confirmed: IngestItem | None


class EventRecord(NamedTuple):
    """An accepted event as the store keeps it. ``payload`` is the event's JSON with its keys sorted, and
    ``payload_sha256`` its hash: the same event_id with another hash, or from another caller, is a
    conflict. ``caller`` is the token's name that sent it ('' for events lienthong raises itself)."""

    event_id: str
    type: str
    unit_code: str
    dossier_code: str
    occurred_at: str
    payload_sha256: str
    payload: str
    caller: str = ""

    @classmethod
    def of(cls, parsed: ParsedEvent, caller: str = "") -> EventRecord:
        event = parsed.event
        return cls(
            event.event_id,
            event.type,
            event.unit_code,
            parsed.dossier_code,
            event.occurred_at.isoformat(),
            parsed.payload_sha256,
            parsed.payload.decode(),
            caller,
        )


class IngestItem(NamedTuple):
    """One event to store with its outbox rows and ledger update.

    Plain tuples of text and numbers (NamedTuples), built on the event loop: they cross to the store's
    process as a cheap pickle (bus.storeproc), and the store only binds them.
    """

    event: EventRecord
    deliveries: tuple[PlannedDelivery, ...]
    ledger: LedgerEntry

    @classmethod
    def of(cls, parsed: ParsedEvent, deliveries: tuple[PlannedDelivery, ...], caller: str = "") -> IngestItem:
        return cls(EventRecord.of(parsed, caller), deliveries, project(parsed))


@dataclass(frozen=True)
class IngestResult:
    event_id: str
    message_ids: tuple[str, ...]
    duplicate: bool


@dataclass(frozen=True)
class StoredEvent:
    event_id: str
    type: str
    unit_code: str
    occurred_at: str
    dossier: dict[str, Any]
    caller: str = ""  # who sent it; events lienthong raises carry on the caller of what caused them


@dataclass(frozen=True)
class ClaimedDelivery:
    """An outbox row handed to the dispatcher; ``attempts`` counts the attempts made before this one.

    ``created_ms`` is when the row was made or last replayed, and ``replay_base`` how many attempts came
    before the last replay: the retry policy counts age and attempts from the replay.
    """

    message_id: str
    destination: str
    operation: str
    dossier_code: str
    attempts: int
    created_ms: int
    event: StoredEvent
    mapping: str = ""
    mapping_hash: str = ""
    replay_base: int = 0


@dataclass(frozen=True)
class Outcome:
    """The result of one attempt, to be written back to the outbox."""

    message_id: str
    kind: OutcomeKind
    attempt: int
    started_ms: int
    finished_ms: int
    next_attempt_ms: int | None = None
    error: str | None = None
    http_status: int | None = None
    raises: tuple[IngestItem, ...] = ()
    """Events this outcome raises (``delivery.failed`` for a dead letter), stored in the same transaction
    as the outcome: a crash or store error cannot keep one and lose the other."""

    @property
    def detail(self) -> tuple[str | None, int | None]:
        return self.error, self.http_status


@dataclass(frozen=True)
class AttemptView:
    attempt: int
    started_ms: int
    duration_ms: int
    outcome: OutcomeKind
    error: str | None
    http_status: int | None


@dataclass(frozen=True)
class MessageView:
    message_id: str
    event_id: str
    destination: str
    operation: str
    dossier_code: str
    status: MessageStatus
    attempts: int
    created_ms: int
    updated_ms: int
    next_attempt_ms: int
    last_error: str | None
    mapping: str | None = None
    mapping_hash: str | None = None
    history: tuple[AttemptView, ...] = field(default=())
    caller: str = ""  # who sent the event ('' for lienthong's own); set by ``message``, not by listings


@dataclass(frozen=True)
class DestinationStats:
    destination: str
    pending: int
    inflight: int
    dead: int
    oldest_pending_created_ms: int | None


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

    def claim(self, now_ms: int, limit: int) -> list[ClaimedDelivery]:
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
