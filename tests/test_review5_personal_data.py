"""Review 5 (found in review, fixed): personal data must not reach a caller's error body or a log line, whatever the population peer answers."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest

from conftest import AUTH, Peers, Running, RunNode
from lienthong.observability.logs import configure, redact
from lienthong.sandbox import soap
from lienthong.sandbox.base import Answer, Request
from lienthong.sandbox.population import PopulationSandbox, synthetic_citizen
from lienthong.serving import ThreadedServer
from test_hostile_citizens import with_population

ID = "046090000123"
OTHER = "046090000999"
NAME = "Nguyễn Thị Thu Hà"
WHO = {**AUTH, "x-official-id": "CB-0042", "x-purpose": quote("Hồ sơ 1.001193")}


class ChattyPopulation(PopulationSandbox):
    """A population service whose answers carry personal data where no field is: its fault text, or a
    200 answer that is not XML (a gateway's JSON record)."""

    mode = "fault"

    async def _lookup(self, request: Request) -> Answer:
        if self.mode == "fault_client":
            return soap.fault("Client", f"Công dân {NAME} ({ID}) đang bị khoá; xem hồ sơ {OTHER}")
        if self.mode == "fault_server":
            return soap.fault("Server", f"Lỗi khi đọc bản ghi {NAME}, SoDinhDanh {ID}")
        if self.mode == "garbage_text":  # a gateway's plain-text export of the record
            return Answer(200, f"{ID};{NAME};12 đường Mẫu".encode(), b"text/xml; charset=utf-8")
        body = f'{{"SoDinhDanh":"{ID}","HoVaTen":"{NAME}","ThuongTru":"12 đường Mẫu, Phường Phú Hội"}}'
        return Answer(200, body.encode(), b"text/xml; charset=utf-8")


@pytest.fixture
def population() -> Iterator[tuple[ChattyPopulation, str]]:
    peer = ChattyPopulation()
    peer.add(synthetic_citizen(ID, NAME))
    with ThreadedServer(lambda: peer) as server:
        yield peer, server.url


@pytest.fixture
async def node(
    run_node: RunNode, tmp_path: Path, peers: Peers, population: tuple[ChattyPopulation, str]
) -> Running:
    return await with_population(run_node, tmp_path, peers, population[1], timeout_s=2)


def _carries_personal_data(text: str) -> list[str]:
    found = [s for s in (ID, OTHER, NAME, "Thu Hà", "Phú Hội", "đường Mẫu") if s in text]
    found += re.findall(r"0460900\d*", text)  # a partial id
    return found


@pytest.mark.parametrize("mode", ["fault_client", "fault_server", "garbage", "garbage_text"])
async def test_an_error_body_never_carries_an_id_number_or_a_name(
    node: Running, population: tuple[ChattyPopulation, str], mode: str
) -> None:
    population[0].mode = mode
    answer = await node.client.get(f"/v1/citizens/{ID}", headers=WHO)
    assert answer.status_code in (502, 503)
    assert _carries_personal_data(answer.text) == [], answer.text


@pytest.mark.parametrize(
    "line",
    [
        f"GET /v1/citizens/{ID}.",  # an id followed by a full stop ends many sentences
        f"looked up {ID}.",
        f"ref=cd_{ID}",
        f"SoDinhDanh{ID}",
    ],
)
def test_redact_masks_every_written_form_of_an_id_number(line: str) -> None:
    masked = redact(line)
    assert not re.search(r"046\D?090\D?000\D?123", masked), masked


async def test_a_log_line_about_a_citizen_path_never_carries_the_id(
    node: Running, capsys: pytest.CaptureFixture[str]
) -> None:
    """End to end: the auth refusal's log line names the path, and the id before a '.' stays in clear."""
    saved = list(logging.getLogger().handlers), logging.getLogger().level
    configure("INFO", "json")
    capsys.readouterr()
    try:
        await _refused_twice(node)
    finally:
        root = logging.getLogger()
        for h in list(root.handlers):
            root.removeHandler(h)
        for h in saved[0]:
            root.addHandler(h)
        root.setLevel(saved[1])
    err = capsys.readouterr().err
    assert "refused GET" in err
    assert ID not in err, err


async def _refused_twice(node: Running) -> None:
    for path in (f"/v1/citizens/{ID}.json", f"/v1/citizens/{ID}"):
        answer = await node.client.get(path, headers={"authorization": "Bearer not-a-token"})
        assert answer.status_code == 401
