"""The payments a reconciliation reads from the store, on every backend (the ``store`` fixture)."""

from __future__ import annotations

import orjson

from lienthong.payments.records import PaymentRecord
from lienthong.store import Store, units

DAY_MS = 86_400_000
START = 1_764_522_000_000  # 2025-12-01T00:00+07:00


def record(reference: str, status: str, updated_ms: int) -> PaymentRecord:
    dossier = orjson.dumps({"code": f"HS-{reference}"}).decode()
    return PaymentRecord(
        reference, f"HS-{reference}", "U1", 10_000, dossier, "https://pay", status, "T", updated_ms
    )


async def test_paid_between_is_the_paid_payments_of_the_window_only(store: Store) -> None:
    for payment in (
        record("before", "paid", START - 1),
        record("first", "paid", START),
        record("last", "paid", START + DAY_MS - 1),
        record("after", "paid", START + DAY_MS),
        record("waiting", "pending", START + 5),
        record("failed", "failed", START + 5),
    ):
        await store.run(units.save_payment, payment)
    found = await store.run(units.paid_between, START, START + DAY_MS)
    assert sorted(p.reference for p in found) == ["first", "last"]


async def test_unsettled_payments_are_the_oldest_initiated_and_pending_ones(store: Store) -> None:
    for payment in (
        record("new", "initiated", START + 10),
        record("old", "pending", START),
        record("too-late", "pending", START + DAY_MS),
        record("paid", "paid", START),
        record("failed", "failed", START),
    ):
        await store.run(units.save_payment, payment)
    found = await store.run(units.unsettled_payments, START + DAY_MS, 10)
    assert [p.reference for p in found] == ["old", "new"]
    assert [p.reference for p in await store.run(units.unsettled_payments, START + DAY_MS, 1)] == ["old"]
