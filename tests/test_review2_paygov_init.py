"""Review 2: the payment platform's INIT answers that must not be taken as a payment created."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import AUTH, Peers, RunNode
from lienthong.sandbox.paygov import PayGovSandbox
from lienthong.serving import ThreadedServer
from lienthong.store import units
from test_payments import paygov, payment_request, payments_config

__all__ = ["paygov"]


class _NoPayUrl(PayGovSandbox):
    """A platform answering INIT (and QUERY) with MaLoi 00 but no UrlThanhToan: a half answer."""

    def _pay_url(self, reference: str) -> str:
        return ""


@pytest.fixture
def no_pay_url() -> Iterator[tuple[PayGovSandbox, str]]:
    peer = _NoPayUrl()
    with ThreadedServer(lambda: peer) as server:
        yield peer, server.url


async def test_an_init_answer_without_a_pay_url_is_not_a_payment_the_citizen_can_pay(
    run_node: RunNode, tmp_path: Path, peers: Peers, no_pay_url: tuple[PayGovSandbox, str]
) -> None:
    node = await run_node(**payments_config(tmp_path, peers, no_pay_url[1]))
    event, reference = payment_request()
    assert (await node.post(event)).status_code == 202
    await node.settle()
    answer = await node.client.get(f"/v1/payments/{reference}", headers=AUTH)
    # Either the INIT is not taken (retried, then a dead letter a person sees), or the payment has a URL.
    assert answer.status_code == 404 or answer.json()["pay_url"], (
        f"INIT was taken as delivered and the payment recorded with no pay URL: {answer.json()}"
    )


async def test_a_reference_asked_again_with_another_amount_is_refused_not_silently_dropped(
    run_node: RunNode, tmp_path: Path, peers: Peers, paygov: tuple[PayGovSandbox, str]
) -> None:
    paygov[0].base_url = paygov[1]
    node = await run_node(**payments_config(tmp_path, peers, paygov[1]))
    event, reference = payment_request()
    assert (await node.post(event)).status_code == 202
    await node.settle()
    again = copy.deepcopy(event)
    again["event_id"] = f"{event['event_id']}-fee-changed"
    again["dossier"]["fees"][0]["amount"] = 200_000  # 225 000 đ now, same MaThamChieu
    assert (await node.post(again)).status_code == 202
    await node.settle()
    state = (await node.client.get(f"/v1/payments/{reference}", headers=AUTH)).json()
    assert state["amount"] == 125_000  # the platform and lienthong still hold the first amount...
    dead = sum(s.dead for s in await node.node.store.run(units.stats))
    # ...so the request for 225 000 đ must not count as delivered: the province would believe it.
    assert dead == 1, "INIT for 225 000 đ on a reference holding 125 000 đ was taken as delivered"
