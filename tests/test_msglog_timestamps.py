"""RFC 3161 timestamps of the message log's checkpoints (issue 13 §3), against the sandbox TSA on loopback:
a stamp is kept only when the TSA's chain, the nonce and the message check; a node whose records wait too
long for one refuses new events (503) until the TSA answers again."""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from conftest import RunNode
from lienthong.adapters.http import HttpPeer, make_transport
from lienthong.msglog.timestamps import Timestamper, TimestampError, verify_stamp
from lienthong.sandbox.dossiers import generate
from lienthong.sandbox.tsa import TsaSandbox, make_tsa_certificates
from lienthong.serving import ThreadedServer
from lienthong.store import units
from test_msglog import keygen


@pytest.fixture
def tsa() -> Iterator[tuple[TsaSandbox, str]]:
    peer = TsaSandbox()
    with ThreadedServer(lambda: peer) as server:
        yield peer, f"{server.url}/tsr"


def stamper(url: str, roots: list[Any]) -> Timestamper:
    return Timestamper(HttpPeer(url, make_transport(max_connections=2), timeout_s=5), "", roots)


async def test_a_stamp_is_kept_only_when_the_tsa_s_chain_and_the_message_check(
    tsa: tuple[TsaSandbox, str],
) -> None:
    peer, url = tsa
    client = stamper(url, [peer.certificates.root])
    try:
        stamp = await client.stamp(b"lienthong.test\n5\nroot=\n")
        assert abs(stamp.at.timestamp() - time.time()) < 60
        token = base64.b64decode(stamp.token)
        assert verify_stamp(token, b"lienthong.test\n5\nroot=\n", [peer.certificates.root]).at == stamp.at
        with pytest.raises(TimestampError, match="does not verify"):
            verify_stamp(token, b"another checkpoint", [peer.certificates.root])
        with pytest.raises(TimestampError, match="does not verify"):
            verify_stamp(token, b"lienthong.test\n5\nroot=\n", [make_tsa_certificates().root])  # other CA
        with pytest.raises(TimestampError, match="not a timestamp response"):
            verify_stamp(b"<html>gateway</html>", b"x", [peer.certificates.root])
        strange = stamper(url, [make_tsa_certificates().root])
        with pytest.raises(TimestampError, match="does not verify"):
            await strange.stamp(b"x")
        await strange.aclose()
        wrong_path = stamper(url.replace("/tsr", "/nothing"), [peer.certificates.root])
        with pytest.raises(TimestampError, match="HTTP 404"):
            await wrong_path.stamp(b"x")
        await wrong_path.aclose()
    finally:
        await client.aclose()
    down = stamper("http://127.0.0.1:9/tsr", [peer.certificates.root])
    with pytest.raises(TimestampError, match="did not answer"):
        await down.stamp(b"x")
    await down.aclose()


async def test_records_waiting_too_long_for_a_timestamp_stop_new_events_until_the_tsa_answers(
    run_node: RunNode, tmp_path: Path, tsa: tuple[TsaSandbox, str], capsys: pytest.CaptureFixture[str]
) -> None:
    peer, url = tsa
    key, _ = keygen(tmp_path, capsys)
    (tmp_path / "tsa-root.pem").write_bytes(peer.certificates.root_pem)
    timestamp = {"url": url, "ca_file": str(tmp_path / "tsa-root.pem"), "max_age_s": 2.0, "timeout_s": 2}
    running = await run_node(
        message_log={"origin": "lienthong.test", "key_file": str(key), "timestamp": timestamp}
    )
    checkpointer = running.node.checkpointer
    assert checkpointer is not None
    streams = iter(generate(20))

    async def post() -> Any:
        return await running.post(next(streams).events[0])

    assert (await post()).status_code == 202
    await running.settle()
    made = await checkpointer.checkpoint()
    assert made is not None
    assert made.timestamp
    assert made.timestamped_ms > 0

    peer.inject("error")  # the TSA fails once: the next checkpoint goes unstamped
    assert (await post()).status_code == 202
    await running.settle()
    unstamped = await checkpointer.checkpoint()
    assert unstamped is not None
    assert unstamped.timestamp == ""
    assert checkpointer.refusal() is None  # within max_age_s: events are still taken
    await asyncio.sleep(2.1)
    refused = await post()
    assert refused.status_code == 503
    assert refused.json()["error"]["code"] == "log_not_timestamped"
    assert "no timestamp from the TSA" in refused.json()["error"]["message"]
    assert refused.headers["retry-after"] == "60"

    assert await checkpointer.checkpoint() is None  # nothing new to sign: the last one is stamped at last
    (latest,) = await running.node.store.run(units.log_checkpoints, 1)
    assert (latest.size, bool(latest.timestamp)) == (unstamped.size, True)
    assert checkpointer.refusal() is None
    assert (await post()).status_code == 202
