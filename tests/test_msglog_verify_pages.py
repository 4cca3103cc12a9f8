"""``log verify`` works a page of records at a time, in bulk where every record is good and one by one where
a bulk check fails, so that it still names the first bad record. These tests put the bad record, the gap and
the checkpoints inside one page and across pages (``msglog.verify.PAGE``)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

import stores
from lienthong.msglog import verify as verifying
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
