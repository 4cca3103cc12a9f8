"""The API contract: the OpenAPI document a node serves says what it really takes and answers, and /docs
works with no network (its assets are served by the node itself)."""

from __future__ import annotations

import asyncio
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import TypeAdapter

from browser import headless
from conftest import AUTH, OPERATOR, ROUTES, Peers, Running, RunNode, config_dict
from lienthong.api.schemas import Accepted, BatchAccepted
from lienthong.sandbox.dossiers import generate
from lienthong.sandbox.paygov import PayGovSandbox
from lienthong.sandbox.population import PopulationSandbox, synthetic_citizen
from lienthong.serving import ThreadedServer

CITIZEN_ID = "046090000123"
BANK_SECRET = "bank-secret-for-the-contract-tests"
REFUSALS = {"400", "401", "403", "404", "408", "409", "413", "422", "429", "431", "502", "503"}
ANYWHERE = {"400", "408", "413", "431", "503"}
"""Refused before any route sees the request (a request that is not HTTP, a head too large or too slow, a
body too large or too many at once): every operation declares them (``errors.BEFORE_ANY_ROUTE``)."""


@pytest.fixture
def population() -> Iterator[str]:
    peer = PopulationSandbox()
    peer.add(synthetic_citizen(CITIZEN_ID, "Nguyễn Thị Thu Hà"))
    with ThreadedServer(lambda: peer) as server:
        yield server.url


@pytest.fixture
def paygov() -> Iterator[str]:
    peer = PayGovSandbox(secret="paygov-secret-for-the-contract-tests")
    with ThreadedServer(lambda: peer) as server:
        peer.base_url = server.url
        yield server.url


def every_router(tmp_path: Path, peers: Peers, population_url: str, paygov_url: str) -> dict[str, Any]:
    """Config overrides that mount every router: events, messages, citizens, payments, health."""
    base = config_dict(tmp_path, peers)
    destinations = {
        **base["destinations"],
        "population": {
            "kind": "population",
            "base_url": population_url,
            "ma_tich_hop": "LIENTHONG-SANDBOX",
            "ma_dvc": "DVC-H56",
            "timeout_s": 2,
        },
        "paygov": {
            "kind": "paygov",
            "base_url": paygov_url,
            "partner_code": "LIENTHONG-H56",
            "secret": "paygov-secret-for-the-contract-tests",
            "timeout_s": 2,
        },
    }
    return {
        "destinations": destinations,
        "routes": [*ROUTES, {"on": "payment.requested", "deliver": [{"to": "paygov", "operation": "INIT"}]}],
        "citizens": {"source": "population", "audit_key": "audit-key-for-the-contract-tests"},
        "payments": {"paygov": "paygov", "banks": {"vcb": {"secret": BANK_SECRET}}},
    }


@pytest.fixture
async def node(run_node: RunNode, tmp_path: Path, peers: Peers, population: str, paygov: str) -> Running:
    running: Running = await run_node(**every_router(tmp_path, peers, population, paygov))
    return running


@pytest.fixture
async def document(node: Running) -> dict[str, Any]:
    answer = await node.client.get("/openapi.json", headers=OPERATOR)
    assert answer.status_code == 200
    doc: dict[str, Any] = answer.json()
    return doc


