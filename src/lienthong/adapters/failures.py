"""The one classification of transport failures, for every boundary: REST adapters
(``base.map_transport_errors``, ``base.raise_for_status``), SOAP adapters (``soap.map_soap_errors``) and the
OAuth2 token endpoint (``auth``).

*Retry later* when the peer may answer otherwise later: it is down, slow or overloaded (``RETRYABLE_STATUS``),
the connection failed or was cut, or its answer is not its protocol (garbled, over our cap, an XML with a
DTD, a 2xx that is not SOAP). *Permanent* when our request cannot succeed as it stands: any other 4xx, a
URL no client can request, a redirect loop, a soap:Client fault, a request the library refuses to build.

``classify`` turns an exception from httpx, aiohttp, zeep or the OS (and our ``AnswerTooLarge``) into a
``Failure``: retryable or not, a message naming ``who`` failed ("the service", "the token endpoint"), and the
HTTP status and the peer's ``Retry-After`` when there are some. It answers None for anything else (a bug,
a cancellation), which the boundaries let through. tests/test_failures.py holds the table.
"""

from __future__ import annotations

import email.utils
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime

import aiohttp
import aiohttp.client_exceptions as aiohttp_errors
import httpx
import zeep.exceptions

from lienthong.adapters.http import AnswerTooLarge
from lienthong.errors import DeliveryError, PermanentError, RetryableError

RETRYABLE_STATUS = frozenset({408, 425, 429, *range(500, 600)})
"""HTTP statuses worth trying again: 408 Request Timeout, 425 Too Early, 429 Too Many Requests, every 5xx.
Any other status that is not 2xx is permanent (a status past 599 is no HTTP status: see
``retryable_status``)."""

SERVICE = "the service"
TOKEN_ENDPOINT = "the token endpoint"  # noqa: S105 (who failed, in messages)

_UNUSABLE_URL = (
    httpx.InvalidURL,
    httpx.UnsupportedProtocol,
    aiohttp_errors.InvalidURL,
    aiohttp_errors.NonHttpUrlClientError,
    aiohttp_errors.RedirectClientError,
)
_UNSAFE_XML = (
    zeep.exceptions.DTDForbidden,
    zeep.exceptions.EntitiesForbidden,
    zeep.exceptions.ExternalReferenceForbidden,
)
_CANNOT_BUILD = (
    httpx.HTTPError,
    httpx.CookieConflict,
    httpx.StreamError,
    aiohttp_errors.WSMessageTypeError,
)
"""The library refused to make the request (once the more specific cases are out): our fault, not the
peer's. ``httpx.HTTPError`` here is what is left of it: the base classes, raised bare."""


def retryable_status(status: int) -> bool:
    """Whether an answer with ``status`` (not 2xx) is worth trying again. A status past 599 is not HTTP: a
    broken peer or proxy, retried as any other garbled answer is."""
    return status in RETRYABLE_STATUS or status > 599


@dataclass(frozen=True)
class Failure:
    """One failed exchange, classified: ``retryable``, a ``message``, and what the peer said if anything."""

    retryable: bool
    message: str
    status: int | None = None
    remote_code: str | None = None
    retry_after_s: float | None = None

    def error(self, destination: str, operation: str) -> RetryableError | PermanentError:
        """The failure as the delivery error of ``destination``/``operation``."""
        if self.retryable:
            return RetryableError(
                self.message,
                retry_after_s=self.retry_after_s,
                destination=destination,
                operation=operation,
                status=self.status,
            )
        return PermanentError(
            self.message,
            destination=destination,
            operation=operation,
            status=self.status,
            remote_code=self.remote_code,
        )


