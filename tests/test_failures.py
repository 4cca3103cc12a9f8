"""The one classification of transport failures (adapters/failures.py), on every boundary: REST
(``map_transport_errors``, ``raise_for_status``), SOAP (the population look-up) and the OAuth2 token endpoint.

As httpx's own tests check its exception hierarchy, every exception class httpx, aiohttp and zeep export is
listed here with what it must become; a library release that exports a new one fails the first test until
the table says what it is.
"""

from __future__ import annotations

import ssl
from collections.abc import Callable, Iterable
from typing import Any, cast

import aiohttp
import aiohttp.client_exceptions as aiohttp_errors
import httpx
import pytest
import zeep.exceptions
from multidict import CIMultiDict, CIMultiDictProxy

from lienthong.adapters.auth import AuthenticatedTransport, OAuth2ClientCredentials
from lienthong.adapters.base import map_transport_errors, raise_for_status
from lienthong.adapters.failures import RETRYABLE_STATUS, classify, retryable_status
from lienthong.adapters.http import Answer, AnswerTooLarge
from lienthong.adapters.population import (
    CitizenQuery,
    PopulationAdapter,
    make_soap_transport,
    map_lookup_errors,
)
from lienthong.errors import (
    CitizenLookupError,
    DeliveryError,
    PermanentError,
    PopulationRefused,
    PopulationUnavailable,
    RetryableError,
)

ZEEP: Any = zeep.exceptions  # its constructors are untyped

R, P = "retry", "permanent"

EXPECTED: dict[str, dict[str, str]] = {
    "httpx": {
        "CloseError": R,
        "ConnectError": R,
        "ConnectTimeout": R,
        "CookieConflict": P,  # we built a request the library refuses
        "DecodingError": R,  # the answer's encoding is garbled: as any garbled answer
        "HTTPError": P,
        "HTTPStatusError": R,  # built with a 503 below; by its status (test_statuses_...)
        "InvalidURL": P,
        "LocalProtocolError": P,  # the request we built breaks HTTP
        "NetworkError": R,
        "PoolTimeout": R,
        "ProtocolError": R,
        "ProxyError": R,
        "ReadError": R,
        "ReadTimeout": R,
        "RemoteProtocolError": R,  # the peer broke HTTP (closed mid-answer)
        "RequestError": P,
        "RequestNotRead": P,
        "ResponseNotRead": P,
        "StreamClosed": P,
        "StreamConsumed": P,
        "StreamError": P,
        "TimeoutException": R,
        "TooManyRedirects": P,
        "TransportError": R,
        "UnsupportedProtocol": P,  # no client can request this URL
        "WriteError": R,
        "WriteTimeout": R,
    },
    "aiohttp": {
        "ClientConnectionError": R,
        "ClientConnectionResetError": R,
        "ClientConnectorCertificateError": R,  # as any failed handshake: the peer may renew it
        "ClientConnectorDNSError": R,
        "ClientConnectorError": R,
        "ClientConnectorSSLError": R,
        "ClientError": R,
        "ClientHttpProxyError": P,  # built with a 407 below
        "ClientOSError": R,
        "ClientPayloadError": R,
        "ClientProxyConnectionError": R,
        "ClientResponseError": R,  # built with a 503 below
        "ClientSSLError": R,
        "ConnectionTimeoutError": R,
        "ContentTypeError": R,  # a 2xx of the wrong content type: a garbled answer
        "InvalidURL": P,
        "InvalidUrlClientError": P,
        "InvalidUrlRedirectClientError": P,
        "NonHttpUrlClientError": P,
        "NonHttpUrlRedirectClientError": P,
        "RedirectClientError": P,
        "ServerConnectionError": R,
        "ServerDisconnectedError": R,
        "ServerFingerprintMismatch": R,
        "ServerTimeoutError": R,
        "SocketTimeoutError": R,
        "TooManyRedirects": P,  # exported by aiohttp itself, not in client_exceptions.__all__
        "UploadAbortedError": R,
        "WSMessageTypeError": P,
        "WSServerHandshakeError": P,  # built with a 400 below
    },
    "zeep": {
        "DTDForbidden": R,  # an unsafe answer is refused unread: retried, never parsed
        "EntitiesForbidden": R,
        "Error": R,
        "ExternalReferenceForbidden": R,
        "Fault": R,  # soap:Server below; a soap:Client fault is permanent (test_a_client_fault_...)
        "IncompleteMessage": R,
        "IncompleteOperation": R,
        "LookupError": R,
        "NamespaceError": R,
        "SignatureVerificationFailed": R,
        "TransportError": R,  # built with a 502 below
        "UnexpectedElementError": R,
        "ValidationError": P,  # zeep raises it when our request does not match the WSDL
        "WsdlSyntaxError": R,
        "XMLParseError": R,
        "XMLSyntaxError": R,
        "ZeepWarning": R,
    },
    "other": {
        "AnswerTooLarge": R,
        "ConnectionRefusedError": R,
        "ConnectionResetError": R,
        "OSError": R,
        "SSLError": R,
        "TimeoutError": R,
    },
}


