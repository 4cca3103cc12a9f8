"""The admin API, ``/admin/v1/…``: what ``lienthong dlq`` does, for operators' tools and the web console.

Only operators' tokens (``admin.tokens``) are let in: a provincial system's token (``auth.tokens``) is
refused with 403, anything else with 401. Every replay, discard and reveal is recorded in the store with
the operator's name and the reason given (``bus.deadletters``). Replays are rate-limited for all operators
together (``admin.replays_per_second``): a replay storm answers 429 with Retry-After, so that a destination
just back up is not buried.
"""

# No ``from __future__ import annotations`` here: FastAPI reads the annotations at run time.
import dataclasses
import hashlib
import hmac
import logging
import math
import time
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Annotated, Any, Literal, NamedTuple

import orjson
from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.openapi.models import HTTPBearer as HTTPBearerModel
from fastapi.security.base import SecurityBase
from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import Response
from typing_extensions import TypedDict

from lienthong.api.errors import STORE_UNAVAILABLE, answer, error_response, refusals
from lienthong.bus.circuits import CircuitBreakers
from lienthong.bus.deadletters import DeadLetters, Filter, ReplayPlan, error_class
from lienthong.checks.jobs import KpiRow, read_kpi_rows
from lienthong.model import ERROR_CLASSES, MessageView
from lienthong.scheduler.runs import RunRecord
from lienthong.store import Store, units
from lienthong.timefmt import DISPLAY_ZONE, moment, with_moments

log = logging.getLogger("lienthong.api.admin")

MAX_IDS = 500
"""The most messages one replay or discard names."""


class AdminAuth(SecurityBase):
    """Operators' bearer tokens: ``identify`` names the operator a token belongs to. As a FastAPI
    dependency: the operator's name; 401 for no token or an unknown one, 403 for a caller's."""

    def __init__(self, operators: dict[str, str], callers: Sequence[str]) -> None:
        """``operators`` maps each operator token's SHA-256 hex to its holder; ``callers`` are the SHA-256
        of the provincial systems' tokens (``auth.tokens``)."""
        self.model = HTTPBearerModel(
            description="An operator's token (`admin.tokens`); a provincial system's token is refused (403)."
        )
        self.scheme_name = "admin"
        # A hash listed as both is a caller's: an operator's power is never granted by accident.
        self._operators = [(bytes.fromhex(d), n) for d, n in operators.items() if d not in set(callers)]
        self._callers = [bytes.fromhex(d) for d in callers]

    def identify(self, token: str) -> str | None:
        """The operator holding ``token``, or None. Every entry is compared: time does not tell which."""
        presented = hashlib.sha256(token.strip().encode()).digest()
        name = None
        for digest, holder in self._operators:
            if hmac.compare_digest(presented, digest):
                name = holder
        return name

    def is_caller(self, token: str) -> bool:
        presented = hashlib.sha256(token.strip().encode()).digest()
        found = False
        for digest in self._callers:  # every entry compared, as in identify
            found |= hmac.compare_digest(presented, digest)
        return found

    async def __call__(self, request: Request) -> str:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise _refused(request, 401, "unauthorized", "missing bearer token: send an operator's token")
        name = self.identify(token)
        if name is not None:
            return name
        if self.is_caller(token):
            raise _refused(
                request, 403, "forbidden", "this token is a caller's, not an operator's (admin.tokens)"
            )
        raise _refused(request, 401, "unauthorized", "invalid bearer token")


def _refused(request: Request, status: int, code: str, message: str) -> HTTPException:
    client = request.client.host if request.client else "unknown"
    log.warning("refused %s %s from %s: %s", request.method, request.url.path, client, message)
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return HTTPException(status, detail={"code": code, "message": message}, headers=headers)


