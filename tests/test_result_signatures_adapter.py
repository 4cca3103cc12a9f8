"""The ``result_check`` adapter (``adapters.results``): result documents inline or fetched from a loopback
document store, verified off the event loop, the dossier's verdict written to the ledger; a URL on a host not
allowed is never fetched. And the store keeps a later event's verdict over an earlier one's, on every
backend."""

from __future__ import annotations

import base64
import hashlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from aiohttp import web

from lienthong.adapters.http import HttpPeer, make_transport
from lienthong.adapters.results import ResultCheckAdapter, ResultCheckSettings
from lienthong.errors import RetryableError
from lienthong.model import LedgerEntry, Message, ResultSignature, StoredEvent
from lienthong.store import Store, units
from lienthong.store.contract import Tx
from stores import make_store
from test_result_signatures import Pki, blank_pdf, changed_after_signing, sign

DOSSIER = "000.00.12.H56-261123-00001"
OCCURRED = "2026-11-25T15:20:00+07:00"
OCCURRED_MS = 1_764_058_800_000


def seed(tx: Tx, dossier_code: str, occurred_ms: int) -> None:
    """A dossier in the ledger, as an accepted event leaves it."""
    tx.ledger.apply(
        [LedgerEntry(dossier_code, "000.00.12.H56", "evt-1", "dossier.result_issued", occurred_ms)], 0
    )


def message(occurred_at: str = OCCURRED) -> Message:
    event = StoredEvent("evt-1", "dossier.result_issued", "000.00.12.H56", occurred_at, {"code": DOSSIER})
    return Message("m-1", "results", "verify", DOSSIER, 0, 0, event)


@dataclass
class DocumentStore:
    """A province's document store on loopback: ``documents`` by path, every request's path noted."""

    documents: dict[str, bytes] = field(default_factory=dict)
    statuses: dict[str, int] = field(default_factory=dict)
    requests: list[str] = field(default_factory=list)
    url: str = ""

    async def handle(self, request: web.Request) -> web.Response:
        self.requests.append(request.path)
        if request.path in self.statuses:
            return web.Response(status=self.statuses[request.path], text="no")
        if request.path not in self.documents:
            return web.Response(status=404, text="not found")
        return web.Response(body=self.documents[request.path], content_type="application/pdf")


@pytest.fixture(scope="module")
def pki() -> Pki:
    return Pki.make()


@pytest.fixture(scope="module")
def signed(pki: Pki) -> bytes:
    return sign(blank_pdf(), pki.signer())


