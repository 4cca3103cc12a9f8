"""Review 2: the e-receipt must say the amount the citizen paid.

The receipt mappings list the dossier's fee lines and total them; ``paygov_init`` charges
``dossier.payment.amount`` when the event gives one. Decided: an amount charged must be the sum of the fee
lines it carries (``ThongTinBienLai.PhiLePhi``), checked by the payment adapter before any INIT, so no
money moves that a receipt could not state. A mismatch is a dead letter a person looks at.
"""

from __future__ import annotations

from pathlib import Path

from conftest import AUTH, Peers, Running, RunNode
from lienthong.sandbox.paygov import PayGovSandbox
from lienthong.store import units
from test_payments import paygov, payment_request, payments_config  # noqa: F401 (the fixture)


async def requested_for(
    amount: int, run_node: RunNode, tmp_path: Path, peers: Peers, peer: tuple[PayGovSandbox, str]
) -> tuple[Running, str]:
    """A node that took a payment request whose payment says ``amount`` (its fee lines: 125 000 đ)."""
    sandbox, url = peer
    sandbox.base_url = url
    node = await run_node(**payments_config(tmp_path, peers, url))
    event, reference = payment_request()
    event["dossier"]["payment"]["amount"] = amount
    assert (await node.post(event)).status_code == 202
    await node.settle()
    return node, reference


async def test_a_payment_charging_other_than_its_fee_lines_is_refused_before_any_money_moves(
    run_node: RunNode,
    tmp_path: Path,
    peers: Peers,
    paygov: tuple[PayGovSandbox, str],  # noqa: F811
) -> None:
    # Given a payment request whose payment says 100 000 đ while its fee lines add up to 125 000 đ
    node, reference = await requested_for(100_000, run_node, tmp_path, peers, paygov)
    # Then no payment is asked of the platform (a receipt would list 125 000 đ for 100 000 đ paid)...
    assert (await node.client.get(f"/v1/payments/{reference}", headers=AUTH)).status_code == 404
    (letter,) = await node.node.store.run(units.dead_letters, "paygov", 10)
    # ...and a person sees why, in the dead letter
    assert "fee lines add up to 125000" in (letter.last_error or "")


async def test_a_payment_charging_its_fee_lines_sum_is_asked_of_the_platform(
    run_node: RunNode,
    tmp_path: Path,
    peers: Peers,
    paygov: tuple[PayGovSandbox, str],  # noqa: F811
) -> None:
    # Given a payment request whose payment says 125 000 đ, the sum of its fee lines
    node, reference = await requested_for(125_000, run_node, tmp_path, peers, paygov)
    # Then it is asked of the platform as before
    answer = await node.client.get(f"/v1/payments/{reference}", headers=AUTH)
    assert answer.status_code == 200
    assert answer.json()["amount"] == 125_000
