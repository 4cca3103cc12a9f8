"""``lienthong dlq`` beside a running node (issue 14 §4): discard with who and why, filters by destination,
error class and time, rate-limited replays, ``show`` masking personal data unless ``--reveal`` (recorded)."""

from __future__ import annotations

import asyncio
import getpass
import json
import time
from pathlib import Path

import pytest

from conftest import Peers, RunNode
from lienthong.cli import main
from lienthong.store import units
from lienthong.timefmt import moment
from test_dlq_support import (
    HOUR,
    HTTP_422,
    PERSONAL,
    REFUSED,
    T0,
    TIMEOUT,
    config_file,
    dead_letters,
    still_node,
)


async def dlq(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    # The CLI runs its own event loop; keep it off this test's loop, as an operator's shell would.
    code = await asyncio.to_thread(main, ["dlq", *args])
    out, err = capsys.readouterr()
    lines = err.strip().splitlines()
    return code, out, lines[-1] if lines and "WARNING" not in lines[-1] else err


async def test_a_discard_needs_a_reason_records_who_and_why_and_takes_the_letter_out_for_good(
    run_node: RunNode, peers: Peers, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    running = await still_node(run_node)
    kept, thrown = await dead_letters(running, REFUSED, TIMEOUT)
    config = str(config_file(tmp_path, peers))
    assert main(["dlq", "discard", config, thrown]) == 2
    assert "required: --reason" in capsys.readouterr().err
    code, _, err = await dlq(capsys, "discard", config, thrown, "--reason", "  ")
    assert (code, err.strip()) == (2, "a discard needs who (by) and why (reason)")
    code, out, err = await dlq(capsys, "discard", config, thrown, "--reason", "delivered by hand")
    assert (code, out.split(), err.strip()) == (0, [thrown], "discarded 1 dead letters")
    (action,) = await running.node.store.run(units.operator_actions, 10, thrown)
    assert (action.actor, action.action, action.reason) == (getpass.getuser(), "discard", "delivered by hand")
    code, out, _ = await dlq(capsys, "list", config, "--json")
    assert [json.loads(line)["message_id"] for line in out.splitlines()] == [kept]
    # Gone for good: neither discarded again nor replayed.
    code, _, err = await dlq(capsys, "discard", config, thrown, "--by", "minh", "--reason", "again")
    assert (code, err.strip()) == (2, f"not dead letters: {thrown}")
    code, _, err = await dlq(capsys, "replay", config, thrown, "--reason", "oops")
    assert (code, err.strip()) == (2, f"not dead letters: {thrown}")


async def test_dead_letters_are_listed_by_error_class_destination_and_time(
    run_node: RunNode, peers: Peers, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    running = await still_node(run_node)
    refused, timeout, http = await dead_letters(running, REFUSED, TIMEOUT, HTTP_422)
    config = str(config_file(tmp_path, peers))

    async def listed(*args: str) -> list[str]:
        code, out, _ = await dlq(capsys, "list", config, "--json", *args)
        assert code == 0
        return [json.loads(line)["message_id"] for line in out.splitlines()]

    assert await listed("--error-class", "refused") == [refused]
    assert await listed("--error-class", "timeout") == [timeout]
    assert await listed("--error-class", "http_4xx") == [http]
    assert await listed("--error-class", "mapping") == []
    assert await listed("--since", moment(T0 + HOUR)) == [timeout, http]
    assert await listed("--since", moment(T0 + HOUR), "--until", moment(T0 + 2 * HOUR)) == [timeout]
    assert await listed("--destination", "emc") == []
    code, out, _ = await dlq(capsys, "list", config, "--error-class", "http_4xx")
    assert http in out
    assert "http_4xx" in out
    code, _, err = await dlq(capsys, "list", config, "--since", "yesterday")
    assert code == 2
    assert "not an ISO 8601 time: 'yesterday'" in err
    code, _, err = await dlq(capsys, "list", config, "--error-class", "gremlins")
    assert code == 2
    assert "invalid choice: 'gremlins'" in err
    code, _, err = await dlq(capsys, "replay", config, "--error-class", "timeout", "--reason", "x")
    assert (code, err.strip()) == (2, "name the messages to replay, or give --all")
    code, _, err = await dlq(capsys, "replay", config, timeout, "--error-class", "timeout", "--reason", "x")
    assert (code, err.strip()) == (2, "--destination, --error-class, --since and --until go with --all")
    # --all with a filter replays only what the filter picks.
    code, _, _ = await dlq(
        capsys, "replay", config, "--all", "--error-class", "timeout", "--reason", "back up"
    )
    assert code == 0
    assert await listed() == [refused, http]


async def test_a_replay_at_a_rate_makes_dead_letters_pending_no_faster_than_asked(
    run_node: RunNode, peers: Peers, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    running = await still_node(run_node)
    ids = await dead_letters(running, REFUSED, REFUSED, REFUSED, REFUSED, REFUSED)
    config = str(config_file(tmp_path, peers))
    started = time.monotonic()
    code, _, err = await dlq(
        capsys, "replay", config, "--all", "--rate", "4/s", "--by", "minh", "--reason", "back"
    )
    elapsed = time.monotonic() - started
    assert (code, err.strip()) == (0, "replayed 5 dead letters")
    assert elapsed >= 1.0  # 4 at once, then a second's pause, then the fifth
    actions = await running.node.store.run(units.operator_actions, 10, None)
    assert sorted(a.message_id for a in actions) == sorted(ids)
    assert {(a.actor, a.action, a.reason) for a in actions} == {("minh", "replay", "back")}
    for bad in ("0/s", "fast", "-3"):
        assert main(["dlq", "replay", config, "--all", "--rate", bad, "--reason", "x"]) == 2
        assert "not a rate" in capsys.readouterr().err


async def test_show_masks_personal_data_unless_revealed_and_a_reveal_is_recorded_and_logged(
    run_node: RunNode,
    peers: Peers,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    running = await still_node(run_node)
    (letter,) = await dead_letters(running, (PERSONAL, None))
    config = str(config_file(tmp_path, peers))
    code, out, _ = await dlq(capsys, "show", config, letter)
    shown = json.loads(out)
    assert code == 0
    assert "001099012345" not in out
    assert "Nguyễn Văn An" not in json.dumps(shown, ensure_ascii=False)
    assert "***" in shown["last_error"]
    assert "***" in shown["history"][0]["error"]
    assert await running.node.store.run(units.operator_actions, 10, letter) == []
    code, _, err = await dlq(capsys, "show", config, letter, "--by", "minh")
    assert (code, err.strip()) == (2, "--by and --reason go with --reveal")
    code, out, err = await dlq(
        capsys, "show", config, letter, "--reveal", "--by", "minh", "--reason", "the citizen called"
    )
    assert code == 0
    assert f"WARNING lienthong.bus.deadletters: personal data of message {letter} revealed to minh" in err
    assert "001099012345" in json.loads(out)["last_error"]
    (action,) = await running.node.store.run(units.operator_actions, 10, letter)
    assert (action.actor, action.action, action.reason) == ("minh", "reveal", "the citizen called")
    code, _, err = await dlq(capsys, "show", config, "m-nope", "--reveal", "--reason", "x")
    assert (code, err.strip()) == (2, "no message m-nope")
    assert len(await running.node.store.run(units.operator_actions, 10, None)) == 1  # nothing to reveal
