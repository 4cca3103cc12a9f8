"""Units of work: what lienthong does with its store, each one transaction on any backend.

Each unit is a module-level function of a ``Tx`` (``store.contract``), so mypy checks its calls against
the repositories, and ``Store.run(unit, *args)`` checks the arguments against the unit. Module-level
functions pickle by name: the same unit runs on a thread or in the store's own process.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import replace
from typing import NamedTuple

from lienthong.citizens.records import LookupRecord
from lienthong.errors import IdempotencyConflict
from lienthong.model import (
    CircuitChange,
    CircuitRow,
    DestinationStats,
    EventRecord,
    IngestItem,
    IngestResult,
    LedgerEntry,
    MappingVersion,
    Message,
    MessageView,
    Outcome,
    PlannedMessage,
    Replay,
    ResultSignature,
    StoredEvent,
)
from lienthong.msglog.records import LogRecord, StoredCheckpoint
from lienthong.payments.records import CallbackRecord, PaymentFinding, PaymentRecord, Settlement, Verdict
from lienthong.payments.state import judge
from lienthong.scheduler.runs import RunRecord
from lienthong.store.contract import KnownEvent, OperatorAction, Tx

Answer = list[IngestResult] | IdempotencyConflict
"""One request's answer: its results, or the conflict that stored none of its events."""


# -- events and messages -----------------------------------------------------------------------------------
def ingest(tx: Tx, requests: Sequence[Sequence[IngestItem]], now_ms: int) -> list[Answer]:
    """Store the events of several requests with their messages and ledger updates.

    Each request is all or nothing: a request reusing an event id with other content (or one another
    caller sent) stores nothing and gets its IdempotencyConflict back; the other requests are stored.
    Set-wise: one look-up for events seen before, then one write per table for all requests.
    """
    known = tx.events.known([item.event.event_id for items in requests for item in items])
    answers: list[Answer] = []
    fresh: list[IngestItem] = []
    for items in requests:
        answer = _resolve(items, known)
        if isinstance(answer, IdempotencyConflict):
            answers.append(answer)
        else:
            answers.append(answer[0])
            fresh += answer[1]
    if fresh:
        tx.events.add(fresh, now_ms)
        tx.outbox.add(fresh, now_ms)
        for entries in _rounds_per_dossier(fresh):
            tx.ledger.apply(entries, now_ms)
    return answers


def push_again(tx: Tx, entry: LedgerEntry, deliveries: tuple[PlannedMessage, ...], now_ms: int) -> bool:
    """New outbox rows delivering the dossier's last event again (a reconciliation found the destination
    out of step): queued behind the dossier's messages still waiting, in its order. False when the event
    is no longer stored."""
    stored = tx.events.get(entry.last_event_id)
    if stored is None:
        return False
    # The outbox row needs the event's id and the dossier's code; the event itself is stored already.
    record = EventRecord(
        stored.event_id,
        stored.type,
        stored.unit_code,
        entry.dossier_code,
        stored.occurred_at,
        "",
        "",
        stored.caller,
    )
    tx.outbox.add([IngestItem(record, deliveries, entry)], now_ms)
    return True


def feed_cursor(tx: Tx, source: str) -> str | None:
    """How far the polled ``source`` has been read (None: not yet)."""
    return tx.cursors.get(source)


def ingest_from_feed(
    tx: Tx, items: Sequence[IngestItem], source: str, cursor: str, now_ms: int
) -> list[Answer]:
    """A polled page: each event on its own (one reusing an id with other content is refused alone), and
    the source's cursor moved past the page, in this one transaction: a page is taken whole or not at
    all, so its events are delivered at least once, and deduplicated by id."""
    answers = ingest(tx, [[item] for item in items], now_ms)
    tx.cursors.set(source, cursor, now_ms)
    return answers


def claim(tx: Tx, now_ms: int, limit: int, lease_ms: int) -> list[Message]:
    """Take up to ``limit`` due messages, leased for ``lease_ms``; lapsed leases are due again."""
    return settle_and_claim(tx, (), now_ms, limit, now_ms + lease_ms).messages


class Cycle(NamedTuple):
    """What a dispatcher's cycle gets back: the messages it claimed, and every destination's circuit as
    the nodes share it."""

    messages: list[Message]
    circuits: list[CircuitRow]