def _exceptions(module: object, names: Iterable[str]) -> list[type[BaseException]]:
    found = (getattr(module, name) for name in names)
    return [c for c in found if isinstance(c, type) and issubclass(c, BaseException)]


EXPORTED: dict[str, list[type[BaseException]]] = {
    "httpx": _exceptions(httpx, httpx.__all__),
    "aiohttp": list(
        dict.fromkeys(
            [
                *_exceptions(aiohttp_errors, aiohttp_errors.__all__),
                *(c for c in _exceptions(aiohttp, aiohttp.__all__) if issubclass(c, aiohttp.ClientError)),
            ]
        )
    ),
    "zeep": [
        c for c in _exceptions(zeep.exceptions, dir(zeep.exceptions)) if c.__module__ == "zeep.exceptions"
    ],
    "other": [
        AnswerTooLarge,
        ConnectionRefusedError,
        ConnectionResetError,
        OSError,
        ssl.SSLError,
        TimeoutError,
    ],
}
CASES = sorted(
    {(library, cls) for library, classes in EXPORTED.items() for cls in classes},
    key=lambda case: f"{case[0]}.{case[1].__name__}",
)

REQUEST = httpx.Request("POST", "https://peer.test/api")


def _key() -> Any:
    from aiohttp.client_reqrep import ConnectionKey  # noqa: PLC0415

    return ConnectionKey("peer.test", 443, True, True, None, None, None)


def _headers(**values: str) -> CIMultiDictProxy[str]:
    return CIMultiDictProxy(CIMultiDict(values))


def answered(
    cls: type[aiohttp_errors.ClientResponseError], status: int, message: str, **headers: str
) -> aiohttp_errors.ClientResponseError:
    """An aiohttp error about an answer, as raised without a request behind it."""
    return cls(cast(Any, None), (), status=status, message=message, headers=_headers(**headers))


BUILDERS: dict[type[BaseException], Callable[[], BaseException]] = {
    httpx.HTTPStatusError: lambda: httpx.HTTPStatusError(
        "boom", request=REQUEST, response=httpx.Response(503, request=REQUEST)
    ),
    aiohttp_errors.ClientResponseError: lambda: answered(
        aiohttp_errors.ClientResponseError, 503, "Service Unavailable"
    ),
    aiohttp_errors.ClientHttpProxyError: lambda: answered(
        aiohttp_errors.ClientHttpProxyError, 407, "Proxy Authentication Required"
    ),
    aiohttp_errors.WSServerHandshakeError: lambda: answered(
        aiohttp_errors.WSServerHandshakeError, 400, "Invalid response status"
    ),
    aiohttp_errors.ContentTypeError: lambda: answered(
        aiohttp_errors.ContentTypeError, 200, "Attempt to decode JSON with unexpected mimetype: text/html"
    ),
    aiohttp.TooManyRedirects: lambda: answered(aiohttp.TooManyRedirects, 302, ""),
    aiohttp_errors.ServerFingerprintMismatch: lambda: aiohttp_errors.ServerFingerprintMismatch(
        b"a", b"b", "peer.test", 443
    ),
    zeep.exceptions.Fault: lambda: ZEEP.Fault("Hệ thống đang bận", code="soap:Server"),
    zeep.exceptions.TransportError: lambda: ZEEP.TransportError("Bad Gateway", status_code=502),
    zeep.exceptions.DTDForbidden: lambda: ZEEP.DTDForbidden("x", "sysid", "pubid"),
    zeep.exceptions.EntitiesForbidden: lambda: ZEEP.EntitiesForbidden("x", "content"),
    zeep.exceptions.ExternalReferenceForbidden: lambda: ZEEP.ExternalReferenceForbidden("http://x"),
    AnswerTooLarge: lambda: AnswerTooLarge.over(1024, declared=4096),
}


def build(cls: type[BaseException]) -> BaseException:
    """An instance as the library would raise it; failing every usual signature, one built without its
    __init__ (a half-built exception must classify too: its ``__str__`` may then fail)."""
    if cls in BUILDERS:
        return BUILDERS[cls]()
    if issubclass(cls, aiohttp_errors.ClientConnectorCertificateError):
        return cls(_key(), ssl.SSLCertVerificationError("certificate has expired"))
    if issubclass(cls, aiohttp_errors.ClientConnectorError):
        return cls(_key(), OSError(111, "Connection refused"))
    if issubclass(cls, aiohttp_errors.InvalidURL):
        return cls("peer test/api", "bad host")
    for args, kwargs in ((("boom",), {"request": REQUEST}), (("boom",), {}), ((), {})):
        try:
            return cls(*args, **kwargs)
        except TypeError:
            continue
    return cls.__new__(cls)


