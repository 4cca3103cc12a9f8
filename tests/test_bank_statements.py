"""Bank statements as lienthong reads them: camt.053 and camt.054 in every namespace version from 001.02 to
001.08, the messy parts of real files, CSV through a layout, and hostile or broken files."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest

from lienthong.bank.csvfile import CsvColumns, CsvLayout
from lienthong.bank.records import StatementError, StatementSummary, Transaction
from lienthong.bank.statements import read_statements

VERSIONS = ("02", "03", "04", "05", "06", "07", "08")


def status(version: str, code: str = "BOOK") -> str:
    # Up to 001.07 the status is a code as text; from 001.08 it is a choice holding a code.
    return f"<Sts><Cd>{code}</Cd></Sts>" if version >= "08" else f"<Sts>{code}</Sts>"


def debtor(version: str, name: str) -> str:
    # A related party is a name up to 001.07, a choice of party or agent from 001.08.
    return f"<Dbtr><Pty><Nm>{name}</Nm></Pty></Dbtr>" if version >= "08" else f"<Dbtr><Nm>{name}</Nm></Dbtr>"


def tx_amount(version: str, amount: str, indicator: str = "CRDT") -> str:
    # 001.02 has a transaction's amount under AmtDtls only; later versions add Amt and CdtDbtInd.
    if version == "02":
        return f'<AmtDtls><TxAmt><Amt Ccy="VND">{amount}</Amt></TxAmt></AmtDtls>'
    return f'<Amt Ccy="VND">{amount}</Amt><CdtDbtInd>{indicator}</CdtDbtInd>'


def balance(code: str, amount: str, indicator: str = "CRDT") -> str:
    return (
        f"<Bal><Tp><CdOrPrtry><Cd>{code}</Cd></CdOrPrtry></Tp>"
        f'<Amt Ccy="VND">{amount}</Amt><CdtDbtInd>{indicator}</CdtDbtInd>'
        "<Dt><Dt>2026-12-01</Dt></Dt></Bal>"
    )


def entry(version: str, amount: str, indicator: str = "CRDT", *, details: str = "", sts: str = "BOOK") -> str:
    return (
        f'<Ntry><Amt Ccy="VND">{amount}</Amt><CdtDbtInd>{indicator}</CdtDbtInd>{status(version, sts)}'
        "<BookgDt><Dt>2026-12-01</Dt></BookgDt><ValDt><DtTm>2026-12-02T09:30:00+07:00</DtTm></ValDt>"
        f"<AcctSvcrRef>FT-{amount}</AcctSvcrRef>{details}</Ntry>"
    )


def statement(version: str, body: str, *, kind: str = "053", stmt_id: str = "S1") -> str:
    inner = "Stmt" if kind == "053" else "Ntfctn"
    return (
        f"<{inner}><Id>{stmt_id}</Id><CreDtTm>2026-12-01T23:00:00+07:00</CreDtTm>"
        "<Acct><Id><Othr><Id>118000123456</Id></Othr></Id><Ccy>VND</Ccy></Acct>"
        f"{body}</{inner}>"
    )


def document(version: str, *statements: str, kind: str = "053") -> str:
    root = "BkToCstmrStmt" if kind == "053" else "BkToCstmrDbtCdtNtfctn"
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f'<Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.{kind}.001.{version}">\n'
        f"<{root}><GrpHdr><MsgId>M1</MsgId><CreDtTm>2026-12-01T23:00:00+07:00</CreDtTm></GrpHdr>\n"
        + "\n".join(statements)
        + f"\n</{root}></Document>\n"
    )


def read(path: Path, text: str, **kwargs: object) -> tuple[list[Transaction], list[StatementSummary]]:
    path.write_text(text, encoding="utf-8")
    items = list(read_statements(path, **kwargs))  # type: ignore[arg-type]
    return [i for i in items if isinstance(i, Transaction)], [
        i for i in items if isinstance(i, StatementSummary)
    ]


@pytest.mark.parametrize("version", VERSIONS)
def test_every_version_reads_the_same_statement_the_same_way(tmp_path: Path, version: str) -> None:
    details = (
        "<NtryDtls><TxDtls><Refs><EndToEndId>NOTPROVIDED</EndToEndId><TxId>TX-1</TxId></Refs>"
        f"{tx_amount(version, '150000')}"
        f"<RltdPties>{debtor(version, 'NGUYEN VAN A')}<DbtrAcct><Id><Othr><Id>0011223344</Id></Othr></Id></DbtrAcct>"
        "</RltdPties><RmtInf><Ustrd>LTPAY-000123 nop le phi</Ustrd></RmtInf></TxDtls></NtryDtls>"
    )
    body = (
        balance("OPBD", "1000000")
        + entry(version, "150000", details=details)
        + entry(version, "50000", "DBIT")
        + balance("CLBD", "1100000")
    )
    transactions, (summary,) = read(tmp_path / "s.xml", document(version, statement(version, body)))
    first = transactions[0]
    assert (first.amount, first.currency, first.status, first.booked) == (
        Decimal(150000),
        "VND",
        "BOOK",
        date(2026, 12, 1),
    )
    assert first.value_date == date(2026, 12, 2)
    assert first.references == ("TX-1", "FT-150000")  # NOTPROVIDED is no reference
    assert (first.remittance, first.debtor, first.debtor_account) == (
        "LTPAY-000123 nop le phi",
        "NGUYEN VAN A",
        "0011223344",
    )
    assert transactions[1].amount == Decimal(-50000)
    assert (summary.kind, summary.version, summary.id) == ("camt.053", f"001.{version}", "S1")
    assert (summary.account, summary.currency) == ("118000123456", "VND")
    assert summary.balances == {"OPBD": Decimal(1000000), "CLBD": Decimal(1100000)}
    assert (summary.entries, summary.entries_sum, summary.rolls_forward) == (2, Decimal(100000), True)


def test_several_statements_in_one_file_each_summarised(tmp_path: Path) -> None:
    one = statement("08", balance("OPBD", "0") + entry("08", "10") + balance("CLBD", "10"), stmt_id="A")
    two = statement(
        "08", balance("OPBD", "10") + entry("08", "5", "DBIT") + balance("CLBD", "5"), stmt_id="B"
    )
    transactions, summaries = read(tmp_path / "s.xml", document("08", one, two))
    assert [(s.index, s.id, s.entries, s.entries_sum) for s in summaries] == [
        (0, "A", 1, Decimal(10)),
        (1, "B", 1, Decimal(-5)),
    ]
    assert [t.statement for t in transactions] == [0, 1]


def test_a_statement_that_does_not_roll_forward_is_read_and_said_so(tmp_path: Path) -> None:
    body = balance("OPBD", "1000") + entry("05", "100") + balance("CLBD", "1200")
    _, (summary,) = read(tmp_path / "s.xml", document("05", statement("05", body)))
    assert summary.rolls_forward is False
    assert (summary.opening, summary.closing, summary.booked_sum) == (
        Decimal(1000),
        Decimal(1200),
        Decimal(100),
    )


def test_balances_by_code_signed_by_their_indicator(tmp_path: Path) -> None:
    body = (
        balance("PRCD", "500", "DBIT")
        + balance("ITBD", "100")
        + balance("CLAV", "700")
        + entry("04", "300")
        + balance("CLBD", "200", "DBIT")
    )
    _, (summary,) = read(tmp_path / "s.xml", document("04", statement("04", body)))
    assert summary.balances == {
        "PRCD": Decimal(-500), "ITBD": Decimal(100), "CLAV": Decimal(700), "CLBD": Decimal(-200)
    }  # fmt: skip
    assert summary.rolls_forward is True  # the previous closing opens it when there is no OPBD


def test_pending_entries_count_in_the_sum_but_not_in_the_roll_forward(tmp_path: Path) -> None:
    body = balance("OPBD", "0") + entry("08", "100") + entry("08", "40", sts="PDNG") + balance("CLBD", "100")
    transactions, (summary,) = read(tmp_path / "s.xml", document("08", statement("08", body)))
    assert [t.is_booked for t in transactions] == [True, False]
    assert (summary.entries_sum, summary.booked_sum, summary.pending) == (Decimal(140), Decimal(100), 1)
    assert summary.rolls_forward is True


@pytest.mark.parametrize("version", ["02", "08"])
def test_an_entry_of_several_transactions_with_their_own_amounts_is_split(
    tmp_path: Path, version: str
) -> None:
    batch = (
        "<NtryDtls>"
        + "".join(
            f"<TxDtls><Refs><EndToEndId>E2E-{n}</EndToEndId></Refs>{tx_amount(version, str(n * 100))}"
            f"<RmtInf><Ustrd>ref {n}</Ustrd></RmtInf></TxDtls>"
            for n in (1, 2, 3)
        )
        + "</NtryDtls>"
    )
    transactions, (summary,) = read(
        tmp_path / "s.xml", document(version, statement(version, entry(version, "600", details=batch)))
    )
    assert [(t.amount, t.references[0], t.remittance) for t in transactions] == [
        (Decimal(100), "E2E-1", "ref 1"),
        (Decimal(200), "E2E-2", "ref 2"),
        (Decimal(300), "E2E-3", "ref 3"),
    ]
    assert all(t.references[-1] == "FT-600" for t in transactions)
    assert (summary.entries, summary.entries_sum) == (1, Decimal(600))


def test_a_batch_without_amounts_stays_one_transaction_with_every_reference(tmp_path: Path) -> None:
    batch = (
        "<NtryDtls><TxDtls><Refs><EndToEndId>E-1</EndToEndId></Refs></TxDtls>"
        "<TxDtls><Refs><EndToEndId>E-2</EndToEndId></Refs></TxDtls></NtryDtls>"
    )
    transactions, _ = read(
        tmp_path / "s.xml", document("06", statement("06", entry("06", "300", details=batch)))
    )
    assert [(t.amount, t.references) for t in transactions] == [(Decimal(300), ("E-1", "E-2", "FT-300"))]


def test_a_reversal_keeps_its_indicator_and_is_flagged(tmp_path: Path) -> None:
    reversed_entry = entry("08", "70").replace("</CdtDbtInd>", "</CdtDbtInd><RvslInd>true</RvslInd>", 1)
    transactions, _ = read(tmp_path / "s.xml", document("08", statement("08", reversed_entry)))
    assert (transactions[0].amount, transactions[0].reversal) == (Decimal(70), True)


@pytest.mark.parametrize("version", ["02", "08"])
def test_a_camt054_notification_has_no_balances_and_no_roll_forward(tmp_path: Path, version: str) -> None:
    text = document(version, statement(version, entry(version, "250000"), kind="054"), kind="054")
    transactions, (summary,) = read(tmp_path / "n.xml", text)
    assert (summary.kind, summary.balances, summary.rolls_forward) == ("camt.054", {}, None)
    assert transactions[0].amount == Decimal(250000)


def test_a_bom_and_comments_before_the_document_are_fine(tmp_path: Path) -> None:
    text = document("03", statement("03", entry("03", "1")))
    text = text.replace("<Document", "<!-- exported by the bank -->\n<Document", 1)
    path = tmp_path / "s.xml"
    path.write_bytes(b"\xef\xbb\xbf" + text.encode())
    assert len(list(read_statements(path))) == 2


# -- broken and hostile files --------------------------------------------------------------------------


def problem(path: Path, text: str | bytes) -> StatementError:
    if isinstance(text, str):
        text = text.encode()
    path.write_bytes(text)
    with pytest.raises(StatementError) as caught:
        list(read_statements(path))
    return caught.value


def test_a_malformed_file_names_the_file_the_element_and_the_line(tmp_path: Path) -> None:
    text = document("08", statement("08", entry("08", "1") + entry("08", "2")))
    broken = text.replace("</Ntry>", "</Ntryy>", 2).replace("</Ntryy>", "</Ntry>", 1)
    error = problem(tmp_path / "bank.xml", broken)
    assert error.file.endswith("bank.xml")
    assert error.line == 4
    assert error.element == "Ntry"
    assert "not well-formed" in str(error)
    assert str(error).startswith(f"{tmp_path / 'bank.xml'}:4:")


def test_a_bad_amount_names_its_element_and_line(tmp_path: Path) -> None:
    text = document("08", statement("08", entry("08", "1") + "\n" + entry("08", "12,5")))
    error = problem(tmp_path / "s.xml", text)
    assert (error.line, error.element) == (5, "Ntry/Amt")
    assert "'12,5' is not a non-negative decimal" in error.problem


@pytest.mark.parametrize(
    "amount", ["-5", "+5", "NaN", "Infinity", "1e999999999", "1234567890123456789", "1.123456", ".5", "5."]
)
def test_amounts_that_are_not_plain_non_negative_numbers_are_refused(tmp_path: Path, amount: str) -> None:
    error = problem(tmp_path / "s.xml", document("08", statement("08", entry("08", amount))))
    assert error.element == "Ntry/Amt"


def test_a_missing_or_unknown_indicator_is_refused(tmp_path: Path) -> None:
    error = problem(tmp_path / "s.xml", document("08", statement("08", entry("08", "1", "CREDIT"))))
    assert (error.element, error.problem) == ("Ntry/CdtDbtInd", "must be CRDT or DBIT, found 'CREDIT'")
    no_indicator = entry("08", "1").replace("<CdtDbtInd>CRDT</CdtDbtInd>", "")
    error = problem(tmp_path / "t.xml", document("08", statement("08", no_indicator)))
    assert "found none" in error.problem


def test_a_balance_without_a_type_is_refused(tmp_path: Path) -> None:
    error = problem(tmp_path / "s.xml", document("08", statement("08", balance("", "1"))))
    assert error.element == "Bal"


def test_a_bad_date_is_refused(tmp_path: Path) -> None:
    text = document("08", statement("08", entry("08", "1").replace("2026-12-01", "01/12/2026")))
    error = problem(tmp_path / "s.xml", text)
    assert (error.element, error.line) == ("BookgDt", 4)


def test_a_dtd_is_refused_and_entities_are_never_expanded(tmp_path: Path) -> None:
    laughs = (
        '<?xml version="1.0"?>\n<!DOCTYPE Document [<!ENTITY a "aaaaaaaaaa">'
        '<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;"><!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;">]>\n'
    )
    text = laughs + document("08", statement("08", entry("08", "1").replace("FT-1", "&c;"))).split("\n", 1)[1]
    error = problem(tmp_path / "s.xml", text)
    assert "DTD" in error.problem


def test_an_external_entity_is_not_fetched(tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("do not read me")
    text = (
        f'<?xml version="1.0"?>\n<!DOCTYPE Document [<!ENTITY x SYSTEM "file://{secret}">]>\n'
        + document("08", statement("08", entry("08", "1").replace("FT-1", "&x;"))).split("\n", 1)[1]
    )
    error = problem(tmp_path / "s.xml", text)
    assert "do not read me" not in str(error)


@pytest.mark.parametrize(
    ("namespace", "expected"),
    [
        ("urn:iso:std:iso:20022:tech:xsd:camt.053.001.09", "lienthong reads camt.053.001.02 to .001.08"),
        ("urn:iso:std:iso:20022:tech:xsd:camt.052.001.08", "is camt.052.001.08, not camt.053 or camt.054"),
        ("urn:example:other", "no ISO 20022 camt namespace in its first 64 KiB"),
    ],
)
def test_other_documents_are_refused_by_name(tmp_path: Path, namespace: str, expected: str) -> None:
    text = document("08", statement("08", entry("08", "1"))).replace(
        "urn:iso:std:iso:20022:tech:xsd:camt.053.001.08", namespace
    )
    assert expected in problem(tmp_path / "s.xml", text).problem


def test_xml_without_a_camt_document_is_refused(tmp_path: Path) -> None:
    assert (
        "no ISO 20022 camt namespace"
        in problem(tmp_path / "s.xml", "<html><body>login</body></html>").problem
    )


def test_deep_nesting_is_refused_not_recursed(tmp_path: Path) -> None:
    deep = "<a>" * 300_000 + "</a>" * 300_000
    text = document("08", statement("08", entry("08", "1", details=f"<NtryDtls>{deep}</NtryDtls>")))
    assert "not well-formed" in problem(tmp_path / "s.xml", text).problem


def test_a_file_over_the_size_limit_is_refused_unread(tmp_path: Path) -> None:
    path = tmp_path / "s.xml"
    path.write_text(document("08", statement("08", entry("08", "1"))))
    with pytest.raises(StatementError, match="more than the limit of 100"):
        list(read_statements(path, max_bytes=100))


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(StatementError, match="nope.xml: cannot be read"):
        list(read_statements(tmp_path / "nope.xml"))


def test_a_file_that_is_not_xml_needs_a_csv_layout(tmp_path: Path) -> None:
    assert "no CSV layout" in problem(tmp_path / "s.csv", "a,b\n1,2\n").problem


# -- CSV -----------------------------------------------------------------------------------------------

VIETINBANK = CsvLayout(
    columns=CsvColumns(
        booked="Ngày giao dịch", credit="Ghi có", debit="Ghi nợ", reference="Số tham chiếu",
        remittance="Nội dung", debtor="Người chuyển",
    ),
    thousands=".",
    decimal=",",
    skip_rows=2,
    account="118000123456",
)  # fmt: skip


def test_a_csv_export_reads_through_its_layout(tmp_path: Path) -> None:
    text = (
        "SAO KÊ TÀI KHOẢN\nTài khoản: 118000123456\n"
        "Ngày giao dịch,Số tham chiếu,Nội dung,Người chuyển,Ghi nợ,Ghi có\n"
        '01/12/2026,FT001,"LTPAY-000123, nop phi",NGUYEN VAN A,,"150.000"\n'
        "\n"
        '02/12/2026,FT002,phi ngan hang,,"11.000,50",\n'
    )
    path = tmp_path / "s.csv"
    path.write_text(text, encoding="utf-8-sig")
    items = list(read_statements(path, csv_layout=VIETINBANK))
    first, second, summary = items
    assert isinstance(first, Transaction)
    assert isinstance(second, Transaction)
    assert isinstance(summary, StatementSummary)
    assert (first.amount, first.booked, first.references, first.remittance, first.debtor, first.line) == (
        Decimal(150000),
        date(2026, 12, 1),
        ("FT001",),
        "LTPAY-000123, nop phi",
        "NGUYEN VAN A",
        4,
    )
    assert (second.amount, second.line) == (Decimal("-11000.50"), 6)
    assert (summary.kind, summary.account, summary.entries, summary.entries_sum) == (
        "csv",
        "118000123456",
        2,
        Decimal("138999.50"),
    )
    assert summary.rolls_forward is None


def test_a_signed_amount_column_with_a_direction_column(tmp_path: Path) -> None:
    layout = CsvLayout(
        columns=CsvColumns(booked="date", amount="amount", direction="dc"), date_format="%Y-%m-%d"
    )
    path = tmp_path / "s.csv"
    path.write_text('date,amount,dc\n2026-12-01,"1,000",C\n2026-12-01,-250,nợ\n')
    amounts = [i.amount for i in read_statements(path, csv_layout=layout) if isinstance(i, Transaction)]
    assert amounts == [Decimal(1000), Decimal(-250)]


@pytest.mark.parametrize(
    ("row", "expected"),
    [
        ("31/02/2026,FT1,x,,,100", "date '31/02/2026' does not match '%d/%m/%Y'"),
        ("01/12/2026,FT1,x,,,1O0", "amount '1O0' is not a number"),
        ("01/12/2026,FT1", "has no credit cell"),
    ],
)
def test_a_bad_csv_row_names_its_line_and_column(tmp_path: Path, row: str, expected: str) -> None:
    path = tmp_path / "s.csv"
    path.write_text("x\ny\nNgày giao dịch,Số tham chiếu,Nội dung,Người chuyển,Ghi nợ,Ghi có\n" + row + "\n")
    with pytest.raises(StatementError) as caught:
        list(read_statements(path, csv_layout=VIETINBANK))
    assert caught.value.line == 4
    assert expected in str(caught.value)


def test_a_csv_without_the_layouts_columns_lists_what_it_has(tmp_path: Path) -> None:
    path = tmp_path / "s.csv"
    path.write_text("x\ny\nDate,Amount\n")
    with pytest.raises(
        StatementError, match=r"no column 'Ngày giao dịch' \(columns.booked\) in its header row of 2"
    ):
        list(read_statements(path, csv_layout=VIETINBANK))


def test_a_csv_in_another_encoding_is_named(tmp_path: Path) -> None:
    path = tmp_path / "s.csv"
    path.write_bytes("x\ny\nNgày giao dịch,Ghi có,Ghi nợ\n".encode("utf-16"))
    with pytest.raises(StatementError, match="is not utf-8-sig text"):
        list(read_statements(path, csv_layout=VIETINBANK))


def test_a_csv_field_past_the_csv_modules_limit_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "s.csv"
    header = "Ngày giao dịch,Số tham chiếu,Nội dung,Người chuyển,Ghi nợ,Ghi có"
    path.write_text(f'x\ny\n{header}\n01/12/2026,FT1,"' + "9" * 200_000 + '",,,1\n')
    with pytest.raises(StatementError, match="is not readable CSV"):
        list(read_statements(path, csv_layout=VIETINBANK))


def test_a_layout_must_say_how_amounts_come() -> None:
    with pytest.raises(ValueError, match="either `amount`"):
        CsvColumns(booked="d")
    with pytest.raises(ValueError, match="go together"):
        CsvColumns(booked="d", credit="c")
    with pytest.raises(ValueError, match="must differ"):
        CsvLayout(columns=CsvColumns(booked="d", amount="a"), decimal=",", thousands=",")


def test_a_dtd_past_the_head_is_refused_too(tmp_path: Path) -> None:
    body = document("08", statement("08", entry("08", "1"))).split("\n", 1)[1]
    head = '<?xml version="1.0"?>\n<!-- urn:iso:std:iso:20022:tech:xsd:camt.053.001.08 -->\n'
    text = head + "<!--" + "x" * 70_000 + '-->\n<!DOCTYPE Document [<!ENTITY a "a">]>\n' + body
    assert "DTD" in problem(tmp_path / "s.xml", text).problem


def test_a_head_that_names_camt_but_a_document_that_is_not_is_refused(tmp_path: Path) -> None:
    text = '<?xml version="1.0"?>\n<!-- urn:iso:std:iso:20022:tech:xsd:camt.053.001.08 -->\n<Document/>\n'
    assert "<Document> is in namespace '(none)', not the file's" in str(problem(tmp_path / "s.xml", text))


def test_a_statement_with_endless_balance_codes_is_refused(tmp_path: Path) -> None:
    # Proprietary codes (Tp/CdOrPrtry/Prtry) are read as codes too, but not without end.
    codes = "".join(
        balance(f"X{n:03d}", "1")
        .replace("Cd>X", "Prtry>X")
        .replace("</Cd></CdOrPrtry>", "</Prtry></CdOrPrtry>")
        for n in range(65)
    )
    error = problem(tmp_path / "s.xml", document("08", statement("08", codes)))
    assert (error.element, error.problem) == ("Bal", "is one of more than 64 balance codes in one statement")
