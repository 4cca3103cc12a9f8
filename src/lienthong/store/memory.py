"""The memory backend: the stub behind the store's contract, as dramatiq keeps a stub broker beside its
real ones. Tests build the dispatcher, ingest, dead letters and payments on it without a file or a server;
the contract suite (tests/test_store_contract.py) holds it to the same behaviour as SQLite and PostgreSQL.

A transaction works on copies of the tables and replaces them at commit; a rollback drops the copies.
Records are immutable, so a copy is a shallow one. Nothing survives ``close``.
"""

from __future__ import annotations

import copy
import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import orjson

from lienthong.citizens.records import LookupRecord
from lienthong.errors import StoreError
from lienthong.model import (
    AttemptView,
    CircuitRow,
    DestinationStats,
    IngestItem,
    LedgerEntry,
    MappingVersion,
    Message,
    MessageStatus,
    MessageView,
    Outcome,
    Replay,
    ResultSignature,
    StoredEvent,
)
from lienthong.msglog.merkle import leaf_hash
from lienthong.msglog.records import LogRecord, StoredCheckpoint
from lienthong.payments.records import CallbackRecord, Claim, PaymentFinding, PaymentRecord
from lienthong.scheduler.runs import RunRecord
from lienthong.store.contract import PURGED, KnownEvent, OperatorAction
from lienthong.store.rows import NoLog, closed_circuit, split_held


@dataclass(frozen=True)
class _Row:
    seq: int
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
    last_error: str | None = None
    last_http_status: int | None = None
    mapping: str | None = None
    mapping_hash: str | None = None
    replayed_ms: int | None = None
    replay_base: int = 0
    lease_until_ms: int = 0


@dataclass
class _Tables:
    events: dict[str, tuple[IngestItem, int]] = field(default_factory=dict)
    outbox: dict[str, _Row] = field(default_factory=dict)
    attempts: dict[tuple[str, int], AttemptView] = field(default_factory=dict)
    replays: list[tuple[str, int, str, str, str | None]] = field(default_factory=list)
    ledger: dict[str, LedgerEntry] = field(default_factory=dict)
    signature_ms: dict[str, int] = field(default_factory=dict)
    mappings: dict[str, MappingVersion] = field(default_factory=dict)
    payments: dict[str, PaymentRecord] = field(default_factory=dict)
    callbacks: list[CallbackRecord] = field(default_factory=list)
    findings: dict[tuple[str, str, str], PaymentFinding] = field(default_factory=dict)
    lookups: list[LookupRecord] = field(default_factory=list)
    runs: dict[tuple[str, int], RunRecord] = field(default_factory=dict)
    cursors: dict[str, str] = field(default_factory=dict)
    actions: list[OperatorAction] = field(default_factory=list)
    circuits: dict[str, CircuitRow] = field(default_factory=dict)
    log: list[tuple[int, str, bytes, str]] = field(default_factory=list)
    checkpoints: dict[int, StoredCheckpoint] = field(default_factory=dict)


class MemoryBackend:
    """A ``store.contract.Backend`` in this process's memory."""

    def __init__(self, *, message_log: bool = True) -> None:
        self._committed = _Tables()
        self._open: _Tables | None = None
        self._seq = itertools.count(1)
        self.events = MemoryEvents(self)
        self.outbox = MemoryOutbox(self)
        self.ledger = MemoryLedger(self)
        self.mappings = MemoryMappings(self)
        self.payments = MemoryPayments(self)
        self.audit = MemoryAudit(self)
        self.runs = MemoryRuns(self)
        self.cursors = MemoryCursors(self)
        self.actions = MemoryActions(self)
        self.circuits = MemoryCircuits(self)
        self.log: MemoryLog | NoLog = MemoryLog(self) if message_log else NoLog()

    @property
    def tables(self) -> _Tables:
        if self._open is None:
            raise StoreError("no transaction is open on the memory store")
        return self._open

    def next_seq(self) -> int:
        return next(self._seq)

    def begin(self) -> None:
        self._open = copy.copy(self._committed)
        for name in self._open.__dataclass_fields__:
            setattr(self._open, name, copy.copy(getattr(self._open, name)))

    def commit(self) -> None:
        self._committed = self.tables
        self._open = None

    def rollback(self) -> None:
        self._open = None

    def close(self) -> None:
        self._open = None


class _Repo:
    def __init__(self, backend: MemoryBackend) -> None:
        self._backend = backend

    @property
    def _t(self) -> _Tables:
        return self._backend.tables