def settle_and_claim(
    tx: Tx,
    outcomes: Sequence[Outcome],
    now_ms: int,
    limit: int,
    lease_until_ms: int,
    *,
    orphaned: Sequence[int] = (),
    circuits: Sequence[CircuitChange] | None = None,
) -> Cycle:
    """The dispatcher's one transaction per cycle: write the outcomes gathered since the last one (with
    the events they raise), free what earlier cycles claimed under the ``orphaned`` leases (their answers
    never arrived), apply this node's circuit changes that still hold, then take up to ``limit`` due
    messages, leased until ``lease_until_ms``, and read the circuits back."""
    if outcomes:
        complete(tx, outcomes)
    tx.outbox.drop_leases(orphaned)
    if circuits:
        change_circuits(tx, circuits, now_ms)
    messages: list[Message] = []
    if limit > 0:
        tx.outbox.release(now_ms=now_ms)
        messages = tx.outbox.claim(now_ms, limit, lease_until_ms)
    return Cycle(messages, tx.circuits.all() if circuits is not None else [])


CLOSED, HALF_OPEN, OPEN = 0, 1, 2
PROBE_STALE_MS = 900_000
"""A half-open circuit whose probe has not ended in this long (its message gone: discarded, say) lets
another probe through."""


def change_circuits(tx: Tx, changes: Sequence[CircuitChange], now_ms: int) -> list[CircuitRow]:
    """Apply the changes that still hold against the rows as other nodes left them, in order; the rows
    written. A node's view is a cycle old, so its change is a wish: a trip opens a circuit only if it is
    still closed; only one node's probe is let through; only that probe's end closes or reopens it."""
    rows = {row.destination: row for row in tx.circuits.hold([c.destination for c in changes])}
    changed: dict[str, CircuitRow] = {}
    for change in changes:
        row = rows[change.destination]
        new = apply_circuit_change(row, change, now_ms)
        if new is not None:
            rows[change.destination] = changed[change.destination] = new
    tx.circuits.put(list(changed.values()))
    return list(changed.values())


def apply_circuit_change(row: CircuitRow, change: CircuitChange, now_ms: int) -> CircuitRow | None:
    """The row after ``change``, or None when the change no longer holds."""
    if change.kind == "trip" and row.state == CLOSED:
        return row._replace(
            state=OPEN,
            open_for_ms=change.open_for_ms,
            reopen_at_ms=now_ms + change.open_for_ms,
            probe=None,
            updated_ms=now_ms,
        )
    if change.kind == "want_probe" and (
        (row.state == OPEN and row.reopen_at_ms <= now_ms)
        or (row.state == HALF_OPEN and row.updated_ms + PROBE_STALE_MS <= now_ms)
    ):
        return row._replace(state=HALF_OPEN, probe=change.message_id, updated_ms=now_ms)
    if row.state == HALF_OPEN and row.probe is not None and row.probe == change.message_id:
        if change.kind == "probe_failed":
            return row._replace(
                state=OPEN,
                open_for_ms=change.open_for_ms,
                reopen_at_ms=now_ms + change.open_for_ms,
                probe=None,
                updated_ms=now_ms,
            )
        if change.kind == "probe_passed":
            return row._replace(state=CLOSED, open_for_ms=0, reopen_at_ms=0, probe=None, updated_ms=now_ms)
    return None


def complete(tx: Tx, outcomes: Sequence[Outcome]) -> None:
    """Write outcomes, the events they raise (``delivery.failed``) and the message log's record of each
    attempt, in this one transaction."""
    tx.outbox.finish(outcomes)
    tx.log.append(
        [
            LogRecord(
                o.finished_ms,
                "delivery",
                o.message_id,
                o.actor,
                o.kind,
                o.request_sha256,
                o.response_sha256,
                f"attempt {o.attempt}" + (f", http {o.http_status}" if o.http_status is not None else ""),
            )
            for o in outcomes
            if o.kind != "held"  # not an attempt
        ]
    )
    raised = [[item] for o in outcomes for item in o.raises]
    if raised:
        # Ids of raised events derive from the outcome (``failed:<message>:<attempt>``): a repeat is a
        # duplicate, never a conflict.
        ingest(tx, raised, max(o.finished_ms for o in outcomes))


def recover(tx: Tx) -> int:
    """Return every message in flight to pending (at start: no delivery of this node is under way)."""
    return tx.outbox.release(now_ms=None)


def message(tx: Tx, message_id: str) -> MessageView | None:
    return tx.outbox.message(message_id)


def stats(tx: Tx) -> list[DestinationStats]:
    return tx.outbox.stats()


def dead_letters(tx: Tx, destination: str | None, limit: int) -> list[MessageView]:
    return tx.outbox.dead(destination, limit)


