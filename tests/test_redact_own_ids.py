"""lienthong's own identifiers are hex, and hex has runs of decimal digits: the log's mask of ID numbers
(any run of 9 or 12 digits) hid parts of message ids ("m-0661b9a3044b830000004b61af" logged as
"m-0661b9a3044b***b61af"), so an operator's search for a message found nothing, and two tests failed
whenever the clock and counter lined up (CI, session 12)."""

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
        "m-066100000000000000004b61af",
        "lk-0123456789ab0123456789ab01234567",  # a look-up's id (uuid4 hex)
        "0d4f9a3e-1c2b-4a5d-9e8f-300000000004",  # a caller's event id as a UUID
        "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"[:20] + "123456789" + "0" * 35,
    ],
)
def test_an_identifier_of_ours_is_not_taken_for_an_id_number(own: str) -> None:
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
        f"ref=cd_{ID}",
        f"m-{ID}",  # too short to be a message id of ours
        f"abcdef{ID}",
        f"deadbeef{ID}",
    ],
)
def test_an_id_number_glued_to_letters_or_hex_is_still_masked(line: str) -> None:
    masked = redact(line)
    assert MASK in masked
    assert not re.search(r"046\D?090\D?000\D?123", masked), masked
