"""A run's HTML page: self-contained, escaped, and rendered by a real headless browser without network."""

from __future__ import annotations

from pathlib import Path

from browser import open_page
from lienthong.reports import TOP, Discrepancy, RunPage, UnitBelowTarget, render, write

PAGE = RunPage(
    title="Đối soát ngân hàng: bank-reconcile",
    run_id="bank-reconcile:2026-12-02T02:00+07:00",
    outcome="succeeded",
    summary=[("statement files", "2"), ("transactions", "1,234"), ("matched", "1,200")],
    categories={"amount_mismatch": 3, "missing_from_bank": 12, "unknown_in_bank": 0},
    advice={"amount_mismatch": "Compare the credit with the fee owed; refund or collect the difference."},
    discrepancies=[
        Discrepancy(
            "amount_mismatch", "LT-0001", "the bank credited 140,000, the payment is 150,000", "s.xml:42"
        ),
        Discrepancy("missing_from_bank", "<script>alert(1)</script>", "confirmed, not in the file"),
    ],
    units_below_target=[UnitBelowTarget("000.00.12.H12", "online reception", 0.41, 0.6)],
)


def test_the_page_has_the_summary_chart_units_and_top_discrepancies_escaped() -> None:
    text = render(PAGE)
    assert "<script>alert" not in text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text
    assert '<span id="discrepancies">15</span>' in text
    assert text.count("<rect ") == 3  # one bar per category
    assert "000.00.12.H12" in text
    assert "41.0%" in text
    assert "Compare the credit with the fee owed" in text


def test_the_page_fetches_nothing() -> None:
    text = render(PAGE)
    for outside in ("http://", "https://", "src=", "@import", "url("):
        assert outside not in text.replace('xmlns="http://www.w3.org/2000/svg"', "")


def test_only_the_top_discrepancies_are_listed() -> None:
    many = [Discrepancy("unknown_in_bank", f"R{i}", "x") for i in range(TOP + 7)]
    text = render(RunPage("t", "r", "succeeded", [], {"unknown_in_bank": TOP + 7}, {}, many))
    assert text.count("<tr><td>unknown_in_bank</td>") == TOP
    assert "7 more in the JSON and CSV files" in text


def test_a_real_browser_renders_the_page_offline_with_no_console_errors(tmp_path: Path) -> None:
    path = write(PAGE, tmp_path / "report" / "index.html")
    page = open_page(path, tmp_path)
    assert page.console == []
    assert 'id="discrepancies">15<' in page.dom
    assert "bank-reconcile:2026-12-02T02:00+07:00" in page.dom
    assert "Đối soát ngân hàng" in page.dom
    assert page.screenshot.startswith(b"\x89PNG")
    assert len(page.screenshot) > 10_000  # a blank page is a few hundred bytes


def test_the_browser_check_sees_a_page_that_throws(tmp_path: Path) -> None:
    # The control: the same check must catch a page whose script fails (here, because its CDN is out
    # of reach, as on an air-gapped network).
    bad = tmp_path / "bad.html"
    bad.write_text(
        '<!doctype html><html><head><script src="https://cdn.example.com/chart.js"></script></head>'
        "<body><script>notDefined()</script></body></html>"
    )
    assert len(open_page(bad, tmp_path).console) >= 1


def test_a_csv_cell_that_would_be_a_formula_is_quoted_but_numbers_are_left_alone(tmp_path: Path) -> None:
    from lienthong.reports import csv_cell, write_csv  # noqa: PLC0415

    assert [csv_cell(v) for v in ("=1+2", "+SUM(A1)", "-cmd", "@x", "\tx", "-150000", "+5.5", "HS-1", 7)] == [
        "'=1+2", "'+SUM(A1)", "'-cmd", "'@x", "'\tx", "-150000", "+5.5", "HS-1", 7
    ]  # fmt: skip
    path = write_csv(tmp_path / "r.csv", ["a"], [["=HYPERLINK(1)"]])
    assert path.read_text().splitlines() == ["a", "'=HYPERLINK(1)"]
