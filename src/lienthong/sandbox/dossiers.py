"""Synthetic dossier event streams in the reference provincial format (docs/provincial-format.md).

Every name and number here is generated from syllable lists and a seeded random source: it is realistic in
shape and belongs to nobody. A dossier's life is received → processing → result issued → returned.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from lienthong.mappings.dates import VIETNAM

UNITS = (
    ("000.00.12.H56", "Sở Tư pháp"),
    ("000.00.15.H56", "Sở Kế hoạch và Đầu tư"),
    ("000.20.31.H56", "UBND phường Lộc Thọ"),
    ("000.21.32.H56", "UBND xã Vĩnh Lương"),
)
PROCEDURES = (
    ("1.001193", "Đăng ký khai sinh", "G09-TP01", "Hộ tịch", 0),
    ("1.000894", "Đăng ký kết hôn", "G09-TP01", "Hộ tịch", 0),
    ("1.001757", "Cấp bản sao trích lục hộ tịch", "G09-TP01", "Hộ tịch", 8_000),
    (
        "2.000046",
        "Đăng ký thành lập hộ kinh doanh",
        "G09-KH05",
        "Thành lập và hoạt động của hộ kinh doanh",
        100_000,
    ),
    ("1.004227", "Chứng thực bản sao từ bản chính", "G09-TP02", "Chứng thực", 2_000),
)
UNKNOWN_PROCEDURE = ("9.999999", "Thủ tục không có trong danh mục", "G09-XX99", "Không rõ", 0)
PROCEDURE_CODES = frozenset(p[0] for p in PROCEDURES)
_FAMILY = ("Nguyễn", "Trần", "Lê", "Phạm", "Hoàng", "Phan", "Vũ", "Đặng", "Bùi", "Đỗ")
_MIDDLE = ("Văn", "Thị", "Minh", "Thu", "Đức", "Ngọc", "Quang", "Thanh")
_GIVEN = ("An", "Bình", "Châu", "Dũng", "Hà", "Hải", "Lan", "Long", "Mai", "Nam", "Phúc", "Quân", "Trang")
_OFFICERS = ("Trần Thị Hạnh", "Lê Văn Tâm", "Phạm Minh Khoa")


@dataclass(frozen=True)
class DossierStream:
    """The events of one dossier, oldest first."""

    code: str
    events: tuple[dict[str, Any], ...]


def generate(
    count: int, *, seed: int = 7, start: datetime | None = None, unknown_share: float = 0.0
) -> list[DossierStream]:
    """``count`` dossiers; ``unknown_share`` of them use a procedure the portal's catalogue lacks."""
    rng = random.Random(seed)  # noqa: S311 (synthetic data, not cryptography)
    start = start or datetime(2026, 11, 23, 8, 0, tzinfo=VIETNAM)
    return [_stream(rng, i, start + timedelta(minutes=3 * i), unknown_share) for i in range(count)]


def interleave(streams: list[DossierStream]) -> Iterator[dict[str, Any]]:
    """All events stage by stage: every dossier's first event, then every second one, and so on."""
    depth = max((len(s.events) for s in streams), default=0)
    for stage in range(depth):
        for stream in streams:
            if stage < len(stream.events):
                yield stream.events[stage]


def _stream(rng: random.Random, index: int, received: datetime, unknown_share: float) -> DossierStream:
    unit_code, unit_name = rng.choice(UNITS)
    procedure = UNKNOWN_PROCEDURE if rng.random() < unknown_share else rng.choice(PROCEDURES)
    code = f"{unit_code}-{received:%y%m%d}-{index:05d}"
    channel = rng.choices(("online", "in_person", "postal"), weights=(6, 3, 1))[0]
    due = received + timedelta(days=rng.choice((1, 3, 5, 7)))
    base = _base_dossier(
        rng, code=code, procedure=procedure, unit_name=unit_name, channel=channel, received=received, due=due
    )
    stages: list[tuple[str, datetime, dict[str, Any]]] = [
        ("dossier.received", received, {"status": "received"}),
        (
            "dossier.status_changed",
            received + timedelta(hours=1),
            {"status": "processing", "step": _step(rng, due)},
        ),
        (
            "dossier.result_issued",
            received + timedelta(days=1),
            {"status": "processed", "results": _results(code)},
        ),
        ("dossier.returned", received + timedelta(days=1, hours=2), {"status": "returned"}),
    ]
    events = []
    for n, (kind, at, changes) in enumerate(stages):
        dossier = {**base, **changes}
        if kind == "dossier.returned":
            dossier["results"] = _results(code)
            dossier["returned_at"] = at.isoformat()
        events.append(
            {
                "event_id": f"evt-{code}-{n}",
                "type": kind,
                "occurred_at": at.isoformat(),
                "unit_code": unit_code,
                "dossier": dossier,
            }
        )
    return DossierStream(code, tuple(events))


def _base_dossier(
    rng: random.Random,
    *,
    code: str,
    procedure: tuple[str, str, str, str, int],
    unit_name: str,
    channel: str,
    received: datetime,
    due: datetime,
) -> dict[str, Any]:
    proc_code, proc_name, field_code, field_name, fee = procedure
    full_name = f"{rng.choice(_FAMILY)} {rng.choice(_MIDDLE)} {rng.choice(_GIVEN)}"
    fees = (
        [{"code": "LP01", "name": "Lệ phí", "amount": fee, "paid": True, "method": "online"}] if fee else []
    )
    return {
        "code": code,
        "procedure": {
            "code": proc_code,
            "name": proc_name,
            "field_code": field_code,
            "field_name": field_name,
        },
        "receipt_no": f"BN-{code[-5:]}",
        "applicant": {
            "kind": "business" if proc_code.startswith("2.") else "citizen",
            "id_number": "0" + "".join(rng.choice("0123456789") for _ in range(11)),
            "full_name": full_name,
            "phone": "09" + "".join(rng.choice("0123456789") for _ in range(8)),
            "email": f"congdan{rng.randrange(10_000)}@example.vn",
        },
        "summary": f"{proc_name} - {full_name}",
        "channel": channel,
        "level": 4 if channel == "online" else 1,
        "from_national_portal": channel == "online" and rng.random() < 0.3,
        "received_at": received.isoformat(),
        "due_at": due.isoformat(),
        "handling_unit": unit_name,
        "documents": [
            {"code": "TK01", "name": "Tờ khai", "url": f"https://files.example.vn/{code}/to-khai.pdf"},
            {
                "code": "GT01",
                "name": "Giấy tờ tùy thân",
                "url": f"https://files.example.vn/{code}/giay-to.pdf",
            },
        ],
        "fees": fees,
    }


def _step(rng: random.Random, due: datetime) -> dict[str, Any]:
    return {
        "officer": rng.choice(_OFFICERS),
        "title": "Chuyên viên",
        "department": "Bộ phận chuyên môn",
        "note": "Thụ lý, thẩm định hồ sơ",
        "due_at": due.isoformat(),
    }


def _results(code: str) -> list[dict[str, Any]]:
    url = f"https://files.example.vn/{code}/ket-qua.pdf"
    return [
        {
            "code": "KQ01",
            "name": "Kết quả giải quyết",
            "url": url,
            "sha256": hashlib.sha256(url.encode()).hexdigest(),
        }
    ]