def replay(tx: Tx, replays: Sequence[Replay], by: str, reason: str, now_ms: int) -> list[str]:
    return tx.outbox.replay(replays, by=by, reason=reason, now_ms=now_ms)


def dead_letters_between(
    tx: Tx, destination: str | None, since_ms: int | None, until_ms: int | None, limit: int
) -> list[MessageView]:
    """Dead letters (of ``destination``) that died in [``since_ms``, ``until_ms``), oldest first."""
    return tx.outbox.dead_between(destination, since_ms, until_ms, limit)


def replay_by_operator(tx: Tx, replays: Sequence[Replay], by: str, reason: str, now_ms: int) -> list[str]:
    """Replay dead letters and record each one replayed as an operator's action, in one transaction."""
    done = tx.outbox.replay(replays, by=by, reason=reason, now_ms=now_ms)
    _record_actions(tx, [OperatorAction(now_ms, by, "replay", i, reason) for i in done])
    return done


def discard(tx: Tx, message_ids: Sequence[str], by: str, reason: str, now_ms: int) -> list[str]:
    """Discard dead letters for good, recording who and why for each one discarded."""
    done = tx.outbox.discard(message_ids, now_ms=now_ms)
    _record_actions(tx, [OperatorAction(now_ms, by, "discard", i, reason) for i in done])
    return done


def record_action(tx: Tx, action: OperatorAction) -> None:
    _record_actions(tx, [action])


def _record_actions(tx: Tx, actions: Sequence[OperatorAction]) -> None:
    """Operators' actions, and the message log's record of each (the reason as a hash: it is free text)."""
    tx.actions.record(actions)
    tx.log.append(
        [
            LogRecord(a.at_ms, "operator", a.message_id, a.actor, a.action, _sha256(a.reason), "", a.detail)
            for a in actions
        ]
    )


def operator_actions(tx: Tx, limit: int, message_id: str | None) -> list[OperatorAction]:
    return tx.actions.recent(limit, message_id)


def stored_event(tx: Tx, event_id: str) -> StoredEvent | None:
    return tx.events.get(event_id)


def ledger_entry(tx: Tx, dossier_code: str) -> LedgerEntry | None:
    return tx.ledger.get(dossier_code)


def record_result_signature(tx: Tx, signature: ResultSignature, now_ms: int) -> None:
    """The verdict on the PDF signatures of a dossier's results (``adapters.results``); a verdict already
    stored for a later event of the dossier stays."""
    tx.ledger.record_signature(signature, now_ms)


def ledger_page(tx: Tx, after: str, limit: int) -> list[LedgerEntry]:
    """The next ``limit`` dossiers after the code ``after``, in code order: the ledger read in pages."""
    return tx.ledger.page(after, limit)


# -- mappings and audit ------------------------------------------------------------------------------------
def save_mappings(tx: Tx, versions: Sequence[MappingVersion], now_ms: int) -> None:
    tx.mappings.save(versions, now_ms)


def mapping_version(tx: Tx, mapping_hash: str) -> MappingVersion | None:
    return tx.mappings.get(mapping_hash)


def record_lookup(tx: Tx, record: LookupRecord) -> None:
    """A prefill look-up's audit record, and the message log's (no personal data: the request id, the
    caller, the form and the outcome)."""
    tx.audit.record_lookups([record])
    tx.log.append(
        [
            LogRecord(
                record.at_ms, "lookup", record.request_id, record.caller, record.outcome, detail=record.form
            )
        ]
    )


def lookups(tx: Tx, limit: int) -> list[LookupRecord]:
    return tx.audit.lookups(limit)


# -- payments ----------------------------------------------------------------------------------------------
def save_payment(tx: Tx, payment: PaymentRecord) -> None:
    tx.payments.save(payment)


def payment(tx: Tx, reference: str) -> PaymentRecord | None:
    return tx.payments.get(reference)


def record_callback(tx: Tx, record: CallbackRecord) -> None:
    _record_callback(tx, record)


def _record_callback(tx: Tx, record: CallbackRecord) -> None:
    """A payment callback's record, and the message log's: its body as a hash, and the verdict."""
    tx.payments.record_callback(record)
    tx.log.append(
        [
            LogRecord(
                record.received_ms,
                "callback",
                record.reference,
                record.source or record.channel,
                record.verdict,
                record.body_sha256,
                "",
                f"{record.channel} {record.status}",
            )
        ]
    )


def callbacks(tx: Tx, limit: int, reference: str | None) -> list[CallbackRecord]:
    return tx.payments.callbacks(limit, reference)


