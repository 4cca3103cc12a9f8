"""The message log end to end (issue 13 §3): a node records its deliveries with the hashes of the bytes
on the wire and signs checkpoints; ``lienthong log verify`` finds a record edited alone, a record edited
with its leaf, a log cut short and a forked log, each by name; ``log prove`` gives a proof that the short
verifier checks with the public key alone."""

from __future__ import annotations

import asyncio
import hashlib
import json
import sqlite3
import tarfile
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from conftest import RunNode, config_dict
from lienthong.adapters.exchanges import recording
from lienthong.adapters.http import HttpPeer, make_transport
from lienthong.cli import main
from lienthong.mappings.dates import VIETNAM
from lienthong.msglog.checkpoints import open_note
from lienthong.msglog.records import LogRecord
from lienthong.sandbox.dossiers import generate
from lienthong.store import units


def keygen(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> tuple[Path, str]:
    key = tmp_path / "log.key"
    assert main(["log", "keygen", "lienthong.test", "--out", str(key)]) == 0
    verifier = capsys.readouterr().out.strip()
    assert verifier.startswith("lienthong.test+")
    assert key.stat().st_mode & 0o777 == 0o600
    assert main(["log", "keygen", "lienthong.test", "--out", str(key)]) == 2  # never over a key
    assert "never overwritten" in capsys.readouterr().err
    return key, verifier


async def test_an_attempt_keeps_the_hashes_of_the_bytes_on_the_wire() -> None:
    async def echo(request: web.Request) -> web.Response:
        return web.Response(body=b"got:" + await request.read())

    app = web.Application()
    app.router.add_post("/in", echo)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    peer = HttpPeer(f"http://127.0.0.1:{port}", make_transport(max_connections=4), timeout_s=5)
    try:
        await peer.endpoint("/in").post(b"outside any attempt", {})  # nothing open: nothing noted
        with recording() as exchange:
            await peer.endpoint("/in").post(b'{"a":1}', {"content-type": "application/json"})
        assert exchange.request_sha256 == hashlib.sha256(b'{"a":1}').hexdigest()
        assert exchange.response_sha256 == hashlib.sha256(b'got:{"a":1}').hexdigest()
    finally:
        await peer.aclose()
        await runner.cleanup()


async def node_with_log(
    run_node: RunNode, tmp_path: Path, key: Path, count: int = 6
) -> tuple[Any, list[str]]:
    running = await run_node(
        message_log={"origin": "lienthong.test", "key_file": str(key), "checkpoint_every": 4}
    )
    ids: list[str] = []
    for stream in generate(count):
        answer = await running.post(stream.events[0])
        assert answer.status_code == 202, answer.text
        ids.extend(answer.json()["message_ids"])
    await running.settle()
    checkpointer = running.node.checkpointer
    assert checkpointer is not None
    assert await checkpointer.checkpoint() is not None
    return running, ids


def write_config(tmp_path: Path, peers: Any, key: Path) -> Path:
    path = tmp_path / "lienthong.yaml"
    config = config_dict(tmp_path, peers, message_log={"origin": "lienthong.test", "key_file": str(key)})
    path.write_text(json.dumps(config), encoding="utf-8")
    return path


async def cli(*args: str) -> int:
    """``lienthong ARGS``, off this test's event loop (the command runs its own)."""
    return await asyncio.to_thread(main, list(args))


async def verify(
    config: Path, verifier: str, capsys: pytest.CaptureFixture[str], *more: str
) -> tuple[int, Any]:
    code = await cli("log", "verify", str(config), "--verifier", verifier, "--json", *more)
    return code, json.loads(capsys.readouterr().out)


async def test_deliveries_are_recorded_signed_and_proved(
    run_node: RunNode, tmp_path: Path, peers: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    key, verifier = keygen(tmp_path, capsys)
    running, ids = await node_with_log(run_node, tmp_path, key)
    found = await running.node.store.run(units.log_records, 0, 1000)
    deliveries = [LogRecord.parse(data) for _, data, _ in found]
    assert {r.subject for r in deliveries if r.kind == "delivery"} == set(ids)
    assert all(len(r.request_sha256) == 64 and len(r.response_sha256) == 64 for r in deliveries)
    config = write_config(tmp_path, peers, key)

    code, verdict = await verify(config, verifier, capsys)
    assert (code, verdict["ok"], verdict["records"]) == (0, True, len(found))
    assert verdict["checkpoints"] >= 1

    assert await cli("log", "prove", str(config), ids[0]) == 0
    proof = tmp_path / "proof.json"
    proof.write_text(capsys.readouterr().out, encoding="utf-8")
    assert await cli("log", "check", str(proof), verifier) == 0
    assert "in the log" in capsys.readouterr().out
    proofs = json.loads(proof.read_text())
    proofs[0]["record"] = proofs[0]["record"].replace("delivered", "dead")  # a forged outcome
    proof.write_text(json.dumps(proofs), encoding="utf-8")
    assert await cli("log", "check", str(proof), verifier) == 1
    assert "is not in the log" in capsys.readouterr().out
    other_key, other_verifier = tmp_path / "other.key", None
    assert main(["log", "keygen", "lienthong.test", "--out", str(other_key)]) == 0
    other_verifier = capsys.readouterr().out.strip()
    assert await cli("log", "check", str(proof), other_verifier) == 1
    assert "not the log's" in capsys.readouterr().out
    assert await cli("log", "prove", str(config), "no-such-message") == 1
    assert "no record about" in capsys.readouterr().err
    code, verdict = await verify(config, other_verifier, capsys)
    assert code == 1
    assert "not signed by the log's key" in verdict["problems"][0]


def edit(database: Path, sql: str, *params: Any) -> None:
    with sqlite3.connect(database) as connection:
        connection.execute(sql, params)


async def test_verify_names_an_edited_record_a_rewritten_one_a_cut_and_a_fork(
    run_node: RunNode, tmp_path: Path, peers: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    key, verifier = keygen(tmp_path, capsys)
    running, _ = await node_with_log(run_node, tmp_path, key)
    size = await running.node.store.run(units.log_size)
    (latest,) = await running.node.store.run(units.log_checkpoints, 1)
    kept_elsewhere = tmp_path / "auditor.note"
    kept_elsewhere.write_text(latest.note, encoding="utf-8")
    config = write_config(tmp_path, peers, key)
    database = tmp_path / "lienthong.db"
    await running.node.stop()

    (data,) = sqlite3.connect(database).execute("SELECT data FROM log_records WHERE seq = 2").fetchone()
    edited = data.replace('"delivered"', '"dead"')
    edit(database, "UPDATE log_records SET data = ? WHERE seq = 2", edited)
    code, verdict = await verify(config, verifier, capsys)
    assert (code, verdict["first_bad"]) == (1, 2)
    assert verdict["problems"][0] == "record 2: its bytes do not hash to its leaf (the record was edited)"

    from lienthong.msglog.merkle import leaf_hash  # noqa: PLC0415

    edit(database, "UPDATE log_records SET leaf = ? WHERE seq = 2", leaf_hash(edited.encode()).hex())
    code, verdict = await verify(config, verifier, capsys)
    assert code == 1
    assert "does not match the records: one of records 0 to" in verdict["problems"][0]
    edit(
        database,
        "UPDATE log_records SET data = ?, leaf = ? WHERE seq = 2",
        data,
        leaf_hash(data.encode()).hex(),
    )
    assert (await verify(config, verifier, capsys))[0] == 0  # as it was

    edit(database, "DELETE FROM log_records WHERE seq >= ?", size - 2)  # cut short
    code, verdict = await verify(config, verifier, capsys)
    assert (code, verdict["first_bad"]) == (1, size - 2)
    assert f"cut short: the log's own checkpoint covers {size} records, the log has {size - 2}" in " ".join(
        verdict["problems"]
    )

    edit(database, "DELETE FROM log_records")  # a new history, under the same key: a fork
    edit(database, "DELETE FROM log_checkpoints")
    other = LogRecord(1, "operator", "x", "y", "z").data()
    edit(
        database,
        "INSERT INTO log_records (seq, at_ms, kind, subject, data, leaf) VALUES (0, 1, 'operator', 'x', ?, ?)",
        other.decode(),
        leaf_hash(other).hex(),
    )
    code, verdict = await verify(config, verifier, capsys, "--checkpoint", str(kept_elsewhere))
    assert code == 1
    assert any("cut short: a checkpoint kept elsewhere" in p for p in verdict["problems"])


async def test_a_day_is_exported_in_an_archive_signed_with_the_log_s_key(
    run_node: RunNode, tmp_path: Path, peers: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    key, verifier = keygen(tmp_path, capsys)
    running, ids = await node_with_log(run_node, tmp_path, key)
    config = write_config(tmp_path, peers, key)
    found = [LogRecord.parse(d) for _, d, _ in await running.node.store.run(units.log_records, 0, 1000)]
    today = datetime.fromtimestamp(found[0].at_ms / 1000, VIETNAM).date()  # the records' day, not the clock's
    size = sum(datetime.fromtimestamp(r.at_ms / 1000, VIETNAM).date() == today for r in found)
    archive = tmp_path / "today.tar"
    assert await cli("log", "export", str(config), "--day", today.isoformat(), "--out", str(archive)) == 0
    assert f"{size:,} records of {today.isoformat()}, signed" in capsys.readouterr().out
    with tarfile.open(archive) as opened:
        lines = opened.extractfile("records.jsonl").read()  # type: ignore[union-attr]
        note = opened.extractfile("manifest.note").read().decode()  # type: ignore[union-attr]
    manifest = open_note(note, verifier)  # signed with the log's key
    assert f"records {size} " in manifest
    assert f"sha256 {hashlib.sha256(lines).hexdigest()}" in manifest
    exported = [LogRecord.parse(json.loads(line)["record"].encode()) for line in lines.splitlines()]
    assert exported == [r for r in found if datetime.fromtimestamp(r.at_ms / 1000, VIETNAM).date() == today]
    assert {r.subject for r in found} >= set(ids)
    assert await cli("log", "export", str(config), "--day", today.isoformat(), "--out", str(archive)) == 2
    assert "never overwritten" in capsys.readouterr().err
    yesterday = tmp_path / "yesterday.tar"
    day = (today - timedelta(days=1)).isoformat()
    assert await cli("log", "export", str(config), "--day", day, "--out", str(yesterday)) == 0
    assert "0 records" in capsys.readouterr().out
