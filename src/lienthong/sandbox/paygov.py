"""Sandbox payment platform (PayGov-style): INIT and QUERY with MaXacThuc checked, and confirm callbacks.

A payment is created by INIT (pending, with a pay URL) and settled by ``pay``, which plays the citizen
paying at the bank: it marks the payment and POSTs the signed confirm callback to the province's URL, as
the real platform does. INIT with a reference it already holds answers the duplicate code, never a second
payment. Codes: 00 ok, 06 not found, 07 bad MaXacThuc, 13 duplicate reference (06, 07 and 13 assumed).

Answers come in the shape a public client reads (docs/contracts.md §2): ``{"error_code": "0", "message":
"<a JSON string holding UrlThanhToan …>"}``, or an error's code and text; ``answers="flat"`` answers
``{"MaLoi", "MoTaLoi", "UrlThanhToan", …}`` instead, the other shape lienthong reads. The confirm callback
carries no ``TrangThaiGD`` (a public receiver decides on ``MaLoi`` alone), except for a pending payment,
which has no other way to say so.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any, Literal

import httpx
import orjson

from lienthong.payments import CONFIRM_FIELDS, INIT_FIELDS, QUERY_FIELDS, field_text, paygov_code
from lienthong.sandbox.base import Answer, FaultPlan, Peer, Received, Request

_REQUIRED_INIT = ("MaThamChieu", "SoTien", "MaTienTe", "ThongTinGiaoDich", "ThoiGianGD")


@dataclass
class SandboxPayment:
    reference: str
    amount: int
    info: str
    status: str = "3"  # 1 paid, 3 pending, 4 failed
    transaction_id: str = ""


class PayGovSandbox(Peer):
    def __init__(
        self,
        *,
        partner_code: str = "LIENTHONG-H56",
        secret: str = "sandbox-paygov-secret",  # noqa: S107 (a simulator's own test secret)
        path: str = "/api/paygov",
        answers: Literal["wrapped", "flat"] = "wrapped",
        access_token: str | None = None,
        faults: FaultPlan | None = None,
    ) -> None:
        super().__init__(faults)
        self.answers = answers
        self.access_token = access_token  # when set, every message must carry it as a Bearer token
        self.partner_code = partner_code
        self.secret = secret
        self.payments: dict[str, SandboxPayment] = {}
        self.base_url = ""
        self._ids = itertools.count(1)
        self.routes[("POST", path)] = self._message

    async def _message(self, request: Request) -> Answer:
        if (
            self.access_token is not None
            and request.headers.get("authorization") != f"Bearer {self.access_token}"
        ):
            return Answer.json({"error_code": "401", "message": "Unauthorized"}, 401)
        try:
            message = orjson.loads(request.body)
        except orjson.JSONDecodeError:
            return self._answer("01", "Dữ liệu không phải JSON", status=400)
        if not isinstance(message, dict):
            return self._answer("01", "Dữ liệu không hợp lệ", status=400)
        kind = message.get("LoaiBanTin")
        fields = {"INIT": INIT_FIELDS, "QUERY": QUERY_FIELDS}.get(str(kind))
        if fields is None:
            return self._answer("02", f"LoaiBanTin không hỗ trợ: {kind!r}")
        if message.get("MaDoiTac") != self.partner_code:
            return self._answer("03", "MaDoiTac không hợp lệ")
        if str(message.get("MaXacThuc", "")) != paygov_code(message, fields, self.secret):
            return self._answer("07", "Sai mã xác thực")
        return self._init(message) if kind == "INIT" else self._query(message)

    def _init(self, message: dict[str, Any]) -> Answer:
        missing = [f for f in _REQUIRED_INIT if not field_text(message.get(f))]
        if missing:
            return self._answer("04", f"Thiếu trường: {', '.join(missing)}")
        if not field_text(message["SoTien"]).isdigit() or int(field_text(message["SoTien"])) <= 0:
            return self._answer("05", "SoTien phải là số nguyên dương")
        reference = field_text(message["MaThamChieu"])
        if reference in self.payments:
            return self._answer("13", "MaThamChieu đã tồn tại")
        self.payments[reference] = SandboxPayment(
            reference, int(field_text(message["SoTien"])), field_text(message["ThongTinGiaoDich"])
        )
        self.record(Received("INIT", reference, reference, message))
        return self._answer("00", "Thành công", {"UrlThanhToan": self._pay_url(reference)})

    def _query(self, message: dict[str, Any]) -> Answer:
        payment = self.payments.get(field_text(message.get("MaThamChieu")))
        if payment is None:
            return self._answer("06", "Không tìm thấy giao dịch")
        return self._answer(
            "00",
            "Thành công",
            {
                "MaThamChieu": payment.reference,
                "SoTien": payment.amount,
                "TrangThaiGD": payment.status,
                "MaGiaoDich": payment.transaction_id,
                "UrlThanhToan": self._pay_url(payment.reference),
            },
        )

    def _answer(self, code: str, text: str, data: dict[str, Any] | None = None, status: int = 200) -> Answer:
        if self.answers == "flat":
            return Answer.json({"MaLoi": code, "MoTaLoi": text, **(data or {})}, status)
        if code != "00":
            return Answer.json({"error_code": code, "message": text}, status)
        inner = orjson.dumps({"MaLoi": code, "MoTaLoi": text, **(data or {})}).decode()
        return Answer.json({"error_code": "0", "message": inner}, status)

    def _pay_url(self, reference: str) -> str:
        return f"{self.base_url}/pay/{reference}"

    def confirmation(
        self, reference: str, status: str = "1", *, at: str = "20261123091245"
    ) -> dict[str, Any]:
        """The signed confirm callback for ``reference``, marking the payment: ``status`` 1 paid (MaLoi 00),
        4 failed (MaLoi 10, assumed), 3 pending (the only one carrying TrangThaiGD)."""
        payment = self.payments[reference]
        payment.status = status
        payment.transaction_id = payment.transaction_id or f"PG{next(self._ids):010d}"
        message: dict[str, Any] = {
            "LoaiBanTin": "CONFIRM",
            "PhienBan": "1.0.6",
            "MaLoi": "00" if status == "1" else "10",
            "MaDoiTac": self.partner_code,
            "MaThamChieu": reference,
            "SoTien": payment.amount,
            "MaTienTe": "VND",
            "MaGiaoDich": payment.transaction_id,
            "MaNganHang": "VCB",
            "ThoiGianGD": at,
            "ThongTinGiaoDich": payment.info,
        }
        if status == "3":
            message["TrangThaiGD"] = status
        message["MaXacThuc"] = paygov_code(message, CONFIRM_FIELDS, self.secret)
        return message

    def pay(self, reference: str, callback_url: str, status: str = "1") -> httpx.Response:
        """Play the citizen paying: send the confirm callback to the province, as the platform would."""
        return httpx.post(callback_url, json=self.confirmation(reference, status), timeout=10)
