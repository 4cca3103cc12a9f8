"""The named functions specs apply: examples, properties (hypothesis), and argument errors at load time."""

from __future__ import annotations

import hashlib
import time
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lienthong.mappings.failure import MappingFailure
from lienthong.mappings.functions import FunctionContext, FunctionRegistry, bind
from lienthong.mappings.money import in_words
from lienthong.mappings.tables import CodeTable

REGISTRY = FunctionRegistry.builtin()
CONTEXT = FunctionContext({"status": CodeTable("status", {"received": 1})})


def fn(name: str, args: Any = None) -> Any:
    function = REGISTRY.get(name)
    assert function is not None, name
    return bind(function, args, CONTEXT)


@pytest.mark.parametrize(
    ("args", "value", "expected"),
    [
        (None, "2026-11-23T08:03:00+07:00", "20261123080300"),
        (None, "2026-11-23T01:03:00Z", "20261123080300"),
        ({"format": "dd/MM/yyyy"}, "2026-11-23T18:00:00Z", "24/11/2026"),
        (
            {"format": "yyyy-MM-dd'T'HH:mm:ss.SSSXXX"},
            "2026-11-23T08:03:00.250+07:00",
            "2026-11-23T08:03:00.250+07:00",
        ),
        ({"format": "yyyyMMddHHmmss", "tz": "UTC"}, "2026-11-23T08:03:00+07:00", "20261123010300"),
        ({"format": "iso8601", "tz": "+07:00"}, "2026-11-23T01:03:00Z", "2026-11-23T08:03:00+07:00"),
        ({"from_format": "dd/MM/yyyy", "format": "yyyyMMdd"}, "15/01/1990", "19900115"),
        (
            {"from_format": "yyyyMMddHHmmss", "format": "iso8601"},
            "20261123080300",
            "2026-11-23T08:03:00+07:00",
        ),
    ],
)
def test_format_date_writes_the_pattern_in_the_zone(args: Any, value: str, expected: str) -> None:
    assert fn("format_date", args)(value) == expected