class MemoryEvents(_Repo):
    def known(self, event_ids: Sequence[str]) -> dict[str, KnownEvent]:
        found: dict[str, KnownEvent] = {}
        for event_id in event_ids:
            stored = self._t.events.get(event_id)
            if stored is not None:
                item = stored[0]
                ids = tuple(d.message_id for d in item.deliveries)
                found[event_id] = KnownEvent(item.event.payload_sha256, ids, item.event.caller)
        return found

    def add(self, items: Sequence[IngestItem], now_ms: int) -> None:
        for item in items:
            if item.event.event_id in self._t.events:
                raise StoreError(f"event {item.event.event_id} is stored already (unique constraint)")
            self._t.events[item.event.event_id] = (item, now_ms)

    def get(self, event_id: str) -> StoredEvent | None:
        stored = self._t.events.get(event_id)
        return _stored(stored[0]) if stored is not None else None

    def reseal(self, after: str, limit: int) -> tuple[str | None, int]:
        return None, 0  # nothing at rest

    def purge(self, after: str, limit: int, received_before_ms: int) -> tuple[str | None, int]:
        ids = sorted(i for i in self._t.events if i > after)[:limit]
        still = {r.event_id for r in self._t.outbox.values() if r.status in ("pending", "inflight", "dead")}
        purged = 0
        for event_id in ids:
            stored, received_ms = self._t.events[event_id]
            if received_ms < received_before_ms and event_id not in still and stored.event.payload != PURGED:
                emptied = stored._replace(event=stored.event._replace(payload=PURGED))
                self._t.events[event_id] = (emptied, received_ms)
                purged += 1
        return (ids[-1] if ids else None), purged


