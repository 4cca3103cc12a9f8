"""Mapping versions on outbox rows, dead-letter replay (original or current mapping, dry run, who and why),
and the schema migration that brought them."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from conftest import ROUTES, Peers, Running, RunNode, config_dict
from lienthong.cli import main
from lienthong.sandbox.dossiers import generate
from lienthong.store import units
from lienthong.store.sqlite import SCHEMA_VERSION, SqliteBackend
from stores import in_tx

BUGGY = """
extends: bundled:emc_tracking
tables:
  my_status: {values: {processing: 4, returned: 10}}   # forgot `received`
fields:
  Status: {from: dossier.status, required: true, table: my_status, apply: {lookup: emc_status}}
"""
FIXED = BUGGY.replace("{processing: 4, returned: 10}", "{received: 1, processing: 4, returned: 10}")


def routes_with(spec: Path) -> list[dict[str, Any]]:
    routes: list[dict[str, Any]] = json.loads(json.dumps(ROUTES))
    routes[0]["deliver"][1]["mapping"] = str(spec)
    return routes


async def dlq(*args: str) -> int:
    # The CLI runs its own event loop; keep it off this test's loop, as an operator's shell would.
    return await asyncio.to_thread(main, ["dlq", *args])


@pytest.fixture
def spec(tmp_path: Path) -> Path:
    path = tmp_path / "emc.yaml"
    path.write_text(BUGGY)
    return path


@pytest.fixture
def config_file(tmp_path: Path, peers: Peers, spec: Path) -> Path:
    path = tmp_path / "lienthong.yaml"
    path.write_text(json.dumps(config_dict(tmp_path, peers, routes=routes_with(spec))))  # JSON is YAML
    return path


async def dead_after_bug(run_node: RunNode, spec: Path) -> tuple[Running, list[str]]:
    running: Running = await run_node(routes=routes_with(spec))
    ids = [(await running.post(stream.events[0])).json()["message_ids"][1] for stream in generate(2)]
    await running.settle()
    for message_id in ids:
        view = await running.node.store.run(units.message, message_id)
        assert view is not None
        assert view.status == "dead"
        assert "unknown code 'received' in table my_status" in str(view.last_error)
        assert view.mapping == "emc"
    return running, ids


async def test_each_row_records_the_mapping_name_and_hash_it_was_planned_with(
    run_node: RunNode, spec: Path
) -> None:
    running, ids = await dead_after_bug(run_node, spec)
    current = running.node.routes.current("emc")
    assert current is not None
    view = await running.node.store.run(units.message, ids[0])
    assert view is not None
    assert view.mapping_hash == current.hash
    stored = await running.node.store.run(units.mapping_version, current.hash)
    assert stored is not None
    assert stored.document == current.document


async def test_a_dry_run_shows_the_outcome_and_changes_nothing(
    run_node: RunNode, spec: Path, config_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    running, ids = await dead_after_bug(run_node, spec)
    # Some would fail again: the dry run says so, and exits 1.
    assert await dlq("replay", str(config_file), "--all", "--by", "ops", "--reason", "try", "--dry-run") == 1
    out = capsys.readouterr().out
    assert (
        out.count("would fail again: emc.TrackingMCDT: Status (from dossier.status): unknown code 'received'")
        == 2
    )
    spec.write_text(FIXED)
    assert (
        await dlq(
            "replay",
            str(config_file),
            ids[0],
            "--mapping",
            "current",
            "--by",
            "ops",
            "--reason",
            "try",
            "--dry-run",
        )
        == 0
    )
    out = capsys.readouterr().out
    assert f"{ids[0]}  emc@" in out
    assert "(new mapping version)  maps cleanly" in out
    for message_id in ids:
        view = await running.node.store.run(units.message, message_id)
        assert view is not None
        assert view.status == "dead"


async def test_replaying_with_the_fixed_current_mapping_delivers_and_records_who_and_why(
    run_node: RunNode,
    spec: Path,
    config_file: Path,
    peers: Peers,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    running, ids = await dead_after_bug(run_node, spec)
    assert await dlq("list", str(config_file)) == 0
    listing = capsys.readouterr().out
    assert all(message_id in listing for message_id in ids)
    spec.write_text(FIXED)
    code = await dlq(
        "replay",
        str(config_file),
        "--all",
        "--mapping",
        "current",
        "--by",
        "ops-an",
        "--reason",
        "my_status lacked received",
    )
    assert code == 0
    # The running node still has the buggy spec loaded: it compiles the replayed rows' version from the store.
    await running.settle()
    for message_id in ids:
        view = await running.node.store.run(units.message, message_id)
        assert view is not None
        assert view.status == "delivered"
        assert [a.outcome for a in view.history] == ["dead", "delivered"]
    assert len(peers.emc.received) == 2
    assert {r.body["Status"] for r in peers.emc.received} == {1}
    with sqlite3.connect(tmp_path / "lienthong.db") as db:
        rows = db.execute("SELECT message_id, by_whom, reason FROM replays ORDER BY message_id").fetchall()
    assert rows == sorted((i, "ops-an", "my_status lacked received") for i in ids)


async def test_replaying_with_the_original_mapping_keeps_the_version_and_fails_again(
    run_node: RunNode, spec: Path, config_file: Path
) -> None:
    running, ids = await dead_after_bug(run_node, spec)
    before = await running.node.store.run(units.message, ids[0])
    spec.write_text(FIXED)  # fixed, but the replay asks for the original version
    assert await dlq("replay", str(config_file), ids[0], "--by", "ops", "--reason", "retry as is") == 0
    await running.settle()
    after = await running.node.store.run(units.message, ids[0])
    assert before is not None
    assert after is not None
    assert after.status == "dead"
    assert after.mapping_hash == before.mapping_hash
    assert [a.outcome for a in after.history] == ["dead", "dead"]


async def test_replay_refuses_messages_that_are_not_dead_letters_and_needs_a_target(
    run_node: RunNode, spec: Path, config_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _running, ids = await dead_after_bug(run_node, spec)
    assert await dlq("replay", str(config_file), "m-nope", "--by", "ops", "--reason", "x") == 2
    assert "not dead letters: m-nope" in capsys.readouterr().err
    assert await dlq("replay", str(config_file), "--by", "ops", "--reason", "x") == 2
    assert "name the messages to replay, or give --all" in capsys.readouterr().err
    assert await dlq("show", str(config_file), ids[0]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["status"] == "dead"
    assert shown["history"][0]["outcome"] == "dead"


def undo_version_5(db: sqlite3.Connection) -> None:
    """What version 5 added: how many results a dossier has (the runs table stays: made by the script)."""
    db.execute("ALTER TABLE dossiers DROP COLUMN results")


def undo_version_4(db: sqlite3.Connection) -> None:
    """What version 4 added: the claims' leases."""
    db.execute("DROP INDEX outbox_leased")
    db.execute("ALTER TABLE outbox DROP COLUMN lease_until_ms")


