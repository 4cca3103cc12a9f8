"""Plain data shared by the bus, the store and the adapters: events, messages, outcomes, the ledger.

A *message* is one event's delivery to one destination operation (one outbox row); an *attempt* is one try
at delivering it. Nothing here imports the rest of lienthong, so every package may import this one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, NamedTuple

MessageStatus = Literal["pending", "inflight", "delivered", "dead"]
OutcomeKind = Literal["delivered", "retry", "dead", "held"]
"""``held``: no attempt was made (a circuit breaker held the message back); the message waits, pending,
until ``next_attempt_ms``, its attempts and history unchanged."""


class PlannedMessage(NamedTuple):
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


class IngestItem(NamedTuple):
    """One event to store with its outbox rows and ledger update.

    Plain tuples of text and numbers (NamedTuples), built on the event loop: they cross to the store's
    process as a cheap pickle (store.process), and the store only binds them.
    """

    event: EventRecord
    deliveries: tuple[PlannedMessage, ...]
    ledger: LedgerEntry


def reduce_ingest_item(item: IngestItem) -> tuple[Any, tuple[Any, ...]]:
    """How an IngestItem pickles to cross to the store's process (a ``copyreg`` reducer): as plain tuples,
    rebuilt by ``ingest_item_from``. Pickle reduces each NamedTuple through ``__reduce_ex__`` and a Python
    ``__getnewargs__``, five per event; flattening the item in one call took pickling from 4.0 to 1.7 µs
    an event (a microbenchmark of 100-event batches), about a twentieth of the HTTP process's CPU per event
    under ``benchmarks/bench_bus.py``'s batch load (measured per process from /proc, session 12)."""
    event, deliveries, ledger = item
    return ingest_item_from, (tuple(event), tuple(map(tuple, deliveries)), tuple(ledger))


def ingest_item_from(
    event: tuple[Any, ...], deliveries: tuple[tuple[Any, ...], ...], ledger: tuple[Any, ...]
) -> IngestItem:
    """The IngestItem ``reduce_ingest_item`` flattened."""
    return IngestItem(
        EventRecord._make(event), tuple(map(PlannedMessage._make, deliveries)), LedgerEntry._make(ledger)
    )


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
class Message:
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
    lease_until_ms: int = 0
    """The claim's lease: past it, the message is due again (its outcome could not be written)."""


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
    lease_until_ms: int | None = None
    """The lease of the claim this attempt was made under: if the message was claimed again since (the
    lease ran out), the outcome is dropped. None writes it whatever the lease (tools, tests)."""
    actor: str = ""
    """The destination and operation tried (``portal.push``), for the message log."""
    request_sha256: str = ""
    """SHA-256 of the last request's bytes on the wire, and of its answer's (``adapters.exchanges``)."""
    response_sha256: str = ""

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


class LedgerEntry(NamedTuple):
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
    results: int | None = None
    """How many results the dossier's last event listed, with a document hash or not (None: not said)."""
    result_signature: str | None = None
    """The verdict on the PDF signatures of the dossier's result documents (``certs.pdf.VERDICTS``:
    signed_valid, signed_untrusted, modified_after_signing, unsigned, unreadable); None: not checked."""
    result_signature_note: str | None = None
    """Why: who signed each document, or what is wrong with it."""

    def over(self, earlier: LedgerEntry) -> LedgerEntry:
        """This entry, of a later event, applied over ``earlier`` as the ledger's upsert applies it: a field
        it leaves out (None, or no result hashes) keeps the earlier value."""
        kept = zip(self, earlier, strict=True)
        return LedgerEntry._make(mine if mine is not None and mine != () else theirs for mine, theirs in kept)


class ResultSignature(NamedTuple):
    """The verdict on the PDF signatures of a dossier's result documents, checked for its event that
    occurred at ``event_ms`` (``adapters.results``), and ``note``: why."""

    dossier_code: str
    verdict: str
    note: str
    event_ms: int


CircuitChangeKind = Literal["trip", "want_probe", "probe_failed", "probe_passed"]


class CircuitRow(NamedTuple):
    """A destination's circuit as the store shares it between nodes (``bus.circuits``): ``state`` 0
    closed, 1 half-open (``probe`` is the one message let through), 2 open until ``reopen_at_ms``."""

    destination: str
    state: int
    open_for_ms: int
    reopen_at_ms: int
    probe: str | None
    updated_ms: int


class CircuitChange(NamedTuple):
    """What a node saw happen to a destination's circuit, for the store to apply if it still holds
    (``store.units.apply_circuit_change``): ``trip`` (failures in a row, open for ``open_for_ms``),
    ``want_probe`` (the open time is over: let ``message_id`` through), ``probe_failed`` (open again for
    ``open_for_ms``) or ``probe_passed`` (closed)."""

    destination: str
    kind: CircuitChangeKind
    message_id: str | None = None
    open_for_ms: int = 0


ERROR_CLASSES = ("http_4xx", "http_5xx", "timeout", "unreachable", "refused", "mapping", "protocol", "other")
"""What a dead letter's last error was, in a few words a filter and a label can use: an HTTP status
class, no answer in time, no connection, the peer refusing the request (a SOAP fault or a remote code),
a mapping or translation refusing the record, an answer that is not the protocol's, or something else."""