def paid_between(tx: Tx, start_ms: int, end_ms: int) -> list[PaymentRecord]:
    """Payments paid (last moved) in [start_ms, end_ms): what a bank statement of the time must show."""
    return tx.payments.paid_between(start_ms, end_ms)


def unsettled_payments(tx: Tx, before_ms: int, limit: int) -> list[PaymentRecord]:
    """Payments neither paid nor failed, last moved before ``before_ms``, oldest first."""
    return tx.payments.unsettled(before_ms, limit)


def payment_findings(tx: Tx, limit: int) -> list[PaymentFinding]:
    return tx.payments.findings(limit)


def settle_payment(tx: Tx, settlement: Settlement, now_ms: int) -> Verdict:
    """Judge a verified callback against its payment (``payments.state.judge``) and apply the verdict:
    move the payment forward and store ``payment.confirmed`` when it pays; record a duplicate payment as
    a finding; record the callback with its verdict in every case (decision 0007)."""
    claim_, record, confirmed = settlement
    current = tx.payments.hold(claim_.reference)
    verdict = judge(current, claim_)
    if verdict == "accepted" and claim_.status == "paid":
        verdict = _confirm(tx, confirmed, now_ms)
    elif verdict == "repeat" and claim_.status == "paid" and confirmed is not None:
        # The same transaction again: the stored event's content, or other content (another time, another
        # bank), refused like any reused event id. Nothing is stored either way.
        seen = tx.events.known([confirmed.event.event_id]).get(confirmed.event.event_id)
        if seen is not None and seen.payload_sha256 != confirmed.event.payload_sha256:
            verdict = "transaction_reused"
    if verdict == "accepted":
        tx.payments.move(claim_, now_ms)
    elif verdict == "duplicate_payment":
        assert current is not None
        detail = (
            f"{claim_.amount} paid again through {claim_.channel} ({claim_.transaction_id}) for a reference"
            f" already paid through {current.channel} ({current.transaction_id})"
        )
        tx.payments.add_finding(
            PaymentFinding(
                now_ms,
                verdict,
                claim_.reference,
                claim_.channel,
                claim_.transaction_id,
                claim_.amount,
                detail,
            )
        )
    elif verdict == "stale":
        assert current is not None
        detail = (
            f"{claim_.status} of another transaction ({claim_.channel} {claim_.transaction_id[:64]}):"
            f" the payment stays {current.status} through {current.channel} ({current.transaction_id[:64]})"
        )
        record = replace(record, detail=detail[:200])
    _record_callback(tx, replace(record, verdict=verdict))
    return verdict


def _confirm(tx: Tx, confirmed: IngestItem | None, now_ms: int) -> Verdict:
    """Store the ``payment.confirmed`` event of a payment being paid."""
    if confirmed is None:  # the payment appeared after the caller looked: it asks again
        return "unknown_reference"
    (answer,) = ingest(tx, [[confirmed]], now_ms)
    return "transaction_reused" if isinstance(answer, IdempotencyConflict) else "accepted"


# -- helpers -----------------------------------------------------------------------------------------------
def _resolve(
    items: Sequence[IngestItem], known: dict[str, KnownEvent]
) -> tuple[list[IngestResult], list[IngestItem]] | IdempotencyConflict:
    """One request's results and the items it adds, or its conflict. ``known`` learns what it adds, so a
    later request repeating an event sees a duplicate; a conflicting request adds nothing.

    An event id another caller sent is a conflict whatever the content: a caller never learns of, nor
    rides on, another's events (events stored before callers were recorded have caller '')."""
    results: list[IngestResult] = []
    fresh: list[IngestItem] = []
    added: list[str] = []
    for item in items:
        event_id, sha, caller = item.event.event_id, item.event.payload_sha256, item.event.caller
        seen = known.get(event_id)
        if seen is not None:
            if seen.payload_sha256 != sha or (seen.caller and seen.caller != caller):
                for undo in added:
                    del known[undo]
                return IdempotencyConflict(event_id)
            results.append(IngestResult(event_id, seen.message_ids, duplicate=True))
            continue
        ids = tuple(d.message_id for d in item.deliveries)
        known[event_id] = KnownEvent(sha, ids, caller)
        added.append(event_id)
        fresh.append(item)
        results.append(IngestResult(event_id, ids, duplicate=False))
    return results, fresh


