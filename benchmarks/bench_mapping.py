"""Mapping benchmark: the compiled bundled portal spec against a hand-written function and jsonata-python.

All three map the same realistic dossier event (about 30 input fields, with lists of documents, fees and
results) to one item of the portal's DongBoHoSoMC, on one core, in this one run. Before timing, the three
outputs are checked to be equal, so the figures compare the same mapping.

Targets (issue: mappings): compiled >= 50,000 records/s; >= 0.5x the hand-written function; >= 10x jsonata.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import time
from collections.abc import Callable
from typing import Any

from jsonata.jsonata import Jsonata

from handwritten import portal_dossier
from lienthong.mappings import SpecLoader
from lienthong.sandbox.dossiers import generate

# The same mapping in JSONata, as an integrator choosing jsonata-python would write it.
JSONATA = """
(
  $status := {"received": "1", "accepted": "2", "refused": "3", "processing": "4",
              "supplement_requested": "5", "financial_obligation": "6", "withdrawn": "7", "stopped": "8",
              "processed": "9", "returned": "10"};
  $channel := {"in_person": "0", "online": "0", "postal": "1"};
  $kind := {"citizen": "1", "business": "2"};
  $t := function($v) { $v ? $fromMillis($toMillis($v), "[Y0001][M01][D01][H01][m01][s01]", "+0700") : "" };
  {
    "MaHoSo": dossier.code,
    "MaTTHC": dossier.procedure.code,
    "TenTTHC": dossier.procedure.name,
    "MaLinhVuc": dossier.procedure.field_code,
    "TenLinhVuc": dossier.procedure.field_name,
    "SoBienNhan": dossier.receipt_no ? dossier.receipt_no : "",
    "ChuHoSo": dossier.applicant.full_name,
    "LoaiDoiTuong": $lookup($kind, dossier.applicant.kind),
    "MaDoiTuong": dossier.applicant.portal_id ? dossier.applicant.portal_id : "",
    "SoDienThoai": dossier.applicant.phone ? dossier.applicant.phone : "",
    "Email": dossier.applicant.email ? dossier.applicant.email : "",
    "TrichYeuHoSo": dossier.summary,
    "NgayTiepNhan": $t(dossier.received_at),
    "NgayHenTra": $t(dossier.due_at),
    "TrangThaiHoSo": $lookup($status, dossier.status),
    "NgayTra": $t(dossier.returned_at),
    "HinhThuc": $lookup($channel, dossier.channel),
    "DonViXuLy": dossier.handling_unit,
    "TaiLieuNop": [dossier.documents.{"MaThanhPhanHoSo": code, "TenTepDinhKem": name, "DuongDanTaiTepTin": url}],
    "DanhSachLePhi": [dossier.fees.{"MaPhiLePhi": code, "TenPhiLePhi": name, "Gia": $string(amount)}],
    "DanhSachGiayToKetQua": [dossier.results.{"GiayToId": code, "TenGiayTo": name, "DuongDanTepTinKetQua": url}]
  }
)
"""


def realistic_event() -> dict[str, Any]:
    """A returned dossier with three documents, two fees and a result: about 30 input fields."""
    stream = next(s for s in generate(50, seed=3) if s.events[0]["dossier"]["fees"])
    event = copy.deepcopy(stream.events[3])
    dossier = event["dossier"]
    dossier["documents"].append(
        {"code": "UQ01", "name": "Giấy ủy quyền", "url": f"https://files.example.vn/{dossier['code']}/uq.pdf"}
    )
    dossier["fees"].append(
        {"code": "PHI02", "name": "Phí", "amount": 20_000, "paid": True, "method": "online"}
    )
    return event


def rate(fn: Callable[[Any], Any], records: list[Any], seconds: float) -> float:
    """Records per second, best of several rounds of about ``seconds`` / 5 each."""
    best = 0.0
    for _ in range(5):
        count, started = 0, time.perf_counter()
        deadline = started + seconds / 5
        while time.perf_counter() < deadline:
            for record in records:
                fn(record)
            count += len(records)
        best = max(best, count / (time.perf_counter() - started))
    return best


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--smoke", action="store_true", help="short runs: checks the benchmark works")
    parser.add_argument("--json", action="store_true", help="print the figures as one JSON object")
    args = parser.parse_args()
    seconds = 0.5 if args.smoke else 5.0

    compiled = SpecLoader().load("bundled:portal_dossier")
    expression = Jsonata(JSONATA)
    event = realistic_event()
    expected = portal_dossier(event["dossier"])
    for name, output in (("compiled spec", compiled(event)), ("jsonata", expression.evaluate(event))):
        if output != expected:
            print(f"{name} does not produce what the hand-written function does:\n{output}\n{expected}")
            return 1
    records = [copy.deepcopy(event) for _ in range(100)]

    hand = rate(lambda e: portal_dossier(e["dossier"]), records, seconds)
    spec = rate(compiled, records, seconds)
    jsonata_rate = rate(expression.evaluate, records[:10], seconds / 2)
    report = {
        "records_per_s_compiled_spec": round(spec),
        "records_per_s_hand_written": round(hand),
        "records_per_s_jsonata_python": round(jsonata_rate),
        "ratio_spec_to_hand_written": round(spec / hand, 2),
        "ratio_spec_to_jsonata": round(spec / jsonata_rate, 1),
    }
    if args.json:
        print(json.dumps(report))
        return 0
    print(
        f"mapping benchmark ({'smoke' if args.smoke else 'full'}; one core; portal_dossier on a 30-field dossier)"
    )
    for label, value, note in (
        ("compiled bundled spec", report["records_per_s_compiled_spec"], "target >= 50,000"),
        (
            "hand-written Python",
            report["records_per_s_hand_written"],
            f"spec/hand-written {report['ratio_spec_to_hand_written']} (target >= 0.5)",
        ),
        (
            "jsonata-python",
            report["records_per_s_jsonata_python"],
            f"spec/jsonata {report['ratio_spec_to_jsonata']} (target >= 10)",
        ),
    ):
        print(f"  {label:<24}{value:>9} records/s  {note}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
