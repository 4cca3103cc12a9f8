"""``log verify`` works a page of records at a time, in bulk where every record is good and one by one where
a bulk check fails, so that it still names the first bad record. These tests put the bad record, the gap and
the checkpoints inside one page and across pages (``msglog.verify.PAGE``)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

import stores
from lienthong.msglog import verify as verifying
from lienthong.msglog.checkpointer import Checkpointer, CheckpointSettings, LogDamaged
from lienthong.msglog.checkpoints import SigningKey
from lienthong.msglog.merkle import Tree, leaf_hash
from lienthong.msglog.records import LogRecord, StoredCheckpoint
from lienthong.store import Store, Tx, units


def append(tx: Tx, records: list[LogRecord]) -> None:
    tx.log.append(records)


def record(i: int) -> LogRecord:
    return LogRecord(
        1_796_000_000_000 + i, "delivery", f"m-{i}", "portal.push", "delivered", "aa" * 32, "bb" * 32
    )


async def log_of(tmp_path: Path, n: int, checkpoints: list[int]) -> Store:
    store = stores.make_store("sqlite", tmp_path)
    store.open()
    records = [record(i) for i in range(n)]
    await store.run(append, records)
    tree = Tree()
    for size in sorted(checkpoints):
        tree.add_leaves(leaf_hash(r.data()) for r in records[tree.size : size])
        checkpoint = StoredCheckpoint(size, tree.root().hex(), 1, "", tuple(h.hex() for h in tree.frontier))
        await store.run(units.add_log_checkpoint, checkpoint)
    return store


def edit(tmp_path: Path, sql: str, *args: object) -> None:
    with sqlite3.connect(tmp_path / "lienthong.db") as db:
        db.execute(sql, args)


@pytest.fixture(params=[1000, 7], ids=["one-page", "pages-of-7"])
def page(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> int:
    monkeypatch.setattr(verifying, "PAGE", request.param)
    return int(request.param)


async def test_a_good_log_verifies_with_checkpoints_inside_and_at_the_ends_of_pages(
    tmp_path: Path, page: int
) -> None:
    store = await log_of(tmp_path, 40, [3, 7, 8, 14, 15, 16, 40])
    for forms in (False, True):
        verdict = await verifying.verify(store, forms=forms)
        assert (verdict.ok, verdict.records, verdict.checkpoints) == (True, 40, 7), verdict.problems
    store.close()


async def test_with_forms_a_record_that_hashes_to_its_leaf_but_is_no_record_is_named(
    tmp_path: Path, page: int
) -> None:
    store = await log_of(tmp_path, 30, [])
    for data in (b'{"not": "a record"}', b'[1,"delivery",["nested"],"a","b","c","d","e"]'):
        edit(tmp_path, "UPDATE log_records SET data = ?, leaf = ? WHERE seq = 17", data.decode(),
             leaf_hash(data).hex())  # fmt: skip
        verdict = await verifying.verify(store, forms=True)
        assert verdict.first_bad == 17
        assert verdict.problems[0].startswith("record 17: a log record")
        # Integrity alone: the bytes are the leaf's; no checkpoint covers them to say otherwise.
        assert (await verifying.verify(store)).ok
    store.close()


async def test_an_edited_record_and_a_gap_are_named_where_they_are(tmp_path: Path, page: int) -> None:
    store = await log_of(tmp_path, 30, [20])
    edit(tmp_path, "UPDATE log_records SET data = replace(data, 'delivered', 'dead') WHERE seq = 9")
    verdict = await verifying.verify(store)
    assert verdict.first_bad == 9
    assert verdict.problems[0] == "record 9: its bytes do not hash to its leaf (the record was edited)"

    edit(tmp_path, "DELETE FROM log_records WHERE seq IN (5, 6)")
    verdict = await verifying.verify(store)
    assert verdict.first_bad == 5
    assert verdict.problems[0] == "records 5 to 6 are missing"
    assert any("the checkpoint of size 20 does not match" in p for p in verdict.problems)
    store.close()


async def test_a_checkpoint_whose_root_is_wrong_is_named_whether_inside_a_page_or_at_its_end(
    tmp_path: Path, page: int
) -> None:
    for size in (13, 16):
        (tmp_path / str(size)).mkdir()
        store = await log_of(tmp_path / str(size), 30, [size])
        with sqlite3.connect(tmp_path / str(size) / "lienthong.db") as db:
            db.execute("UPDATE log_checkpoints SET root = ?", ("00" * 32,))
        verdict = await verifying.verify(store)
        assert verdict.problems == [
            f"the checkpoint of size {size} does not match the records: one of records 0 to {size - 1} was"
            " changed, with its leaf hash"
        ]
        store.close()


# Found by a hostile review of the page-at-a-time verification; each failed before its fix.


async def test_leaves_edited_so_that_joined_they_read_the_same_are_named(tmp_path: Path, page: int) -> None:
    """The last hex digit of record 24's leaf moved to the front of record 25's: both leaves wrong, the
    page's leaves joined unchanged."""
    store = await log_of(tmp_path, 30, [])
    (leaf24,), (leaf25,) = (
        sqlite3.connect(tmp_path / "lienthong.db")
        .execute("SELECT leaf FROM log_records WHERE seq = ?", (i,))
        .fetchone()
        for i in (24, 25)
    )
    edit(tmp_path, "UPDATE log_records SET leaf = ? WHERE seq = 24", leaf24[:-1])
    edit(tmp_path, "UPDATE log_records SET leaf = ? WHERE seq = 25", leaf24[-1] + leaf25)
    verdict = await verifying.verify(store)
    assert verdict.first_bad == 24
    assert verdict.problems[:2] == [
        "record 24: its bytes do not hash to its leaf (the record was edited)",
        "record 25: its bytes do not hash to its leaf (the record was edited)",
    ]
    with pytest.raises(LogDamaged, match="record 24 does not hash to its stored leaf"):
        await checkpointer(store).checkpoint()  # nothing damaged is signed
    store.close()