class MemoryOutbox(_Repo):
    def add(self, items: Sequence[IngestItem], now_ms: int) -> None:
        for item in items:
            for d in item.deliveries:
                if d.message_id in self._t.outbox:
                    raise StoreError(f"message {d.message_id} exists already (unique constraint)")
                self._t.outbox[d.message_id] = _Row(
                    self._backend.next_seq(),
                    d.message_id,
                    item.event.event_id,
                    d.destination,
                    d.operation,
                    item.event.dossier_code,
                    "pending",
                    0,
                    now_ms,
                    now_ms,
                    now_ms,
                    mapping=d.mapping,
                    mapping_hash=d.mapping_hash,
                )

    def claim(self, now_ms: int, limit: int, lease_until_ms: int) -> list[Message]:
        undelivered = self._undelivered()
        # Keys with a message in flight, whatever its place (a replayed dead letter sits behind it), or
        # with an undelivered message ahead.
        busy = {(r.destination, r.dossier_code) for r in undelivered if r.status == "inflight"}
        taken: list[_Row] = []
        for row in sorted(undelivered, key=lambda r: r.seq):
            key = (row.destination, row.dossier_code)
            if key in busy:
                continue
            busy.add(key)
            if row.status == "pending" and row.next_attempt_ms <= now_ms and len(taken) < limit:
                taken.append(row)
        claimed: list[Message] = []
        for row in taken:
            self._t.outbox[row.message_id] = replace(
                row, status="inflight", updated_ms=now_ms, lease_until_ms=lease_until_ms
            )
            item = self._t.events[row.event_id][0]
            claimed.append(
                Message(
                    row.message_id,
                    row.destination,
                    row.operation,
                    row.dossier_code,
                    row.attempts,
                    row.replayed_ms if row.replayed_ms is not None else row.created_ms,
                    _stored(item),
                    row.mapping or "",
                    row.mapping_hash or "",
                    row.replay_base,
                    lease_until_ms,
                )
            )
        return claimed

    def _undelivered(self) -> list[_Row]:
        return [r for r in self._t.outbox.values() if r.status in ("pending", "inflight")]

    def release(self, *, now_ms: int | None) -> int:
        released = 0
        for row in list(self._t.outbox.values()):
            if row.status == "inflight" and (now_ms is None or row.lease_until_ms <= now_ms):
                lease = row.lease_until_ms if now_ms is not None else 0
                self._t.outbox[row.message_id] = replace(row, status="pending", lease_until_ms=lease)
                released += 1
        return released

    def drop_leases(self, leases: Sequence[int]) -> int:
        dropped = 0
        for row in list(self._t.outbox.values()):
            if row.status == "inflight" and row.lease_until_ms in leases:
                self._t.outbox[row.message_id] = replace(row, status="pending", lease_until_ms=0)
                dropped += 1
        return dropped

    def finish(self, outcomes: Sequence[Outcome]) -> None:
        held, outcomes = split_held(outcomes)
        for o in held:
            row = self._t.outbox.get(o.message_id)
            if row is not None and row.lease_until_ms == o.lease_until_ms and row.status == "inflight":
                assert o.next_attempt_ms is not None
                self._t.outbox[o.message_id] = replace(
                    row, status="pending", next_attempt_ms=o.next_attempt_ms, updated_ms=o.finished_ms
                )
        for o in outcomes:
            row = self._t.outbox.get(o.message_id)
            if row is not None and (
                o.lease_until_ms is None
                or (row.lease_until_ms == o.lease_until_ms and row.status in ("inflight", "pending"))
            ):
                self._t.outbox[o.message_id] = replace(
                    row,
                    status="dead"
                    if o.kind == "dead"
                    else "delivered"
                    if o.kind == "delivered"
                    else "pending",
                    attempts=o.attempt,
                    updated_ms=o.finished_ms,
                    next_attempt_ms=o.next_attempt_ms if o.next_attempt_ms is not None else o.finished_ms,
                    last_error=o.error,
                    last_http_status=o.http_status,
                )
            view = AttemptView(
                o.attempt, o.started_ms, o.finished_ms - o.started_ms, o.kind, o.error, o.http_status
            )
            self._t.attempts.setdefault((o.message_id, o.attempt), view)

    def message(self, message_id: str) -> MessageView | None:
        row = self._t.outbox.get(message_id)
        if row is None:
            return None
        history = tuple(v for (m, _), v in sorted(self._t.attempts.items()) if m == message_id)
        caller = self._t.events[row.event_id][0].event.caller
        return replace(_view(row), history=history, caller=caller)

    def stats(self) -> list[DestinationStats]:
        folded: dict[str, list[int | None]] = {}
        for row in self._t.outbox.values():
            entry = folded.setdefault(row.destination, [0, 0, 0, None])
            if row.status in ("pending", "inflight", "dead"):
                entry[("pending", "inflight", "dead").index(row.status)] += 1  # type: ignore[operator]
            oldest = entry[3]
            if row.status in ("pending", "inflight") and (oldest is None or row.created_ms < oldest):
                entry[3] = row.created_ms
        return [
            DestinationStats(d, e[0], e[1], e[2], e[3])  # type: ignore[arg-type]
            for d, e in sorted(folded.items())
            if e[0] or e[1] or e[2]
        ]

    def dead(self, destination: str | None, limit: int) -> list[MessageView]:
        rows = sorted(
            (
                r
                for r in self._t.outbox.values()
                if r.status == "dead" and (destination is None or r.destination == destination)
            ),
            key=lambda r: r.seq,
        )
        return [_view(r) for r in rows[:limit]]

    def replay(self, replays: Sequence[Replay], *, by: str, reason: str, now_ms: int) -> list[str]:
        done: list[str] = []
        for item in replays:
            row = self._t.outbox.get(item.message_id)
            if row is None or row.status != "dead":
                continue
            self._t.outbox[item.message_id] = replace(
                row,
                status="pending",
                replay_base=row.attempts,
                lease_until_ms=0,
                next_attempt_ms=now_ms,
                updated_ms=now_ms,
                replayed_ms=now_ms,
                mapping_hash=item.mapping_hash if item.mapping_hash is not None else row.mapping_hash,
            )
            self._t.replays.append((item.message_id, now_ms, by, reason, item.mapping_hash))
            done.append(item.message_id)
        return done

    def dead_between(
        self, destination: str | None, since_ms: int | None, until_ms: int | None, limit: int
    ) -> list[MessageView]:
        return [
            v
            for v in self.dead(destination, len(self._t.outbox))
            if (since_ms is None or v.updated_ms >= since_ms)
            and (until_ms is None or v.updated_ms < until_ms)
        ][:limit]

    def discard(self, message_ids: Sequence[str], *, now_ms: int) -> list[str]:
        done: list[str] = []
        for message_id in dict.fromkeys(message_ids):
            row = self._t.outbox.get(message_id)
            if row is None or row.status != "dead":
                continue
            # 'discarded' is a status the outbox keeps past model.MessageStatus's (issue 14 §4).
            self._t.outbox[message_id] = replace(row, status="discarded", updated_ms=now_ms)  # type: ignore[arg-type]
            done.append(message_id)
        return done


class MemoryActions(_Repo):
    def record(self, actions: Sequence[OperatorAction]) -> None:
        self._t.actions.extend(actions)

    def recent(self, limit: int, message_id: str | None) -> list[OperatorAction]:
        found = [a for a in self._t.actions if message_id is None or a.message_id == message_id]
        return found[::-1][:limit]


