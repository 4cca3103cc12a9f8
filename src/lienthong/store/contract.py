"""The store's contract: repositories that act inside one open transaction, and the backend that opens it.

A backend is one connection to one database (SQLite, PostgreSQL, or the memory stub). Its repositories
are small and plain: each reads or writes one table's worth of records and decides nothing. What lienthong
does with them (accept a request, settle a payment, finish a delivery with its follow-up events) is a
*unit of work* in ``store.units``: a module-level function of a ``Tx`` that mypy checks against these
protocols, run in one transaction by a runner (``store.runner``). Rename a method here and every unit that
calls it fails ``mypy --strict``; rename it in one backend and that backend no longer satisfies ``Backend``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple, Protocol

from lienthong.citizens.records import LookupRecord
from lienthong.model import (
    CircuitRow,
    DestinationStats,
    IngestItem,
    LedgerEntry,
    MappingVersion,
    Message,
    MessageView,
    Outcome,
    Replay,
    ResultSignature,
    StoredEvent,
)
from lienthong.msglog.records import LogRecord, StoredCheckpoint
from lienthong.payments.records import CallbackRecord, Claim, PaymentFinding, PaymentRecord
from lienthong.scheduler.runs import RunRecord
from lienthong.sealing import PURGED as _PURGED

PURGED = _PURGED
"""What a purged event's payload becomes (``retention.payloads_days``): its hash and message log records
stay, its content goes."""


class KnownEvent(NamedTuple):
    """An event already stored: its payload's hash, its messages' ids, and who sent it."""

    payload_sha256: str
    message_ids: tuple[str, ...]
    caller: str


class OperatorAction(NamedTuple):
    """What an operator did to a message, and who and why: ``action`` is ``replay``, ``discard`` or
    ``reveal`` (its personal data shown unmasked)."""

    at_ms: int
    actor: str
    action: str
    message_id: str
    reason: str
    detail: str = ""


class Events(Protocol):
    """Accepted events, as sent (with their payload's hash and sender)."""

    def known(self, event_ids: Sequence[str]) -> dict[str, KnownEvent]:
        """The events among ``event_ids`` that are stored already."""
        ...

    def add(self, items: Sequence[IngestItem], now_ms: int) -> None:
        """Store new events (their ids are not known: see ``known``)."""
        ...

    def get(self, event_id: str) -> StoredEvent | None: ...

    def purge(self, after: str, limit: int, received_before_ms: int) -> tuple[str | None, int]:
        """Of up to ``limit`` events after ``after`` (by id), replace the payload of those received before
        ``received_before_ms`` whose messages are all delivered or discarded with ``PURGED``; the last id
        read (None: no more) and how many were purged. Their hashes stay."""
        ...

    def reseal(self, after: str, limit: int) -> tuple[str | None, int]:
        """Seal the payloads of up to ``limit`` events after ``after`` (by id) with the current key, those
        sealed with another or none; the last id read (None: no more) and how many were sealed anew. A
        store without encryption keys (or the memory store) seals nothing."""
        ...


class Outbox(Protocol):
    """Messages: one event's delivery to one destination operation, with its attempts and replays."""

    def add(self, items: Sequence[IngestItem], now_ms: int) -> None:
        """A pending message for every planned message of ``items``, due now."""
        ...

    def claim(self, now_ms: int, limit: int, lease_until_ms: int) -> list[Message]:
        """Take up to ``limit`` due messages, oldest first, leased until ``lease_until_ms``.

        Per key (destination, dossier): at most one message in flight, and never one behind an undelivered
        message of the same key. A message whose lease ran out is due again.
        """
        ...

    def release(self, *, now_ms: int | None) -> int:
        """Return messages in flight to pending: those whose lease ran out by ``now_ms``, or all (None)."""
        ...

    def drop_leases(self, leases: Sequence[int]) -> int:
        """Return to pending the messages in flight under these leases: claims whose answers never
        reached the dispatcher (it gave up waiting), so nobody delivers them."""
        ...

    def finish(self, outcomes: Sequence[Outcome]) -> None:
        """Write attempts' outcomes; an outcome whose lease was taken over by a later claim is dropped."""
        ...

    def message(self, message_id: str) -> MessageView | None: ...

    def stats(self) -> list[DestinationStats]: ...

    def dead(self, destination: str | None, limit: int) -> list[MessageView]:
        """Dead letters, oldest first, of one destination or all."""
        ...

    def replay(self, replays: Sequence[Replay], *, by: str, reason: str, now_ms: int) -> list[str]:
        """Make dead letters pending, due now, with a fresh retry budget; record who and why. Returns the
        ids replayed (ids that are not dead letters are skipped)."""
        ...

    def dead_between(
        self, destination: str | None, since_ms: int | None, until_ms: int | None, limit: int
    ) -> list[MessageView]:
        """Dead letters, oldest first, of one destination or all, last updated (when they died) in
        [``since_ms``, ``until_ms``); None leaves that end open."""
        ...

    def discard(self, message_ids: Sequence[str], *, now_ms: int) -> list[str]:
        """Set dead letters aside for good (status ``discarded``): never delivered, never replayed, no
        longer counted as dead. Returns the ids discarded (ids that are not dead letters are skipped)."""
        ...


class Actions(Protocol):
    """Operators' actions on messages (replays, discards, reveals of personal data): who, when, why."""

    def record(self, actions: Sequence[OperatorAction]) -> None: ...

    def recent(self, limit: int, message_id: str | None) -> list[OperatorAction]:
        """The latest actions, newest first; on one message when given."""
        ...


class Ledger(Protocol):
    """Each dossier's latest known state."""

    def apply(self, entries: Sequence[LedgerEntry], now_ms: int) -> None:
        """Upsert one entry per dossier; an entry older than the stored one changes nothing."""
        ...

    def record_signature(self, signature: ResultSignature, now_ms: int) -> None:
        """The verdict on the PDF signatures of a dossier's results (``certs.pdf``), as checked for one of
        its events: ignored when a verdict for a later event is stored, or the dossier is not."""
        ...

    def get(self, dossier_code: str) -> LedgerEntry | None: ...

    def page(self, after: str, limit: int) -> list[LedgerEntry]:
        """Up to ``limit`` dossiers whose code sorts after ``after``, in the store's order of codes (a scan
        in pages: each page starts after the last code of the one before)."""
        ...


class Mappings(Protocol):
    """Mapping spec versions, kept so a replay can map with the version a message was planned with."""

    def save(self, versions: Sequence[MappingVersion], now_ms: int) -> None:
        """Remember versions; known hashes are left as they are."""
        ...

    def get(self, mapping_hash: str) -> MappingVersion | None: ...


class Payments(Protocol):
    """Fee payments, the callbacks received about them, and findings a person must look at."""

    def save(self, payment: PaymentRecord) -> None:
        """Create the payment; asked again while still initiated, refresh its pay URL only."""
        ...

    def get(self, reference: str) -> PaymentRecord | None: ...

    def hold(self, reference: str) -> PaymentRecord | None:
        """The payment, held until this transaction ends: another transaction judging the same payment
        waits, then reads what this one wrote (two callbacks racing are judged one after the other)."""
        ...

    def move(self, claim: Claim, now_ms: int) -> None:
        """Set the payment's status, transaction and channel to the claim's."""
        ...

    def add_finding(self, finding: PaymentFinding) -> None:
        """Record a finding once per (kind, channel, transaction)."""
        ...

    def record_callback(self, record: CallbackRecord) -> None: ...

    def callbacks(self, limit: int, reference: str | None) -> list[CallbackRecord]:
        """The latest callbacks, newest first; of one reference when given."""
        ...

    def findings(self, limit: int) -> list[PaymentFinding]:
        """The latest findings, newest first."""
        ...

    def paid_between(self, start_ms: int, end_ms: int) -> list[PaymentRecord]:
        """Paid payments whose last move (the one that paid them) is in [start_ms, end_ms)."""
        ...

    def unsettled(self, before_ms: int, limit: int) -> list[PaymentRecord]:
        """Payments still initiated or pending, last moved before ``before_ms``, oldest first."""
        ...

    def reseal(self, after: str, limit: int) -> tuple[str | None, int]:
        """The dossiers of up to ``limit`` payments after reference ``after`` sealed anew with the current
        key where sealed with another or none; the last reference read (None: no more) and how many were
        sealed anew. A store without encryption keys (or the memory store) seals nothing."""
        ...


class Audit(Protocol):
    """Population-database look-ups: who asked, why, when, and what came of it."""

    def record_lookups(self, records: Sequence[LookupRecord]) -> None: ...

    def lookups(self, limit: int) -> list[LookupRecord]:
        """The latest look-ups, newest first."""
        ...


class Cursors(Protocol):
    """How far each polled source has been read: its cursor, advanced with the events it gave."""

    def get(self, source: str) -> str | None:
        """The source's cursor; None before its first page."""
        ...

    def set(self, source: str, cursor: str, now_ms: int) -> None: ...


class Runs(Protocol):
    """The scheduler's run history: one record per attempt at one job's window (``scheduler.runs``)."""

    def claim(self, run: RunRecord) -> bool:
        """Record ``run`` unless its run id already has an attempt of that number; True when recorded.

        Attempt 1 is the claim on a window: whoever records it runs the window, and nobody else does.
        """
        ...

    def finish(self, run: RunRecord) -> None:
        """Write an attempt's end: outcome, end time, counts, reports, detail."""
        ...

    def attempts(self, run_id: str) -> list[RunRecord]:
        """Every attempt of one run id, first first."""
        ...

    def recent(self, limit: int, job: str | None) -> list[RunRecord]:
        """The latest attempts, newest first (by start); of one job when given."""
        ...

    def latest(self, job: str) -> RunRecord | None:
        """The attempt of the job's latest window recorded, whatever its outcome (its last attempt)."""
        ...

    def last_success(self, job: str) -> RunRecord | None:
        """The job's attempt that succeeded last (by end)."""
        ...

    def abandon(self, job: str, started_before_ms: int, now_ms: int, detail: str) -> int:
        """End as failed the job's attempts still running that started before ``started_before_ms``:
        their node stopped or died during the run. Returns how many."""
        ...


class Circuits(Protocol):
    """Circuit breakers' state shared by the nodes on one store, a row per destination."""

    def all(self) -> list[CircuitRow]: ...

    def hold(self, destinations: Sequence[str]) -> list[CircuitRow]:
        """One row per destination of ``destinations`` (sorted; a closed one, ``updated_ms`` 0, for a
        destination never seen), locked against other nodes' changes until the transaction ends
        (PostgreSQL: row locks)."""
        ...

    def put(self, rows: Sequence[CircuitRow]) -> None:
        """Insert or replace these rows."""
        ...


class MessageLog(Protocol):
    """The message log's records (their bytes, indexed from 0 in the order appended) and checkpoints."""

    def append(self, records: Sequence[LogRecord]) -> None:
        """Add records after the last, in order (one node at a time: PostgreSQL takes a lock)."""
        ...

    def size(self) -> int: ...

    def read(self, start: int, limit: int) -> list[tuple[int, bytes, str]]:
        """Up to ``limit`` records from index ``start``, as (index, bytes, leaf hash in hex: kept beside
        the bytes when written, so that a record edited alone is named by ``log verify``)."""
        ...

    def about(self, subject: str, limit: int) -> list[tuple[int, bytes]]:
        """The records about ``subject`` (a message id, a reference), oldest first."""
        ...

    def between(self, start_ms: int, end_ms: int, after: int, limit: int) -> list[tuple[int, bytes]]:
        """Records stamped in [start_ms, end_ms) with an index above ``after``, by index."""
        ...

    def add_checkpoint(self, checkpoint: StoredCheckpoint) -> bool:
        """Keep a checkpoint; False when one of that size is kept already (another node made it)."""
        ...

    def checkpoints(self, limit: int, before_size: int | None = None) -> list[StoredCheckpoint]:
        """The latest checkpoints (below ``before_size`` if given), largest first."""
        ...

    def stamp(self, size: int, timestamp: str, timestamped_ms: int) -> None:
        """Keep the RFC 3161 timestamp of the checkpoint of ``size`` (had after it was kept)."""
        ...


class Tx(Protocol):
    """The repositories of one open transaction."""

    @property
    def events(self) -> Events: ...
    @property
    def outbox(self) -> Outbox: ...
    @property
    def ledger(self) -> Ledger: ...
    @property
    def mappings(self) -> Mappings: ...
    @property
    def payments(self) -> Payments: ...
    @property
    def audit(self) -> Audit: ...
    @property
    def runs(self) -> Runs: ...
    @property
    def cursors(self) -> Cursors: ...
    @property
    def actions(self) -> Actions: ...
    @property
    def circuits(self) -> Circuits: ...
    @property
    def log(self) -> MessageLog: ...


class Backend(Tx, Protocol):
    """One connection to one database. A runner drives its transactions from one thread."""

    def begin(self) -> None: ...
    def commit(self) -> None: ...
    def rollback(self) -> None: ...
    def close(self) -> None: ...
