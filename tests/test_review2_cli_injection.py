"""Review 2: ``lienthong payments callbacks`` shows what an anonymous sender chose, and must never let it
drive the operator's terminal or forge lines of the listing."""

from __future__ import annotations

import asyncio
from pathlib import Path

import orjson
import pytest

from conftest import Peers, RunNode, config_dict
from lienthong.cli import main as cli_main
from lienthong.sandbox.paygov import PayGovSandbox
from test_payments import paygov, payments_config

__all__ = ["paygov"]

FORGED = "2026-11-23 09:30:00  paygov   accepted           paid     ref=TT-9"


async def test_an_unsigned_callbacks_control_characters_never_reach_the_operators_terminal(
    run_node: RunNode,
    tmp_path: Path,
    peers: Peers,
    paygov: tuple[PayGovSandbox, str],
    capsys: pytest.CaptureFixture[str],
) -> None:
    settings = payments_config(tmp_path, peers, paygov[1])
    node = await run_node(**settings)
    hostile = {
        "MaDoiTac": "LIENTHONG-H56",
        "MaThamChieu": "\x1b[2J\x1b[H" + "X",  # clear the screen
        "MaGiaoDich": "\r\n" + FORGED[:50],  # a line of its own in the listing
        "MaXacThuc": "00",
    }
    answer = await node.client.post("/v1/payments/paygov/confirm", json=hostile)
    assert answer.status_code == 403  # refused as unsigned, yet recorded (within the sender's budget)
    config = tmp_path / "lienthong.json"
    config.write_text(orjson.dumps(config_dict(tmp_path, peers, **settings)).decode())
    capsys.readouterr()
    assert await asyncio.to_thread(cli_main, ["payments", "callbacks", str(config)]) == 0
    out = capsys.readouterr().out
    assert "\x1b" not in out, "an escape sequence of the sender's reaches the terminal"
    assert not any(line.startswith(FORGED[:40]) for line in out.splitlines()), "a forged line"