@pytest.fixture
async def files() -> AsyncIterator[DocumentStore]:
    found = DocumentStore()
    app = web.Application()
    app.router.add_get("/{path:.*}", found.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    found.url = f"http://127.0.0.1:{port}"
    yield found
    await runner.cleanup()


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    opened = make_store("memory", tmp_path)
    opened.open()
    await opened.run(seed, DOSSIER, OCCURRED_MS)
    yield opened
    opened.close()


@dataclass
class Check:
    adapter: ResultCheckAdapter
    store: Store

    async def run(self, *results: dict[str, str], occurred_at: str = OCCURRED) -> LedgerEntry:
        await self.adapter.deliver(message(occurred_at), {"dossier_code": DOSSIER, "results": list(results)})
        entry = await self.store.run(units.ledger_entry, DOSSIER)
        assert entry is not None
        return entry


def checker(
    files: DocumentStore,
    store: Store,
    pki: Pki,
    *,
    allowed_hosts: frozenset[str] = frozenset(),
    max_bytes: int = 1_000_000,
    verify_timeout_s: float = 30,
) -> Check:
    peer = HttpPeer(files.url, make_transport(max_connections=4), timeout_s=5)
    settings = ResultCheckSettings(pki.trust(), allowed_hosts, max_bytes, verify_timeout_s)
    return Check(ResultCheckAdapter("results", peer, settings, store, clock=time.time), store)


@pytest.fixture
async def check(files: DocumentStore, store: Store, pki: Pki) -> AsyncIterator[Check]:
    made = checker(files, store, pki)
    yield made
    await made.adapter.aclose()


def inline(data: bytes, code: str = "KQ01") -> dict[str, str]:
    return {"code": code, "content_base64": base64.b64encode(data).decode()}


async def test_an_inline_signed_result_is_recorded_signed_valid(check: Check, signed: bytes) -> None:
    entry = await check.run(inline(signed))
    assert entry.result_signature == "signed_valid"
    assert entry.result_signature_note is not None
    assert entry.result_signature_note.startswith("KQ01: signed_valid (Signature1: signed by")


async def test_a_result_by_url_is_fetched_from_the_document_store_and_verified(
    check: Check, files: DocumentStore, signed: bytes
) -> None:
    files.documents["/files/ket-qua.pdf"] = signed
    entry = await check.run({"code": "KQ01", "url": f"{files.url}/files/ket-qua.pdf"})
    assert entry.result_signature == "signed_valid"
    assert files.requests == ["/files/ket-qua.pdf"]


async def test_a_relative_url_resolves_against_the_document_store(
    check: Check, files: DocumentStore, signed: bytes
) -> None:
    files.documents["/files/relative.pdf"] = changed_after_signing(signed)
    entry = await check.run({"code": "KQ01", "url": "/files/relative.pdf"})
    assert entry.result_signature == "modified_after_signing"
    assert files.requests == ["/files/relative.pdf"]


async def test_a_url_on_a_host_not_allowed_is_refused_and_never_fetched(
    check: Check, files: DocumentStore, signed: bytes
) -> None:
    # localhost is the same server as 127.0.0.1: had it been fetched, the store would have seen it.
    files.documents["/files/ket-qua.pdf"] = signed
    port = files.url.rsplit(":", 1)[1]
    entry = await check.run({"code": "KQ01", "url": f"http://localhost:{port}/files/ket-qua.pdf"})
    assert entry.result_signature == "unreadable"
    assert "localhost is not an allowed host (allowed_hosts): not fetched" in (
        entry.result_signature_note or ""
    )
    entry = await check.run({"code": "KQ01", "url": "file:///etc/passwd"})
    assert entry.result_signature == "unreadable"
    assert files.requests == []


async def test_a_host_in_allowed_hosts_is_fetched(
    files: DocumentStore, store: Store, pki: Pki, signed: bytes
) -> None:
    files.documents["/files/ket-qua.pdf"] = signed
    port = files.url.rsplit(":", 1)[1]
    made = checker(files, store, pki, allowed_hosts=frozenset({"LOCALHOST"}))
    try:
        entry = await made.run({"code": "KQ01", "url": f"http://localhost:{port}/files/ket-qua.pdf"})
    finally:
        await made.adapter.aclose()
    assert entry.result_signature == "signed_valid"
    assert files.requests == ["/files/ket-qua.pdf"]


async def test_a_document_store_failing_for_now_is_retried_and_no_verdict_is_written(
    check: Check, files: DocumentStore
) -> None:
    files.statuses["/files/busy.pdf"] = 503
    with pytest.raises(RetryableError, match="http 503"):
        await check.run({"code": "KQ01", "url": "/files/busy.pdf"})
    entry = await check.store.run(units.ledger_entry, DOSSIER)
    assert entry is not None
    assert entry.result_signature is None


async def test_a_missing_document_is_unreadable_with_its_status(check: Check) -> None:
    entry = await check.run({"code": "KQ01", "url": "/files/gone.pdf"})
    assert entry.result_signature == "unreadable"
    assert "its URL answered http 404" in (entry.result_signature_note or "")


async def test_a_document_over_the_cap_is_dropped_unread(
    files: DocumentStore, store: Store, pki: Pki, signed: bytes
) -> None:
    files.documents["/files/huge.pdf"] = signed + b"%" * 10_000
    made = checker(files, store, pki, max_bytes=4096)
    try:
        fetched = await made.run({"code": "KQ01", "url": "/files/huge.pdf"})
        assert fetched.result_signature == "unreadable"
        assert "larger than the limit of 4,096 bytes" in (fetched.result_signature_note or "")
        given = await made.run(inline(signed + b"%" * 10_000))
        assert given.result_signature == "unreadable"
        assert "over the limit of 4,096 bytes" in (given.result_signature_note or "")
    finally:
        await made.adapter.aclose()


async def test_a_document_that_is_not_the_one_the_dossier_lists_is_unreadable(
    check: Check, files: DocumentStore, signed: bytes
) -> None:
    files.documents["/files/ket-qua.pdf"] = signed
    listed = hashlib.sha256(b"another document").hexdigest()
    entry = await check.run({"code": "KQ01", "url": "/files/ket-qua.pdf", "sha256": listed})
    assert entry.result_signature == "unreadable"
    assert "SHA-256 differs" in (entry.result_signature_note or "")
    same = hashlib.sha256(signed).hexdigest().upper()
    entry = await check.run({"code": "KQ01", "url": "/files/ket-qua.pdf", "sha256": same})
    assert entry.result_signature == "signed_valid"


async def test_the_dossier_s_verdict_is_its_worst_document_s(check: Check, signed: bytes) -> None:
    entry = await check.run(inline(signed, "KQ01"), inline(blank_pdf(), "KQ02"))
    assert entry.result_signature == "unsigned"
    note = entry.result_signature_note or ""
    assert "KQ01: signed_valid" in note
    assert "KQ02: unsigned" in note


async def test_content_that_is_not_base64_is_unreadable(check: Check) -> None:
    entry = await check.run({"code": "KQ01", "content_base64": "not base64 at all!"})
    assert entry.result_signature == "unreadable"
    assert "not valid base64" in (entry.result_signature_note or "")


async def test_results_without_a_document_leave_no_verdict(check: Check) -> None:
    entry = await check.run({"code": "KQ01", "sha256": "ab" * 32})
    assert entry.result_signature is None


async def test_verification_runs_off_the_event_loop_and_is_bounded_in_time(
    files: DocumentStore, store: Store, pki: Pki, signed: bytes
) -> None:
    # Were it run on the loop, the result would be there before the time limit was ever looked at.
    made = checker(files, store, pki, verify_timeout_s=1e-6)
    try:
        entry = await made.run(inline(signed))
    finally:
        await made.adapter.aclose()
    assert entry.result_signature == "unreadable"
    assert "verification took longer than" in (entry.result_signature_note or "")


# -- the store: a verdict on a later event stays -------------------------------------------------------------
def verdict(dossier: str, said: str, note: str, event_ms: int) -> ResultSignature:
    return ResultSignature(dossier, said, note, event_ms)


async def test_a_verdict_on_an_earlier_event_never_replaces_a_later_one(store: Store) -> None:
    record = units.record_result_signature
    await store.run(record, verdict(DOSSIER, "unsigned", "KQ01: unsigned", 2_000), 10)
    await store.run(record, verdict(DOSSIER, "signed_valid", "late replay", 1_000), 20)
    entry = await store.run(units.ledger_entry, DOSSIER)
    assert entry is not None
    assert (entry.result_signature, entry.result_signature_note) == ("unsigned", "KQ01: unsigned")
    await store.run(record, verdict(DOSSIER, "signed_valid", "KQ01: signed", 3_000), 30)
    entry = await store.run(units.ledger_entry, DOSSIER)
    assert entry is not None
    assert entry.result_signature == "signed_valid"
