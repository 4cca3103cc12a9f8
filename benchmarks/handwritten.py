"""Hand-written translations of the reference dossier format to the portal's and EMC's formats.

The baseline of ``bench_mapping.py``: the same mappings as the bundled specs (portal_dossier,
portal_progress, emc_tracking), written directly in Python with the same checks, and the translation the
bare loops of ``bench_bus.py`` do. lienthong itself runs the compiled specs.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime, timedelta, timezone
from typing import Any

from lienthong.errors import TranslationError

# Vietnam has kept UTC+7 without daylight saving since 1975, so a fixed offset is exact and needs no tzdata.
VIETNAM = timezone(timedelta(hours=7), "Asia/Ho_Chi_Minh")

PORTAL_STATUS = {
    "received": 1,
    "accepted": 2,
    "refused": 3,
    "processing": 4,
    "supplement_requested": 5,
    "financial_obligation": 6,
    "withdrawn": 7,
    "stopped": 8,
    "processed": 9,
    "returned": 10,
}
PORTAL_CHANNEL = {"in_person": 0, "online": 0, "postal": 1}  # HinhThuc: 0 direct, 1 postal
APPLICANT_KIND = {"citizen": 1, "business": 2}
EMC_LEVELS = frozenset({0, 1, 3, 4})


def emc_status(portal_status: int) -> int:
    """EMC Status from the portal's TrangThaiHoSo: 1,2→1 received; 4→2 processing; 9,10→3 returned; else 0."""
    return {1: 1, 2: 1, 4: 2, 9: 3, 10: 3}.get(portal_status, 0)


class _Reader:
    """Reads fields of one dossier, raising TranslationError with the field's path."""

    def __init__(self, dossier: Mapping[str, Any]) -> None:
        self._dossier = dossier

    def get(self, path: str) -> Any:
        value: Any = self._dossier
        for key in path.split("."):
            value = value.get(key) if isinstance(value, Mapping) else None
        return value

    def text(self, path: str, *, required: bool = True) -> str:
        value = self.get(path)
        if value is None or value == "":
            if required:
                raise TranslationError("required but missing", field=f"dossier.{path}")
            return ""
        if not isinstance(value, str | int):
            raise TranslationError(f"expected text, got {type(value).__name__}", field=f"dossier.{path}")
        return str(value)

    def code(self, path: str, table: Mapping[str, int]) -> int:
        value = self.text(path)
        if value not in table:
            known = ", ".join(table)
            raise TranslationError(f"unknown code {value!r} (known: {known})", field=f"dossier.{path}")
        return table[value]

    def timestamp(self, path: str, *, required: bool = True) -> str:
        value = self.text(path, required=required)
        return to_portal_time(value, field=f"dossier.{path}") if value else ""

    def items(self, path: str) -> list[tuple[str, _Reader]]:
        value = self.get(path)
        if value is None:
            return []
        if not isinstance(value, list) or not all(isinstance(v, Mapping) for v in value):
            raise TranslationError("expected a list of objects", field=f"dossier.{path}")
        return [(f"{path}[{i}]", _Reader(v)) for i, v in enumerate(value)]


def to_portal_time(value: str, *, field: str) -> str:
    """ISO 8601 with an offset → ``yyyyMMddHHmmss`` in Vietnam time."""
    try:
        moment = datetime.fromisoformat(value)
    except ValueError as exc:
        raise TranslationError(f"not an ISO 8601 date-time: {value!r}", field=field) from exc
    if moment.tzinfo is None:
        raise TranslationError(f"date-time without a UTC offset: {value!r}", field=field)
    return moment.astimezone(VIETNAM).strftime("%Y%m%d%H%M%S")


