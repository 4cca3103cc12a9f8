"""Personal data at rest (issue 13 §4): events' payloads sealed with AES-256-GCM, a key id in each; claims
and reads open them; `lienthong keys rotate` seals everything with the current key, so an old one can go.
On SQLite (a thread and its own process) and PostgreSQL, read back raw from the database."""

from __future__ import annotations

import base64
import functools
import os
import sqlite3
from pathlib import Path

import orjson
import pytest

from lienthong.config import Config
from lienthong.errors import StoreError
from lienthong.payments.records import PaymentRecord
from lienthong.sealing import PURGED, Sealer, open_plain
from lienthong.store import Store, units
from lienthong.store.process import ProcessRunner
from lienthong.store.runner import ThreadRunner
from lienthong.store.sqlite import SqliteBackend
from test_store_contract import NOW, item, one_request

K1, K2 = os.urandom(32), os.urandom(32)
NAME = "Nguyễn Thị Hoa"  # synthetic


def event(code: str) -> dict[str, object]:
    return {
        "event_id": f"evt-{code}",
        "type": "dossier.received",
        "occurred_at": "2026-12-01T08:00:00+07:00",
        "unit_code": "U1",
        "dossier": {"code": code, "applicant": {"name": NAME, "id_number": "046000000123"}},
    }


def test_a_sealed_payload_opens_only_for_its_event_with_its_key() -> None:
    sealer = Sealer({"k1": K1}, "k1")
    sealed = sealer.seal("evt-1", '{"a":1}')
    assert sealed.startswith("enc:v1:k1:")
    assert sealer.open("evt-1", sealed) == '{"a":1}'
    assert sealer.seal("evt-1", '{"a":1}') != sealed  # a fresh nonce each time
    assert sealer.open("evt-1", '{"plain":true}') == '{"plain":true}'  # written before sealing was on
    with pytest.raises(StoreError, match="evt-2's sealed payload does not open"):
        sealer.open("evt-2", sealed)  # copied onto another event's row
    body = base64.b64decode(sealed.split(":", 3)[3])
    tampered = "enc:v1:k1:" + base64.b64encode(body[:-1] + bytes([body[-1] ^ 1])).decode()
    with pytest.raises(StoreError, match="does not open"):
        sealer.open("evt-1", tampered)
    for garbled in (
        "enc:v1:k1:not base64!",
        "enc:v1:k1:",
        "enc:v1:k1:" + base64.b64encode(b"short").decode(),
    ):
        with pytest.raises(StoreError, match="does not open"):
            sealer.open("evt-1", garbled)
    with pytest.raises(StoreError, match="sealed with key 'k1', which encryption.keys does not hold"):
        Sealer({"k2": K2}, "k2").open("evt-1", sealed)
    with pytest.raises(StoreError, match="no encryption keys are configured"):
        open_plain("evt-1", sealed)
    with pytest.raises(ValueError, match="AES-256 needs 32"):
        Sealer({"k1": b"short"}, "k1")


