"""E-form prefill through GET /v1/citizens/{id}: only the form's fields, every request audited, clear errors."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from conftest import AUTH, Peers, Running, RunNode, config_dict
from lienthong.config import parse_config
from lienthong.errors import ConfigError
from lienthong.sandbox.lgsp import LgspSandbox
from lienthong.sandbox.population import PopulationSandbox, synthetic_citizen
from lienthong.serving import ThreadedServer
from lienthong.store import units

AUDIT_KEY = "audit-key-for-tests-only-0123456789"
ID = "046090000123"
CITIZEN = synthetic_citizen(ID, "Nguyễn Thị Thu Hà")
PURPOSE = "Hồ sơ 1.001193 đăng ký khai sinh"
WHO = {**AUTH, "x-official-id": "CB-0042", "x-purpose": quote(PURPOSE)}


@pytest.fixture
def population() -> Iterator[tuple[PopulationSandbox, str]]:
    peer = PopulationSandbox()
    peer.add(CITIZEN)
    with ThreadedServer(lambda: peer) as server:
        yield peer, server.url


def with_population(tmp_path: Path, peers: Peers, url: str, **citizens: Any) -> dict[str, Any]:
    base = config_dict(tmp_path, peers)
    destinations = {
        **base["destinations"],
        "population": {
            "kind": "population",
            "base_url": url,
            "ma_tich_hop": citizens.pop("ma_tich_hop", "LIENTHONG-SANDBOX"),
            "ma_dvc": "DVC-H56",
            "timeout_s": 2,
        },
    }
    return {
        "destinations": destinations,
        "citizens": {"source": "population", "audit_key": AUDIT_KEY, **citizens},
    }


@pytest.fixture
async def node(
    run_node: RunNode, tmp_path: Path, peers: Peers, population: tuple[PopulationSandbox, str]
) -> Running:
    running: Running = await run_node(**with_population(tmp_path, peers, population[1]))
    return running


async def test_a_citizen_prefills_only_the_forms_fields_and_the_lookup_is_audited(node: Running) -> None:
    answer = await node.client.get(f"/v1/citizens/{ID}", headers=WHO)
    assert answer.status_code == 200
    body = answer.json()
    assert body["form"] == "default"
    assert set(body["fields"]) == {
        "ho_ten",
        "so_dinh_danh",
        "so_cmnd",
        "ngay_sinh",
        "gioi_tinh",
        "quoc_tich",
        "thuong_tru",
        "noi_o_hien_tai",
    }
    assert body["fields"]["ho_ten"] == "Nguyễn Thị Thu Hà"
    assert "SoSoHoKhau" not in answer.text
    assert CITIZEN["SoSoHoKhau"] not in answer.text
    (audit,) = await node.node.store.run(units.lookups, 100)
    assert audit.request_id == body["request_id"]
    assert (audit.caller, audit.official_id, audit.purpose, audit.outcome) == (
        "tests",
        "CB-0042",
        PURPOSE,
        "found",
    )
    assert audit.subject_ref == hmac.new(AUDIT_KEY.encode(), ID.encode(), hashlib.sha256).hexdigest()
    assert ID not in repr(audit)
    assert "Nguyễn" not in repr(audit)
    assert node.sample("lienthong_citizen_lookups_total", outcome="found") == 1


async def test_a_request_without_official_or_purpose_is_refused_and_still_audited(
    node: Running, population: tuple[PopulationSandbox, str]
) -> None:
    answer = await node.client.get(f"/v1/citizens/{ID}", headers={**AUTH, "x-official-id": "CB-0042"})
    assert answer.status_code == 400
    assert answer.json()["error"]["code"] == "accountability_required"
    assert "X-Purpose" in answer.json()["error"]["message"]
    assert population[0].received == []
    (audit,) = await node.node.store.run(units.lookups, 100)
    assert audit.outcome == "invalid"


@pytest.mark.parametrize(
    ("path", "params", "status", "code", "error_path"),
    [
        ("/v1/citizens/04609000012", {}, 422, "invalid_id", "id"),
        (f"/v1/citizens/{ID}", {"form": "giay-phep"}, 404, "unknown_form", "form"),
        (f"/v1/citizens/{ID}", {"birth_date": "1990-01-15"}, 422, "invalid_birth_date", "birth_date"),
        (f"/v1/citizens/{ID}", {"birth_date": "31/02/1990"}, 422, "invalid_birth_date", "birth_date"),
        (f"/v1/citizens/{ID}", {"birth_date": "19909999"}, 422, "invalid_birth_date", "birth_date"),
        ("/v1/citizens/046090000999", {}, 404, "citizen_not_found", "id"),
        (f"/v1/citizens/{ID}", {"name": "Nguyễn Thị Hà"}, 409, "citizen_mismatch", "name"),
    ],
)
async def test_each_kind_of_failure_has_its_own_answer(
    node: Running, path: str, params: dict[str, str], status: int, code: str, error_path: str
) -> None:
    answer = await node.client.get(path, headers=WHO, params=params)
    assert answer.status_code == status
    assert answer.json()["error"]["code"] == code
    assert answer.json()["error"]["path"] == error_path


async def test_matching_name_and_birth_date_are_accepted(node: Running) -> None:
    born = CITIZEN["NgayThangNamSinh"]["NgayThangNam"]
    params = {"name": "nguyễn thị thu hà", "birth_date": f"{born[6:]}/{born[4:6]}/{born[:4]}"}
    answer = await node.client.get(f"/v1/citizens/{ID}", headers=WHO, params=params)
    assert answer.status_code == 200


async def test_an_unavailable_service_is_503_and_a_refusing_one_502(
    node: Running,
    population: tuple[PopulationSandbox, str],
    run_node: RunNode,
    tmp_path: Path,
    peers: Peers,
    caplog: pytest.LogCaptureFixture,
) -> None:
    population[0].inject("error")
    answer = await node.client.get(f"/v1/citizens/{ID}", headers=WHO)
    assert answer.status_code == 503
    assert answer.json()["error"]["code"] == "population_unavailable"
    refused: Running = await run_node(
        **with_population(tmp_path, peers, population[1], ma_tich_hop="NOT-LICENSED")
    )
    answer = await refused.client.get(f"/v1/citizens/{ID}", headers=WHO)
    assert answer.status_code == 502
    # The service's words go to the node's log, not to the caller (they can name a citizen).
    assert answer.json()["error"]["message"] == (
        "the population service refused the request (the node's log says why)"
    )
    assert "MaTichHop 'NOT-LICENSED'" in caplog.text
    assert [a.outcome for a in await node.node.store.run(units.lookups, 100)] == ["unavailable"]
    assert [a.outcome for a in await refused.node.store.run(units.lookups, 100)] == ["refused"]


async def test_a_failing_token_endpoint_is_a_population_outage_answered_and_audited_as_one(
    run_node: RunNode,
    tmp_path: Path,
    peers: Peers,
    population: tuple[PopulationSandbox, str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    # The population service sits behind an OAuth2 gateway; its token endpoint fails, not the service.
    gateway = LgspSandbox()
    with ThreadedServer(lambda: gateway) as server:
        data = with_population(tmp_path, peers, population[1])
        data["destinations"]["population"]["auth"] = {
            "kind": "oauth2",
            "token_url": f"{server.url}/oauth2/token",
            "client_id": gateway.client_id,
            "client_secret": gateway.client_secret,
        }
        running: Running = await run_node(**data)
        gateway.inject("error")  # the token endpoint answers 503
        down = await running.client.get(f"/v1/citizens/{ID}", headers=WHO)
        gateway.client_secret = "rotated"
        refused = await running.client.get(f"/v1/citizens/{ID}", headers=WHO)
        gateway.client_secret = "sandbox-client-secret"
        found = await running.client.get(f"/v1/citizens/{ID}", headers=WHO)
    assert (down.status_code, down.json()["error"]["code"]) == (503, "population_unavailable")
    assert "the token endpoint answered http 503" in caplog.text
    assert (refused.status_code, refused.json()["error"]["code"]) == (502, "population_refused")
    assert "the token endpoint refused the client: http 401" in caplog.text
    assert found.status_code == 200
    assert population[0].requests == 1  # the service itself is asked only once a token was given
    outcomes = [a.outcome for a in await running.node.store.run(units.lookups, 100)]
    assert sorted(outcomes) == ["found", "refused", "unavailable"]
    assert running.sample("lienthong_citizen_lookups_total", outcome="unavailable") == 1


async def test_a_fault_of_ours_during_a_lookup_is_audited_as_failed_not_invalid(
    node: Running, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken(query: object) -> None:
        raise RuntimeError("a bug")

    assert node.node.population is not None
    monkeypatch.setattr(node.node.population, "lookup", broken)
    answer = await node.client.get(f"/v1/citizens/{ID}", headers=WHO)
    assert answer.status_code == 500
    (audit,) = await node.node.store.run(units.lookups, 100)
    assert audit.outcome == "failed"  # the request was valid: "invalid" would blame the caller


async def test_a_form_returns_only_what_its_mapping_names(
    run_node: RunNode, tmp_path: Path, peers: Peers, population: tuple[PopulationSandbox, str]
) -> None:
    spec = tmp_path / "birth_form.yaml"
    spec.write_text(
        "personal_sources: ['$']\nfields:\n"
        "  me: {from: [HoVaTen.Ho, HoVaTen.ChuDem, HoVaTen.Ten], apply: join, personal: {basis: 'NĐ 13/2023 Điều 17'}}\n"
    )
    running: Running = await run_node(
        **with_population(
            tmp_path, peers, population[1], forms={"default": "bundled:citizen_eform", "khai-sinh": str(spec)}
        )
    )
    answer = await running.client.get(f"/v1/citizens/{ID}", headers=WHO, params={"form": "khai-sinh"})
    assert answer.json()["fields"] == {"me": "Nguyễn Thị Thu Hà"}


async def test_citizens_need_a_bearer_token(node: Running) -> None:
    answer = await node.client.get(f"/v1/citizens/{ID}", headers={"x-official-id": "CB", "x-purpose": "p"})
    assert answer.status_code == 401


def test_the_citizens_section_is_checked(tmp_path: Path, peers: Peers) -> None:
    data = with_population(tmp_path, peers, "http://127.0.0.1:9")
    data["citizens"]["source"] = "emc"
    text = json.dumps({**config_dict(tmp_path, peers), **data})
    with pytest.raises(
        ConfigError, match=r"citizens.source: not a population destination: 'emc' \(known: population\)"
    ):
        parse_config(text, file="c.yaml", env={})
    data["citizens"] = {"source": "population", "audit_key": "short"}
    text = json.dumps({**config_dict(tmp_path, peers), **data})
    with pytest.raises(ConfigError, match="citizens.audit_key: needed with source: at least 16 characters"):
        parse_config(text, file="c.yaml", env={})
