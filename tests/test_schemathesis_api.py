"""schemathesis against a running node: for cases it generates from the node's own OpenAPI document, valid
and invalid, every answer is one the document declares (status, content type, schema, headers), none is a
5xx, and what the node stored is only what it accepted, as it was sent."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from hypothesis.strategies import SearchStrategy
from schemathesis import Case, GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import Failure, FailureGroup
from schemathesis.core.result import Ok
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from conftest import AUTH, OPERATOR, Peers, Running, RunNode
from lienthong.store import units
from test_openapi import every_router, paygov, population  # noqa: F401 (fixtures the node uses)

pytestmark = pytest.mark.slow

EXAMPLES = 25
"""Generated cases per operation and mode (valid, invalid): bounded, and the same on every run."""
CONFORMANCE = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
]
# Headers the citizens' look-up needs to get past its first refusal, so that the cases reach further in.
FIXED_HEADERS = {**AUTH, "x-official-id": "CB-0042", "x-purpose": "contract%20test"}


@dataclass
class Exchanges:
    failures: list[str] = field(default_factory=list)
    events_sent: list[tuple[Any, int]] = field(default_factory=list)  # (body, status) of POST /v1/events
    answered: int = 0
    unsatisfiable: list[str] = field(default_factory=list)


def exercise(document: dict[str, Any], base_url: str) -> Exchanges:
    """Run the cases, on a thread of its own (requests blocks; the node serves on the test's loop)."""
    schema = schemathesis.openapi.from_dict(document)
    seen = Exchanges()
    session = requests.Session()
    for result in schema.get_all_operations():
        assert isinstance(result, Ok), result
        operation = result.ok()
        strategy = operation.as_strategy(generation_mode=GenerationMode.POSITIVE, headers=FIXED_HEADERS)
        run_cases(strategy, CONFORMANCE, base_url, session, seen)
        # Invalid cases: also refused with a 4xx.
        strategy = operation.as_strategy(generation_mode=GenerationMode.NEGATIVE, headers=FIXED_HEADERS)
        try:
            run_cases(strategy, [*CONFORMANCE, negative_data_rejection], base_url, session, seen)
        except Unsatisfiable:
            seen.unsatisfiable.append(operation.label)  # nothing in it can be made invalid
    return seen


def run_cases(
    strategy: SearchStrategy[Case[Any]],
    checks: list[Any],
    base_url: str,
    session: requests.Session,
    seen: Exchanges,
) -> None:
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        derandomize=True,
        database=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=strategy)
    def one(case: Case[Any]) -> None:
        response = case.call(base_url=base_url, session=session, timeout=10)
        seen.answered += 1
        if case.operation.path == "/v1/events":
            seen.events_sent.append((case.body, response.status_code))
        try:
            case.validate_response(response, checks=checks)
        except (Failure, FailureGroup) as exc:  # collected, so that one run shows them all
            status, label = response.status_code, case.operation.label
            seen.failures.append(f"{label} answered {status} to {case.body!r:.300}: {exc}")

    one()


@pytest.fixture
async def node(run_node: RunNode, tmp_path: Path, peers: Peers, request: pytest.FixtureRequest) -> Running:
    population_url, paygov_url = request.getfixturevalue("population"), request.getfixturevalue("paygov")
    overrides = every_router(tmp_path, peers, population_url, paygov_url)
    # Deliveries are not what is under test here: events stay where the API put them.
    dispatcher = {"enabled": False, "poll_interval_s": 0.02, "shutdown_grace_s": 2}
    running: Running = await run_node(**overrides, dispatcher=dispatcher)
    return running


async def test_generated_requests_get_only_documented_answers_and_store_only_what_was_accepted(
    node: Running,
) -> None:
    document = (await node.client.get("/openapi.json", headers=OPERATOR)).json()
    seen = await asyncio.to_thread(exercise, document, str(node.client.base_url))

    assert seen.failures == [], "\n\n".join(seen.failures)
    # Nothing to make invalid: no parameter or body, or only a free-form text in the path.
    assert sorted(seen.unsatisfiable) == [
        "GET /admin/v1/backlog",
        "GET /admin/v1/circuits",
        "GET /admin/v1/kpis",
        "GET /healthz",
        "GET /metrics",
        "GET /readyz",
        "GET /v1/messages/{message_id}",
        "GET /v1/payments/{reference}",
    ]
    assert seen.answered >= EXAMPLES * 4
    accepted = [body for body, status in seen.events_sent if status == 202]
    assert accepted, "no generated event was accepted: the cases did not reach the store"
    # What was accepted is stored as it was sent, and reads back through the strict parser.
    taken: set[str] = set()
    for body in accepted:
        for event in body.get("events", [body]):
            stored = await node.node.store.run(units.stored_event, event["event_id"])
            assert stored is not None, event["event_id"]
            assert stored.dossier == event["dossier"]
            assert stored.unit_code == event["unit_code"]
            taken.add(event["event_id"])
    # What was refused left nothing behind.
    for body, status in seen.events_sent:
        if status == 202 or not isinstance(body, dict):
            continue
        listed = body.get("events")
        for event in listed if isinstance(listed, list) else [body]:
            event_id = event.get("event_id") if isinstance(event, dict) else None
            if isinstance(event_id, str) and event_id not in taken:
                assert await node.node.store.run(units.stored_event, event_id) is None, event_id