def test_format_date_refuses_text_that_is_not_a_date_and_dates_without_an_offset() -> None:
    with pytest.raises(MappingFailure, match="not a date-time in iso8601: '26/11/2026'"):
        fn("format_date")("26/11/2026")
    with pytest.raises(MappingFailure, match="without a UTC offset"):
        fn("format_date")("2026-11-23T08:03:00")
    with pytest.raises(MappingFailure, match="expects a date-time, got int"):
        fn("format_date")(20261123)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"format": "yyyyMMddHHmmssQ"}, "unknown date pattern letters 'Q'"),
        ({"format": "yyyy-MM-ddTHH"}, "unknown date pattern letters 'THH'"),
        ({"tz": "Asia/Hanoi_City"}, "unknown time zone 'Asia/Hanoi_City'"),
        ({"fromat": "yyyy"}, r"format_date: fromat: unknown argument \(arguments: format, tz, from_format\)"),
        ({"format": 5}, "format_date: format: Input should be a valid string"),
    ],
)
def test_bad_arguments_fail_when_the_spec_loads(args: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        fn("format_date", args)


# From 1976: before that the south of Vietnam kept UTC+8, as the zone database rightly says.
@given(st.datetimes(min_value=datetime(1976, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)))
def test_a_date_written_then_read_in_a_pattern_is_the_same_moment(moment: datetime) -> None:
    moment = moment.replace(microsecond=0)
    text = fn("format_date", {"format": "dd/MM/yyyy HH:mm:ss"})(moment)
    back = fn("parse_date", {"format": "dd/MM/yyyy HH:mm:ss"})(text)
    assert back == moment
    assert back.utcoffset() == timedelta(hours=7)


def test_parse_date_reads_a_pattern_in_the_zone_and_names_bad_input() -> None:
    assert fn("parse_date", "dd/MM/yyyy")("15/01/1990") == datetime(
        1990, 1, 15, tzinfo=timezone(timedelta(hours=7))
    )
    with pytest.raises(MappingFailure, match="not a date-time in dd/MM/yyyy: '1990-01-15'"):
        fn("parse_date", "dd/MM/yyyy")("1990-01-15")


@pytest.mark.parametrize(
    ("part", "name", "expected"),
    [
        (None, "Nguyễn Thị Thu Hà", {"Ho": "Nguyễn", "ChuDem": "Thị Thu", "Ten": "Hà"}),
        (None, "  Lê   Tâm ", {"Ho": "Lê", "ChuDem": "", "Ten": "Tâm"}),
        (None, "Hà", {"Ho": "", "ChuDem": "", "Ten": "Hà"}),
        ("family", "Trần Văn Nam", "Trần"),
        ("middle", "Trần Văn Nam", "Văn"),
        ("given", "Trần Văn Nam", "Nam"),
    ],
)
def test_split_name_splits_a_vietnamese_full_name(part: str | None, name: str, expected: Any) -> None:
    assert fn("split_name", {"part": part} if part else None)(name) == expected


_WORD = st.text(alphabet="aăâbcdđeêghiklmnoôơpqrstuưvxyÀẢÃẠÁĂẰẲẴẶẮÂẦẨẪẬẤÉÊỆỐỚỢỤỨỰỲ", min_size=1, max_size=8)


@given(st.lists(_WORD, min_size=2, max_size=6))
def test_splitting_a_name_then_joining_its_parts_gives_the_name_back(words: list[str]) -> None:
    name = " ".join(words)
    parts = fn("split_name")(name)
    assert fn("join")([parts["Ho"], parts["ChuDem"], parts["Ten"]]) == name


@given(st.text(max_size=20), st.integers(min_value=1, max_value=40))
def test_pad_reaches_the_width_and_keeps_the_text(text: str, width: int) -> None:
    padded = fn("pad", {"width": width, "char": "0"})(text)
    assert len(padded) == max(width, len(text))
    assert padded.endswith(text)
    assert fn("pad", [width, "*", "right"])(text).startswith(text)


def test_text_functions() -> None:
    assert fn("trim")("  a b  ") == "a b"
    assert fn("upper")("đăng ký") == "ĐĂNG KÝ"
    assert fn("lower")("ĐĂNG") == "đăng"
    assert fn("to_string")(1) == "1"
    assert fn("to_string")(True) == "true"
    assert fn("join", {"sep": ", "})(["a", None, "", "b"]) == "a, b"
    assert fn("join", {"sep": "-", "skip_empty": False})(["a", ""]) == "a-"
    assert fn("replace", ["-", "/"])("2026-11-23") == "2026/11/23"
    assert fn("truncate", 3)("abcdef") == "abc"
    assert fn("regex_extract", {"pattern": r"H(\d+)$", "group": 1})("000.00.12.H56") == "56"
    assert fn("regex_extract", {"pattern": r"(?P<unit>\d{3})\.", "group": "unit"})("000.00") == "000"
    assert fn("regex_extract", r"\d{12}")("no id here") is None
    with pytest.raises(MappingFailure, match="upper expects text, got list"):
        fn("upper")(["a"])


def test_regex_extract_checks_its_pattern_and_group_at_load_time() -> None:
    with pytest.raises(ValueError, match=r"regex_extract: bad regular expression '\(unclosed'"):
        fn("regex_extract", "(unclosed")
    with pytest.raises(ValueError, match=r"RE2 syntax: Python's, without lookaround or backreferences"):
        fn("regex_extract", r"(?<=VND)\d+")  # lookbehind: RE2 refuses what it cannot run in linear time
    with pytest.raises(ValueError, match="the pattern has no group 2"):
        fn("regex_extract", {"pattern": "(a)", "group": 2})


@pytest.mark.parametrize(
    ("amount", "words"),
    [
        (0, "Không"),
        (5, "Năm"),
        (15, "Mười lăm"),
        (21, "Hai mươi mốt"),
        (24, "Hai mươi tư"),
        (105, "Một trăm linh năm"),
        (110, "Một trăm mười"),
        (8_000, "Tám nghìn"),
        (125_000, "Một trăm hai mươi lăm nghìn"),
        (1_005_000, "Một triệu không trăm linh năm nghìn"),
        (2_001, "Hai nghìn không trăm linh một"),
        (1_000_000_000, "Một tỷ"),
        (1_500_000_000_000, "Một nghìn năm trăm tỷ"),
    ],
)
def test_amounts_in_vietnamese_words(amount: int, words: str) -> None:
    assert in_words(amount) == words
    assert fn("money_in_words")(amount) == f"{words} đồng"


@given(st.integers(min_value=0, max_value=10**15))
def test_every_amount_reads_as_capitalised_words_from_the_vocabulary(amount: int) -> None:
    words = in_words(amount)
    vocabulary = {
        "không",
        "một",
        "hai",
        "ba",
        "bốn",
        "năm",
        "sáu",
        "bảy",
        "tám",
        "chín",
        "mười",
        "mươi",
        "trăm",
        "nghìn",
        "triệu",
        "tỷ",
        "linh",
        "mốt",
        "tư",
        "lăm",
    }
    assert words[0].isupper()
    assert set(words.lower().split()) <= vocabulary
    assert "  " not in words


def test_number_functions() -> None:
    assert fn("to_int")("8000") == 8000
    assert fn("to_number")("8000.50") == 8000.5
    assert fn("round", 1)(2.25) == 2.3  # half-up, as money is rounded
    assert fn("format_number")(1234567.5) == "1.234.568"
    assert fn("format_number", {"decimals": 2, "thousands": ",", "decimal": "."})("8000.456") == "8,000.46"
    assert fn("sum")([8000, "2000", None]) == 10000
    assert fn("count")([1, 2]) == 2
    assert fn("add", 1)(1) == 2
    assert fn("multiply", 0.1)(3) == 0.3  # exact in decimal
    with pytest.raises(MappingFailure, match="to_int: '8000.5' is not a whole number"):
        fn("to_int")("8000.5")
    with pytest.raises(MappingFailure, match="expected a number, got 'tám nghìn'"):
        fn("to_number")("tám nghìn")
    with pytest.raises(MappingFailure, match="money_in_words needs a whole, non-negative amount"):
        fn("money_in_words")(-5)


def test_lookup_one_of_and_structure_functions() -> None:
    assert fn("lookup", "status")("received") == 1
    with pytest.raises(MappingFailure, match="unknown code 'new' in table status"):
        fn("lookup", "status")("new")
    with pytest.raises(ValueError, match="lookup: unknown table 'statuses'"):
        fn("lookup", "statuses")
    assert fn("one_of", {"values": [0, 1, 3, 4]})(3) == 3
    with pytest.raises(MappingFailure, match="expected one of 0, 1, 3, 4, got True"):
        fn("one_of", {"values": [0, 1, 3, 4]})(True)
    assert fn("coalesce")([None, "", "x", "y"]) == "x"
    assert fn("first")([]) is None
    assert fn("not_empty")([]) is False
    assert fn("json")({"Ten": "Hà", "n": 1}) == '{"Ten":"Hà","n":1}'
    assert fn("sha256")("abc") == hashlib.sha256(b"abc").hexdigest()


def test_arguments_may_be_positional_and_their_count_is_checked() -> None:
    with pytest.raises(ValueError, match="pad takes at most 3 arguments"):
        fn("pad", [5, "0", "left", "extra"])
    with pytest.raises(ValueError, match="trim takes no arguments"):
        fn("trim", "x")


@given(
    st.datetimes(min_value=datetime(1976, 1, 1), max_value=datetime(2100, 1, 1)),
    st.sampled_from([7, 0, -5]),
    st.sampled_from(["yyyyMMddHHmmss", "dd/MM/yyyy", "yyyy-MM-dd HH:mm", "HH'h'mm", "yy"]),
)
def test_copying_digits_of_text_already_in_the_zone_writes_what_strftime_writes(
    moment: datetime, hours: int, pattern: str
) -> None:
    text = moment.replace(microsecond=0, tzinfo=timezone(timedelta(hours=hours))).isoformat()
    expected = datetime.fromisoformat(text).astimezone(timezone(timedelta(hours=7)))
    strftime_pattern = (
        pattern.replace("yyyy", "%Y").replace("yy", "%y").replace("MM", "%m").replace("dd", "%d")
    )
    strftime_pattern = (
        strftime_pattern.replace("HH", "%H").replace("mm", "%M").replace("ss", "%S").replace("'h'", "h")
    )
    assert fn("format_date", {"format": pattern, "tz": "+07:00"})(text) == expected.strftime(strftime_pattern)


def test_regex_extract_runs_in_linear_time_on_a_hostile_value() -> None:
    extract = fn("regex_extract", "(a+)+$")  # exponential in Python's re on the value below
    started = time.perf_counter()
    assert extract("a" * 5_000 + "!") is None
    assert time.perf_counter() - started < 2.0  # backtracking would take longer than the universe
