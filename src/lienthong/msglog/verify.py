"""``log verify`` and ``log prove`` over a store: the whole log against its checkpoints, and one record's
inclusion proof.

Verification reads every record once, in index order, in pages: each record's bytes must parse, hash to
the leaf kept beside them, and follow the one before (no gap); at each checkpoint's size the tree built
from the records' own bytes must have the checkpoint's root, and the checkpoint's note must be signed by
the log's key (given its verifier key). It names the first bad record where one record alone is bad, and
otherwise the range a checkpoint's root covers. A checkpoint larger than the log means the log was cut
short; a checkpoint from elsewhere (an auditor's copy) whose root differs means the log forked.
"""

from __future__ import annotations

import asyncio
import base64
import bisect
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from operator import itemgetter
from typing import Any

from lienthong.msglog.checkpoints import Checkpoint, NoteError, open_checkpoint
from lienthong.msglog.merkle import Tree, inclusion_proof, leaf_hash, leaf_hashes
from lienthong.msglog.records import LogRecord, StoredCheckpoint
from lienthong.store import Store, units

PAGE = 10_000
_data, _leaf = itemgetter(1), itemgetter(2)


@dataclass
class Verdict:
    records: int = 0
    checkpoints: int = 0
    problems: list[str] = field(default_factory=list)
    first_bad: int | None = None
    """The index of the first record found bad (None: none, or a range a checkpoint covers was found bad
    before any one record was)."""

    @property
    def ok(self) -> bool:
        return not self.problems


async def pages(store: Store) -> AsyncIterator[list[tuple[int, bytes, str]]]:
    """The log's records a page at a time, the next page read while the caller works on this one; from
    the lowest index the store holds (a row below 0 is damage to be named, not skipped)."""
    start = -(2**63)
    page = await store.run(units.log_records, start, PAGE)
    while page:
        following = asyncio.ensure_future(store.run(units.log_records, page[-1][0] + 1, PAGE))
        try:
            yield page
        except BaseException:
            following.cancel()
            raise
        page = await following


async def _all_checkpoints(store: Store) -> list[StoredCheckpoint]:
    found: list[StoredCheckpoint] = []
    before: int | None = None
    while page := await store.run(units.log_checkpoints, 1000, before):
        found.extend(page)
        before = page[-1].size
    return found[::-1]  # smallest first


async def verify(
    store: Store, *, verifier: str | None = None, outside: Sequence[Checkpoint] = (), forms: bool = False
) -> Verdict:
    """Check the whole log; ``verifier`` checks the checkpoints' signatures, ``outside`` are checkpoints
    kept elsewhere that the log must still agree with; ``forms`` also parses every record (``--forms``).

    Without ``forms`` this is the log's integrity: every record's bytes against its leaf, and the tree they
    make against every checkpoint, each record's bytes checked to be UTF-8 text. Parsing each record finds
    what only lienthong's own writer could have done (a record under a signed checkpoint was written by
    the key's holder) and took 14-26% longer (``benchmarks/bench_msglog.py``)."""
    stored = await _all_checkpoints(store)
    walk = _Walk(verifier, forms)
    walk.verdict.checkpoints = len(stored)
    for c in stored:
        try:
            root = bytes.fromhex(c.root)
        except ValueError:
            walk.bad(None, f"the checkpoint of size {c.size}: its root {c.root[:16]!r} is not a hash")
            continue
        walk.due.setdefault(c.size, []).append(("checkpoint", root, c.note))
    for o in outside:
        walk.due.setdefault(o.size, []).append(("outside", o.root, ""))
    walk.sizes = sorted(walk.due)
    walk.check_roots()  # a checkpoint of the empty log
    async for page in pages(store):
        walk.page(page)
    return walk.finish()


def _utf8(data: bytes) -> bool:
    try:
        data.decode()
    except UnicodeDecodeError:
        return False
    return True