def portal_dossier(dossier: Mapping[str, Any]) -> dict[str, Any]:
    """One item of DongBoHoSoMC's ``data``."""
    r = _Reader(dossier)
    return {
        "MaHoSo": r.text("code"),
        "MaTTHC": r.text("procedure.code"),
        "TenTTHC": r.text("procedure.name"),
        "MaLinhVuc": r.text("procedure.field_code"),
        "TenLinhVuc": r.text("procedure.field_name"),
        "SoBienNhan": r.text("receipt_no", required=False),
        "ChuHoSo": r.text("applicant.full_name"),
        "LoaiDoiTuong": str(r.code("applicant.kind", APPLICANT_KIND)),
        "MaDoiTuong": r.text("applicant.portal_id", required=False),
        "SoDienThoai": r.text("applicant.phone", required=False),
        "Email": r.text("applicant.email", required=False),
        "TrichYeuHoSo": r.text("summary"),
        "NgayTiepNhan": r.timestamp("received_at"),
        "NgayHenTra": r.timestamp("due_at"),
        "TrangThaiHoSo": str(r.code("status", PORTAL_STATUS)),
        "NgayTra": r.timestamp("returned_at", required=False),
        "HinhThuc": str(r.code("channel", PORTAL_CHANNEL)),
        "DonViXuLy": r.text("handling_unit"),
        "TaiLieuNop": [
            {
                "MaThanhPhanHoSo": d.text("code"),
                "TenTepDinhKem": d.text("name"),
                "DuongDanTaiTepTin": d.text("url"),
            }
            for _, d in r.items("documents")
        ],
        "DanhSachLePhi": [
            {"MaPhiLePhi": f.text("code"), "TenPhiLePhi": f.text("name"), "Gia": f.text("amount")}
            for _, f in r.items("fees")
        ],
        "DanhSachGiayToKetQua": [
            {"GiayToId": d.text("code"), "TenGiayTo": d.text("name"), "DuongDanTepTinKetQua": d.text("url")}
            for _, d in r.items("results")
        ],
    }


def portal_progress(dossier: Mapping[str, Any], occurred_at: str) -> dict[str, Any]:
    """One item of CapNhatTienDoHoSoMC's ``data``: the processing step the event reports."""
    r = _Reader(dossier)
    at = r.timestamp("step.at", required=False) or to_portal_time(occurred_at, field="occurred_at")
    return {
        "MaHoSo": r.text("code"),
        "NguoiXuLy": r.text("step.officer"),
        "ChucDanh": r.text("step.title", required=False),
        "ThoiDiemXuLy": at,
        "PhongBanXuLy": r.text("step.department"),
        "NoiDungXuLy": r.text("step.note"),
        "TrangThai": str(r.code("status", PORTAL_STATUS)),
        "NgayBatDau": r.timestamp("step.started_at", required=False) or at,
        "NgayKetThucTheoQuyDinh": r.timestamp("step.due_at", required=False) or r.timestamp("due_at"),
    }


def emc_tracking(dossier: Mapping[str, Any], *, site_id: str, province_code: str) -> dict[str, Any]:
    """The TrackingMCDT body for one dossier event."""
    r = _Reader(dossier)
    r.code("channel", PORTAL_CHANNEL)  # a known channel
    channel = r.text("channel")
    level = r.get("level")
    if level not in EMC_LEVELS:
        raise TranslationError(f"expected one of 0, 1, 3, 4, got {level!r}", field="dossier.level")
    id_number = r.text("applicant.id_number")
    user = {
        "ID_local": id_number,
        "ID_QG": id_number,
        "TYPE": "1" if len(id_number) == 10 else "2",
        "LOCATION": province_code,
    }
    return {
        "CodeProfile": r.text("code"),
        "SiteId": site_id,
        "CodeTTHC": r.text("procedure.code"),
        "NameTTHC": r.text("procedure.name"),
        "MaHoSo": r.text("code"),
        "Status": emc_status(r.code("status", PORTAL_STATUS)),
        "FormsReception": 1 if channel == "online" else 2,
        "FormsPayments": _forms_payments(r),
        "Level": level,
        "IsFromDVCQG": 1 if r.get("from_national_portal") is True else 0,
        "IsDVCBC": 1 if channel == "postal" else 0,
        "User": json.dumps(user, ensure_ascii=False, separators=(",", ":")),
    }


def _forms_payments(r: _Reader) -> int:
    fees = r.items("fees")
    if not fees:
        return 0
    return 1 if any(f.get("method") == "online" for _, f in fees) else 2
