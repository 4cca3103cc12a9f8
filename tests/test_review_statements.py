"""Review probes: what a well-formed but hostile statement file makes the reader believe."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

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
