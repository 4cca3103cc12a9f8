"""Callbacks to the provincial system: results it must know (payment confirmed, receipt number, a delivery
that needs a person), POSTed to its webhook and signed so it can verify them. The webhook answers 2xx
with a JSON object. Two signature schemes (``destinations.<province>.signature``):

``lienthong`` (the default; ours): header ``X-Lienthong-Signature: t=<unix seconds>,v1=<hex>`` where
``hex`` is HMAC-SHA256 of ``"<t>.<body>"`` under the shared secret's UTF-8 bytes. The timestamp lets the
province refuse replays older than a few minutes; ``X-Lienthong-Message-Id`` (also the idempotency key)
lets it drop a repeated delivery. The message id is not signed.

``standard_webhooks`` (Standard Webhooks 1.0, symmetric; docs/contracts.md): headers ``webhook-id`` (the
message id), ``webhook-timestamp`` (unix seconds) and ``webhook-signature: v1,<base64>`` where ``base64``
is HMAC-SHA256 of ``"<id>.<timestamp>.<body>"`` under the key the secret ``whsec_<base64 key>`` carries.
The signature covers the message id, so a repeat cannot be passed off as a new message; the province
verifies with a ready library (Java, C#, PHP, Go, Python…), the secret given as it is.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import time
from collections.abc import Callable, Mapping
from typing import Any, Literal, Protocol

import orjson

from lienthong.adapters.base import Receipt, json_body, map_transport_errors, raise_for_status
from lienthong.adapters.http import HttpPeer
from lienthong.errors import PermanentError
from lienthong.model import Message

Scheme = Literal["lienthong", "standard_webhooks"]
SIGNATURE_HEADER = "x-lienthong-signature"
MESSAGE_ID_HEADER = "x-lienthong-message-id"
WEBHOOK_ID, WEBHOOK_TIMESTAMP, WEBHOOK_SIGNATURE = "webhook-id", "webhook-timestamp", "webhook-signature"
SECRET_PREFIX = "whsec_"  # noqa: S105 (the prefix Standard Webhooks secrets carry, not a secret)
KEY_BYTES = (24, 64)
"""A Standard Webhooks key's length in bytes: at least 24 (the specification), at most 64."""


def sign(body: bytes, secret: bytes, timestamp: int) -> str:
    digest = hmac.new(secret, str(timestamp).encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


MAX_TIMESTAMP_DIGITS = 12
"""Seconds since the epoch fit in 11 digits until the year 5138."""


def verify(body: bytes, header: str, secret: bytes, *, now: float, tolerance_s: float = 300) -> bool:
    """What the province runs: the signature matches and is recent."""
    parts = dict(p.split("=", 1) for p in header.split(",") if "=" in p)
    try:
        timestamp = int(parts["t"])
    except (KeyError, ValueError):
        return False
    expected = sign(body, secret, timestamp).split("v1=", 1)[1]
    given = parts.get("v1", "").encode("utf-8", "replace")  # bytes: compare_digest raises on other text
    return abs(now - timestamp) <= tolerance_s and hmac.compare_digest(given, expected.encode())


def standard_key(secret: str) -> bytes:
    """The key in a Standard Webhooks secret, ``whsec_`` + base64 of 24 to 64 random bytes; ValueError
    saying what is wrong otherwise."""
    if not secret.startswith(SECRET_PREFIX):
        raise ValueError(f"must start with {SECRET_PREFIX!r}, then the key in base64")
    try:
        key = base64.b64decode(secret[len(SECRET_PREFIX) :], validate=True)
    except binascii.Error as exc:
        raise ValueError(f"the key after {SECRET_PREFIX!r} is not valid base64") from exc
    if not KEY_BYTES[0] <= len(key) <= KEY_BYTES[1]:
        raise ValueError(f"the key must be {KEY_BYTES[0]} to {KEY_BYTES[1]} bytes, this one has {len(key)}")
    return key


def sign_standard(message_id: str, timestamp: int, body: bytes, key: bytes) -> str:
    """``v1,<base64 HMAC-SHA256 of "<id>.<timestamp>.<body>">``. The id must hold no ``.``: lienthong's
    message ids (``m-<hex>``) never do."""
    signed = f"{message_id}.{timestamp}.".encode() + body
    return "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()


def verify_standard(
    body: bytes, headers: Mapping[str, str], key: bytes, *, now: float, tolerance_s: float = 300
) -> bool:
    """What a province runs for Standard Webhooks: the three headers present, the timestamp within
    ``tolerance_s`` of ``now`` either way, and one ``v1`` signature among those listed (space-separated,
    for key rotation) matching, compared in constant time."""
    message_id = headers.get(WEBHOOK_ID, "")
    timestamp = headers.get(WEBHOOK_TIMESTAMP, "")
    # ASCII digits, and no more than a timestamp has: str.isdigit also takes "²", and int() refuses
    # 5,000 digits with a ValueError.
    plain = timestamp.isascii() and timestamp.isdigit() and len(timestamp) <= MAX_TIMESTAMP_DIGITS
    if not message_id or not plain or abs(now - int(timestamp)) > tolerance_s:
        return False
    expected = sign_standard(message_id, int(timestamp), body, key).encode()
    given = headers.get(WEBHOOK_SIGNATURE, "").split(" ")
    return any(
        hmac.compare_digest(s.encode("utf-8", "replace"), expected) for s in given if s.startswith("v1,")
    )


class Signer(Protocol):
    def headers(self, message_id: str, body: bytes, timestamp: int) -> dict[str, str]:
        """The headers that sign ``body``, sent as message ``message_id`` at ``timestamp``."""
        ...


class LienthongSignature:
    def __init__(self, secret: str) -> None:
        self._secret = secret.encode()

    def headers(self, message_id: str, body: bytes, timestamp: int) -> dict[str, str]:
        return {MESSAGE_ID_HEADER: message_id, SIGNATURE_HEADER: sign(body, self._secret, timestamp)}


class StandardWebhooksSignature:
    def __init__(self, secret: str) -> None:
        self._key = standard_key(secret)

    def headers(self, message_id: str, body: bytes, timestamp: int) -> dict[str, str]:
        return {
            WEBHOOK_ID: message_id,
            WEBHOOK_TIMESTAMP: str(timestamp),
            WEBHOOK_SIGNATURE: sign_standard(message_id, timestamp, body, self._key),
        }


def signer(scheme: Scheme, secret: str) -> Signer:
    if scheme == "standard_webhooks":
        return StandardWebhooksSignature(secret)
    return LienthongSignature(secret)


class ProvincialAdapter:
    operations = ("notify",)

    def __init__(
        self,
        name: str,
        peer: HttpPeer,
        *,
        secret: str,
        webhook_path: str,
        signature: Scheme = "lienthong",
        clock: Callable[[], float] = time.time,
    ) -> None:
        """``signature`` chooses the scheme (module docstring); with ``standard_webhooks`` the ``secret`` is
        ``whsec_<base64 key>`` (ValueError otherwise)."""
        self.name = name
        self._peer = peer
        self._signer = signer(signature, secret)
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
            **self._signer.headers(message.message_id, payload, int(self._clock())),
        }
        with map_transport_errors(self.name, "notify"):
            response = await self._webhook.post(payload, headers)
            raise_for_status(response, self.name, "notify")
            # The webhook answers JSON; a 200 HTML page comes from a gateway in the way, not the province.
            json_body(response, self.name, "notify")
        return Receipt(http_status=response.status_code)

    async def aclose(self) -> None:
        await self._peer.aclose()
