"""Review 2: a signed confirm whose money is not the money asked for must not pay the fee."""

from __future__ import annotations

from conftest import AUTH, Running
from lienthong.payments import CONFIRM_FIELDS, paygov_code
from lienthong.sandbox.paygov import PayGovSandbox
from lienthong.store import units
from test_payments import SECRET, node, paygov, requested

__all__ = ["node", "paygov"]


async def test_a_confirm_in_another_currency_does_not_pay_a_fee_asked_for_in_dong(
    node: Running, paygov: tuple[PayGovSandbox, str]
) -> None:
    reference = await requested(node)  # INIT asked for 125 000 VND
    confirm = paygov[0].confirmation(reference)
    confirm["MaTienTe"] = "USD"  # MaTienTe is signed: the platform says 125 000 US dollars
    confirm["MaXacThuc"] = paygov_code(confirm, CONFIRM_FIELDS, SECRET)
    answer = await node.client.post("/v1/payments/paygov/confirm", json=confirm)
    state = (await node.client.get(f"/v1/payments/{reference}", headers=AUTH)).json()
    confirmed = node.sample("lienthong_events_received_total", type="payment.confirmed", outcome="accepted")
    verdicts = [c.verdict for c in await node.node.store.run(units.callbacks, 10, reference)]
    assert (state["status"], confirmed) != ("paid", 1), (
        f"a USD confirm paid a VND fee (answer {answer.json()['MaLoi']}, verdicts {verdicts})"
    )
    assert answer.status_code in (400, 409)