class MemoryLedger(_Repo):
    def apply(self, entries: Sequence[LedgerEntry], now_ms: int) -> None:
        for entry in entries:
            seen = self._t.ledger.get(entry.dossier_code)
            if seen is None:
                self._t.ledger[entry.dossier_code] = entry
            elif entry.occurred_ms >= seen.occurred_ms:
                self._t.ledger[entry.dossier_code] = entry.over(seen)

    def record_signature(self, signature: ResultSignature, now_ms: int) -> None:
        code, verdict, note, event_ms = signature
        entry = self._t.ledger.get(code)
        if entry is None or self._t.signature_ms.get(code, event_ms) > event_ms:
            return
        self._t.signature_ms[code] = event_ms
        self._t.ledger[code] = entry._replace(result_signature=verdict, result_signature_note=note)

    def get(self, dossier_code: str) -> LedgerEntry | None:
        return self._t.ledger.get(dossier_code)

    def page(self, after: str, limit: int) -> list[LedgerEntry]:
        codes = sorted(code for code in self._t.ledger if code > after)[:limit]
        return [self._t.ledger[code] for code in codes]


class MemoryMappings(_Repo):
    def save(self, versions: Sequence[MappingVersion], now_ms: int) -> None:
        for version in versions:
            self._t.mappings.setdefault(version.hash, version)

    def get(self, mapping_hash: str) -> MappingVersion | None:
        return self._t.mappings.get(mapping_hash)


class MemoryPayments(_Repo):
    def reseal(self, after: str, limit: int) -> tuple[str | None, int]:
        return None, 0  # nothing at rest

    def save(self, payment: PaymentRecord) -> None:
        seen = self._t.payments.get(payment.reference)
        if seen is None:
            self._t.payments[payment.reference] = payment
        elif seen.status == "initiated":
            self._t.payments[payment.reference] = replace(seen, pay_url=payment.pay_url)

    def get(self, reference: str) -> PaymentRecord | None:
        return self._t.payments.get(reference)

    def hold(self, reference: str) -> PaymentRecord | None:
        return self.get(reference)  # one transaction at a time

    def move(self, claim: Claim, now_ms: int) -> None:
        seen = self._t.payments.get(claim.reference)
        if seen is not None:
            self._t.payments[claim.reference] = replace(
                seen,
                status=claim.status,
                transaction_id=claim.transaction_id,
                channel=claim.channel,
                updated_ms=now_ms,
            )

    def add_finding(self, finding: PaymentFinding) -> None:
        self._t.findings.setdefault((finding.kind, finding.channel, finding.transaction_id), finding)

    def record_callback(self, record: CallbackRecord) -> None:
        self._t.callbacks.append(record)

    def callbacks(self, limit: int, reference: str | None) -> list[CallbackRecord]:
        found = [c for c in reversed(self._t.callbacks) if reference is None or c.reference == reference]
        return found[:limit]

    def findings(self, limit: int) -> list[PaymentFinding]:
        return list(reversed(self._t.findings.values()))[:limit]

    def paid_between(self, start_ms: int, end_ms: int) -> list[PaymentRecord]:
        return [
            p for p in self._t.payments.values() if p.status == "paid" and start_ms <= p.updated_ms < end_ms
        ]

    def unsettled(self, before_ms: int, limit: int) -> list[PaymentRecord]:
        waiting = [
            p
            for p in self._t.payments.values()
            if p.status in ("initiated", "pending") and p.updated_ms < before_ms
        ]
        return sorted(waiting, key=lambda p: (p.updated_ms, p.reference))[:limit]


class MemoryAudit(_Repo):
    def record_lookups(self, records: Sequence[LookupRecord]) -> None:
        self._t.lookups.extend(records)

    def lookups(self, limit: int) -> list[LookupRecord]:
        indexed = sorted(enumerate(self._t.lookups), key=lambda p: (p[1].at_ms, p[0]), reverse=True)
        return [record for _, record in indexed[:limit]]


class MemoryCursors(_Repo):
    def get(self, source: str) -> str | None:
        return self._t.cursors.get(source)

    def set(self, source: str, cursor: str, now_ms: int) -> None:
        self._t.cursors[source] = cursor


