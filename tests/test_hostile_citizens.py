"""Hostile values in citizen look-ups: ids in look-alike digits, a purpose or official id too long or with
control characters. Each is refused (422, naming where) before the population service is asked, and the
audit keeps a bounded, printable record of it (issue 10: 10, 11)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest

from conftest import AUTH, Peers, Running, RunNode, config_dict
from lienthong.sandbox.population import PopulationSandbox, synthetic_citizen
from lienthong.serving import ThreadedServer
from lienthong.store import units

ID = "046090000123"
WHO = {**AUTH, "x-official-id": "CB-0042", "x-purpose": quote("Hồ sơ 1.001193 đăng ký khai sinh")}


@pytest.fixture
def population() -> Iterator[tuple[PopulationSandbox, str]]:
    peer = PopulationSandbox()
    peer.add(synthetic_citizen(ID, "Nguyễn Thị Thu Hà"))
    with ThreadedServer(lambda: peer) as server:
        yield peer, server.url


async def with_population(
    run_node: RunNode, tmp_path: Path, peers: Peers, url: str, *, timeout_s: float = 2
) -> Running:
    """A node whose citizens' look-ups ask the population service at ``url``."""
    base = config_dict(tmp_path, peers)
    source = {
        "kind": "population",
        "base_url": url,
        "ma_tich_hop": "LIENTHONG-SANDBOX",
        "ma_dvc": "DVC-H56",
        "timeout_s": timeout_s,
    }
    running: Running = await run_node(
        destinations={**base["destinations"], "population": source},
        citizens={"source": "population", "audit_key": "audit-key-for-tests-only-0123456789"},
    )
    return running


@pytest.fixture
async def node(
    run_node: RunNode, tmp_path: Path, peers: Peers, population: tuple[PopulationSandbox, str]
) -> Running:
    return await with_population(run_node, tmp_path, peers, population[1])


@pytest.mark.parametrize(
    "id_number",
    [
        "０４６０９００００１２３",  # full-width digits: Python's \d takes them
        "٠٤٦٠٩٠٠٠٠١٢٣",  # Arabic-Indic digits
        f"{ID}\n",  # a trailing newline: Python's $ takes it
        f"{ID[:11]}\u0663",
    ],
)
async def test_a_citizen_id_must_be_12_ascii_digits(
    node: Running, population: tuple[PopulationSandbox, str], id_number: str
) -> None:
    answer = await node.client.get(f"/v1/citizens/{quote(id_number)}", headers=WHO)
    assert answer.status_code == 422
    assert answer.json()["error"]["code"] == "invalid_id"
    assert population[0].received == []


async def test_a_plain_citizen_id_is_still_looked_up(node: Running) -> None:
    answer = await node.client.get(f"/v1/citizens/{ID}", headers=WHO)
    assert answer.status_code == 200


@pytest.mark.parametrize(
    ("purpose", "message"),
    [
        ("Hồ sơ " * 100, "at most 500 characters"),
        ("Hồ sơ 1.001193\x00 khai sinh", "control characters"),
        ("Hồ sơ\r\nX-Injected: 1", "control characters"),
        ("Hồ sơ\u200b\u202e", "control characters"),
    ],
)
async def test_a_purpose_too_long_or_with_control_characters_is_refused_and_not_stored(
    node: Running, population: tuple[PopulationSandbox, str], purpose: str, message: str
) -> None:
    answer = await node.client.get(f"/v1/citizens/{ID}", headers={**WHO, "x-purpose": quote(purpose)})
    assert answer.status_code == 422
    error = answer.json()["error"]
    assert (error["code"], error["path"]) == ("invalid_purpose", "X-Purpose")
    assert message in error["message"]
    assert population[0].received == []
    (audit,) = await node.node.store.run(units.lookups, 100)
    assert audit.outcome == "invalid"
    assert len(audit.purpose) <= 500
    assert all(c.isprintable() or c == " " for c in audit.purpose)


async def test_an_official_id_too_long_or_with_control_characters_is_refused(node: Running) -> None:
    for official in ("CB-" + "9" * 200, "CB\t1"):  # other control bytes the HTTP parser refuses itself
        answer = await node.client.get(f"/v1/citizens/{ID}", headers={**WHO, "x-official-id": official})
        assert answer.status_code == 422
        assert answer.json()["error"]["path"] == "X-Official-Id"


async def test_a_purpose_of_500_characters_is_accepted_and_audited_whole(node: Running) -> None:
    purpose = ("Hồ sơ khai sinh " * 40)[:500]
    answer = await node.client.get(f"/v1/citizens/{ID}", headers={**WHO, "x-purpose": quote(purpose)})
    assert answer.status_code == 200
    (audit,) = await node.node.store.run(units.lookups, 100)
    assert audit.purpose == purpose
