"""The schedule maths, as pure functions of "now": windows, run ids, previous and next fire times, and the
windows missed since the last recorded run. Asia/Ho_Chi_Minh (UTC+7 all year, no DST) throughout."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from lienthong.scheduler.schedule import MAX_SKIPPED, Schedule, Window, parse_cron, zone

HCM = zone("Asia/Ho_Chi_Minh")


def at(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=HCM)  # type: ignore[arg-type,misc]


def test_a_daily_run_covers_the_day_before_its_fire_time_and_is_named_by_it() -> None:
    daily = Schedule("bank-reconcile", "0 2 * * *")
    window = daily.latest_window(at(2026, 12, 1, 9, 30))
    assert (window.start, window.end) == (at(2026, 11, 30, 2), at(2026, 12, 1, 2))
    assert window.run_id == "bank-reconcile:2026-12-01T02:00+07:00"
    assert window.end_ms - window.start_ms == 86_400_000


def test_the_fire_time_itself_completes_its_window() -> None:
    daily = Schedule("kpi", "0 2 * * *")
    assert daily.latest_window(at(2026, 12, 1, 2)).end == at(2026, 12, 1, 2)
    assert daily.latest_window(at(2026, 12, 1, 1, 59, 59)).end == at(2026, 11, 30, 2)


def test_the_run_id_is_the_same_whatever_zone_now_is_given_in_and_across_restarts() -> None:
    first = Schedule("bank", "0 2 * * *").latest_window(at(2026, 12, 1, 3))
    utc_now = datetime(2026, 11, 30, 20, 0, tzinfo=UTC)  # the same instant: 03:00 in Hồ Chí Minh City
    again = Schedule("bank", "0 2 * * *").latest_window(utc_now)  # a new process, a new Schedule
    assert again == first
    assert again.run_id == "bank:2026-12-01T02:00+07:00"


def test_month_ends_monthly_and_last_days() -> None:
    monthly = Schedule("integrity", "30 1 1 * *")
    window = monthly.latest_window(at(2026, 3, 15))
    assert (window.start, window.end) == (at(2026, 2, 1, 1, 30), at(2026, 3, 1, 1, 30))
    on_the_31st = Schedule("emc", "0 0 31 * *")  # only months with 31 days
    window = on_the_31st.latest_window(at(2026, 5, 1))
    assert (window.start, window.end) == (at(2026, 1, 31), at(2026, 3, 31))
    assert on_the_31st.next_fire(at(2026, 3, 31)) == at(2026, 5, 31)
    leap = Schedule("leap", "0 0 29 2 *")
    assert leap.latest_window(at(2026, 6, 1)) == Window("leap", at(2020, 2, 29), at(2024, 2, 29))


def test_the_year_turns_over() -> None:
    daily = Schedule("kpi", "0 0 * * *")
    assert daily.latest_window(at(2027, 1, 1, 0, 0, 1)).start == at(2026, 12, 31)
    assert daily.next_fire(at(2026, 12, 31, 23, 59)) == at(2027, 1, 1)


def test_next_fire_is_strictly_after() -> None:
    hourly = Schedule("portal", "15 * * * *")
    assert hourly.next_fire(at(2026, 1, 1, 10, 15)) == at(2026, 1, 1, 11, 15)
    assert hourly.next_fire(at(2026, 1, 1, 10, 14, 59, 999_999)) == at(2026, 1, 1, 10, 15)


def test_weekdays_by_name() -> None:
    weekdays = Schedule("bank", "0 6 * * mon-fri")
    saturday = at(2026, 12, 5, 12)
    assert weekdays.latest_window(saturday) == Window("bank", at(2026, 12, 3, 6), at(2026, 12, 4, 6))
    assert weekdays.next_fire(saturday) == at(2026, 12, 7, 6)  # Monday


def test_the_window_a_moment_falls_in() -> None:
    daily = Schedule("bank", "0 2 * * *")
    assert daily.window_containing(at(2026, 12, 1)).run_id == "bank:2026-12-01T02:00+07:00"
    assert daily.window_containing(at(2026, 12, 1, 2)).run_id == "bank:2026-12-02T02:00+07:00"


def test_nothing_is_missed_before_the_next_fire() -> None:
    daily = Schedule("bank", "0 2 * * *")
    assert daily.missed(at(2026, 12, 1, 2), at(2026, 12, 2, 1, 59)) is None


def test_windows_missed_while_down_run_once_the_latest_and_skip_the_others() -> None:
    daily = Schedule("bank", "0 2 * * *")
    catchup = daily.missed(at(2026, 11, 28, 2), at(2026, 12, 1, 8))
    assert catchup is not None
    assert catchup.run.run_id == "bank:2026-12-01T02:00+07:00"
    assert [w.run_id for w in catchup.skipped] == [
        "bank:2026-11-30T02:00+07:00",
        "bank:2026-11-29T02:00+07:00",
    ]
    assert not catchup.uncounted
    one = daily.missed(at(2026, 11, 30, 2), at(2026, 12, 1, 8))
    assert one is not None
    assert one.skipped == ()


def test_a_long_outage_lists_only_the_latest_skipped_windows() -> None:
    every_minute = Schedule("tick", "* * * * *")
    catchup = every_minute.missed(at(2026, 1, 1), at(2026, 1, 2))
    assert catchup is not None
    assert len(catchup.skipped) == MAX_SKIPPED
    assert catchup.uncounted
    assert catchup.skipped[0].end == catchup.run.start
    assert catchup.skipped[-1].start == at(2026, 1, 2) - timedelta(minutes=MAX_SKIPPED + 1)


@pytest.mark.parametrize(
    ("expression", "complaint"),
    [
        ("0 2 * *", "5 fields"),
        ("0 25 * * *", "not a cron expression"),
        ("0 2 * * 0", "names"),
        ("0 2 * * 1-5", "names"),
        ("0 0 30 2 *", "never fires"),
    ],
)
def test_bad_expressions_say_what_is_wrong(expression: str, complaint: str) -> None:
    with pytest.raises(ValueError, match=complaint):
        parse_cron(expression)


def test_a_step_on_named_weekdays_is_fine() -> None:
    parse_cron("0 2 * * mon-fri/2")


def test_an_unknown_zone_is_named() -> None:
    with pytest.raises(ValueError, match="unknown time zone 'Asia/Saigon_'"):
        zone("Asia/Saigon_")
