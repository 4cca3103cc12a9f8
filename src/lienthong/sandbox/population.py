"""Sandbox National Population Database: the citizen look-up over SOAP, from the WSDL lienthong ships.

It checks what the real service checks (the integration code, a 12-digit SoDinhDanh, who asks and the
request id), answers ``CongdanCollection`` with the registered citizen or with none, answers soap:Client
faults for bad requests, and injects the common faults plus SOAP's own malformed answers. Every citizen in
it is synthetic (``synthetic_citizen``).
"""

from __future__ import annotations

import hashlib
import random
import re
from importlib import resources
from typing import Any

from lienthong.sandbox import soap
from lienthong.sandbox.base import Answer, FaultPlan, Peer, Received, Request

NAMESPACE = "http://csdl.dancu.gov.vn/congdan"
OPERATION = "TraCuuThongTinCongDan"
_ID = re.compile(r"^\d{12}$")
_REQUIRED = ("SoDinhDanh", "MaTichHop", "MaDVC", "MaCanBo", "MaYeuCau")
_PLACES = (
    ("46", "Thừa Thiên Huế", "474", "Thành phố Huế", "19753", "Phường Phú Hội"),
    ("46", "Thừa Thiên Huế", "476", "Huyện Phong Điền", "19771", "Xã Phong Hiền"),
    ("48", "Đà Nẵng", "490", "Quận Hải Châu", "20194", "Phường Thạch Thang"),
)


def wsdl() -> bytes:
    return (resources.files("lienthong.adapters") / "wsdl" / "population.wsdl").read_bytes()


def synthetic_citizen(id_number: str, full_name: str) -> dict[str, Any]:
    """A CongDan record for a made-up person: the same inputs always give the same record."""
    rng = random.Random(hashlib.sha256(id_number.encode()).digest())  # noqa: S311 (synthetic data)
    words = full_name.split()
    tinh, ten_tinh, huyen, ten_huyen, xa, ten_xa = rng.choice(_PLACES)
    address = {
        "MaTinhThanh": tinh,
        "TenTinhThanh": ten_tinh,
        "MaQuanHuyen": huyen,
        "TenQuanHuyen": ten_huyen,
        "MaPhuongXa": xa,
        "TenPhuongXa": ten_xa,
        "ChiTiet": f"{rng.randrange(1, 200)} đường Mẫu",
    }
    born = f"{rng.randrange(1950, 2008)}{rng.randrange(1, 13):02d}{rng.randrange(1, 29):02d}"
    return {
        "SoDinhDanh": id_number,
        "SoCMND": "",
        "HoVaTen": {
            "Ho": words[0] if len(words) > 1 else "",
            "ChuDem": " ".join(words[1:-1]),
            "Ten": words[-1] if words else "",
        },
        "GioiTinh": "2" if "Thị" in words else "1",
        "NgayThangNamSinh": {"Nam": born[:4], "NgayThangNam": born},
        "DanToc": "01",
        "TonGiao": "00",
        "QuocTich": "VN",
        "ThuongTru": address,
        "NoiOHienTai": address,
        "SoSoHoKhau": f"HK{rng.randrange(10**8):08d}",
    }


class PopulationSandbox(Peer):
    def __init__(
        self,
        *,
        ma_tich_hop: str = "LIENTHONG-SANDBOX",
        path: str = "/ws/congdan",
        faults: FaultPlan | None = None,
    ) -> None:
        super().__init__(faults)
        self.ma_tich_hop = ma_tich_hop
        self.citizens: dict[str, dict[str, Any]] = {}
        self.routes[("GET", path)] = self._wsdl
        self.routes[("POST", path)] = self._lookup

    def add(self, citizen: dict[str, Any]) -> None:
        self.citizens[citizen["SoDinhDanh"]] = citizen

    def error_answer(self) -> Answer:
        return soap.fault("Server", "Hệ thống đang bận, vui lòng thử lại sau")

    def malformed_answer(self, rng: random.Random) -> Answer:
        sample = soap.envelope(soap.element("CongdanCollection", NAMESPACE, {}))
        return soap.malformed(rng, sample)

    async def _wsdl(self, request: Request) -> Answer:
        return Answer(200, wsdl(), soap.XML)

    async def _lookup(self, request: Request) -> Answer:
        try:
            call = soap.parse_body(request.body)
        except soap.SoapRequestError as exc:
            return soap.fault("Client", str(exc))
        if call.tag != f"{{{NAMESPACE}}}{OPERATION}":
            return soap.fault("Client", f"unknown operation {call.tag}")
        asked = soap.fields(call)
        problem = self._check(asked)
        if problem:
            return soap.fault("Client", problem)
        self.record(Received(OPERATION, asked["MaYeuCau"], "", asked))
        found = self.citizens.get(asked["SoDinhDanh"])
        collection = soap.element("CongdanCollection", NAMESPACE, {})
        if found is not None:
            collection.append(soap.element("CongDan", NAMESPACE, found))
        return Answer(200, soap.envelope(collection), soap.XML)

    def _check(self, asked: dict[str, str]) -> str | None:
        missing = [name for name in _REQUIRED if not asked.get(name)]
        if missing:
            return f"thiếu trường bắt buộc: {', '.join(missing)}"
        if asked["MaTichHop"] != self.ma_tich_hop:
            return f"MaTichHop {asked['MaTichHop']!r} không được cấp phép"
        if not _ID.match(asked["SoDinhDanh"]):
            return "SoDinhDanh phải gồm 12 chữ số"
        return None
