"""The edge (issue 13 §5): each caller has its rate (a token bucket, `auth.rate_limit`), past which it gets
429 with Retry-After while other callers go on; `/metrics` answers only the networks `server.metrics_from`
names. Over real HTTP on loopback."""

from __future__ import annotations

import asyncio
import math
import time

import pytest

from conftest import AUTH, OPERATOR, TOKEN, RunNode
from lienthong.api.auth import CallerLimits, hash_token
from lienthong.config import Config
from lienthong.sandbox.dossiers import generate

OTHER = "another-callers-token-for-the-rate-test"


def test_a_bucket_refills_at_its_rate_up_to_its_burst() -> None:
    now = [100.0]
    limits = CallerLimits(2.0, 3, clock=lambda: now[0])
    assert [limits.take("a") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert limits.take("a") == pytest.approx(0.5)  # one token is 0.5 s away at 2/s
    assert limits.take("b") == 0.0  # another caller has its own bucket
    now[0] += 0.5
    assert limits.take("a") == 0.0
    now[0] += 60
    assert [limits.take("a") for _ in range(4)][-1] > 0  # refilled to the burst, not beyond


async def test_a_caller_over_its_rate_gets_429_and_others_go_on(
    run_node: RunNode, caplog: pytest.LogCaptureFixture
) -> None:
    tokens = [{"name": "desk", "sha256": hash_token(TOKEN)}, {"name": "other", "sha256": hash_token(OTHER)}]
    running = await run_node(auth={"tokens": tokens, "rate_limit": {"per_second": 0.5, "burst": 2}})
    streams = iter(generate(10))
    started = time.monotonic()
    answers = [await running.post(next(streams).events[0]) for _ in range(3)]
    assert [a.status_code for a in answers] == [202, 202, 429]
    refused = answers[-1]
    assert refused.json()["error"]["code"] == "rate_limited"
    assert "'desk' is over its rate" in refused.json()["error"]["message"]
    assert 1 <= int(refused.headers["retry-after"]) <= 2  # the next token, at 0.5/s
    flood_from = time.monotonic()
    flood = [await running.client.get("/v1/messages/x", headers=AUTH) for _ in range(50)]
    refilled = 1 + math.ceil((time.monotonic() - flood_from) / 2)  # one in 2 s gets through (0.5/s)
    assert [a.status_code for a in flood].count(429) >= 50 - refilled
    lines = sum("over its rate" in r.getMessage() for r in caplog.records)
    assert lines <= 1 + math.ceil(time.monotonic() - started)  # a line a second at most, not one a refusal
    other = await running.post(next(streams).events[0], headers={"authorization": f"Bearer {OTHER}"})
    assert other.status_code == 202
    await asyncio.sleep(2.05)
    assert (await running.post(next(streams).events[0], headers=AUTH)).status_code == 202
    document = (await running.client.get("/openapi.json", headers=OPERATOR)).json()
    assert "429" in document["paths"]["/v1/events"]["post"]["responses"]
    assert "429" not in document["paths"]["/healthz"]["get"]["responses"]


async def test_metrics_answer_only_the_networks_named(run_node: RunNode) -> None:
    allowed = await run_node(server={"host": "127.0.0.1", "port": 0, "metrics_from": ["127.0.0.0/8"]})
    assert (await allowed.client.get("/metrics")).status_code == 200
    elsewhere = await run_node(server={"host": "127.0.0.1", "port": 0, "metrics_from": ["10.0.0.0/8"]})
    refused = await elsewhere.client.get("/metrics")
    assert refused.status_code == 403
    assert "127.0.0.1 may not read /metrics" in refused.json()["error"]["message"]
    assert (await elsewhere.client.get("/healthz")).status_code == 200


def test_metrics_from_must_be_networks() -> None:
    with pytest.raises(ValueError, match="'10.0.0.0/33' is not a network"):
        Config.model_validate({"server": {"metrics_from": ["10.0.0.0/33"]}})
