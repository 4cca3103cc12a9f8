"""National Population Database adapter: look up a citizen by SoDinhDanh over SOAP, with zeep.

The WSDL is ours (``adapters/wsdl/population.wsdl``, DESIGN §4) and is read from the package, so starting
needs no network; the service address comes from config. The transport is injected (a zeep
``AsyncTransport`` over our httpx client). zeep parses with DTDs, entities and external references
forbidden. Every failure leaves ``lookup`` as one of CitizenNotFound, CitizenMismatch,
PopulationUnavailable or PopulationRefused (``map_lookup_errors``).
"""

from __future__ import annotations

import asyncio
import time
import unicodedata
from contextlib import AbstractContextManager
from dataclasses import dataclass
from importlib import resources
from typing import Any

import httpx
import zeep
import zeep.exceptions
from lxml import etree
from pydantic import BaseModel, ConfigDict, ValidationError
from zeep.helpers import serialize_object
from zeep.proxy import AsyncServiceProxy
from zeep.transports import AsyncTransport

from lienthong.adapters.exchanges import note
from lienthong.adapters.http import AnswerTooLarge, check_declared_length, read_capped
from lienthong.adapters.soap import SAFE, UnsafeXml, check_answer, map_soap_errors, safe_xml
from lienthong.errors import (
    CitizenMismatch,
    CitizenNotFound,
    PopulationRefused,
    PopulationUnavailable,
)
from lienthong.xmlsafe import XmlMalformed

NAMESPACE = "http://csdl.dancu.gov.vn/congdan"
BINDING = f"{{{NAMESPACE}}}CongDanBinding"


