"""Sandbox National Public Service Portal: session login, DongBoHoSoMC, CapNhatTienDoHoSoMC, TraCuuHoSo.

It checks what the real portal checks, as far as public clients tell (docs/contracts.md §5): the ``dstcode``
header, a live session, ``service`` in the body and the connection's own ``madonvi`` (when given one;
another is refused), required dossier fields, ``yyyyMMddHHmmss`` dates, status codes, ``HinhThuc`` in its
table ("0" direct, "1" postal), ``MaDoiTuong`` empty or the portal's own applicant id (a 12-digit citizen
ID number is refused), and create-versus-update consistency. Every reply is ``{"error_code", "message",
"result"}``; the error codes are our assumption (0 success, "400" invalid data, "401" no or expired
session, "403" another connection's dstcode or madonvi, "409" create of an existing or update of a missing
dossier).
"""

from __future__ import annotations

import re
import secrets
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

import orjson

from lienthong.sandbox.base import Answer, FaultPlan, Peer, Received, Request

_TIMESTAMP = re.compile(r"^\d{14}$")
DOSSIER_REQUIRED = (
    "MaHoSo",
    "MaTTHC",
    "TenTTHC",
    "ChuHoSo",
    "LoaiDoiTuong",
    "TrichYeuHoSo",
    "NgayTiepNhan",
    "NgayHenTra",
    "TrangThaiHoSo",
    "HinhThuc",
    "DonViXuLy",
)
PROGRESS_REQUIRED = ("MaHoSo", "NguoiXuLy", "ThoiDiemXuLy", "PhongBanXuLy", "NoiDungXuLy", "TrangThai")
STATUSES = frozenset(str(n) for n in range(1, 11))
CHANNELS = frozenset({"0", "1"})  # HinhThuc: 0 direct, 1 postal
_CITIZEN_ID = re.compile(r"^\d{12}$")


class _Invalid(Exception):
    def __init__(self, code: str, message: str) -> None:
        self.code, self.message = code, message


