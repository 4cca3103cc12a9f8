"""``lienthong statement show``: a bank file as lienthong reads it, through the real command."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lienthong.cli import main
from test_bank_statements import balance, document, entry, statement

CSV = 'Ngày,Số tiền,Nội dung\n01/12/2026,"150.000",LTPAY-1\n02/12/2026,-20.000,phi\n'
CONFIG = """\
bank_statements:
  layouts:
    vietinbank:
      columns: {booked: "Ngày", amount: "Số tiền", remittance: "Nội dung"}
      thousands: "."
      decimal: ","
      account: "118000123456"
"""


def two_statements(tmp_path: Path) -> Path:
    good = statement(
        "08", balance("OPBD", "1000") + entry("08", "500") + balance("CLBD", "1500"), stmt_id="A"
    )
    bad = statement(
        "08", balance("OPBD", "1500") + entry("08", "200", "DBIT") + balance("CLBD", "1400"), stmt_id="B"
    )
    path = tmp_path / "camt053.xml"
    path.write_text(document("08", good, bad))
    return path


def test_show_prints_each_statement_and_says_which_does_not_roll_forward(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = two_statements(tmp_path)
    assert main(["statement", "show", str(path)]) == 0
    out = capsys.readouterr().out
    assert f"{path}: camt.053.001.08, 2 statement(s)" in out
    assert "statement 0 (A), line 4: account 118000123456 VND" in out
    assert "balances: OPBD 1,000, CLBD 1,500" in out
    assert "entries: 1, sum +500 (booked +500, 0 not booked)" in out
    assert "rolls forward: yes" in out
    assert (
        "rolls forward: NO: opening 1,500 + booked entries -200 = 1,300, but the closing balance is 1,400"
        in out
    )


def test_show_json_is_one_object_per_statement(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["statement", "show", str(two_statements(tmp_path)), "--json"]) == 0
    first, second = json.loads(capsys.readouterr().out)
    assert {
        k: first[k] for k in ("account", "currency", "balances", "entries", "entries_sum", "rolls_forward")
    } == {
        "account": "118000123456",
        "currency": "VND",
        "balances": {"OPBD": "1000", "CLBD": "1500"},
        "entries": 1,
        "entries_sum": "500",
        "rolls_forward": True,
    }
    assert (second["entries_sum"], second["rolls_forward"]) == ("-200", False)


def test_show_reads_a_csv_export_through_the_configs_layout(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "lienthong.yaml").write_text(CONFIG)
    path = tmp_path / "sao-ke.csv"
    path.write_text(CSV)
    assert main(["statement", "show", str(path), "--json", "--config", str(tmp_path / "lienthong.yaml")]) == 0
    (only,) = json.loads(capsys.readouterr().out)
    assert (only["kind"], only["account"], only["entries"], only["entries_sum"], only["rolls_forward"]) == (
        "csv",
        "118000123456",
        2,
        "130000",
        None,
    )


def test_a_broken_file_fails_naming_the_file_the_line_and_the_element(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "bank.xml"
    path.write_text(document("08", statement("08", "\n" + entry("08", "1.5.0"))))
    assert main(["statement", "show", str(path)]) == 1
    err = capsys.readouterr().err
    assert f"{path}:5: <Ntry/Amt> amount '1.5.0' is not a non-negative decimal number" in err


def test_a_csv_without_a_layout_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "sao-ke.csv"
    path.write_text(CSV)
    assert main(["statement", "show", str(path)]) == 1
    assert "no CSV layout was given" in capsys.readouterr().err


def test_an_unknown_layout_is_a_config_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "lienthong.yaml").write_text(CONFIG)
    path = tmp_path / "sao-ke.csv"
    path.write_text(CSV)
    config = str(tmp_path / "lienthong.yaml")
    assert main(["statement", "show", str(path), "--config", config, "--layout", "bidv"]) == 2  # bad input
    assert "no CSV layout named 'bidv' (vietinbank)" in capsys.readouterr().err
