"""lienthong's own identifiers are hex, and hex has runs of decimal digits: the log's mask of ID numbers
(any run of 9 or 12 digits) hid parts of message ids ("m-0661b9a3044b830000004b61af" logged as
"m-0661b9a3044b***b61af"), so an operator's search for a message found nothing, and two tests failed
whenever the clock and counter lined up (CI, session 12).

Only the exact shapes lienthong makes are left whole, so a caller's text can hide a number only by copying
one of them exactly (``m-`` and 26 lower-case hex, say): a deliberate act, not a slip."""

from __future__ import annotations

import re

import pytest

from lienthong.bus.ingest import MessageIds
from lienthong.observability.logs import MASK, new_request_id, redact

ID = "046090000123"


@pytest.mark.parametrize(
    "own",
    [
        "m-0661b9a3044b830000004b61af",  # the message id the CI run masked
        "m-0661b9a3044bf123456789abcd",  # each below holds a run of exactly 9 or 12 digits, as an id number
        "lk-a123456789012" + "b" * 19,  # a look-up's id (uuid4 hex)
        "r-ab123456789" + "c" * 21,  # a request id made by the node
        "9f86d081884c7d659a2feaab" + "123456789" + "c" * 31,  # a SHA-256 digest
    ],
)
def test_an_identifier_of_ours_is_not_taken_for_an_id_number(own: str) -> None:
    assert re.search(r"(?<!\d)(?:\d{12}|\d{9})(?!\d)", own)  # what the mask alone would hide
    assert redact(f"messages {own}, {own}.") == f"messages {own}, {own}."


def test_every_message_id_and_request_id_this_node_makes_stays_whole_in_the_log() -> None:
    ids = MessageIds(clock=lambda: 1_764_216_000.0)  # a counter from 0: its six digits join the clock's
    made = [ids() for _ in range(2000)] + [new_request_id() for _ in range(2000)]
    assert [m for m in made if redact(m) != m] == []


@pytest.mark.parametrize(
    "line",
    [
        f"SoDinhDanh{ID}",
        f"cccd{ID}",  # glued to hex letters: still an id
        f"CCCD{ID}CCCD{ID}",  # 32 hex characters, in capitals
        f"ref=cd_{ID}",
        f"m-{ID}",  # too short to be a message id of ours
        f"m-{ID}abcdef012345678",  # one hex more than a message id: a caller's text, not our id
        f"abcdef{ID}",
        f"deadbeef{ID}",
        f"8f14e45f-ceea-467f-a0e6-{ID}",  # a UUID's last group is 12 characters, as a citizen number
        f"8F14E45F-CEEA-467F-A0E6-{ID}",
        f"{ID}abababababababababab",  # 32 hex
        f"{ID}{'e3b0c442' * 8}",  # beside a SHA-256 digest
        f"file.{ID}{'a' * 20}.pdf",
    ],
)
def test_an_id_number_glued_to_letters_or_hex_is_still_masked(line: str) -> None:
    masked = redact(line)
    assert MASK in masked
    assert not re.search(r"046\D?090\D?000\D?123", masked), masked
