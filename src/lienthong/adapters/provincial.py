"""Callbacks to the provincial system: results it must know (payment confirmed, receipt number, a delivery
that needs a person), POSTed to its webhook and signed so it can verify them. The webhook answers 2xx
with a JSON object.

Signature (ours; the province verifies it): header ``X-Lienthong-Signature: t=<unix seconds>,v1=<hex>``
where ``hex`` is HMAC-SHA256 of ``"<t>.<body>"`` under the shared secret. The timestamp lets the province
refuse replays older than a few minutes; ``X-Lienthong-Message-Id`` (also the idempotency key) lets it
drop a repeated delivery.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Callable, Mapping
from typing import Any

import orjson

from lienthong.adapters.base import Receipt, json_body, map_transport_errors, raise_for_status
from lienthong.adapters.http import HttpPeer
from lienthong.errors import PermanentError
from lienthong.model import Message

SIGNATURE_HEADER = "x-lienthong-signature"


def sign(body: bytes, secret: bytes, timestamp: int) -> str:
    digest = hmac.new(secret, str(timestamp).encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def verify(body: bytes, header: str, secret: bytes, *, now: float, tolerance_s: float = 300) -> bool:
    """What the province runs: the signature matches and is recent."""
    parts = dict(p.split("=", 1) for p in header.split(",") if "=" in p)
    try:
        timestamp = int(parts["t"])
    except (KeyError, ValueError):
        return False
    expected = sign(body, secret, timestamp).split("v1=", 1)[1]
    return abs(now - timestamp) <= tolerance_s and hmac.compare_digest(parts.get("v1", ""), expected)


class ProvincialAdapter:
    operations = ("notify",)

    def __init__(
        self,
        name: str,
        peer: HttpPeer,
        *,
        secret: str,
        webhook_path: str,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.name = name
        self._peer = peer
        self._secret = secret.encode()
        self._webhook = peer.endpoint(webhook_path)
        self._clock = clock

    async def deliver(self, message: Message, body: dict[str, Any]) -> Receipt:
        if message.operation != "notify":
            raise PermanentError(
                f"unknown operation {message.operation!r}",
                destination=self.name,
                operation=message.operation,
            )
        payload = orjson.dumps(body)
        headers: Mapping[str, str] = {
            "content-type": "application/json",
            "idempotency-key": message.message_id,
            "x-lienthong-message-id": message.message_id,
            SIGNATURE_HEADER: sign(payload, self._secret, int(self._clock())),
        }
        with map_transport_errors(self.name, "notify"):
            response = await self._webhook.post(payload, headers)
            raise_for_status(response, self.name, "notify")
            # The webhook answers JSON; a 200 HTML page comes from a gateway in the way, not the province.
            json_body(response, self.name, "notify")
        return Receipt(http_status=response.status_code)

    async def aclose(self) -> None:
        await self._peer.aclose()