class MemoryCircuits(_Repo):
    def all(self) -> list[CircuitRow]:
        return sorted(self._t.circuits.values())

    def hold(self, destinations: Sequence[str]) -> list[CircuitRow]:
        return [self._t.circuits.get(d) or closed_circuit(d) for d in sorted(set(destinations))]

    def put(self, rows: Sequence[CircuitRow]) -> None:
        self._t.circuits.update((row.destination, row) for row in rows)


class MemoryLog(_Repo):
    def append(self, records: Sequence[LogRecord]) -> None:
        for record in records:
            data = record.data()
            self._t.log.append((record.at_ms, record.subject, data, leaf_hash(data).hex()))

    def size(self) -> int:
        return len(self._t.log)

    def read(self, start: int, limit: int) -> list[tuple[int, bytes, str]]:
        return [(start + i, d, leaf) for i, (_, _, d, leaf) in enumerate(self._t.log[start : start + limit])]

    def about(self, subject: str, limit: int) -> list[tuple[int, bytes]]:
        found = [(i, data) for i, (_, s, data, _) in enumerate(self._t.log) if s == subject]
        return found[:limit]

    def between(self, start_ms: int, end_ms: int, after: int, limit: int) -> list[tuple[int, bytes]]:
        found = [
            (i, d) for i, (at, _, d, _) in enumerate(self._t.log) if i > after and start_ms <= at < end_ms
        ]
        return found[:limit]

    def add_checkpoint(self, checkpoint: StoredCheckpoint) -> bool:
        if checkpoint.size in self._t.checkpoints:
            return False
        self._t.checkpoints[checkpoint.size] = checkpoint
        return True

    def checkpoints(self, limit: int, before_size: int | None = None) -> list[StoredCheckpoint]:
        sizes = sorted(
            (s for s in self._t.checkpoints if before_size is None or s < before_size), reverse=True
        )
        return [self._t.checkpoints[s] for s in sizes[:limit]]

    def stamp(self, size: int, timestamp: str, timestamped_ms: int) -> None:
        kept = self._t.checkpoints.get(size)
        if kept is not None:
            self._t.checkpoints[size] = kept._replace(timestamp=timestamp, timestamped_ms=timestamped_ms)


class MemoryRuns(_Repo):
    def claim(self, run: RunRecord) -> bool:
        key = (run.run_id, run.attempt)
        if key in self._t.runs:
            return False
        self._t.runs[key] = replace(run, counts=dict(run.counts))
        return True

    def finish(self, run: RunRecord) -> None:
        key = (run.run_id, run.attempt)
        seen = self._t.runs.get(key)
        if seen is not None:
            self._t.runs[key] = replace(
                seen,
                outcome=run.outcome,
                ended_ms=run.ended_ms,
                counts=dict(run.counts),
                reports=run.reports,
                detail=run.detail,
            )

    def attempts(self, run_id: str) -> list[RunRecord]:
        return sorted((r for (rid, _), r in self._t.runs.items() if rid == run_id), key=lambda r: r.attempt)

    def recent(self, limit: int, job: str | None) -> list[RunRecord]:
        found = [r for r in self._t.runs.values() if job is None or r.job == job]
        found.sort(key=lambda r: (r.started_ms, r.run_id, r.attempt), reverse=True)
        return found[:limit]

    def latest(self, job: str) -> RunRecord | None:
        found = [r for r in self._t.runs.values() if r.job == job]
        return max(found, key=lambda r: (r.window_end_ms, r.attempt), default=None)

    def last_success(self, job: str) -> RunRecord | None:
        found = [r for r in self._t.runs.values() if r.job == job and r.outcome == "succeeded"]
        return max(found, key=lambda r: r.ended_ms or 0, default=None)

    def abandon(self, job: str, started_before_ms: int, now_ms: int, detail: str) -> int:
        stale = [
            key
            for key, r in self._t.runs.items()
            if r.job == job and r.outcome == "running" and r.started_ms < started_before_ms
        ]
        for key in stale:
            self._t.runs[key] = replace(self._t.runs[key], outcome="failed", ended_ms=now_ms, detail=detail)
        return len(stale)


def _stored(item: IngestItem) -> StoredEvent:
    event = item.event
    dossier = orjson.loads(event.payload)["dossier"]
    return StoredEvent(event.event_id, event.type, event.unit_code, event.occurred_at, dossier, event.caller)


def _view(row: _Row) -> MessageView:
    return MessageView(
        row.message_id,
        row.event_id,
        row.destination,
        row.operation,
        row.dossier_code,
        row.status,
        row.attempts,
        row.created_ms,
        row.updated_ms,
        row.next_attempt_ms,
        row.last_error,
        row.mapping,
        row.mapping_hash,
    )