async def test_odd_values_in_the_store_are_named_not_crashed_on(tmp_path: Path, page: int) -> None:
    store = await log_of(tmp_path, 30, [20])
    leaf = bytes.fromhex(leaf_hash(record(4).data()).hex())
    edit(tmp_path, "UPDATE log_records SET leaf = ? WHERE seq = 4", leaf)  # a BLOB, not text
    edit(tmp_path, "UPDATE log_checkpoints SET root = 'not a hash' WHERE size = 20")
    verdict = await verifying.verify(store)
    assert "the checkpoint of size 20: its root 'not a hash' is not a hash" in verdict.problems
    assert "record 4: its bytes do not hash to its leaf (the record was edited)" in verdict.problems
    assert verdict.first_bad == 4  # the unreadable root is no range of records before it
    store.close()


async def test_a_record_that_is_not_text_is_named_by_default_and_never_signed(
    tmp_path: Path, page: int
) -> None:
    """Past the last checkpoint, bytes that are no text with their leaf beside them: no command could
    show them, and a checkpoint would have vouched for them."""
    store = await log_of(tmp_path, 30, [20])
    junk = b'[1,"delivery","\xff\xfe"]'
    with sqlite3.connect(tmp_path / "lienthong.db") as db:
        db.execute(
            "UPDATE log_records SET data = CAST(? AS TEXT), leaf = ? WHERE seq = 25",
            (junk, leaf_hash(junk).hex()),
        )
    verdict = await verifying.verify(store)
    assert (verdict.first_bad, verdict.problems) == (
        25,
        ["record 25: not UTF-8 text (no command can show it)"],
    )
    with pytest.raises(LogDamaged, match="record 25 is not UTF-8 text"):
        await checkpointer(store).checkpoint()
    store.close()


async def test_the_first_bad_record_is_not_claimed_after_a_range_that_holds_an_earlier_one(
    tmp_path: Path, page: int
) -> None:
    store = await log_of(tmp_path, 30, [20])
    edited = record(3)._replace(outcome="dead").data()
    edit(
        tmp_path,
        "UPDATE log_records SET data = ?, leaf = ? WHERE seq = 3",
        edited.decode(),
        leaf_hash(edited).hex(),
    )
    edit(tmp_path, "UPDATE log_records SET data = replace(data, 'delivered', 'dead') WHERE seq = 25")
    verdict = await verifying.verify(store)
    assert verdict.problems[0].startswith(
        "the checkpoint of size 20 does not match the records: one of records 0"
    )
    assert verdict.first_bad is None  # not 25: one of 0 to 19 is bad before it
    store.close()


async def test_a_row_below_the_first_index_is_named_and_proofs_skip_it(tmp_path: Path, page: int) -> None:
    store = await log_of(tmp_path, 30, [30])
    forged = record(99)._replace(subject="m-5").data()
    edit(tmp_path, "INSERT INTO log_records (seq, at_ms, kind, subject, data, leaf) VALUES (-1, 1, 'delivery',"
         " 'm-5', ?, ?)", forged.decode(), leaf_hash(forged).hex())  # fmt: skip
    verdict = await verifying.verify(store)
    assert verdict.problems == ["record -1: out of place (the log's indexes run from 0, each once)"]
    (proof,) = await verifying.prove(store, "m-5")
    assert proof["index"] == 5
    junk = b'[1,"delivery","\xff\xfe"]'
    with sqlite3.connect(tmp_path / "lienthong.db") as db:
        db.execute("UPDATE log_records SET data = CAST(? AS TEXT) WHERE seq = 5", (junk,))
    with pytest.raises(LookupError, match="record 5 about 'm-5' is not UTF-8 text"):
        await verifying.prove(store, "m-5")
    store.close()


def checkpointer(store: Store) -> Checkpointer:
    return Checkpointer(
        store, SigningKey.generate("lienthong.test"), CheckpointSettings("lienthong.test"), clock=lambda: 0.0
    )
