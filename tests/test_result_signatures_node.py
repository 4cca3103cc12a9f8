"""Result signatures end to end (issue 13 §2): ``dossier.result_issued`` events posted to a running node,
routed to a ``result_check`` destination, their verdicts in the ledger; the ``kpis`` job's "signed" rate and
the ``integrity-check`` job's "returned with an unsigned result" report them. And the ledger keeps a verdict
through later events, on every store backend."""

from __future__ import annotations

import base64
import json
import sqlite3
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from conftest import Peers, RunNode, config_dict
from lienthong.app import check_everything
from lienthong.checks.jobs import read_kpi_rows
from lienthong.cli import main as cli_main
from lienthong.config import Config
from lienthong.errors import ConfigError
from lienthong.mappings import SpecLoader
from lienthong.model import LedgerEntry, ResultSignature
from lienthong.store import Store, units
from lienthong.store.contract import Tx
from stores import make_store
from test_result_signatures import Pki, blank_pdf, sign
from test_result_signatures_adapter import seed

UNIT = "000.00.12.H56"
JOBS = {"jobs": {"kpis": {"cron": "0 2 * * *"}, "integrity-check": {"cron": "0 2 * * *"}}}


def event(code: str, kind: str, at: datetime, **dossier: Any) -> dict[str, Any]:
    return {
        "event_id": f"evt-{code}-{kind}",
        "type": f"dossier.{kind}",
        "occurred_at": at.isoformat(),
        "unit_code": UNIT,
        "dossier": {"code": code, **dossier},
    }


@pytest.fixture
def signed_by() -> tuple[Pki, bytes]:
    """A CA and a result it signed (pyHanko signs on an event loop of its own: outside the test's)."""
    pki = Pki.make()
    return pki, sign(blank_pdf(), pki.signer())


