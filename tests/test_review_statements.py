"""Review probes: what a well-formed but hostile statement file makes the reader believe."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

from lienthong.bank.csvfile import CsvColumns, CsvLayout
from lienthong.bank.records import StatementError, StatementSummary, Transaction
from lienthong.bank.statements import read_statements
from test_bank_statements import balance, document, entry, statement, tx_amount


def read(path: Path, text: str) -> tuple[list[Transaction], list[StatementSummary]]:
    path.write_text(text, encoding="utf-8")
    items = list(read_statements(path))
    return [i for i in items if isinstance(i, Transaction)], [
        i for i in items if isinstance(i, StatementSummary)
    ]


def test_a_balance_hidden_inside_an_entry_cannot_make_a_statement_roll_forward(tmp_path: Path) -> None:
    # Given a statement whose balances do not roll forward (0 + 100 != 999): balances come before the
    # entries in camt, and one entry carries a <Bal> of its own, deep in its details, saying CLBD 100
    hidden = "<NtryDtls><TxDtls><AddtlTxInf>x</AddtlTxInf>" + balance("CLBD", "100") + "</TxDtls></NtryDtls>"
    body = balance("OPBD", "0") + balance("CLBD", "999") + entry("08", "100", details=hidden)
    try:
        _, (summary,) = read(tmp_path / "s.xml", document("08", statement("08", body)))
    except StatementError:
        return  # refusing the file is a fine answer
    # Then the statement's own closing balance is the one checked: it does not roll forward
    assert summary.closing == Decimal(999), f"the entry's hidden balance replaced CLBD: {summary.balances}"
    assert summary.rolls_forward is False


def test_split_entry_credits_cannot_exceed_the_credit_the_bank_booked(tmp_path: Path) -> None:
    # Given a credit entry of 100 VND (the statement rolls forward on it) split into a detail crediting
    # 600,000 and a detail debiting 599,900: they add up to the entry, so the reader splits it
    details = (
        "<NtryDtls>"
        f"<TxDtls><Refs><EndToEndId>LT-1</EndToEndId></Refs>{tx_amount('08', '600000')}</TxDtls>"
        f"<TxDtls><Refs><EndToEndId>X-2</EndToEndId></Refs>{tx_amount('08', '599900', 'DBIT')}</TxDtls>"
        "</NtryDtls>"
    )
    body = balance("OPBD", "0") + entry("08", "100", details=details) + balance("CLBD", "100")
    try:
        transactions, (summary,) = read(tmp_path / "s.xml", document("08", statement("08", body)))
    except StatementError:
        return
    assert summary.rolls_forward is True
    # Then no credit reaches the matching larger than what the account received: a 600,000 fee is not paid
    # by a 100 VND credit
    credited = sum(t.amount for t in transactions if t.amount > 0)
    assert credited <= summary.booked_sum, [t.amount for t in transactions]


LAYOUT = CsvLayout(columns=CsvColumns(booked="Ngay", amount="SoTien", reference="Ref", remittance="NoiDung"))


def read_csv(path: Path, text: str, layout: CsvLayout = LAYOUT) -> list[Transaction]:
    path.write_text(text, encoding="utf-8")
    return [i for i in read_statements(path, csv_layout=layout) if isinstance(i, Transaction)]


def test_a_payers_text_opening_a_quote_does_not_swallow_the_credits_after_it(tmp_path: Path) -> None:
    # Given a bank export that writes the payer's text as it came: one payer's text starts with a quote
    # it never closes
    text = (
        "Ngay,SoTien,Ref,NoiDung\n"
        '01/12/2026,150000,FT1,"LT-1 nop phi\n'
        "01/12/2026,200000,FT2,LT-2 nop phi\n"
        "01/12/2026,300000,FT3,LT-3 nop phi\n"
    )
    try:
        transactions = read_csv(tmp_path / "s.csv", text)
    except StatementError:
        return  # refusing the file is a fine answer
    # Then the two credits after it are read, not hidden in the first one's text
    assert [t.amount for t in transactions] == [150000, 200000, 300000], [
        (t.amount, t.remittance) for t in transactions
    ]


def test_a_header_naming_the_layouts_amount_column_twice_is_refused_not_guessed(tmp_path: Path) -> None:
    # Given an export with two columns headed "SoTien" (a bank's "Ghi nợ"/"Ghi có" under one heading)
    text = "Ngay,SoTien,Ref,NoiDung,SoTien\n01/12/2026,150000,FT1,LT-1,0\n"
    try:
        transactions = read_csv(tmp_path / "s.csv", text)
    except StatementError:
        return
    # Then the reader does not silently pick the last one
    assert transactions[0].amount == 150000, "the amount came from the second 'SoTien' column, silently"
