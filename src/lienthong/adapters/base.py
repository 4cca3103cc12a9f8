"""What every adapter is, and the REST boundary where transport failures become our errors.

An adapter turns one claimed outbox row into calls on one external system. It raises ``RetryableError`` or
``PermanentError`` and nothing else: ``map_transport_errors`` translates the HTTP stack's exceptions and
``raise_for_status`` classifies HTTP answers, both as ``failures`` says (the one classification, which the
SOAP boundary and the token endpoint use too), so the dispatcher only ever sees our tree.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

import orjson

from lienthong.adapters.failures import delivery_errors, parse_retry_after, retryable_status
from lienthong.adapters.http import Answer
from lienthong.errors import PermanentError, RetryableError
from lienthong.model import Message


@dataclass(frozen=True)
class Receipt:
    """What a successful delivery leaves behind: the last HTTP status."""

    http_status: int | None = None


class Adapter(Protocol):
    """Delivers claimed outbox rows to one destination."""

    name: str

    async def deliver(self, message: Message, body: dict[str, Any]) -> Receipt:
        """Send ``body`` (the message's mapped event) with ``message.operation``.

        Raise RetryableError or PermanentError on failure.
        """
        ...

    async def aclose(self) -> None: ...


def map_transport_errors(destination: str, operation: str) -> AbstractContextManager[None]:
    """Translate the HTTP stack's exceptions into RetryableError/PermanentError (``failures.classify``)."""
    return delivery_errors(destination, operation)


def raise_for_status(response: Answer, destination: str, operation: str) -> None:
    """Classify a non-2xx answer: ``failures.RETRYABLE_STATUS`` (408/425/429/5xx) are retryable, other
    statuses permanent."""
    status = response.status_code
    if 200 <= status < 300:
        return
    snippet = response.text[:200].strip() if response.content else ""
    message = f"http {status}" + (f": {snippet}" if snippet else "")
    if retryable_status(status):
        retry_after = parse_retry_after(response.headers.get("retry-after"), datetime.now(UTC))
        raise RetryableError(
            message, retry_after_s=retry_after, destination=destination, operation=operation, status=status
        )
    raise PermanentError(message, destination=destination, operation=operation, status=status)


def json_body(response: Answer, destination: str, operation: str) -> dict[str, Any]:
    """The JSON object in a 2xx answer. A garbled answer (an error page from a proxy) is retryable."""
    try:
        body = orjson.loads(response.content)
    except orjson.JSONDecodeError as exc:
        kind = response.headers.get("content-type", "no content type")
        raise RetryableError(
            f"answer is not JSON ({kind}): {response.text[:120]!r}",
            destination=destination,
            operation=operation,
            status=response.status_code,
        ) from exc
    if not isinstance(body, dict):
        raise RetryableError(
            "answer is JSON but not an object", destination=destination, operation=operation, status=200
        )
    return body