class _Record(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class Name(_Record):
    Ho: str | None = None
    ChuDem: str | None = None
    Ten: str | None = None


class Birth(_Record):
    Nam: str | None = None
    NgayThangNam: str | None = None  # yyyyMMdd (assumed); only Nam when the day is unknown


class Address(_Record):
    MaTinhThanh: str | None = None
    TenTinhThanh: str | None = None
    MaQuanHuyen: str | None = None
    TenQuanHuyen: str | None = None
    MaPhuongXa: str | None = None
    TenPhuongXa: str | None = None
    ChiTiet: str | None = None


class Relative(_Record):
    HoVaTen: str | None = None
    SoDinhDanh: str | None = None


class CongDan(_Record):
    """A citizen record as the population database returns it."""

    SoDinhDanh: str
    SoCMND: str | None = None
    HoVaTen: Name
    GioiTinh: str | None = None
    NgayThangNamSinh: Birth | None = None
    DanToc: str | None = None
    TonGiao: str | None = None
    QuocTich: str | None = None
    NoiDangKyKhaiSinh: Address | None = None
    QueQuan: Address | None = None
    ThuongTru: Address | None = None
    NoiOHienTai: Address | None = None
    Cha: Relative | None = None
    Me: Relative | None = None
    VoChong: Relative | None = None
    ChuHo: Relative | None = None
    SoSoHoKhau: str | None = None

    @property
    def full_name(self) -> str:
        return " ".join(p for p in (self.HoVaTen.Ho, self.HoVaTen.ChuDem, self.HoVaTen.Ten) if p)


@dataclass(frozen=True)
class CitizenQuery:
    """One look-up: whose record, who asks (MaCanBo) and the request id (MaYeuCau); optionally the name
    and birth date (yyyyMMdd) the caller holds, which must then match."""

    id_number: str
    official_id: str
    request_id: str
    full_name: str | None = None
    birth_date: str | None = None


def wsdl_path() -> str:
    return str(resources.files("lienthong.adapters") / "wsdl" / "population.wsdl")


DEFAULT_MAX_SOAP_ANSWER_BYTES = 256 * 1024
"""The default cap on one SOAP answer, in bytes (256 KiB). A citizen record or an invoice's status is a
few KB, and zeep's parse takes some 40 times an answer's size: a 24 MB answer took the node from 99 MB to
1 GB. With a 1 MiB cap, benchmarks/bench_hostile.py peaked at 395 MB; with 256 KiB, at 363 MB."""

WSDL_DEADLINE_S = 60.0
"""The longest a WSDL or schema fetched from a tenant's host may take, whole: the destination's timeout
bounds each read, and a host sending a byte a second would pass every read's."""
MAX_WSDL_BYTES = 4 * 1024 * 1024
"""The cap on a WSDL or schema fetched from a tenant's host (4 MiB; assumed, docs/contracts.md §0: an ASMX
service's WSDL, every operation in it, is well under 1 MB)."""


def make_soap_transport(
    client: httpx.AsyncClient,
    *,
    max_answer_bytes: int | None = None,
    wsdl_client: httpx.Client | None = None,
) -> CappedSoapTransport:
    """zeep's async transport over ``client``. The WSDL is read from the package, never fetched, unless
    ``wsdl_client`` is given to fetch it (VNPT's tenants host their own WSDLs), up to MAX_WSDL_BYTES.

    An answer is read as a stream and dropped, before zeep parses it, once its decoded size passes
    ``max_answer_bytes`` (None: 256 KiB): ``AnswerTooLarge``, which the adapters treat as retry-later.
    """
    return CappedSoapTransport(
        client=client,
        wsdl_client=wsdl_client or httpx.Client(transport=_NoFetching()),
        max_answer_bytes=max_answer_bytes or DEFAULT_MAX_SOAP_ANSWER_BYTES,
    )


class CappedSoapTransport(AsyncTransport):
    """zeep's AsyncTransport, whose ``post`` reads the whole answer at once, with a size cap."""

    def __init__(self, *, max_answer_bytes: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.max_answer_bytes = max_answer_bytes
        self.wsdl_deadline_s = WSDL_DEADLINE_S

    async def post(self, address: str, message: bytes, headers: dict[str, str]) -> httpx.Response:
        request = self.client.build_request("POST", address, content=message, headers=headers)
        response = await self.client.send(request, stream=True)
        try:
            await read_capped(response, self.max_answer_bytes)
        finally:
            await response.aclose()
        status = response.status_code
        if not 200 <= status < 300 and response.content and not _envelope(response.content):
            # zeep reads any XML it gets with an error status as a SOAP fault ("Unknown fault occured",
            # retried whatever the status): a gateway's 404 page must be judged by its status, as REST's.
            raise zeep.exceptions.TransportError(
                f"http {status} without a SOAP envelope", status_code=status, content=response.content
            )
        check_answer(response.content)
        note(message, response.content)  # the message log's hashes of this attempt's exchange
        return response

    def load(self, url: str) -> bytes:
        """A WSDL or schema (a file or a tenant's URL), refused as an answer would be, before zeep parses."""
        content: bytes = super().load(url)
        check_answer(content, source=url)
        return content

    def _load_remote_data(self, url: str) -> bytes:
        """zeep's fetch of a WSDL or schema from a tenant's host (``load``), which read any answer whole,
        of any status, for as long as the host took. Here: a status other than 2xx is zeep's
        TransportError with it, unread (a redirect too: none is followed); the answer is asked for and
        taken uncompressed (httpx inflates a read at once, before it can be counted), read as a stream and
        dropped past MAX_WSDL_BYTES, and the whole fetch must end within ``wsdl_deadline_s``."""
        what = f"the WSDL or schema at {_without_secrets(url)}"
        deadline = time.monotonic() + self.wsdl_deadline_s
        with self.wsdl_client.stream("GET", url, headers={"accept-encoding": "identity"}) as response:
            if not response.is_success:
                raise zeep.exceptions.TransportError(status_code=response.status_code)
            check_declared_length(response, MAX_WSDL_BYTES)
            coding = response.headers.get("content-encoding", "identity").strip().lower()
            if coding != "identity":
                raise AnswerTooLarge.inflatable(MAX_WSDL_BYTES, coding, what=what)
            chunks: list[bytes] = []
            size = 0
            for chunk in response.iter_bytes():
                size += len(chunk)
                if size > MAX_WSDL_BYTES:
                    chunks.clear()  # a traceback keeps this frame, and the frame its chunks
                    raise AnswerTooLarge.over(MAX_WSDL_BYTES, what=what)
                if time.monotonic() > deadline:
                    chunks.clear()
                    raise httpx.ReadTimeout(f"{what} took more than {self.wsdl_deadline_s:g} s to read")
                chunks.append(chunk)
        return b"".join(chunks)


def _without_secrets(url: str) -> str:
    """``url`` without user information or query, for messages and logs."""
    parsed = httpx.URL(url)
    return str(parsed.copy_with(userinfo=b"", query=None, fragment=None))


def _envelope(content: bytes) -> bool:
    """Whether ``content`` is a SOAP envelope as zeep reads one (one with a DTD counts: zeep refuses it)."""
    try:
        root = safe_xml(content, max_bytes=len(content))
    except UnsafeXml:
        return True
    except XmlMalformed:
        return False
    return etree.QName(root).localname == "Envelope"


class _NoFetching(httpx.BaseTransport):
    def handle_request(self, request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError(f"lienthong does not fetch WSDL or schemas at run time: {request.url}")


class PopulationAdapter:
    def __init__(
        self,
        name: str,
        transport: AsyncTransport,
        *,
        address: str,
        ma_tich_hop: str,
        ma_dvc: str,
        timeout_s: float = 10.0,
    ) -> None:
        self.name = name
        self._transport = transport
        client = zeep.AsyncClient(wsdl_path(), transport=transport, settings=SAFE)
        self._service = AsyncServiceProxy(client, client.wsdl.bindings[BINDING], address=address)
        self._ma_tich_hop = ma_tich_hop
        self._ma_dvc = ma_dvc
        self._timeout_s = timeout_s

    async def lookup(self, query: CitizenQuery) -> CongDan:
        """The citizen with ``query.id_number``. Raises a CitizenLookupError subclass."""
        with map_lookup_errors():
            async with asyncio.timeout(self._timeout_s):
                answer = await self._service.TraCuuThongTinCongDan(
                    HoVaTen=query.full_name,
                    SoDinhDanh=query.id_number,
                    NgayThangNam=query.birth_date,
                    MaTichHop=self._ma_tich_hop,
                    MaDVC=self._ma_dvc,
                    MaCanBo=query.official_id,
                    MaYeuCau=query.request_id,
                )
            records = serialize_object(answer, dict) or []
        citizen = _one(records, query.id_number)
        mismatched = _mismatches(citizen, query)
        if mismatched:
            raise CitizenMismatch(mismatched)
        return citizen

    async def aclose(self) -> None:
        await self._transport.aclose()


def _one(records: Any, id_number: str) -> CongDan:
    matching = [r for r in records if isinstance(r, dict) and r.get("SoDinhDanh") == id_number]
    if not matching:
        raise CitizenNotFound("no citizen has this SoDinhDanh")
    try:
        return CongDan.model_validate(matching[0])
    except ValidationError as exc:
        raise PopulationUnavailable(
            f"the citizen record does not match the WSDL: {exc.errors()[0]['msg']}"
        ) from exc


def _mismatches(citizen: CongDan, query: CitizenQuery) -> list[str]:
    fields = []
    if query.full_name is not None and _same_text(query.full_name) != _same_text(citizen.full_name):
        fields.append("name")
    born = citizen.NgayThangNamSinh
    if query.birth_date is not None and (born is None or born.NgayThangNam != query.birth_date):
        fields.append("birth_date")
    return fields


def _same_text(name: str) -> str:
    """Names compare in one Unicode form, case-folded, with single spaces (``Nguyễn  văn An`` matches
    ``NGUYỄN VĂN AN``)."""
    return " ".join(unicodedata.normalize("NFC", name).casefold().split())


def map_lookup_errors() -> AbstractContextManager[None]:
    """The one boundary where zeep's, httpx's and aiohttp's exceptions, and the failures of the
    destination's token endpoint, become our CitizenLookupError."""
    return map_soap_errors(
        lambda failure: PopulationUnavailable(failure.message, retry_after_s=failure.retry_after_s),
        lambda failure: PopulationRefused(failure.message, remote_code=failure.remote_code),
    )