@pytest.fixture
async def document_store() -> AsyncIterator[tuple[str, dict[str, bytes]]]:
    documents: dict[str, bytes] = {}

    async def handle(request: web.Request) -> web.Response:
        return web.Response(body=documents[request.path], content_type="application/pdf")

    app = web.Application()
    app.router.add_get("/{path:.*}", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    yield f"http://127.0.0.1:{port}", documents
    await runner.cleanup()


def result_check(tmp_path: Path, peers: Peers, files_url: str, pki: Pki) -> dict[str, Any]:
    roots = tmp_path / "trust-roots.pem"
    roots.write_bytes(pki.pem())
    destinations = config_dict(tmp_path, peers)["destinations"]
    destinations["results"] = {"kind": "result_check", "base_url": files_url, "trust_roots": [str(roots)]}
    return {
        "destinations": destinations,
        "routes": [{"on": "dossier.result_issued", "deliver": [{"to": "results", "operation": "verify"}]}],
        "scheduler": JOBS,
        "bank_statements": {"reports_dir": str(tmp_path / "reports")},
    }


async def test_verdicts_land_in_the_ledger_and_the_kpi_and_integrity_jobs_report_them(
    run_node: RunNode,
    tmp_path: Path,
    peers: Peers,
    document_store: tuple[str, dict[str, bytes]],
    signed_by: tuple[Pki, bytes],
) -> None:
    files_url, documents = document_store
    pki, signed = signed_by
    documents["/ket-qua/HS-SIGNED.pdf"] = signed
    running = await run_node(**result_check(tmp_path, peers, files_url, pki))
    issued = datetime.now(UTC) - timedelta(days=4)
    returned = issued + timedelta(days=1)
    inline_unsigned = base64.b64encode(blank_pdf()).decode()
    for posted in (
        event(
            "HS-SIGNED", "result_issued", issued, results=[{"code": "KQ01", "url": "/ket-qua/HS-SIGNED.pdf"}]
        ),
        event(
            "HS-UNSIGNED",
            "result_issued",
            issued,
            results=[{"code": "KQ01", "content_base64": inline_unsigned}],
        ),
    ):
        answer = await running.post(posted)
        assert answer.status_code == 202, answer.text
    await running.settle()

    store = running.node.store
    signed_entry = await store.run(units.ledger_entry, "HS-SIGNED")
    unsigned_entry = await store.run(units.ledger_entry, "HS-UNSIGNED")
    assert signed_entry is not None
    assert unsigned_entry is not None
    assert signed_entry.result_signature == "signed_valid"
    assert unsigned_entry.result_signature == "unsigned"

    # Both returned later: the verdicts stay through the later events' projection.
    for code in ("HS-SIGNED", "HS-UNSIGNED"):
        done = event(
            code,
            "returned",
            returned,
            status="returned",
            returned_at=returned.isoformat(),
            results=[{"code": "KQ01", "sha256": f"{code:0>64}"[-64:]}],
        )
        assert (await running.post(done)).status_code == 202
    await running.settle()
    after = await store.run(units.ledger_entry, "HS-UNSIGNED")
    assert after is not None
    assert (after.last_event_type, after.result_signature) == ("dossier.returned", "unsigned")

    scheduler = running.node.scheduler
    assert scheduler is not None
    kpis = await scheduler.run_by_hand(scheduler.window_for("kpis"))
    assert kpis.outcome == "succeeded", kpis.detail
    rows = {(r.unit, r.kpi): r for r in read_kpi_rows(kpis)}
    assert rows[UNIT, "signed"].rate == 0.5
    assert rows[UNIT, "signed"].target == 1.0
    assert rows[UNIT, "signed"].below is True
    assert running.sample("lienthong_unit_signed_ratio", unit=UNIT) == 0.5

    integrity = await scheduler.run_by_hand(scheduler.window_for("integrity-check"))
    assert integrity.outcome == "succeeded", integrity.detail
    assert integrity.counts.get("returned_unsigned_result") == 1
    gauge = {"job": "integrity-check", "kind": "returned_unsigned_result"}
    assert running.sample("lienthong_reconciliation_discrepancies", **gauge) == 1
    page = next(Path(p) for p in integrity.reports if p.endswith(".html")).read_text(encoding="utf-8")
    assert "HS-UNSIGNED" in page
    assert "HS-SIGNED</" not in page


def test_a_trust_root_that_is_not_pem_is_a_config_error_naming_it(tmp_path: Path) -> None:
    from lienthong.app import result_check_settings  # noqa: PLC0415

    bad = tmp_path / "roots.pem"
    bad.write_text("not a certificate", encoding="utf-8")
    config = Config.model_validate(
        {
            "destinations": {
                "results": {
                    "kind": "result_check",
                    "base_url": "https://files.example.vn",
                    "trust_roots": ["roots.pem"],
                }
            }
        }
    )
    destination = config.destinations["results"]
    with pytest.raises(ConfigError, match="roots.pem"):
        result_check_settings(destination, tmp_path)  # type: ignore[arg-type]


# -- every backend -------------------------------------------------------------------------------------------
async def test_the_ledger_keeps_the_verdict_through_later_events_and_orders_verdicts(store: Store) -> None:
    record = units.record_result_signature
    await store.run(seed, "HS-1", 1_000)
    await store.run(record, ResultSignature("HS-1", "modified_after_signing", "KQ01: changed", 1_000), 5)
    later = LedgerEntry("HS-1", UNIT, "evt-2", "dossier.returned", 2_000, status="returned")
    await store.run(apply_entry, later)
    entry = await store.run(units.ledger_entry, "HS-1")
    assert entry is not None
    assert (entry.status, entry.result_signature) == ("returned", "modified_after_signing")
    assert entry.result_signature_note == "KQ01: changed"
    await store.run(record, ResultSignature("HS-1", "signed_valid", "older", 500), 6)  # stale: kept out
    await store.run(record, ResultSignature("HS-1", "signed_valid", "re-issued", 3_000), 7)
    page = await store.run(units.ledger_page, "", 10)
    assert [(e.dossier_code, e.result_signature, e.result_signature_note) for e in page] == [
        ("HS-1", "signed_valid", "re-issued")
    ]
    await store.run(record, ResultSignature("HS-NONE", "unsigned", "no such dossier", 1), 8)
    assert await store.run(units.ledger_entry, "HS-NONE") is None


def apply_entry(tx: Tx, entry: LedgerEntry) -> None:
    tx.ledger.apply([entry], 0)


async def test_a_schema_9_store_gains_the_verdict_columns_on_upgrade(tmp_path: Path) -> None:
    path = tmp_path / "lienthong.db"
    config = tmp_path / "lienthong.yaml"
    config.write_text(f"store: {{path: {str(path)!r}}}\n", encoding="utf-8")
    assert cli_main(["db", "upgrade", str(config)]) == 0
    with sqlite3.connect(path) as db:  # the store as schema 9 left it
        for column in ("result_signature", "result_signature_note", "result_signature_ms"):
            db.execute(f"ALTER TABLE dossiers DROP COLUMN {column}")
        db.execute("UPDATE schema_version SET version = 9")
    assert cli_main(["db", "upgrade", str(config)]) == 0
    store = make_store("sqlite", tmp_path)
    store.open()
    try:
        await store.run(seed, "HS-1", 1_000)
        await store.run(units.record_result_signature, ResultSignature("HS-1", "unsigned", "KQ01", 1_000), 2)
        entry = await store.run(units.ledger_entry, "HS-1")
    finally:
        store.close()
    assert entry is not None
    assert (entry.result_signature, entry.result_signature_note) == ("unsigned", "KQ01")


def test_lienthong_check_names_a_trust_root_that_cannot_be_read(tmp_path: Path) -> None:
    config = tmp_path / "lienthong.yaml"
    destination = {
        "kind": "result_check",
        "base_url": "https://files.example.vn",
        "trust_roots": ["gone.pem"],
    }
    config.write_text(json.dumps({"destinations": {"results": destination}}), encoding="utf-8")
    with pytest.raises(ConfigError) as raised:
        check_everything(config, {}, SpecLoader())
    assert any("gone.pem" in str(issue) for issue in raised.value.issues), raised.value.issues
