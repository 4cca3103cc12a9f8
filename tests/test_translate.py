"""Translations into the portal's and EMC's formats, and their errors naming the source field."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from lienthong.adapters.translate import (
    emc_status,
    emc_tracking,
    portal_dossier,
    portal_progress,
    to_portal_time,
)
from lienthong.errors import TranslationError
from lienthong.sandbox.dossiers import generate


def dossier(stage: int = 0) -> dict[str, Any]:
    return copy.deepcopy(generate(1, seed=1)[0].events[stage]["dossier"])


def test_portal_dates_are_vietnam_local_time_in_the_portals_format() -> None:
    assert to_portal_time("2026-11-23T01:15:00+00:00", field="f") == "20261123081500"
    assert to_portal_time("2026-11-23T08:15:00+07:00", field="f") == "20261123081500"


@pytest.mark.parametrize("value", ["23/11/2026", "2026-11-23T08:15:00"])
def test_a_date_without_an_offset_or_not_iso_is_refused(value: str) -> None:
    with pytest.raises(TranslationError, match="dossier.received_at"):
        to_portal_time(value, field="dossier.received_at")


def test_a_portal_dossier_carries_codes_and_lists() -> None:
    d = dossier(3)
    item = portal_dossier(d)
    assert item["MaHoSo"] == d["code"]
    assert item["TrangThaiHoSo"] == "10"
    assert item["HinhThuc"] in ("1", "2", "3")
    assert item["NgayTra"] != ""
    assert [t["MaThanhPhanHoSo"] for t in item["TaiLieuNop"]] == ["TK01", "GT01"]
    assert item["DanhSachGiayToKetQua"][0]["GiayToId"] == "KQ01"


def test_a_missing_required_field_names_its_path() -> None:
    d = dossier()
    del d["procedure"]["code"]
    with pytest.raises(TranslationError) as caught:
        portal_dossier(d)
    assert caught.value.field == "dossier.procedure.code"
    assert str(caught.value) == "dossier.procedure.code: required but missing"


def test_an_unknown_status_lists_the_known_codes() -> None:
    d = dossier()
    d["status"] = "recieved"
    with pytest.raises(
        TranslationError, match=r"dossier.status: unknown code 'recieved' \(known: received, accepted"
    ):
        portal_dossier(d)


def test_a_list_of_the_wrong_shape_is_named() -> None:
    d = dossier()
    d["documents"] = "not a list"
    with pytest.raises(TranslationError, match="dossier.documents: expected a list of objects"):
        portal_dossier(d)


def test_a_progress_step_falls_back_to_the_event_time_and_the_dossier_due_date() -> None:
    d = dossier(1)
    step = portal_progress(d, "2026-11-23T02:00:00+00:00")
    assert step["ThoiDiemXuLy"] == "20261123090000"
    assert step["NgayBatDau"] == step["ThoiDiemXuLy"]
    assert step["TrangThai"] == "4"


@pytest.mark.parametrize(("portal", "emc"), [(1, 1), (2, 1), (4, 2), (9, 3), (10, 3), (3, 0), (5, 0), (7, 0)])
def test_emc_status_follows_the_portal_status(portal: int, emc: int) -> None:
    assert emc_status(portal) == emc


def test_an_emc_record_encodes_channel_payments_and_user() -> None:
    d = dossier()
    d["channel"] = "postal"
    d["fees"] = [{"code": "LP", "name": "Lệ phí", "amount": 1000, "method": "cash"}]
    record = emc_tracking(d, site_id="S", province_code="H56")
    assert (record["FormsReception"], record["IsDVCBC"], record["FormsPayments"]) == (2, 1, 2)
    assert json.loads(record["User"]) == {
        "SoDinhDanh": d["applicant"]["id_number"],
        "LoaiDoiTuong": 1,
        "MaTinh": "H56",
    }


def test_an_emc_level_outside_the_scale_is_refused() -> None:
    d = dossier()
    d["level"] = 2
    with pytest.raises(TranslationError, match="dossier.level: expected one of 0, 1, 3, 4, got 2"):
        emc_tracking(d, site_id="S", province_code="H56")