@pytest.mark.parametrize(
    ("keys", "current", "problem"),
    [
        ({"k1": base64.b64encode(K1).decode()}, "k9", "'k9' is not among the keys"),
        ({"k1": "not base64!"}, "k1", "keys.k1: not base64"),
        ({"k1": base64.b64encode(b"x" * 16).decode()}, "k1", "16 bytes; AES-256 needs 32"),
        ({"a b": base64.b64encode(K1).decode()}, "a b", "the key id 'a b'"),
    ],
)
def test_the_config_refuses_keys_that_cannot_seal(keys: dict[str, str], current: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        Config.model_validate({"encryption": {"keys": keys, "current": current}})


def sealed_store(kind: str, tmp_path: Path, sealer: Sealer, pg_dsn: str | None) -> Store:
    if kind == "postgres":
        from lienthong.store import postgres  # noqa: PLC0415

        assert pg_dsn is not None
        return Store(postgres.PostgresPool(pg_dsn, size=2, sealer=sealer).runner(), shared=True)
    backend = functools.partial(SqliteBackend, tmp_path / "lienthong.db", synchronous="normal", sealer=sealer)
    return Store(ProcessRunner(backend) if kind == "sqlite-process" else ThreadRunner(backend))


def raw(kind: str, tmp_path: Path, pg_dsn: str | None, query: str, *args: str) -> list[tuple[str, ...]]:
    """What ``query`` reads straight from the database, past the store."""
    if kind == "postgres":
        import psycopg  # noqa: PLC0415

        assert pg_dsn is not None
        with psycopg.connect(pg_dsn) as connection:
            return [tuple(row) for row in connection.execute(query.replace("?", "%s"), args).fetchall()]
    with sqlite3.connect(tmp_path / "lienthong.db") as connection:
        return [tuple(row) for row in connection.execute(query, args).fetchall()]


def raw_payloads(kind: str, tmp_path: Path, pg_dsn: str | None) -> list[str]:
    return [row[0] for row in raw(kind, tmp_path, pg_dsn, "SELECT payload FROM events ORDER BY event_id")]


@pytest.mark.parametrize("kind", ["sqlite", "sqlite-process", "postgres"])
async def test_payloads_are_sealed_at_rest_claimed_open_and_rotated_to_the_current_key(
    kind: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    pg_dsn = request.getfixturevalue("pg_dsn") if kind == "postgres" else None
    store = sealed_store(kind, tmp_path, Sealer({"k1": K1}, "k1"), pg_dsn)
    store.open()
    try:
        await one_request(store, [item(event("HS-1"), "portal"), item(event("HS-2"), "portal")])
        at_rest = raw_payloads(kind, tmp_path, pg_dsn)
        assert all(p.startswith("enc:v1:k1:") for p in at_rest)
        assert not any(NAME in p or "046000000123" in p for p in at_rest)
        claimed = await store.run(units.claim, NOW, 10, 60_000)
        assert {m.event.dossier["applicant"]["name"] for m in claimed} == {NAME}
        stored = await store.run(units.stored_event, "evt-HS-1")
        assert stored is not None
        assert stored.dossier["code"] == "HS-1"
    finally:
        store.close()

    store = sealed_store(kind, tmp_path, Sealer({"k1": K1, "k2": K2}, "k2"), pg_dsn)  # a new current key
    store.open()
    try:
        await one_request(store, [item(event("HS-3"), "portal")])
        assert sorted(p[:10] for p in raw_payloads(kind, tmp_path, pg_dsn)) == ["enc:v1:k1:"] * 2 + [
            "enc:v1:k2:"
        ]
        after, sealed = "", 0
        while True:
            last, count = await store.run(units.reseal_payloads, after, 2)
            if last is None:
                break
            after, sealed = last, sealed + count
        assert sealed == 2
        assert all(p.startswith("enc:v1:k2:") for p in raw_payloads(kind, tmp_path, pg_dsn))
    finally:
        store.close()

    store = sealed_store(kind, tmp_path, Sealer({"k2": K2}, "k2"), pg_dsn)  # the old key dropped
    store.open()
    try:
        stored = await store.run(units.stored_event, "evt-HS-1")
        assert stored is not None
        assert stored.dossier["applicant"]["name"] == NAME
    finally:
        store.close()

    store = sealed_store(kind, tmp_path, Sealer({"k1": K1}, "k1"), pg_dsn)  # the current key lost
    store.open()
    try:
        with pytest.raises(StoreError, match="sealed with key 'k2'"):
            await store.run(units.stored_event, "evt-HS-1")
    finally:
        store.close()


async def test_keys_rotate_on_the_command_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import asyncio  # noqa: PLC0415
    import json  # noqa: PLC0415

    from lienthong.cli import main  # noqa: PLC0415

    assert await asyncio.to_thread(main, ["keys", "new"]) == 0
    key = capsys.readouterr().out.strip()
    assert len(base64.b64decode(key)) == 32
    config = tmp_path / "lienthong.yaml"
    document = {
        "store": {"path": str(tmp_path / "lienthong.db")},
        "encryption": {"keys": {"k1": key}, "current": "k1"},
    }
    config.write_text(json.dumps(document), encoding="utf-8")
    store = sealed_store("sqlite", tmp_path, Sealer({"k0": K1}, "k0"), None)
    store.open()
    await one_request(store, [item(event("HS-9"), "portal")])
    store.close()
    document["encryption"] = {"keys": {"k0": base64.b64encode(K1).decode(), "k1": key}, "current": "k1"}
    config.write_text(json.dumps(document), encoding="utf-8")
    assert await asyncio.to_thread(main, ["keys", "rotate", str(config)]) == 0
    assert "sealed anew with key 'k1': 1 events' payloads, 0 payments' dossiers" in capsys.readouterr().out
    assert raw_payloads("sqlite", tmp_path, None)[0].startswith("enc:v1:k1:")
    del document["encryption"]
    config.write_text(json.dumps(document), encoding="utf-8")
    assert await asyncio.to_thread(main, ["keys", "rotate", str(config)]) == 2
    assert "no encryption section" in capsys.readouterr().err


def payment(reference: str, status: str = "initiated") -> PaymentRecord:
    dossier = orjson.dumps(
        {"code": f"HS-{reference}", "applicant": {"name": NAME, "id_number": "046000000123"}}
    )
    return PaymentRecord(
        reference, f"HS-{reference}", "U1", 50_000, dossier.decode(), "https://pay", status, "", NOW
    )


def raw_dossiers(kind: str, tmp_path: Path, pg_dsn: str | None) -> dict[str, str]:
    return {row[0]: row[1] for row in raw(kind, tmp_path, pg_dsn, "SELECT reference, dossier FROM payments")}


def write_dossier(kind: str, tmp_path: Path, pg_dsn: str | None, reference: str, dossier: str) -> None:
    raw(
        kind,
        tmp_path,
        pg_dsn,
        "UPDATE payments SET dossier = ? WHERE reference = ? RETURNING 1",
        dossier,
        reference,
    )


@pytest.mark.parametrize("kind", ["sqlite", "sqlite-process", "postgres"])
async def test_the_dossier_a_payment_carries_is_sealed_at_rest_opened_on_read_and_rotated(
    kind: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """The applicant's data a payment keeps for its receipt is personal data at rest like an event's."""
    pg_dsn = request.getfixturevalue("pg_dsn") if kind == "postgres" else None
    store = sealed_store(kind, tmp_path, Sealer({"k1": K1}, "k1"), pg_dsn)
    store.open()
    try:
        for reference in ("P-1", "P-2"):
            await store.run(units.save_payment, payment(reference))
        at_rest = raw_dossiers(kind, tmp_path, pg_dsn)
        assert all(d.startswith("enc:v1:k1:") for d in at_rest.values())
        assert not any(NAME in d or "046000000123" in d for d in at_rest.values())
        read = await store.run(units.payment, "P-1")
        assert read is not None
        assert orjson.loads(read.dossier)["applicant"]["name"] == NAME
        await store.run(units.save_payment, payment("P-3", "paid"))
        (paid,) = await store.run(units.paid_between, NOW, NOW + 1)
        assert orjson.loads(paid.dossier)["code"] == "HS-P-3"

        write_dossier(kind, tmp_path, pg_dsn, "P-2", at_rest["P-1"])  # one payment's dossier on another's row
        with pytest.raises(StoreError, match="payment P-2's sealed payload does not open"):
            await store.run(units.payment, "P-2")
        write_dossier(kind, tmp_path, pg_dsn, "P-2", at_rest["P-2"])
    finally:
        store.close()

    store = sealed_store(kind, tmp_path, Sealer({"k1": K1, "k2": K2}, "k2"), pg_dsn)  # a new current key
    store.open()
    try:
        after, sealed = "", 0
        while True:
            last, count = await store.run(units.reseal_payment_dossiers, after, 2)
            if last is None:
                break
            after, sealed = last, sealed + count
        assert sealed == 3
        assert all(d.startswith("enc:v1:k2:") for d in raw_dossiers(kind, tmp_path, pg_dsn).values())
    finally:
        store.close()

    store = sealed_store(kind, tmp_path, Sealer({"k2": K2}, "k2"), pg_dsn)  # the old key dropped
    store.open()
    try:
        read = await store.run(units.payment, "P-2")
        assert read is not None
        assert orjson.loads(read.dossier)["code"] == "HS-P-2"
    finally:
        store.close()


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
async def test_a_sealed_payload_and_a_sealed_dossier_cannot_stand_in_for_each_other(
    kind: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """An event's id is the caller's to choose (``payment:P-3`` is one); a payment's additional data holds a
    space, which no event id can, so neither opens on the other's row. Found by a hostile review."""
    pg_dsn = request.getfixturevalue("pg_dsn") if kind == "postgres" else None
    store = sealed_store(kind, tmp_path, Sealer({"k1": K1}, "k1"), pg_dsn)
    store.open()
    try:
        await store.run(units.save_payment, payment("P-3"))
        forged = {**event("HS-X"), "event_id": "payment:P-3"}
        await one_request(store, [item(forged, "portal")])
        (payload,) = raw_payloads(kind, tmp_path, pg_dsn)
        write_dossier(kind, tmp_path, pg_dsn, "P-3", payload)
        with pytest.raises(StoreError, match="payment P-3's sealed payload does not open"):
            await store.run(units.payment, "P-3")
    finally:
        store.close()


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
async def test_with_refuse_plaintext_what_was_written_past_the_store_is_refused(
    kind: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    pg_dsn = request.getfixturevalue("pg_dsn") if kind == "postgres" else None
    store = sealed_store(kind, tmp_path, Sealer({"k1": K1}, "k1", refuse_plaintext=True), pg_dsn)
    store.open()
    try:
        await store.run(units.save_payment, payment("P-1"))
        await one_request(store, [item(event("HS-1"), "portal")])
        forged = orjson.dumps({"code": "HS-P-1", "applicant": {"name": "Kẻ Giả Mạo"}}).decode()
        write_dossier(kind, tmp_path, pg_dsn, "P-1", forged)
        with pytest.raises(
            StoreError, match="payment P-1's payload is not sealed, and encryption.refuse_plaintext"
        ):
            await store.run(units.payment, "P-1")
        raw(
            kind,
            tmp_path,
            pg_dsn,
            "UPDATE events SET payload = ? RETURNING 1",
            '{"dossier": {"code": "HS-1"}}',
        )
        with pytest.raises(StoreError, match="event evt-HS-1's payload is not sealed"):
            await store.run(units.stored_event, "evt-HS-1")
    finally:
        store.close()
    assert Sealer({"k1": K1}, "k1").open("evt-1", '{"plain":true}') == '{"plain":true}'  # off: read as it is
    assert Sealer({"k1": K1}, "k1", refuse_plaintext=True).open("evt-1", PURGED) == PURGED  # retention's mark


def test_refuse_plaintext_comes_from_the_config_and_crosses_to_the_store_process() -> None:
    import pickle  # noqa: PLC0415

    config = Config.model_validate(
        {
            "encryption": {
                "keys": {"k1": base64.b64encode(K1).decode()},
                "current": "k1",
                "refuse_plaintext": True,
            }
        }
    )
    assert config.encryption is not None
    assert pickle.loads(pickle.dumps(config.encryption.sealer())).refuse_plaintext


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
async def test_rotating_seals_plaintext_even_with_refuse_plaintext_on_and_leaves_purged_marks_alone(
    kind: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """``keys rotate`` is what seals plaintext: turning ``refuse_plaintext`` on first must not stop it. A
    purged payload stays the purge's plaintext mark, or retention would no longer know it purged."""
    pg_dsn = request.getfixturevalue("pg_dsn") if kind == "postgres" else None
    store = sealed_store(kind, tmp_path, Sealer({"k1": K1}, "k1"), pg_dsn)
    store.open()
    try:
        await store.run(units.save_payment, payment("P-1"))
        await one_request(store, [item(event("HS-1"), "portal"), item(event("HS-2"), "portal")])
        plain = orjson.dumps({"code": "HS-P-1"}).decode()
        write_dossier(kind, tmp_path, pg_dsn, "P-1", plain)  # as stores from before encryption hold them
        raw(
            kind,
            tmp_path,
            pg_dsn,
            "UPDATE events SET payload = ? WHERE event_id = ? RETURNING 1",
            '{"x":1}',
            "evt-HS-1",
        )
        raw(
            kind,
            tmp_path,
            pg_dsn,
            "UPDATE events SET payload = ? WHERE event_id = ? RETURNING 1",
            PURGED,
            "evt-HS-2",
        )
    finally:
        store.close()
    store = sealed_store(kind, tmp_path, Sealer({"k1": K1}, "k1", refuse_plaintext=True), pg_dsn)
    store.open()
    try:
        assert await store.run(units.reseal_payment_dossiers, "", 10) == ("P-1", 1)
        assert (await store.run(units.reseal_payloads, "", 10))[1] == 1  # evt-HS-1; the purged one left
        assert raw_payloads(kind, tmp_path, pg_dsn)[1] == PURGED
        read = await store.run(units.payment, "P-1")
        assert read is not None
        assert read.dossier == plain
    finally:
        store.close()
