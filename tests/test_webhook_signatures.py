"""Signed callbacks to the province: lienthong's own scheme (the default) and Standard Webhooks, whose
signatures are checked here by the specification's test vector and by an independent implementation
(the ``standardwebhooks`` package, the reference library's Python port)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import standardwebhooks

from conftest import Peers, Running, RunNode, config_dict
from lienthong.adapters.provincial import (
    SIGNATURE_HEADER,
    WEBHOOK_ID,
    WEBHOOK_SIGNATURE,
    WEBHOOK_TIMESTAMP,
    sign_standard,
    standard_key,
    verify_standard,
)
from lienthong.config import Config, parse_config
from lienthong.errors import ConfigError
from lienthong.sandbox.dossiers import generate
from lienthong.sandbox.provincial import ProvincialSandbox
from lienthong.serving import ThreadedServer
from lienthong.store import units

LEGACY_SECRET = "province-webhook-secret"
# 32 random bytes in base64, as a province would be given them.
WHSEC = "whsec_q8mVNQ3JZlVy1Rk8G1n5O4JmWq9S3VZrN7j0c2Q8xWk="

# The test vector of the Standard Webhooks reference libraries (libraries/javascript/src/webhook.test.ts,
# "sign function works"; the same in the Python, Go and Java tests).
VECTOR_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
VECTOR_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
VECTOR_TIMESTAMP = 1614265330
VECTOR_BODY = b'{"test": 2432232314}'
VECTOR_SIGNATURE = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def test_our_standard_signature_is_the_specifications_test_vector() -> None:
    key = standard_key(VECTOR_SECRET)
    assert sign_standard(VECTOR_ID, VECTOR_TIMESTAMP, VECTOR_BODY, key) == VECTOR_SIGNATURE


def test_the_reference_library_verifies_what_we_sign_and_refuses_it_under_another_id() -> None:
    now = int(time.time())
    body = b'{"kind":"payment.confirmed","dossier_code":"H56.12-260302-0001"}'
    headers = {
        WEBHOOK_ID: "m-0651f2a3c4d5e6000001a1b2c3",
        WEBHOOK_TIMESTAMP: str(now),
        WEBHOOK_SIGNATURE: sign_standard("m-0651f2a3c4d5e6000001a1b2c3", now, body, standard_key(WHSEC)),
    }
    assert standardwebhooks.Webhook(WHSEC).verify(body, headers) == {
        "kind": "payment.confirmed",
        "dossier_code": "H56.12-260302-0001",
    }
    with pytest.raises(standardwebhooks.webhooks.WebhookVerificationError):
        standardwebhooks.Webhook(WHSEC).verify(body, {**headers, WEBHOOK_ID: "m-another"})


def test_the_provinces_verifier_takes_one_good_v1_signature_among_several_and_nothing_stale() -> None:
    key = standard_key(VECTOR_SECRET)
    now = VECTOR_TIMESTAMP + 10
    headers = {WEBHOOK_ID: VECTOR_ID, WEBHOOK_TIMESTAMP: str(VECTOR_TIMESTAMP)}
    rotated = f"v1,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc= v1a,xyz {VECTOR_SIGNATURE}"
    assert verify_standard(VECTOR_BODY, {**headers, WEBHOOK_SIGNATURE: rotated}, key, now=now)
    good = {**headers, WEBHOOK_SIGNATURE: VECTOR_SIGNATURE}
    assert not verify_standard(VECTOR_BODY + b" ", good, key, now=now)  # tampered body
    assert not verify_standard(VECTOR_BODY, {**good, WEBHOOK_ID: "msg_other"}, key, now=now)  # other id
    assert not verify_standard(VECTOR_BODY, good, key, now=VECTOR_TIMESTAMP + 301)  # a replay, too old
    assert not verify_standard(VECTOR_BODY, good, key, now=VECTOR_TIMESTAMP - 301)  # from the future
    assert not verify_standard(VECTOR_BODY, {**good, WEBHOOK_SIGNATURE: "v1,"}, key, now=now)
    assert not verify_standard(VECTOR_BODY, {k: v for k, v in good.items() if k != WEBHOOK_ID}, key, now=now)


@pytest.mark.parametrize(
    "secret",
    ["s3cret", "whsec_", "whsec_not base64!", "whsec_c2hvcnQ=", "whsec_" + "QUFB" * 30],
    ids=["no prefix", "empty", "not base64", "5 bytes", "90 bytes"],
)
def test_a_standard_webhooks_secret_that_is_not_whsec_base64_of_24_to_64_bytes_is_a_config_error(
    secret: str,
) -> None:
    text = (
        "destinations:\n  province:\n    kind: provincial\n    base_url: http://127.0.0.1:9\n"
        f"    signature: standard_webhooks\n    secret: '{secret}'\n"
    )
    with pytest.raises(ConfigError) as refused:
        parse_config(text, file="lienthong.yaml", env={})
    (issue,) = [str(i) for i in refused.value.issues]
    assert issue.startswith("lienthong.yaml:6 destinations.province.secret: ")
    assert "whsec_" in issue
    with pytest.raises(ValueError, match="whsec_|base64|bytes"):
        standard_key(secret)


def test_the_default_scheme_is_still_lienthongs_own_with_any_secret() -> None:
    data = {"kind": "provincial", "base_url": "http://127.0.0.1:9", "secret": "short"}
    destination = Config.model_validate({"destinations": {"province": data}}).destinations["province"]
    assert destination.signature == "lienthong"  # type: ignore[union-attr]


# -- through a node and the sandbox province, on loopback ------------------------------------------------


def notify_config(tmp_path: Path, peers: Peers, url: str, **province: Any) -> dict[str, Any]:
    """The province hears of every dossier received."""
    base = config_dict(tmp_path, peers)
    spec = tmp_path / "notice.yaml"
    spec.write_text(
        "fields:\n  kind: {const: received}\n  dossier_code: {from: dossier.code, required: true}\n"
    )
    destination = {"kind": "provincial", "base_url": url, **province}
    return {
        "destinations": {**base["destinations"], "province": destination},
        "routes": [
            {
                "on": "dossier.received",
                "deliver": [{"to": "province", "operation": "notify", "mapping": str(spec)}],
            }
        ],
    }


async def notify_once(running: Running) -> str:
    event = generate(1)[0].events[0]
    ids = (await running.post(event)).json()["message_ids"]
    await running.settle()
    views = [await running.node.store.run(units.message, i) for i in ids]
    (message_id,) = [v.message_id for v in views if v is not None and v.destination == "province"]
    return message_id


async def test_standard_webhooks_callbacks_verify_at_the_province_and_with_the_reference_library(
    run_node: RunNode, tmp_path: Path, peers: Peers
) -> None:
    province = ProvincialSandbox(secret=WHSEC, signature="standard_webhooks")
    with ThreadedServer(lambda: province) as server:
        running: Running = await run_node(
            **notify_config(tmp_path, peers, server.url, secret=WHSEC, signature="standard_webhooks")
        )
        message_id = await notify_once(running)
        assert [r.key for r in province.received] == [message_id]
        (delivery,) = province.deliveries
        assert delivery.headers[WEBHOOK_ID] == message_id  # the id the province deduplicates on is signed
        assert SIGNATURE_HEADER not in delivery.headers
        verified = standardwebhooks.Webhook(WHSEC).verify(delivery.body, delivery.headers)
        assert verified["kind"] == "received"

        # The same request under another message id is refused: the id is part of what is signed.
        async with httpx.AsyncClient(base_url=server.url) as client:
            forged = {**delivery.headers, WEBHOOK_ID: "m-forged"}
            forged.pop("content-length", None)
            again = await client.post("/lienthong/callback", content=delivery.body, headers=forged)
            assert again.status_code == 401
            replay = await client.post("/lienthong/callback", content=delivery.body, headers=delivery.headers)
            assert replay.status_code == 200  # a true repeat is taken, and recorded once
        assert len(province.received) == 1
        assert province.refused == 1


async def test_lienthongs_own_scheme_stays_the_default_and_a_province_on_the_other_scheme_refuses_it(
    run_node: RunNode, tmp_path: Path, peers: Peers
) -> None:
    legacy = ProvincialSandbox(secret=LEGACY_SECRET)
    with ThreadedServer(lambda: legacy) as server:
        running: Running = await run_node(**notify_config(tmp_path, peers, server.url, secret=LEGACY_SECRET))
        message_id = await notify_once(running)
        (delivery,) = legacy.deliveries
        assert delivery.headers["x-lienthong-message-id"] == message_id
        assert delivery.headers[SIGNATURE_HEADER].startswith("t=")
        assert WEBHOOK_SIGNATURE not in delivery.headers

    other = tmp_path / "standard"
    other.mkdir()
    standard = ProvincialSandbox(secret=WHSEC, signature="standard_webhooks")
    with ThreadedServer(lambda: standard) as server:
        data = notify_config(other, peers, server.url, secret=LEGACY_SECRET)
        data["store"] = {"path": str(other / "db.sqlite"), "synchronous": "normal"}
        mismatched: Running = await run_node(**data)
        message_id = await notify_once(mismatched)
        view = await mismatched.node.store.run(units.message, message_id)
        assert view is not None
        assert view.status == "dead"  # 401: the province could not verify it
        assert standard.received == []
        assert standard.refused == 1
