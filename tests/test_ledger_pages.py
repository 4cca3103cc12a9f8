"""The dossier ledger read in pages (integrity checks and KPIs scan it), on every backend."""

from __future__ import annotations

from collections.abc import Sequence

from lienthong.model import LedgerEntry
from lienthong.store import Store, units
from lienthong.store.contract import Tx

NOW = 1_764_522_000_000


def apply(tx: Tx, entries: Sequence[LedgerEntry], now_ms: int) -> None:
    """Ledger entries as ingest writes them (a unit of this module: the store's process imports it)."""
    tx.ledger.apply(entries, now_ms)


def entry(code: str, results: int | None = None, hashes: tuple[str, ...] = ()) -> LedgerEntry:
    return LedgerEntry(
        code, "U1", f"e-{code}", "dossier.received", NOW, "received", result_sha256=hashes, results=results
    )


async def test_the_ledger_reads_in_pages_each_dossier_once(store: Store) -> None:
    codes = [f"HS-{n:03d}" for n in range(25)]
    await store.run(apply, [entry(code) for code in reversed(codes)], NOW)
    seen: list[str] = []
    after = ""
    while page := await store.run(units.ledger_page, after, 10):
        assert len(page) <= 10
        seen.extend(e.dossier_code for e in page)
        after = page[-1].dossier_code
    assert sorted(seen) == codes
    assert len(seen) == len(set(seen))


async def test_the_count_of_results_is_kept_and_a_later_event_without_it_keeps_it(store: Store) -> None:
    await store.run(apply, [entry("HS-1", results=2, hashes=("a" * 64,))], NOW)
    later = entry("HS-1")._replace(occurred_ms=NOW + 1, last_event_id="e-2")
    await store.run(apply, [later], NOW + 1)
    stored = await store.run(units.ledger_entry, "HS-1")
    assert stored is not None
    assert (stored.results, stored.result_sha256, stored.last_event_id) == (2, ("a" * 64,), "e-2")
