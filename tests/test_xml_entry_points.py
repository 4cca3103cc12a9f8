"""Every place lienthong reads XML from outside, walked with hostile documents (issue 13 §5, DESIGN §6).

Given each entry point of the table (SOAP answers and WSDLs through zeep's transport, VNPT's inner XML, the
sandbox's SOAP requests and invoice batches, bank statements, signed documents), when it is sent an XXE (an
external entity naming a local file, one naming a URL on a loopback server that records what it is asked),
a billion-laughs payload, a document nested too deep and one too large: then each is refused with an error
naming the problem, nothing is fetched, nothing of the file leaks, and memory stays bounded. A last test
reads the source tree: a parse outside ``xmlsafe`` fails it.
"""

from __future__ import annotations

import asyncio
import http.server
import re
import resource
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import zeep.exceptions

from lienthong import xmlsafe
from lienthong.adapters.http import AnswerTooLarge
from lienthong.adapters.population import DEFAULT_MAX_SOAP_ANSWER_BYTES, make_soap_transport
from lienthong.adapters.soap import MAX_INNER_XML, safe_xml
from lienthong.bank.records import StatementError
from lienthong.bank.statements import read_statements
from lienthong.certs.xmldsig import SIGNED_LIMITS, TrustStore, verify
from lienthong.sandbox import soap as sandbox_soap
from lienthong.sandbox.vnpt import VnptSandbox

SRC = Path(__file__).resolve().parent.parent / "src" / "lienthong"
SOAP = "http://schemas.xmlsoap.org/soap/envelope/"
CAMT = "urn:iso:std:iso:20022:tech:xsd:camt.053.001.08"


class Refused(Exception):
    """What an entry point answered, when it refused (its own error, or its own refusal answer)."""


@dataclass(frozen=True)
class EntryPoint:
    """One place that reads XML from outside: ``read`` raises Refused with the entry point's message, or
    returns when it accepted the document; ``wrap`` puts a payload where the entry point reads it;
    ``max_bytes`` is its size limit."""

    name: str
    read: Callable[[bytes, Path], None]
    max_bytes: int
    wrap: Callable[[bytes], bytes] = lambda body: body


def _zeep_answer(payload: bytes, _: Path) -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=payload, headers={"content-type": "text/xml"})

    async def post() -> None:
        async with httpx.AsyncClient(transport=httpx.MockTransport(answer)) as client:
            transport: Any = make_soap_transport(client)  # zeep's transports are untyped
            await transport.post("http://peer.invalid/service", b"<x/>", {})

    try:
        asyncio.run(post())
    except (zeep.exceptions.Error, AnswerTooLarge) as exc:
        raise Refused(f"{type(exc).__name__}: {exc}") from exc


def _zeep_wsdl(payload: bytes, tmp: Path) -> None:
    path = tmp / "tenant.wsdl"
    path.write_bytes(payload)
    transport: Any = make_soap_transport(httpx.AsyncClient())
    try:
        transport.load(str(path))
    except zeep.exceptions.Error as exc:
        raise Refused(f"{type(exc).__name__}: {exc}") from exc


def _inner_xml(payload: bytes, _: Path) -> None:
    try:
        safe_xml(payload.decode("utf-8"))
    except xmlsafe.XmlError as exc:
        raise Refused(str(exc)) from exc


def _sandbox_request(payload: bytes, _: Path) -> None:
    try:
        sandbox_soap.parse_body(payload)
    except sandbox_soap.SoapRequestError as exc:
        raise Refused(str(exc)) from exc


def _sandbox_invoices(payload: bytes, _: Path) -> None:
    peer = VnptSandbox()
    args = {"pattern": peer.pattern, "serial": peer.serial, "xmlInvData": payload.decode("utf-8")}
    outcome = peer._publish(args)
    if outcome == "ERR:3":
        raise Refused("ERR:3 (the invoice XML is not valid)")


def _statement(payload: bytes, tmp: Path) -> None:
    path = tmp / "statement.xml"
    path.write_bytes(payload)
    try:
        list(read_statements(path, max_bytes=STATEMENT_BYTES))
    except StatementError as exc:
        raise Refused(str(exc)) from exc


def _signed(payload: bytes, _: Path) -> None:
    result = verify(payload, TrustStore())
    if result.problems:
        raise Refused("; ".join(result.problems))


def _envelope(body: bytes) -> bytes:
    return f'<soap:Envelope xmlns:soap="{SOAP}"><soap:Body>'.encode() + body + b"</soap:Body></soap:Envelope>"