def operations(doc: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in doc["paths"].items():
        for method, operation in item.items():
            yield method.upper(), path, operation


def resolve(doc: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = doc["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    return schema


def json_schema(doc: dict[str, Any], answer: dict[str, Any]) -> dict[str, Any]:
    return resolve(doc, answer.get("content", {}).get("application/json", {}).get("schema", {}))


# -- the document ------------------------------------------------------------------------------------------


async def test_post_events_declares_its_request_body_one_event_or_a_batch_with_examples(
    document: dict[str, Any],
) -> None:
    body = document["paths"]["/v1/events"]["post"]["requestBody"]
    assert body["required"] is True
    media = body["content"]["application/json"]
    variants = [resolve(document, s) for s in resolve(document, media["schema"])["anyOf"]]
    single = next(v for v in variants if "event_id" in v["properties"])
    batch = next(v for v in variants if "events" in v["properties"])
    assert set(single["required"]) == {"event_id", "type", "occurred_at", "unit_code", "dossier"}
    assert "dossier.received" in single["properties"]["type"]["enum"]
    assert batch["required"] == ["events"]
    assert set(media["examples"]) >= {"one_event", "batch"}


async def test_every_answer_has_a_schema_and_every_success_an_example(document: dict[str, Any]) -> None:
    empty = []
    for method, path, operation in operations(document):
        for status, answer in operation["responses"].items():
            content = answer.get("content")
            assert content, f"{method} {path} {status} declares no content"
            media, declared = next(iter(content.items()))
            if not declared.get("schema"):
                empty.append(f"{method} {path} {status}")
            if status.startswith("2") and media == "application/json":
                assert "example" in declared or "examples" in declared, f"{method} {path} {status}"
    assert empty == []


async def test_the_bearer_scheme_is_declared_and_required_where_a_token_is(document: dict[str, Any]) -> None:
    schemes = document["components"]["securitySchemes"]
    assert schemes == {
        name: {"type": "http", "scheme": "bearer", "description": schemes[name]["description"]}
        for name in ("bearer", "admin")  # the province's callers, and the operators' (admin.tokens)
    }
    admin = {f"{m} {p}" for m, p, op in operations(document) if op.get("security") == [{"admin": []}]}
    assert admin  # every admin route, and only those
    assert all(operation.split(" ", 1)[1].startswith("/admin/v1/") for operation in admin)
    secured = {f"{m} {p}" for m, p, op in operations(document) if op.get("security") == [{"bearer": []}]}
    assert secured == {
        "POST /v1/events",
        "GET /v1/messages/{message_id}",
        "GET /v1/citizens/{id_number}",
        "GET /v1/payments/{reference}",
    }
    for method, path, operation in operations(document):
        if f"{method} {path}" in secured | admin:
            assert "401" in operation["responses"], f"{method} {path}"


async def test_every_refusal_is_documented_with_the_error_shape_we_send(document: dict[str, Any]) -> None:
    assert "HTTPValidationError" not in document["components"]["schemas"]
    error = resolve(document, document["components"]["schemas"]["Error"])
    detail = resolve(document, error["properties"]["error"])
    assert error["required"] == ["error"]
    assert set(detail["properties"]) == {"code", "message", "path"}
    assert set(detail["required"]) == {"code", "message"}
    for method, path, operation in operations(document):
        for status, answer in operation["responses"].items():
            if status not in REFUSALS or path == "/v1/payments/paygov/confirm":
                continue  # the payment platform's callback answers in the platform's own terms
            assert answer["content"]["application/json"]["schema"] == {
                "$ref": "#/components/schemas/Error"
            }, f"{method} {path} {status}"


async def test_each_endpoint_documents_the_refusals_it_can_send(document: dict[str, Any]) -> None:
    def statuses(method: str, path: str) -> set[str]:
        return set(document["paths"][path][method]["responses"]) & REFUSALS

    for method, path, operation in operations(document):
        assert set(operation["responses"]) >= ANYWHERE, f"{method} {path}"
    # A caller known by its token may be over its rate (429, ``auth.rate_limit``).
    assert statuses("post", "/v1/events") == ANYWHERE | {"401", "409", "422", "429"}
    # An operation with parameters answers 422 when one fails validation (``errors.install_error_handlers``).
    assert statuses("get", "/v1/messages/{message_id}") == ANYWHERE | {"401", "404", "422", "429"}
    assert statuses("get", "/v1/citizens/{id_number}") == ANYWHERE | {
        "401",
        "404",
        "409",
        "422",
        "429",
        "502",
    }
    assert statuses("get", "/v1/payments/{reference}") == ANYWHERE | {"401", "404", "422", "429"}
    assert statuses("post", "/v1/payments/banks/{bank}/notify") == ANYWHERE | {"403", "404", "409", "422"}
    assert statuses("post", "/v1/payments/paygov/confirm") == ANYWHERE | {"403", "404", "409"}
    assert statuses("get", "/healthz") == ANYWHERE
    assert statuses("get", "/readyz") == ANYWHERE


# -- the answers are what the document says ----------------------------------------------------------------


async def test_a_refused_request_answers_the_documented_error_shape(node: Running) -> None:
    unauthorized = await node.client.post("/v1/events", json={})
    invalid = await node.client.post("/v1/events", json={"event_id": "x"}, headers=AUTH)
    malformed = await node.client.post("/v1/events", content=b"{", headers=AUTH)
    for answer, status in ((unauthorized, 401), (invalid, 422), (malformed, 400)):
        assert answer.status_code == status
        assert set(answer.json()) == {"error"}
        assert {"code", "message"} <= set(answer.json()["error"]) <= {"code", "message", "path"}


async def test_the_documented_example_event_is_accepted(node: Running, document: dict[str, Any]) -> None:
    examples = document["paths"]["/v1/events"]["post"]["requestBody"]["content"]["application/json"][
        "examples"
    ]
    for name in ("one_event", "batch"):
        answer = await node.client.post("/v1/events", json=examples[name]["value"], headers=AUTH)
        assert answer.status_code == 202, (name, answer.text)


async def test_the_generated_events_match_the_documented_request_schema(document: dict[str, Any]) -> None:
    # The schema is the parser's own model: the events the demo sends carry every required field.
    single = next(
        resolve(document, s)
        for s in resolve(
            document,
            document["paths"]["/v1/events"]["post"]["requestBody"]["content"]["application/json"]["schema"],
        )["anyOf"]
        if "event_id" in resolve(document, s)["properties"]
    )
    for event in generate(2)[0].events:
        assert set(single["required"]) <= set(event)
        assert set(event) <= set(single["properties"])


# -- /docs without a network -------------------------------------------------------------------------------

ASSET = re.compile(r"""(?:src|href)=["']([^"']+)["']|url:\s*'([^']+)'|"url":\s*"([^"]+)\"""")


def referenced(html: str) -> list[str]:
    return [next(g for g in m.groups() if g) for m in ASSET.finditer(html)]


@pytest.fixture
async def public_docs(
    run_node: RunNode, tmp_path: Path, peers: Peers, population: str, paygov: str
) -> Running:
    """A node whose docs anyone may read (``server.docs: public``), as a browser without a session sees it."""
    running: Running = await run_node(
        **every_router(tmp_path, peers, population, paygov), server={"docs": "public"}
    )
    return running


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
async def test_the_docs_pages_reference_only_assets_the_node_serves_itself(
    public_docs: Running, page: str
) -> None:
    node = public_docs
    html = await node.client.get(page)
    assert html.status_code == 200
    urls = referenced(html.text)
    assert any(u.endswith(".js") for u in urls)
    outside = [u for u in urls if not u.startswith("/")]
    assert outside == [], f"{page} loads from outside the node: {outside}"
    for url in urls:
        asset = await node.client.get(url)
        assert asset.status_code == 200, url
        assert len(asset.content) > 0, url
    assert "fonts.googleapis" not in html.text


async def test_swagger_ui_renders_the_operations_in_a_browser_with_no_network(
    public_docs: Running, tmp_path: Path
) -> None:
    url = f"{public_docs.client.base_url}/docs"
    command = [*headless(tmp_path, loopback=True, budget_ms=5000), "--dump-dom", url]
    done = await asyncio.to_thread(subprocess.run, command, capture_output=True, text=True, timeout=120)
    dom = done.stdout
    assert "/v1/events" in dom, done.stderr[-2000:]
    assert "opblock" in dom  # Swagger UI drew the operations
    failed = [line for line in done.stderr.splitlines() if "Failed to load resource" in line]
    assert failed == []


def test_the_asset_finder_catches_a_cdn_url() -> None:
    html = '<script src="https://cdn.jsdelivr.net/npm/swagger-ui-dist@5/swagger-ui-bundle.js"></script>'
    assert referenced(html) == ["https://cdn.jsdelivr.net/npm/swagger-ui-dist@5/swagger-ui-bundle.js"]
    assert httpx.URL(referenced(html)[0]).host == "cdn.jsdelivr.net"


# -- the docs are the operators' -------------------------------------------------------------------------


async def test_the_docs_ask_for_an_operator_s_credential(run_node: RunNode) -> None:
    running = await run_node()
    client = running.client
    refused = await client.get("/openapi.json")
    assert refused.status_code == 401
    assert refused.json()["error"]["code"] == "unauthorized"
    assert (await client.get("/openapi.json", headers=AUTH)).status_code == 401  # a caller is not an operator
    assert (await client.get("/openapi.json", headers=OPERATOR)).status_code == 200
    for page in ("/docs", "/redoc"):
        sent = await client.get(page)
        assert (sent.status_code, sent.headers["location"]) == (303, "/admin/login")
        assert (await client.get(page, headers=OPERATOR)).status_code == 200
    origin = str(client.base_url).rstrip("/")
    async with httpx.AsyncClient(base_url=origin, headers={"origin": origin}) as browser:
        login = await browser.post("/admin/login", data={"token": OPERATOR["authorization"].split()[1]})
        assert login.status_code == 303
        assert (await browser.get("/docs")).status_code == 200  # the console's session will do
    assert (await client.get("/healthz")).status_code == 200  # the rest is as before


async def test_docs_off_are_off_for_everyone(run_node: RunNode) -> None:
    running = await run_node(server={"docs": "off"})
    for path in ("/docs", "/redoc", "/openapi.json"):
        answer = await running.client.get(path, headers=OPERATOR)
        assert answer.status_code == 404
        assert "documentation is off here" in answer.json()["error"]["message"]


async def test_posted_events_are_served_by_the_plain_route_the_documented_operation_describes(
    run_node: RunNode,
) -> None:
    """POST /v1/events is served ahead of FastAPI's routing (decision 0024): the route that answers is the
    plain one, first of all, and the operation OpenAPI documents is the same endpoint, token required."""
    running: Running = await run_node()
    served = running.node.api.router.routes[0]
    assert (getattr(served, "path", None), getattr(served, "methods", None)) == ("/v1/events", {"POST"})
    document = running.node.api.openapi()
    assert document["paths"]["/v1/events"]["post"]["security"] == [{"bearer": []}]
    refused = await running.client.post("/v1/events", json={}, headers={"authorization": "Bearer wrong"})
    assert refused.status_code == 401


async def test_every_accepted_answer_has_exactly_the_documented_shape(
    node: Running, document: dict[str, Any]
) -> None:
    """The answer is written from the store's results as they are (orjson, session 12): a field added to
    ``IngestResult`` must not reach callers undocumented. Checked against the documented models, whose
    extra fields are forbidden, for one event, a batch, and their repeats."""
    examples = document["paths"]["/v1/events"]["post"]["requestBody"]["content"]["application/json"][
        "examples"
    ]
    one, batch = examples["one_event"]["value"], examples["batch"]["value"]
    for _ in range(2):  # taken, then a repeat (duplicate: true)
        single = await node.client.post("/v1/events", json=one, headers=AUTH)
        many = await node.client.post("/v1/events", json=batch, headers=AUTH)
        assert (single.status_code, many.status_code) == (202, 202)
        TypeAdapter(Accepted).validate_json(single.content, strict=True)
        TypeAdapter(BatchAccepted).validate_json(many.content, strict=True)
    assert single.json()["duplicate"] is True
    assert all(result["duplicate"] for result in many.json()["results"])