class ReplayLimit:
    """A token bucket of dead letters made pending, ``per_s`` a second, at most one second's worth at once,
    for every operator together. ``clock`` (monotonic seconds) is injected for tests."""

    def __init__(self, per_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.per_s = per_s
        self.capacity = max(1.0, per_s)
        self._clock = clock
        self._tokens = self.capacity
        self._at = clock()

    def take(self, count: int) -> float:
        """Take ``count`` replays: 0.0 when allowed, else the seconds to wait before asking again."""
        now = self._clock()
        self._tokens = min(self.capacity, self._tokens + (now - self._at) * self.per_s)
        self._at = now
        if count <= self._tokens:
            self._tokens -= count
            return 0.0
        return max(count - self._tokens, 0.0) / self.per_s


class Kpis(NamedTuple):
    """Every unit's rates and targets from ``run`` (None: no run yet), or why they cannot be shown."""

    run: RunRecord | None
    rows: list[KpiRow]
    missing: str


@dataclasses.dataclass
class Operations:
    """What the admin API and the console do, on one node: dead letters, backlog, circuits, runs."""

    store: Store
    dead_letters: DeadLetters
    destinations: Sequence[str]
    circuits: Callable[[], Sequence[CircuitBreakers]]
    limit: ReplayLimit

    async def kpis(self) -> Kpis:
        """The latest successful ``kpis`` run's rows, or why there are none to show."""
        run = await self.store.run(units.last_success, "kpis")
        if run is None:
            return Kpis(None, [], "no KPI run has succeeded yet (the kpis job: README, Scheduled jobs)")
        try:
            return Kpis(run, read_kpi_rows(run), "")
        except LookupError as exc:
            return Kpis(run, [], str(exc))

    def circuit_states(self) -> list[dict[str, str]]:
        breakers = self.circuits()
        if not breakers:
            return [{"destination": d, "state": "disabled"} for d in self.destinations]
        return [{"destination": d, "state": breakers[0].state(d).name.lower()} for d in self.destinations]

    async def replay(
        self, ids: list[str], *, by: str, reason: str, mapping: Literal["original", "current"], dry_run: bool
    ) -> tuple[list[ReplayPlan], list[str]]:
        """Plans for ``ids`` and, unless ``dry_run``, the ids replayed. LookupError: not dead letters;
        RateLimited: too many replays just now."""
        plans = await self.dead_letters.plan(ids, mapping=mapping)
        if dry_run:
            return plans, []
        wait_s = self.limit.take(len(plans))
        if wait_s:
            raise RateLimited(wait_s, len(plans), self.limit.capacity)
        return plans, await self.dead_letters.replay(plans, by=by, reason=reason)


class RateLimited(Exception):
    def __init__(self, wait_s: float, asked: int, capacity: float) -> None:
        self.wait_s = wait_s
        more = f"; at most {math.floor(capacity)} in one replay" if asked > capacity else ""
        super().__init__(
            f"too many replays just now (admin.replays_per_second){more}: wait {math.ceil(wait_s)} s"
        )


# -- what the API takes and answers --------------------------------------------------------------------
Reason = Annotated[str, Field(min_length=1, max_length=1000, pattern=r"\S", description="Why (recorded).")]
Ids = Annotated[list[str], Field(min_length=1, max_length=MAX_IDS, description="The dead letters' ids.")]


class ReplayRequest(BaseModel):
    """Replay dead letters (or only say what would happen: ``dry_run``)."""

    model_config = ConfigDict(extra="forbid")
    message_ids: Ids
    reason: Reason
    mapping: Literal["original", "current"] = "original"
    dry_run: bool = False


class DiscardRequest(BaseModel):
    """Set dead letters aside for good."""

    model_config = ConfigDict(extra="forbid")
    message_ids: Ids
    reason: Reason


class Plan(TypedDict):
    message_id: str
    mapping: str | None
    mapping_hash: str | None
    changes_version: bool
    problem: Annotated[str | None, Field(description="Why it would fail again at once; null: maps cleanly.")]


class ReplayAnswer(TypedDict):
    dry_run: bool
    plans: list[Plan]
    replayed: list[str]


class DiscardAnswer(TypedDict):
    discarded: list[str]


class DeadLetter(TypedDict):
    """A dead letter as listed: its record, its error class, and its moments as ISO 8601 text too."""

    message_id: str
    event_id: str
    destination: str
    operation: str
    dossier_code: str
    status: str
    attempts: int
    created_ms: int
    updated_ms: int
    last_error: str | None
    error_class: Literal[ERROR_CLASSES]  # type: ignore[valid-type]
    updated: str


class DeadLetters_(TypedDict):
    dead_letters: list[DeadLetter]


class Action(TypedDict):
    at_ms: int
    actor: str
    action: Literal["replay", "discard", "reveal"]
    message_id: str
    reason: str
    detail: str


class Shown(TypedDict):
    """One message with every attempt (personal data masked unless revealed), and what operators did."""

    message: dict[str, Any]
    revealed: bool
    actions: list[Action]


class Circuit(TypedDict):
    destination: str
    state: Literal["closed", "half_open", "open", "disabled"]


class Circuits(TypedDict):
    circuits: list[Circuit]


class KpiTable(TypedDict):
    run_id: str | None
    as_of: str | None
    rows: list[dict[str, Any]]
    missing: str | None


_KPIS: dict[str, Any] = {
    "run_id": "kpis:2026-12-02T00:00+07:00",
    "as_of": "2026-12-02T00:00:00+07:00",
    "rows": [{"unit": "000.00.20.H56", "kpi": "online", "rate": 0.58, "target": 0.6, "below": True}],
    "missing": None,
}


class Backlog(TypedDict):
    destinations: list[dict[str, Any]]


class Runs(TypedDict):
    runs: list[dict[str, Any]]


class Actions(TypedDict):
    actions: list[Action]


_COMMON = {
    401: "No bearer token, or not an operator's (`unauthorized`)",
    403: "A provincial system's token: operators only (`forbidden`)",
    503: STORE_UNAVAILABLE,
}


def admin_router(*, ops: Operations, auth: AdminAuth) -> APIRouter:
    router = APIRouter(prefix="/admin/v1", tags=["admin"])
    Operator = Annotated[str, Depends(auth)]

    @router.get(
        "/backlog", responses={200: answer(Backlog, _BACKLOG, "Per destination"), **refusals(_COMMON)}
    )
    async def backlog(operator: Operator) -> Response:
        """Messages pending, in flight and dead, per destination."""
        stats = await ops.store.run(units.stats)
        return _json({"destinations": [with_moments(dataclasses.asdict(s)) for s in stats]})

    @router.get(
        "/dead-letters",
        responses={
            200: answer(DeadLetters_, {"dead_letters": []}, "Oldest first"),
            **refusals({**_COMMON, 422: "A filter that is not one (`invalid_request`)"}),
        },
    )
    async def dead_letters(
        *,
        operator: Operator,
        destination: Annotated[str | None, Query(max_length=200)] = None,
        error_class_: Annotated[
            Literal[ERROR_CLASSES] | None,  # type: ignore[valid-type]
            Query(alias="error_class", description="One of the error classes."),
        ] = None,
        since: Annotated[
            datetime | None, Query(description="Dead at or after (ISO 8601; +07:00 if no zone).")
        ] = None,
        until: Annotated[datetime | None, Query(description="Dead before.")] = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    ) -> Response:
        """Dead letters by destination, error class and when they died."""
        where = Filter(destination, error_class_, _ms(since), _ms(until))
        letters = await ops.dead_letters.listing(limit=limit, where=where)
        return _json({"dead_letters": [_letter(m) for m in letters]})

    @router.get(
        "/messages/{message_id}",
        responses={
            200: answer(Shown, _SHOWN, "The message, its attempts, operators' actions on it"),
            **refusals({**_COMMON, 404: "No such message (`not_found`)"}),
        },
    )
    async def show(
        message_id: str,
        operator: Operator,
        reveal: Annotated[bool, Query(description="Personal data unmasked: recorded and logged.")] = False,
        reason: Annotated[str, Query(max_length=1000, description="With reveal: why (recorded).")] = "",
    ) -> Response:
        """One message with every attempt; personal data masked unless ``reveal``."""
        try:
            view = await ops.dead_letters.show(
                message_id, reveal_by=operator if reveal else None, reason=reason
            )
        except LookupError:
            return error_response(404, "not_found", f"no message {message_id[:64]!r}")
        actions = await ops.store.run(units.operator_actions, 50, message_id)
        return _json(
            {"message": _message(view), "revealed": reveal, "actions": [a._asdict() for a in actions]}
        )

    @router.post(
        "/dead-letters/replay",
        responses={
            200: answer(ReplayAnswer, _REPLAYED, "What each replay does (dry run) or did"),
            **refusals(
                {
                    **_COMMON,
                    400: "The body is not JSON (`http_error`)",
                    409: "A message that is not a dead letter (`not_dead_letter`): nothing replayed",
                    422: "No reason, no ids, too many ids (`invalid_request`)",
                    429: "Too many replays just now (`rate_limited`): wait `Retry-After` seconds",
                }
            ),
        },
    )
    async def replay(body: ReplayRequest, operator: Operator) -> Response:
        """Replay dead letters with a fresh retry budget (or, ``dry_run``, map each and change nothing)."""
        try:
            plans, done = await ops.replay(
                body.message_ids, by=operator, reason=body.reason, mapping=body.mapping, dry_run=body.dry_run
            )
        except LookupError as exc:
            return error_response(409, "not_dead_letter", str(exc), path="message_ids")
        except RateLimited as exc:
            headers = {"retry-after": str(math.ceil(exc.wait_s))}
            return error_response(429, "rate_limited", str(exc), headers=headers)
        return _json({"dry_run": body.dry_run, "plans": [_plan(p) for p in plans], "replayed": done})

    @router.post(
        "/dead-letters/discard",
        responses={
            200: answer(DiscardAnswer, {"discarded": ["m-0651f2a3c4d5e6000001a1b2c3"]}, "Discarded"),
            **refusals(
                {
                    **_COMMON,
                    400: "The body is not JSON (`http_error`)",
                    409: "A message that is not a dead letter (`not_dead_letter`): nothing discarded",
                    422: "No reason, no ids, too many ids (`invalid_request`)",
                }
            ),
        },
    )
    async def discard(body: DiscardRequest, operator: Operator) -> Response:
        """Set dead letters aside for good: never delivered, never replayed; recorded with who and why."""
        try:
            done = await ops.dead_letters.discard(body.message_ids, by=operator, reason=body.reason)
        except LookupError as exc:
            return error_response(409, "not_dead_letter", str(exc), path="message_ids")
        return _json({"discarded": done})

    @router.get(
        "/circuits", responses={200: answer(Circuits, _CIRCUITS, "Each destination's"), **refusals(_COMMON)}
    )
    async def circuits(operator: Operator) -> Response:
        """Each destination's circuit, as the nodes share it through the store (this node's view, at most
        one dispatcher cycle old)."""
        return _json({"circuits": ops.circuit_states()})

    @router.get("/kpis", responses={200: answer(KpiTable, _KPIS, "Every unit's rates"), **refusals(_COMMON)})
    async def kpis(operator: Operator) -> Response:
        """Every unit's KPI rates against the directives' targets, from the latest successful ``kpis`` run;
        ``missing`` says why there are none (no run yet, or its report is on another node's disk)."""
        found = await ops.kpis()
        return _json(
            {
                "run_id": found.run.run_id if found.run else None,
                "as_of": moment(found.run.window_end_ms) if found.run else None,
                "rows": [row._asdict() for row in found.rows],
                "missing": found.missing or None,
            }
        )

    @router.get("/runs", responses={200: answer(Runs, {"runs": []}, "Newest first"), **refusals(_COMMON)})
    async def runs(operator: Operator, limit: Annotated[int, Query(ge=1, le=500)] = 20) -> Response:
        """The scheduler's latest runs (reconciliations, checks, KPIs), newest first."""
        recent = await ops.store.run(units.recent_runs, limit, None)
        return _json({"runs": [_run(r) for r in recent]})

    @router.get(
        "/actions", responses={200: answer(Actions, {"actions": []}, "Newest first"), **refusals(_COMMON)}
    )
    async def actions(
        operator: Operator,
        message_id: Annotated[str | None, Query(max_length=200)] = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    ) -> Response:
        """Operators' replays, discards and reveals: who, when, why."""
        found = await ops.store.run(units.operator_actions, limit, message_id)
        return _json({"actions": [a._asdict() for a in found]})

    return router


_ID = "m-0651f2a3c4d5e6000001a1b2c3"
_ACTION = {"at_ms": 1764000000000, "actor": "lan", "action": "reveal", "message_id": _ID, "reason": "a call"}
_SHOWN = {
    "message": {
        "message_id": _ID,
        "status": "dead",
        "last_error": "portal.DongBoHoSoMC: … (remote code 400)",
    },
    "revealed": False,
    "actions": [{**_ACTION, "detail": ""}],
}
_PLAN = {"message_id": _ID, "mapping": "portal_dossier", "mapping_hash": "3f2a", "changes_version": False}
_REPLAYED = {"dry_run": False, "plans": [{**_PLAN, "problem": None}], "replayed": [_ID]}
_CIRCUITS = {"circuits": [{"destination": "portal", "state": "open"}]}
_BACKLOG = {"destinations": [{"destination": "portal", "pending": 3, "inflight": 1, "dead": 2}]}


def _json(payload: Any) -> Response:
    return Response(orjson.dumps(payload), media_type="application/json")


def _ms(moment: datetime | None) -> int | None:
    if moment is None:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=DISPLAY_ZONE)
    return int(moment.timestamp() * 1000)


def _message(view: MessageView) -> dict[str, Any]:
    return {**with_moments(dataclasses.asdict(view)), "error_class": error_class(view.last_error)}


def _letter(view: MessageView) -> dict[str, Any]:
    fields = ("message_id", "event_id", "destination", "operation", "dossier_code", "status", "attempts")
    out: dict[str, Any] = {name: getattr(view, name) for name in fields}
    out |= {"created_ms": view.created_ms, "updated_ms": view.updated_ms, "last_error": view.last_error}
    return {**with_moments(out), "error_class": error_class(view.last_error)}


def _plan(plan: ReplayPlan) -> dict[str, Any]:
    return {
        "message_id": plan.message.message_id,
        "mapping": plan.message.mapping,
        "mapping_hash": plan.mapping_hash,
        "changes_version": plan.changes_version,
        "problem": plan.problem,
    }


def _run(run: RunRecord) -> dict[str, Any]:
    return dict(with_moments({**dataclasses.asdict(run), "reports": list(run.reports)}))