def expected_error(library: str, cls: type[BaseException]) -> type[DeliveryError]:
    return RetryableError if EXPECTED[library][cls.__name__] == R else PermanentError


def test_the_table_names_every_exported_exception_and_no_other() -> None:
    for library, classes in EXPORTED.items():
        assert sorted(c.__name__ for c in classes) == sorted(EXPECTED[library]), library


@pytest.mark.parametrize(("library", "cls"), CASES, ids=lambda v: v if isinstance(v, str) else v.__name__)
async def test_every_exported_exception_is_retryable_or_permanent_on_every_boundary(
    library: str, cls: type[BaseException]
) -> None:
    want = expected_error(library, cls)
    failure = classify(build(cls))
    assert failure is not None
    assert failure.retryable is (want is RetryableError)

    with pytest.raises(DeliveryError) as rest, map_transport_errors("emc", "TrackingMCDT"):
        raise build(cls)
    assert type(rest.value) is want  # never a subclass, never anything else
    assert (rest.value.destination, rest.value.operation, rest.value.message) == (
        "emc",
        "TrackingMCDT",
        failure.message,
    )
    assert isinstance(rest.value.__cause__, cls)

    with pytest.raises(CitizenLookupError) as soap, map_lookup_errors():
        raise build(cls)
    assert type(soap.value) is (PopulationUnavailable if want is RetryableError else PopulationRefused)
    assert soap.value.message == failure.message

    def raising(request: httpx.Request) -> httpx.Response:
        raise build(cls)

    strategy = OAuth2ClientCredentials(
        httpx.MockTransport(raising),
        token_url="https://gateway.test/oauth2/token",
        client_id="c",
        client_secret="s",
    )
    with pytest.raises(DeliveryError) as token:
        await strategy.headers()
    assert type(token.value) is want
    assert token.value.operation == "oauth2"
    if library != "zeep":  # zeep's failures are SOAP answers: no token endpoint gives one
        assert "token endpoint" in token.value.message or "request could not be made" in token.value.message


def test_what_is_no_transport_failure_is_not_classified() -> None:
    for exc in (ValueError("a bug"), KeyError("x"), RuntimeError("a bug")):
        assert classify(exc) is None
        with pytest.raises(type(exc)), map_transport_errors("emc", "TrackingMCDT"):
            raise exc
        with pytest.raises(type(exc)), map_lookup_errors():
            raise exc


def test_a_client_fault_is_permanent_and_a_server_fault_retryable() -> None:
    client = classify(ZEEP.Fault("MaTichHop không được cấp phép", code="soap:Client"))
    server = classify(ZEEP.Fault("Hệ thống đang bận", code="soap:Server"))
    assert client is not None
    assert server is not None
    assert (client.retryable, client.remote_code) == (False, "soap:Client")
    assert (server.retryable, server.remote_code) == (True, "soap:Server")


RETRYABLE = [408, 425, 429, 500, 501, 502, 503, 504, 505, 507, 511, 599]
PERMANENT = [400, 401, 402, 403, 404, 405, 409, 410, 413, 415, 422, 426, 451, 499]


def test_the_retryable_statuses_are_408_425_429_and_every_5xx() -> None:
    assert frozenset(range(100, 600)) & RETRYABLE_STATUS == frozenset({408, 425, 429, *range(500, 600)})
    assert [s for s in RETRYABLE + PERMANENT if retryable_status(s)] == RETRYABLE


TOKEN_URL = "https://gateway.test/oauth2/token"
SERVICE_URL = "https://population.test/ws/congdan"


def population_behind(handler: Callable[[httpx.Request], httpx.Response]) -> PopulationAdapter:
    """The population adapter over a mock network (``handler``), behind an OAuth2 gateway on it."""
    network = httpx.MockTransport(handler)
    strategy = OAuth2ClientCredentials(network, token_url=TOKEN_URL, client_id="c", client_secret="s")
    client = httpx.AsyncClient(transport=AuthenticatedTransport(network, strategy))
    return PopulationAdapter(
        "population", make_soap_transport(client), address=SERVICE_URL, ma_tich_hop="T", ma_dvc="D"
    )


def query() -> CitizenQuery:
    return CitizenQuery("046090000123", "CB-1", "lk-1")