def classify(exc: BaseException, who: str = SERVICE) -> Failure | None:
    """How to treat ``exc`` raised while talking to ``who``; None when it is no transport or SOAP failure."""
    if isinstance(exc, DeliveryError):  # raised by a layer below: the destination's token endpoint
        after = exc.retry_after_s if isinstance(exc, RetryableError) else None
        return Failure(exc.retryable, exc.message, exc.status, exc.remote_code, after)
    if isinstance(exc, AnswerTooLarge):
        return Failure(True, f"{who} answered too much: {exc}")
    if isinstance(exc, zeep.exceptions.Error | zeep.exceptions.ZeepWarning):
        return _soap(exc, who)
    if isinstance(exc, httpx.TooManyRedirects | aiohttp_errors.TooManyRedirects):
        return Failure(False, f"{who} redirects without end: {exception_text(exc)}")
    if isinstance(exc, httpx.HTTPStatusError):
        response: httpx.Response | None = getattr(exc, "response", None)  # None when half-built
        return answered(response.status_code if response is not None else 0, who)
    if isinstance(exc, aiohttp.ClientResponseError):  # ContentTypeError: a 2xx of the wrong kind
        headers = getattr(exc, "headers", None) or {}
        status = getattr(exc, "status", 0) or 0
        return answered(status, who, retry_after=headers.get("retry-after"), detail=exception_text(exc))
    if isinstance(exc, httpx.TimeoutException | TimeoutError):  # aiohttp's timeouts are TimeoutErrors
        return Failure(True, f"{who} did not answer in time: {exception_text(exc)}")
    if isinstance(exc, _UNUSABLE_URL):
        return Failure(False, f"{who}'s address cannot be requested: {exception_text(exc)}")
    if isinstance(exc, httpx.DecodingError):
        return Failure(True, f"{who}'s answer cannot be decoded: {exception_text(exc)}")
    if isinstance(exc, httpx.LocalProtocolError):  # a TransportError, but the request we built is wrong
        return Failure(False, f"the request could not be made: {exception_text(exc)}")
    if isinstance(exc, httpx.TransportError | aiohttp.ClientError | OSError):
        return Failure(True, f"cannot reach {who}: {exception_text(exc)}")
    if isinstance(exc, _CANNOT_BUILD):
        return Failure(False, f"the request could not be made: {exception_text(exc)}")
    return None


def answered(status: int, who: str = SERVICE, *, retry_after: str | None = None, detail: str = "") -> Failure:
    """``who`` answered ``status`` where a success was due. A 2xx here is an answer of the wrong kind
    (garbled, the wrong content type): retryable, as any garbled answer; 0 means no status was known."""
    if 200 <= status < 300 or status == 0:
        message = f"{who}'s answer (http {status}) is not what was asked for" + (
            f": {detail}" if detail else ""
        )
        return Failure(True, message, status or None)
    if retryable_status(status):
        after = parse_retry_after(retry_after, datetime.now(UTC))
        return Failure(True, f"{who} answered http {status}", status, retry_after_s=after)
    return Failure(False, f"{who} answered http {status}", status)


def _soap(exc: zeep.exceptions.Error | zeep.exceptions.ZeepWarning, who: str) -> Failure:
    # getattr: an exception built without its __init__ (tests/test_failures.py) must classify too.
    message = getattr(exc, "message", "")
    if isinstance(exc, zeep.exceptions.Fault):
        code = str(getattr(exc, "code", None) or "")
        if code.endswith(("Client", "Sender")):  # SOAP 1.1's word for "the request is wrong", and 1.2's
            return Failure(False, f"{who} refused the request: {message}", remote_code=code)
        return Failure(True, f"{who} failed: {message}", remote_code=code or None)
    if isinstance(exc, zeep.exceptions.TransportError):
        status = getattr(exc, "status_code", 0) or 0
        if 200 <= status < 300:  # zeep's word for a 2xx whose body is not XML
            # Without zeep's "Content: b'...'": the body's start can name a citizen, and this message
            # goes to dead letters, logs and answers (found in review).
            said = str(message).split("Content:", 1)[0].rstrip(" .\n")
            return Failure(True, f"the answer is not SOAP: {said[:160]}", status)
        failure = answered(status, who)
        return Failure(failure.retryable, failure.message, status or None, str(status) if status else None)
    if isinstance(exc, _UNSAFE_XML):
        name = type(exc).__name__
        message = f"the answer was refused: it carried a DTD, entities or external references: {name}"
        return Failure(True, message)
    if isinstance(exc, zeep.exceptions.XMLSyntaxError | zeep.exceptions.XMLParseError):
        return Failure(True, f"the answer is not SOAP: {exception_text(exc)[:200]}")
    if isinstance(exc, zeep.exceptions.ValidationError):  # zeep raises it building our request only
        return Failure(False, f"the request does not match the WSDL: {exception_text(exc)}")
    return Failure(True, f"the answer does not match the WSDL: {exception_text(exc)}")


@contextmanager
def delivery_errors(destination: str, operation: str, *, who: str = SERVICE) -> Iterator[None]:
    """Raise every transport failure inside as the RetryableError or PermanentError ``classify`` makes it;
    our own errors, and what is no transport failure, pass through."""
    try:
        yield
    except DeliveryError:
        raise
    except Exception as exc:
        failure = classify(exc, who)
        if failure is None:
            raise
        raise failure.error(destination, operation) from exc


def exception_text(exc: BaseException) -> str:
    """``Type: message``; some library exceptions raise from their own ``__str__`` when half-built."""
    try:
        message = str(exc)
    except Exception:
        message = ""
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__


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