class PortalSandbox(Peer):
    def __init__(
        self,
        *,
        dstcode: str = "SANDBOX",
        username: str = "lienthong",
        password: str = "sandbox-password",  # noqa: S107 (a simulator's own test credential)
        procedures: frozenset[str] | None = None,
        session_ttl_s: float = 3600.0,
        faults: FaultPlan | None = None,
        clock: Callable[[], float] = time.monotonic,
        login_path: str = "/api/auth/login",
        service_path: str = "/api/service",
        madonvi: str | None = None,
    ) -> None:
        super().__init__(faults)
        self.dstcode, self.username, self.password = dstcode, username, password
        self.madonvi = madonvi  # the connection's unit code; None: any non-empty one
        self.procedures = procedures
        self.session_ttl_s = session_ttl_s
        self._clock = clock
        self.sessions: dict[str, float] = {}
        self.dossiers: dict[str, dict[str, Any]] = {}
        self.progress: dict[str, list[dict[str, Any]]] = {}
        self.logins = 0
        self.routes[("POST", login_path)] = self._login
        self.routes[("POST", service_path)] = self._service

    def expire_sessions(self) -> None:
        """Forget every session, as the real portal does when sessions time out."""
        self.sessions.clear()

    async def _login(self, request: Request) -> Answer:
        if request.headers.get("dstcode") != self.dstcode:
            return _reply("403", "dstcode không hợp lệ", status=403)
        body = _json(request.body)
        if (
            not isinstance(body, dict)
            or body.get("username") != self.username
            or body.get("password") != self.password
        ):
            return _reply("401", "Sai tên đăng nhập hoặc mật khẩu")
        session = secrets.token_hex(16)
        self.sessions[session] = self._clock() + self.session_ttl_s
        self.logins += 1
        return Answer.json(
            {"error_code": 0, "message": "Đăng nhập thành công", "session": session, "result": None}
        )

    async def _service(self, request: Request) -> Answer:
        if request.headers.get("dstcode") != self.dstcode:
            return _reply("403", "dstcode không hợp lệ", status=403)
        body = _json(request.body)
        if not isinstance(body, dict):
            return _reply("400", "body must be a JSON object", status=400)
        expiry = self.sessions.get(str(body.get("session")))
        if expiry is None or expiry < self._clock():
            return _reply("401", "Phiên làm việc không hợp lệ hoặc đã hết hạn")
        service = body.get("service")
        handler = {
            "TraCuuHoSo": self._lookup,
            "DongBoHoSoMC": self._sync,
            "CapNhatTienDoHoSoMC": self._progress,
        }.get(str(service))
        if handler is None:
            return _reply("400", f"unknown service {service!r}")
        madonvi = body.get("madonvi")
        if not madonvi:
            return _reply("400", "madonvi is required")
        if self.madonvi is not None and madonvi != self.madonvi:
            return _reply("403", f"madonvi {madonvi!r} không thuộc kết nối này")
        try:
            return handler(body, request.headers.get("idempotency-key"))
        except _Invalid as exc:
            return _reply(exc.code, exc.message)

    def _lookup(self, body: dict[str, Any], key: str | None) -> Answer:
        code = body.get("mahoso")
        found = self.dossiers.get(str(code))
        return Answer.json({"error_code": 0, "message": "OK", "result": [found] if found else []})

    def _sync(self, body: dict[str, Any], key: str | None) -> Answer:
        updating = body.get("isUpdating")
        if updating not in ("True", "False"):
            raise _Invalid("400", f'isUpdating must be "True" or "False", got {updating!r}')
        items = _items(body)
        for i, item in enumerate(items):
            self._check_dossier(item, f"data[{i}]")
            exists = item["MaHoSo"] in self.dossiers
            if updating == "False" and exists:
                raise _Invalid(
                    "409", f"data[{i}].MaHoSo {item['MaHoSo']}: hồ sơ đã tồn tại (use isUpdating True)"
                )
            if updating == "True" and not exists:
                raise _Invalid("409", f"data[{i}].MaHoSo {item['MaHoSo']}: hồ sơ không tồn tại")
        for item in items:
            self.dossiers[item["MaHoSo"]] = item
            self.record(Received("DongBoHoSoMC", key, item["MaHoSo"], item))
        return Answer.json({"error_code": 0, "message": "Đồng bộ thành công", "result": []})

    def _progress(self, body: dict[str, Any], key: str | None) -> Answer:
        items = _items(body)
        for i, item in enumerate(items):
            _require(item, PROGRESS_REQUIRED, f"data[{i}]")
            _timestamps(item, ("ThoiDiemXuLy", "NgayBatDau", "NgayKetThucTheoQuyDinh"), f"data[{i}]")
            if item["TrangThai"] not in STATUSES:
                raise _Invalid("400", f"data[{i}].TrangThai: unknown status {item['TrangThai']!r}")
            if item["MaHoSo"] not in self.dossiers:
                raise _Invalid("409", f"data[{i}].MaHoSo {item['MaHoSo']}: hồ sơ không tồn tại")
        for item in items:
            self.progress.setdefault(item["MaHoSo"], []).append(item)
            self.record(Received("CapNhatTienDoHoSoMC", key, item["MaHoSo"], item))
        return Answer.json({"error_code": 0, "message": "Cập nhật thành công", "result": []})

    def _check_dossier(self, item: dict[str, Any], where: str) -> None:
        _require(item, DOSSIER_REQUIRED, where)
        _timestamps(item, ("NgayTiepNhan", "NgayHenTra", "NgayTra"), where)
        if item["TrangThaiHoSo"] not in STATUSES:
            raise _Invalid("400", f"{where}.TrangThaiHoSo: unknown status {item['TrangThaiHoSo']!r}")
        if item["HinhThuc"] not in CHANNELS:
            raise _Invalid("400", f"{where}.HinhThuc: must be 0 or 1, got {item['HinhThuc']!r}")
        applicant = item.get("MaDoiTuong", "")
        if not isinstance(applicant, str) or _CITIZEN_ID.match(applicant):
            raise _Invalid(
                "400",
                f"{where}.MaDoiTuong: the portal's own applicant id or empty, not a citizen ID number"
                f" ({applicant!r})",
            )
        if item["LoaiDoiTuong"] not in ("1", "2"):
            raise _Invalid("400", f"{where}.LoaiDoiTuong: must be 1 or 2, got {item['LoaiDoiTuong']!r}")
        if self.procedures is not None and item["MaTTHC"] not in self.procedures:
            raise _Invalid("400", f"{where}.MaTTHC: thủ tục {item['MaTTHC']} không có trong danh mục")


def _reply(code: str, message: str, *, status: int = 200) -> Answer:
    return Answer.json({"error_code": code, "message": message, "result": None}, status)


def _json(body: bytes) -> Any:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        return None


def _items(body: dict[str, Any]) -> list[dict[str, Any]]:
    data = body.get("data")
    if not isinstance(data, list) or not data or not all(isinstance(d, dict) for d in data):
        raise _Invalid("400", "data must be a non-empty list of objects")
    return data


def _require(item: dict[str, Any], fields: tuple[str, ...], where: str) -> None:
    missing = [f for f in fields if item.get(f) in (None, "")]
    if missing:
        raise _Invalid("400", f"{where}: missing required fields {', '.join(missing)}")


def _timestamps(item: dict[str, Any], fields: tuple[str, ...], where: str) -> None:
    for name in fields:
        value = item.get(name)
        if value in (None, ""):
            continue
        if not isinstance(value, str) or not _TIMESTAMP.match(value):
            raise _Invalid("400", f"{where}.{name}: expected yyyyMMddHHmmss, got {value!r}")
        try:
            datetime.strptime(value, "%Y%m%d%H%M%S")
        except ValueError:
            raise _Invalid("400", f"{where}.{name}: not a real date-time: {value!r}") from None