def _rounds_per_dossier(items: Sequence[IngestItem]) -> list[list[LedgerEntry]]:
    """The items' ledger entries in rounds, each holding at most one entry per dossier (one statement may
    not upsert the same row twice): round k holds each dossier's k-th event, in the items' order. Applied
    round after round, the store's upsert sees a dossier's events one after another, as sent apart: a
    later one keeps what it leaves out, an older one than the row changes nothing. Most batches hold one
    event per dossier: one round."""
    rounds: list[list[LedgerEntry]] = []
    seen: dict[str, int] = {}
    for item in items:
        entry = item.ledger
        k = seen.get(entry.dossier_code, 0)
        seen[entry.dossier_code] = k + 1
        if k == len(rounds):
            rounds.append([])
        rounds[k].append(entry)
    return rounds


# -- scheduler run history ---------------------------------------------------------------------------------
def claim_run(tx: Tx, run: RunRecord) -> bool:
    """Record the attempt ``run`` unless its run id has that attempt already: True when this caller runs
    it (attempt 1 is the claim on the window). A forced run is an operator's action in the message log."""
    claimed = tx.runs.claim(run)
    if claimed and run.forced_by:
        record = LogRecord(
            run.started_ms,
            "operator",
            run.run_id,
            run.forced_by,
            "forced run",
            _sha256(run.forced_reason or ""),
        )
        tx.log.append([record])
    return claimed


def claim_retry(tx: Tx, run: RunRecord) -> bool:
    """``claim_run`` for a retry the scheduler makes: the operator who forced the run acted once, when
    its first attempt was claimed, so nothing more is logged."""
    return tx.runs.claim(run)


def skip_runs(tx: Tx, runs: Sequence[RunRecord]) -> int:
    """Record missed windows as skipped, each unless its run id has an attempt already; how many."""
    return sum(tx.runs.claim(run) for run in runs)


def finish_run(tx: Tx, run: RunRecord) -> None:
    tx.runs.finish(run)


def run_attempts(tx: Tx, run_id: str) -> list[RunRecord]:
    return tx.runs.attempts(run_id)


def recent_runs(tx: Tx, limit: int, job: str | None) -> list[RunRecord]:
    return tx.runs.recent(limit, job)


def latest_run(tx: Tx, job: str) -> RunRecord | None:
    return tx.runs.latest(job)


def last_success(tx: Tx, job: str) -> RunRecord | None:
    return tx.runs.last_success(job)


def abandon_runs(tx: Tx, job: str, started_before_ms: int, now_ms: int, detail: str) -> int:
    return tx.runs.abandon(job, started_before_ms, now_ms, detail)


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


# -- the message log -----------------------------------------------------------------------------------------
def log_size(tx: Tx) -> int:
    return tx.log.size()


def log_records(tx: Tx, start: int, limit: int) -> list[tuple[int, bytes, str]]:
    """Up to ``limit`` records' (index, bytes, leaf hash) from ``start``."""
    return tx.log.read(start, limit)


def log_about(tx: Tx, subject: str, limit: int) -> list[tuple[int, bytes]]:
    return tx.log.about(subject, limit)


def log_between(tx: Tx, start_ms: int, end_ms: int, after: int, limit: int) -> list[tuple[int, bytes]]:
    return tx.log.between(start_ms, end_ms, after, limit)


def log_checkpoints(tx: Tx, limit: int, before_size: int | None = None) -> list[StoredCheckpoint]:
    return tx.log.checkpoints(limit, before_size)


def add_log_checkpoint(tx: Tx, checkpoint: StoredCheckpoint) -> bool:
    """Keep a checkpoint unless one of its size is kept already (another node made it first)."""
    return tx.log.add_checkpoint(checkpoint)


def stamp_log_checkpoint(tx: Tx, size: int, timestamp: str, timestamped_ms: int) -> None:
    tx.log.stamp(size, timestamp, timestamped_ms)


def reseal_payloads(tx: Tx, after: str, limit: int) -> tuple[str | None, int]:
    """One page of ``keys rotate``: events' payloads sealed anew with the current key."""
    return tx.events.reseal(after, limit)


def reseal_payment_dossiers(tx: Tx, after: str, limit: int) -> tuple[str | None, int]:
    """One page of ``keys rotate``: the dossiers payments carry, sealed anew with the current key."""
    return tx.payments.reseal(after, limit)


def purge_payloads(tx: Tx, after: str, limit: int, received_before_ms: int) -> tuple[str | None, int]:
    """One page of the retention job: payloads of settled events received before the cut purged."""
    return tx.events.purge(after, limit, received_before_ms)