def undo_version_3(db: sqlite3.Connection) -> None:
    """What version 3 added: events' caller, payments' channel, callbacks' bounded summary, findings."""
    db.execute("ALTER TABLE events DROP COLUMN caller")
    db.execute("ALTER TABLE payments DROP COLUMN channel")
    db.execute("ALTER TABLE payments DROP COLUMN caller")
    db.execute("DROP INDEX payment_callbacks_reference")
    for column in ("source", "body_sha256", "body_bytes", "detail"):
        db.execute(f"ALTER TABLE payment_callbacks DROP COLUMN {column}")
    db.execute("DROP TABLE payment_findings")


def test_a_version_2_store_gains_payment_channels_and_bounded_callback_records(tmp_path: Path) -> None:
    path = tmp_path / "v2.db"
    SqliteBackend(path).close()
    with sqlite3.connect(path) as db:
        undo_version_5(db)
        undo_version_4(db)
        undo_version_3(db)
        db.execute("UPDATE schema_version SET version = 2")
        db.execute(
            "INSERT INTO payments VALUES ('TT-1', 'HS-1', 'U', 8000, '{}', 'https://pay/TT-1', 'paid', 'PG1', 1)"
        )
        db.execute(
            "INSERT INTO payment_callbacks (received_ms, channel, reference, transaction_id, verdict, status)"
            " VALUES (1, 'paygov', 'TT-1', 'PG1', 'accepted', 'paid')"
        )
    store = SqliteBackend(path)
    try:
        payment = in_tx(store, units.payment, "TT-1")
        assert payment is not None
        assert (payment.status, payment.transaction_id, payment.channel) == ("paid", "PG1", "")
        (record,) = in_tx(store, units.callbacks, 10, "TT-1")
        assert (record.verdict, record.source, record.body_bytes) == ("accepted", "", 0)
        assert in_tx(store, units.payment_findings, 10) == []
    finally:
        store.close()


def test_a_version_1_store_is_migrated_and_its_rows_keep_working(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    SqliteBackend(path).close()
    with sqlite3.connect(path) as db:  # make it what version 1 created
        for column in ("mapping", "mapping_hash", "replayed_ms", "replay_base"):
            db.execute(f"ALTER TABLE outbox DROP COLUMN {column}")
        db.execute("DROP TABLE mapping_versions")
        db.execute("DROP TABLE replays")
        undo_version_5(db)
        undo_version_4(db)
        undo_version_3(db)
        db.execute("UPDATE schema_version SET version = 1")
    store = SqliteBackend(path)
    store.close()
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT version FROM schema_version").fetchone() == (SCHEMA_VERSION,)
        columns = {row[1] for row in db.execute("PRAGMA table_info(outbox)")}
        assert {"mapping", "mapping_hash", "replayed_ms", "replay_base", "lease_until_ms"} <= columns
        tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        assert {"mapping_versions", "replays"} <= tables


def test_a_version_5_store_gains_the_count_of_results(tmp_path: Path) -> None:
    path = tmp_path / "v5.db"
    SqliteBackend(path).close()
    with sqlite3.connect(path) as db:
        undo_version_5(db)
        db.execute("UPDATE schema_version SET version = 5")
        db.execute(
            "INSERT INTO dossiers (dossier_code, unit_code, last_event_id, last_event_type, occurred_ms,"
            " updated_ms) VALUES ('HS-1', 'U', 'e1', 'dossier.received', 1, 1)"
        )
    store = SqliteBackend(path)
    try:
        entry = in_tx(store, units.ledger_entry, "HS-1")
        assert entry is not None
        assert entry.results is None  # not said before version 6
    finally:
        store.close()
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT version FROM schema_version").fetchone() == (SCHEMA_VERSION,)