class _Walk:
    """The tree rebuilt from the records' own bytes, checked at every size a checkpoint names."""

    def __init__(self, verifier: str | None, forms: bool) -> None:
        self.verifier = verifier
        self.forms = forms
        self.verdict = Verdict()
        self.due: dict[int, list[tuple[str, bytes, str]]] = {}
        self.sizes: list[int] = []  # of ``due``, ascending
        self.tree = Tree()
        self.previous = 0
        self.bad_range = False
        """A range of records (a checkpoint's) was found bad: a record named after it may not be the first."""

    def inside(self, start: int, end: int) -> list[int]:
        """The sizes a checkpoint names strictly between ``start`` and ``end``, less ``start``."""
        found = self.sizes[bisect.bisect_right(self.sizes, start) : bisect.bisect_left(self.sizes, end)]
        return [size - start for size in found]

    def bad(self, index: int | None, what: str, *, records: bool = False) -> None:
        """A problem; ``index``: the record it names; ``records``: it is about a range of records."""
        # Records are walked in index order, but a range found bad before may hold an earlier record.
        if index is not None and self.verdict.first_bad is None and not self.bad_range:
            self.verdict.first_bad = index
        self.bad_range = self.bad_range or records
        self.verdict.problems.append(what)

    def page(self, page: Sequence[tuple[int, bytes, str]]) -> None:
        """The records of a page, in index order: in bulk up to each size a checkpoint names, one by one
        where the bulk checks find something (to name the first bad record)."""
        start = 0
        while start < len(page):
            size = self.tree.size
            due = self.inside(size, size + len(page) - start)
            end = start + due[0] if due else len(page)
            if not self._bulk(page[start:end]):
                for index, data, leaf in page[start:end]:
                    self.record(index, data, leaf)
            start = end

    def _bulk(self, records: Sequence[tuple[int, bytes, str]]) -> bool:
        """Add ``records`` when they are all good: dense from the tree's size, each hashing to its leaf,
        each well formed. False, having added nothing, when any of them is not."""
        size = self.tree.size
        if records[0][0] != size or records[-1][0] != size + len(records) - 1:
            return False  # the store gives indexes strictly increasing: first and last show them dense
        datas, leaves = list(map(_data, records)), list(map(_leaf, records))
        if set(map(type, leaves)) != {str} or set(map(len, leaves)) != {64}:
            return False  # joined, leaves of 64 characters each compare one to one
        computed = leaf_hashes(datas)
        if b"".join(computed).hex() != "".join(leaves):
            return False
        if self.forms:
            if not LogRecord.all_well_formed(datas):
                return False
        elif not _utf8(b"\n".join(datas)):  # "\n" ends any sequence cut short: each record is checked
            return False
        self.tree.add_leaves(computed)
        if self.tree.size in self.due:
            self.check_roots()
        return True

    def record(self, index: int, data: bytes, leaf: str) -> None:
        tree = self.tree
        if index < tree.size:
            self.bad(index, f"record {index}: out of place (the log's indexes run from 0, each once)")
            return
        if index != tree.size:
            self.bad(tree.size, f"records {tree.size} to {index - 1} are missing")
            while tree.size < index:  # go on from where the log goes on
                tree.append(b"\x00" * 32)
        computed = leaf_hash(data)
        if computed.hex() != leaf:
            self.bad(index, f"record {index}: its bytes do not hash to its leaf (the record was edited)")
        elif self.forms:
            try:
                LogRecord.parse(data, exact=False)
            except ValueError as exc:
                self.bad(index, f"record {index}: {exc}")
        elif not _utf8(data):
            self.bad(index, f"record {index}: not UTF-8 text (no command can show it)")
        tree.append(computed)
        if tree.size in self.due:
            self.check_roots()

    def check_roots(self, tree: Tree | None = None) -> None:
        tree = tree or self.tree
        size, root = tree.size, tree.root()
        for source, expected, note in self.due.get(size, ()):
            if source == "outside" and root != expected:
                self.bad(None, f"forked: a checkpoint kept elsewhere gives size {size} the root"
                               f" {expected.hex()[:16]}, the log gives {root.hex()[:16]}",
                         records=True)  # fmt: skip
            elif source == "checkpoint" and root != expected:
                self.bad(None, f"the checkpoint of size {size} does not match the records: one of records"
                               f" {self.previous} to {size - 1} was changed, with its leaf hash",
                         records=True)  # fmt: skip
            elif source == "checkpoint" and self.verifier is not None:
                self._signed(note, size, root)
        if size in self.due:
            self.previous = size

    def _signed(self, note: str, size: int, root: bytes) -> None:
        assert self.verifier is not None
        try:
            signed = open_checkpoint(note, self.verifier)
        except NoteError as exc:
            self.bad(None, f"the checkpoint of size {size} is not signed by the log's key: {exc}")
            return
        if (signed.size, signed.root) != (size, root):
            self.bad(None, f"the checkpoint of size {size}: its signed note says otherwise")

    def finish(self) -> Verdict:
        size = self.verdict.records = self.tree.size
        for wanted in sorted(self.due):
            if wanted > size:
                whose = (
                    "a checkpoint kept elsewhere"
                    if all(source == "outside" for source, _, _ in self.due[wanted])
                    else "the log's own checkpoint"
                )
                self.bad(size, f"the log was cut short: {whose} covers {wanted} records, the log has {size}")
                break
        return self.verdict


async def prove(store: Store, subject: str) -> list[dict[str, Any]]:
    """An inclusion proof for each record about ``subject`` (a message id, a reference) under the latest
    checkpoint: what ``msglog.proofcheck`` checks with the verifier key alone. LookupError: no such record,
    or none yet under a checkpoint."""
    records = await store.run(units.log_about, subject, 100)
    if not records:
        raise LookupError(f"no record about {subject!r} in the message log")
    latest = await store.run(units.log_checkpoints, 1)
    if not latest or records[0][0] >= latest[0].size:
        raise LookupError(
            f"the records about {subject!r} are not under a checkpoint yet: wait for the next one"
            " (message_log.checkpoint_interval_s)"
        )
    checkpoint = latest[0]
    leaves: list[bytes] = []
    try:
        async for page in pages(store):
            leaves.extend(bytes.fromhex(leaf) for index, _, leaf in page if index >= 0)
            if len(leaves) >= checkpoint.size:
                break
    except (ValueError, TypeError):
        raise LookupError("a leaf in the log is not a hash: run log verify") from None
    del leaves[checkpoint.size :]
    if len(leaves) < checkpoint.size:
        raise LookupError(
            f"the log holds fewer records than its checkpoint of {checkpoint.size}: run log verify"
        )
    proofs = []
    for index, data in records:
        if not 0 <= index < checkpoint.size:
            continue
        try:
            text = data.decode()
        except UnicodeDecodeError:
            raise LookupError(f"record {index} about {subject!r} is not UTF-8 text: run log verify") from None
        proof = [base64.b64encode(h).decode() for h in inclusion_proof(index, leaves)]
        proofs.append({"index": index, "record": text, "size": checkpoint.size, "proof": proof,
                       "checkpoint": checkpoint.note})  # fmt: skip
    if not proofs:
        raise LookupError(f"no record about {subject!r} under the latest checkpoint: run log verify")
    return proofs
