"""Review 5 (found in review, fixed): every look-up is audited with a true outcome, whatever ends it."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest

from conftest import AUTH, Peers, Running, RunNode
from lienthong.citizens.prefill import PrefillRequest
from lienthong.sandbox.base import FaultPlan
from lienthong.sandbox.population import PopulationSandbox, synthetic_citizen
from lienthong.serving import ThreadedServer
from lienthong.store import units
from test_hostile_citizens import with_population

ID = "046090000123"
WHO = {**AUTH, "x-official-id": "CB-0042", "x-purpose": quote("Hồ sơ 1.001193")}


@pytest.fixture
def population() -> Iterator[tuple[PopulationSandbox, str]]:
    peer = PopulationSandbox(faults=FaultPlan(rate=1.0, kinds=("latency",), latency_ms=1500))
    peer.add(synthetic_citizen(ID, "Nguyễn Thị Thu Hà"))
    with ThreadedServer(lambda: peer) as server:
        yield peer, server.url


@pytest.fixture
async def node(
    run_node: RunNode, tmp_path: Path, peers: Peers, population: tuple[PopulationSandbox, str]
) -> Running:
    return await with_population(run_node, tmp_path, peers, population[1], timeout_s=5)


async def test_a_cancelled_lookup_is_not_audited_as_the_callers_invalid_request(node: Running) -> None:
    """A look-up cancelled while the population service is asked (a shutdown, a client gone, a timeout
    around it) did reach the service; it must not be audited as 'invalid' (refused before asking)."""
    prefill = node.node.prefill
    assert prefill is not None
    request = PrefillRequest(ID, "tests", "CB-0042", "Hồ sơ 1.001193")
    task = asyncio.create_task(prefill.lookup(request))
    await asyncio.sleep(0.5)  # the SOAP request is on its way
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    records = await node.node.store.run(units.lookups, 100)
    assert len(records) == 1
    assert records[0].outcome != "invalid", records[0]


async def test_a_client_that_goes_away_leaves_an_audit_record(
    node: Running, population: tuple[PopulationSandbox, str]
) -> None:
    with pytest.raises(httpx.TimeoutException):
        await node.client.get(f"/v1/citizens/{ID}", headers=WHO, timeout=0.4)
    await asyncio.sleep(2.5)
    assert len(population[0].received) == 1  # the service was asked for the record
    records = await node.node.store.run(units.lookups, 100)
    assert len(records) == 1
    assert records[0].outcome != "invalid", records[0]