def _camt(body: bytes) -> bytes:
    return (
        f'<Document xmlns="{CAMT}"><BkToCstmrStmt><Stmt><Ntry>'.encode()
        + body
        + b"</Ntry></Stmt></BkToCstmrStmt></Document>"
    )


STATEMENT_BYTES = 2 * 1_048_576
"""The statement limit the test gives ``read_statements`` (its default is 2 GiB)."""

ENTRY_POINTS = [
    EntryPoint("soap answer (zeep transport)", _zeep_answer, DEFAULT_MAX_SOAP_ANSWER_BYTES, _envelope),
    EntryPoint("wsdl (zeep transport)", _zeep_wsdl, 1 << 40),
    EntryPoint("inner xml (vnpt look-ups)", _inner_xml, MAX_INNER_XML),
    EntryPoint("sandbox soap request", _sandbox_request, sandbox_soap.MAX_REQUEST, _envelope),
    EntryPoint("sandbox vnpt xmlInvData", _sandbox_invoices, sandbox_soap.MAX_REQUEST),
    EntryPoint("bank statement (camt, streamed)", _statement, STATEMENT_BYTES, _camt),
    EntryPoint("signed document (xml verify)", _signed, SIGNED_LIMITS.max_bytes),
]
IDS = [e.name for e in ENTRY_POINTS]


class _Recorder(http.server.BaseHTTPRequestHandler):
    asked: list[str]

    def do_GET(self) -> None:
        self.asked.append(self.path)
        body = b'<!ENTITY leak "fetched">'
        self.send_response(200)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        return


@pytest.fixture(scope="module")
def loopback() -> Iterator[tuple[str, list[str]]]:
    """An HTTP server on 127.0.0.1 that records every request it gets."""
    asked: list[str] = []
    handler = type("Recorder", (_Recorder,), {"asked": asked})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", asked
    server.shutdown()
    server.server_close()


@pytest.fixture
def secret(tmp_path: Path) -> Path:
    path = tmp_path / "secret.txt"
    path.write_text("SECRET-MARKER-4242")
    return path


def _refusal(entry: EntryPoint, payload: bytes, tmp: Path) -> str:
    with pytest.raises(Refused) as caught:
        entry.read(payload, tmp)
    return str(caught.value)


def _xxe_documents(secret: Path, url: str) -> dict[str, bytes]:
    return {
        "file entity": f'<!DOCTYPE r [<!ENTITY x SYSTEM "file://{secret}">]><r>&x;</r>'.encode(),
        "http entity": f'<!DOCTYPE r [<!ENTITY x SYSTEM "{url}/entity">]><r>&x;</r>'.encode(),
        "parameter entity": f'<!DOCTYPE r [<!ENTITY % p SYSTEM "{url}/parameter"> %p;]><r>&leak;</r>'.encode(),
        "external dtd": f'<!DOCTYPE r SYSTEM "{url}/dtd"><r>&leak;</r>'.encode(),
        "file parameter entity": f'<!DOCTYPE r [<!ENTITY % p SYSTEM "file://{secret}"> %p;]><r/>'.encode(),
    }


@pytest.mark.parametrize("entry", ENTRY_POINTS, ids=IDS)
def test_an_xxe_is_refused_as_a_dtd_and_nothing_is_fetched_or_read(
    entry: EntryPoint, loopback: tuple[str, list[str]], secret: Path, tmp_path: Path
) -> None:
    url, asked = loopback
    for kind, document in _xxe_documents(secret, url).items():
        message = _refusal(entry, document, tmp_path)
        assert re.search("DTD|ERR:3", message), (kind, message)
        assert "SECRET-MARKER" not in message, kind
    assert asked == []


@pytest.mark.parametrize("entry", ENTRY_POINTS, ids=IDS)
def test_a_billion_laughs_is_refused_quickly_in_bounded_memory(entry: EntryPoint, tmp_path: Path) -> None:
    entities = "".join(f'<!ENTITY l{i} "{f"&l{i - 1};" * 10}">' for i in range(1, 10))
    bomb = f'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY l0 "lol">{entities}]><r a="&l9;">&l9;</r>'.encode()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    message = _refusal(entry, bomb, tmp_path)
    grown_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    assert re.search("DTD|ERR:3", message)
    assert grown_kib < 50 * 1024  # expanded, it would be some 3 GB


