"""What every adapter is, and the one boundary where transport failures become our errors.

An adapter turns one claimed outbox row into calls on one external system. It raises ``RetryableError`` or
``PermanentError`` and nothing else: ``map_transport_errors`` translates the HTTP stack's exceptions and
``raise_for_status`` classifies HTTP answers, so the dispatcher only ever sees our tree.
"""

from __future__ import annotations

import email.utils
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

import aiohttp
import httpx
import orjson

from lienthong.adapters.http import AnswerTooLarge
from lienthong.errors import DeliveryError, PermanentError, RetryableError
from lienthong.model import Message

RETRYABLE_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})


@dataclass(frozen=True)
class Receipt:
    """What a successful delivery leaves behind: the last HTTP status."""

    http_status: int | None = None


class Adapter(Protocol):
    """Delivers claimed outbox rows to one destination."""

    name: str

    async def deliver(self, delivery: Message, body: dict[str, Any]) -> Receipt:
        """Send ``body`` (the delivery's mapped event) with ``delivery.operation``.

        Raise RetryableError or PermanentError on failure.
        """
        ...

    async def aclose(self) -> None: ...


@contextmanager
def map_transport_errors(destination: str, operation: str) -> Iterator[None]:
    """Translate the HTTP stack's exceptions into RetryableError/PermanentError."""
    where: dict[str, Any] = {"destination": destination, "operation": operation}
    try:
        yield
    except DeliveryError:
        raise
    except httpx.TimeoutException as exc:
        raise RetryableError(f"timed out: {exception_text(exc)}", **where) from exc
    except AnswerTooLarge as exc:
        raise RetryableError(str(exc), **where) from exc
    except (httpx.TransportError, aiohttp.ClientError, OSError) as exc:
        raise RetryableError(f"connection failed: {exception_text(exc)}", **where) from exc
    except TimeoutError as exc:
        raise RetryableError("timed out", **where) from exc
    except httpx.HTTPError as exc:
        raise PermanentError(f"request could not be made: {exception_text(exc)}", **where) from exc


def exception_text(exc: BaseException) -> str:
    """``Type: message``; some library exceptions raise from their own ``__str__`` when half-built."""
    try:
        message = str(exc)
    except Exception:
        message = ""
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__


def raise_for_status(response: httpx.Response, destination: str, operation: str) -> None:
    """Classify a non-2xx answer: 408/425/429/5xx are retryable, other 4xx permanent."""
    status = response.status_code
    if 200 <= status < 300:
        return
    snippet = response.text[:200].strip() if response.content else ""
    message = f"http {status}" + (f": {snippet}" if snippet else "")
    if status in RETRYABLE_STATUS or status >= 500:
        retry_after = parse_retry_after(response.headers.get("retry-after"), datetime.now(UTC))
        raise RetryableError(
            message, retry_after_s=retry_after, destination=destination, operation=operation, status=status
        )
    raise PermanentError(message, destination=destination, operation=operation, status=status)


def parse_retry_after(value: str | None, now: datetime) -> float | None:
    """``Retry-After`` as seconds from ``now``: either delta-seconds or an HTTP-date (RFC 9110 §10.2.3)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - now).total_seconds())


def json_body(response: httpx.Response, destination: str, operation: str) -> dict[str, Any]:
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