@pytest.mark.parametrize("status", RETRYABLE + PERMANENT)
async def test_each_status_is_judged_alike_by_rest_soap_and_the_token_endpoint(status: int) -> None:
    want = RetryableError if status in RETRYABLE else PermanentError
    headers = {"retry-after": "7"}
    rest_answer = Answer(status, httpx.Headers(headers), b"<html>gateway</html>")
    with pytest.raises(DeliveryError) as rest:
        raise_for_status(rest_answer, "emc", "TrackingMCDT")
    assert (type(rest.value), rest.value.status) == (want, status)

    def answer(request: httpx.Request) -> httpx.Response:
        if str(request.url) == TOKEN_URL:
            return httpx.Response(200, json={"access_token": "t", "expires_in": 300})
        return httpx.Response(status, text="<html>gateway</html>", headers=headers)

    adapter = population_behind(answer)
    with pytest.raises(CitizenLookupError) as soap:
        await adapter.lookup(query())
    await adapter.aclose()
    assert type(soap.value) is (PopulationUnavailable if want is RetryableError else PopulationRefused)
    assert f"the service answered http {status}" in soap.value.message

    def gateway(request: httpx.Request) -> httpx.Response:
        return httpx.Response(status, json={"error": "x"}, headers=headers)

    strategy = OAuth2ClientCredentials(
        httpx.MockTransport(gateway), token_url=TOKEN_URL, client_id="c", client_secret="s"
    )
    with pytest.raises(DeliveryError) as token:
        await strategy.headers()
    assert (type(token.value), token.value.status) == (want, status)
    if want is RetryableError:
        assert token.value.retry_after_s == rest.value.retry_after_s == 7  # type: ignore[attr-defined]

    for raised in (
        httpx.HTTPStatusError("boom", request=REQUEST, response=httpx.Response(status, request=REQUEST)),
        answered(aiohttp_errors.ClientResponseError, status, "", **headers),
        ZEEP.TransportError("boom", status_code=status),
    ):
        failure = classify(raised)
        assert failure is not None
        assert (failure.retryable, failure.status) == (want is RetryableError, status), type(raised)


@pytest.mark.parametrize(
    ("status", "error", "message"),
    [
        (503, PopulationUnavailable, "the token endpoint answered http 503"),
        (429, PopulationUnavailable, "the token endpoint answered http 429"),
        (401, PopulationRefused, "the token endpoint refused the client: http 401"),
        (400, PopulationRefused, "the token endpoint refused the client: http 400"),
    ],
)
async def test_a_token_endpoint_failure_under_a_soap_adapter_is_its_own_lookup_error(
    status: int, error: type[CitizenLookupError], message: str
) -> None:
    asked: list[str] = []

    def answer(request: httpx.Request) -> httpx.Response:
        asked.append(str(request.url))
        return httpx.Response(status, json={"error": "invalid_client"}, headers={"retry-after": "30"})

    adapter = population_behind(answer)
    with pytest.raises(error, match=message) as caught:
        await adapter.lookup(query())
    await adapter.aclose()
    assert asked == [TOKEN_URL]  # the service is not asked without a token
    if isinstance(caught.value, PopulationUnavailable):
        assert caught.value.retry_after_s == 30  # the gateway's hint reaches the desk's Retry-After


@pytest.mark.parametrize(
    ("body", "want", "message"),
    [
        (
            b"<html>maintenance</html>",
            RetryableError,
            "the token endpoint's answer \\(http 200\\) is not what",
        ),
        (b"[]", RetryableError, "the token endpoint's answer \\(http 200\\) is not what"),
        (b'{"token_type": "Bearer"}', PermanentError, "the token endpoint gave no usable access_token"),
    ],
)
async def test_a_token_answer_that_is_no_token(body: bytes, want: type[DeliveryError], message: str) -> None:
    def gateway(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=body)

    strategy = OAuth2ClientCredentials(
        httpx.MockTransport(gateway), token_url=TOKEN_URL, client_id="c", client_secret="s"
    )
    with pytest.raises(want, match=message):
        await strategy.headers()


def test_a_2xx_answer_that_is_not_xml_is_described_without_its_content() -> None:
    """zeep's message ends with the start of the body (``Content: b'...'``): a population service's answer
    can begin with a citizen's id and name, and the failure's message goes to dead letters, logs and
    answers (found in review)."""
    body = "046090000123;Nguyễn Thị Thu Hà;12 đường Mẫu".encode()
    exc = ZEEP.TransportError(
        f"Server returned response (200) with invalid XML: Start tag expected.\nContent: {body!r}",
        status_code=200,
        content=body,
    )
    failure = classify(exc)
    assert failure is not None
    assert failure.message.startswith("the answer is not SOAP: Server returned response (200) with invalid")
    assert "046090000123" not in failure.message
    assert "Content" not in failure.message
