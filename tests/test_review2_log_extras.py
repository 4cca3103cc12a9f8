"""Review 2: personal data is masked in every line of every logger, the extra fields included."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from conftest import Running
from lienthong.observability.logs import configure
from test_payments import bank_notice, node, paygov, signed_bank

__all__ = ["node", "paygov"]

CITIZEN_ID = "046090000123"


@pytest.fixture
def json_logs() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    configure("INFO", "json")
    yield
    for handler in list(root.handlers):
        root.removeHandler(handler)
    for handler in handlers:
        root.addHandler(handler)
    root.setLevel(level)


async def test_a_citizen_id_in_a_callbacks_reference_is_masked_in_the_extra_fields_too(
    node: Running, json_logs: None, capsys: pytest.CaptureFixture[str]
) -> None:
    # A bank (or a province that used the citizen's ID as the payment reference) names a citizen ID:
    notice = bank_notice(CITIZEN_ID)
    answer = await node.client.post("/v1/payments/banks/vcb/notify", json=notice, headers=signed_bank(notice))
    assert answer.status_code == 404  # unknown reference: refused and logged
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if "callback refused" in line]
    assert lines, err
    assert '"***"' in lines[0] or "***" in lines[0]  # the message masks it...
    assert CITIZEN_ID not in err, f"...but the line's extra fields carry it: {lines[0]}"