@pytest.mark.parametrize("entry", ENTRY_POINTS, ids=IDS)
def test_a_document_nested_deeper_than_the_limit_is_refused(entry: EntryPoint, tmp_path: Path) -> None:
    depth = xmlsafe.DEFAULT_LIMITS.max_depth + 5  # under libxml2's own 256: the limit is ours
    message = _refusal(entry, entry.wrap(b"<d>" * depth + b"</d>" * depth), tmp_path)
    assert re.search(f"deeper than {xmlsafe.DEFAULT_LIMITS.max_depth}|ERR:3", message)


@pytest.mark.parametrize("entry", [e for e in ENTRY_POINTS if e.max_bytes < 1 << 30], ids=lambda e: e.name)
def test_a_document_over_the_size_limit_is_refused(entry: EntryPoint, tmp_path: Path) -> None:
    body = b"<p>" + b"a" * entry.max_bytes + b"</p>"
    message = _refusal(entry, entry.wrap(body), tmp_path)
    assert re.search(r"bytes|too much|limit|ERR:3", message)


@pytest.mark.parametrize("entry", ENTRY_POINTS, ids=IDS)
def test_a_well_formed_ordinary_document_is_not_refused_for_its_shape(
    entry: EntryPoint, tmp_path: Path
) -> None:
    # Given a document within every limit, with an <?xml-stylesheet?> at its head (dropped, not refused),
    # then whatever the entry point says of its content, it is not a hardening refusal.
    document = b'<?xml version="1.0"?><?xml-stylesheet href="x.xsl"?>' + entry.wrap(
        b"<d>" * 10 + b"</d>" * 10
    )
    answered = ""
    try:
        entry.read(document, tmp_path)
    except Refused as exc:
        answered = str(exc)
    assert not re.search("DTD|deeper than|bytes, more than", answered), answered


@pytest.mark.parametrize("encoding", ["utf-8", "utf-16"])
def test_an_entity_bomb_libxml2_gives_up_on_is_still_named_a_dtd(encoding: str) -> None:
    entities = "".join(f'<!ENTITY l{i} "{f"&l{i - 1};" * 10}">' for i in range(1, 10))
    bomb = (
        f'<?xml version="1.0" encoding="{encoding}"?><!DOCTYPE r [<!ENTITY l0 "lol">{entities}]><r>&l9;</r>'
    )
    with pytest.raises(xmlsafe.XmlRefused) as caught:
        xmlsafe.parse(bomb.encode(encoding))
    assert caught.value.what == "dtd"


def test_the_refusal_names_what_and_where() -> None:
    with pytest.raises(xmlsafe.XmlRefused) as caught:
        xmlsafe.parse(b"<a>\n" + b"<d>" * 70 + b"</d>" * 70 + b"</a>", source="peer answer")
    assert (caught.value.what, caught.value.source, caught.value.line) == ("depth", "peer answer", 2)
    assert "peer answer, line 2: nests elements deeper than 64" in str(caught.value)


_PARSES = re.compile(
    r"etree\.(fromstring|XML|parse|iterparse|XMLParser|XMLPullParser|HTMLParser|XMLID|XMLDTDID)\b"
    r"|\bXMLParser\(|\bxml\.(etree|dom|sax)\b|\bminidom\b|\blxml\.(html|objectify)\b"
)
_ZEEP_CLIENT = re.compile(r"zeep\.(Async)?Client\(")


def _offending_lines(text: str) -> list[str]:
    lines = []
    for line in text.splitlines():
        code = line.split("#", 1)[0]
        if _PARSES.search(code) or (_ZEEP_CLIENT.search(code) and "settings=SAFE" not in code):
            lines.append(line.strip())
    return lines


def test_the_grep_catches_a_parse_outside_xmlsafe() -> None:
    # The check below can fail: these lines are what it looks for.
    assert _offending_lines("root = etree.fromstring(body)\nparser = etree.XMLParser()\n") != []
    assert _offending_lines("context = etree.iterparse(handle)\nfrom xml.dom import minidom\n") != []
    assert _offending_lines("client = zeep.AsyncClient(wsdl, transport=t)\n") != []
    assert _offending_lines("client = zeep.AsyncClient(wsdl, transport=t, settings=SAFE)\n") == []


def test_no_xml_is_parsed_outside_xmlsafe() -> None:
    found = {
        str(path.relative_to(SRC)): lines
        for path in sorted(SRC.rglob("*.py"))
        if path.name != "xmlsafe.py" and (lines := _offending_lines(path.read_text(encoding="utf-8")))
    }
    assert found == {}, "parse XML with lienthong.xmlsafe (and add the entry point to ENTRY_POINTS)"
