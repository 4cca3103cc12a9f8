"""``lienthong reconcile`` shows how far a run got: redrawn in place on a terminal, a line now and then in
a log."""

from __future__ import annotations

import asyncio
import io
import json
from pathlib import Path

import orjson
import pytest
from prometheus_client import CollectorRegistry

from lienthong.app import build
from lienthong.bus.envelope import parse_body
from lienthong.cli import main
from lienthong.cli.runs import Progress
from lienthong.config import load_config
from lienthong.sandbox.dossiers import generate


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_on_a_terminal_the_line_is_redrawn_in_place_and_ended_once() -> None:
    out = Terminal()
    progress = Progress(out, "kpis")
    for done in (5_000, 10_000, 12_345):
        progress("dossiers read", done)
    progress.done()
    text = out.getvalue()
    assert text.count("\r") == 3
    assert text.endswith("kpis: 12,345 dossiers read\n")


def test_in_a_log_a_line_comes_at_most_every_so_often() -> None:
    out = io.StringIO()
    progress = Progress(out, "bank-reconcile", every_s=3600)
    for done in range(1_000, 10_001, 1_000):
        progress("bank transactions read", done)
    progress.done()
    assert out.getvalue() == "bank-reconcile: 1,000 bank transactions read\n"  # the first, then quiet


def test_reconcile_shows_the_dossiers_read(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "lienthong.yaml"
    config.write_text(
        json.dumps(
            {
                "store": {"path": str(tmp_path / "store.db")},
                "dispatcher": {"enabled": False},
                "scheduler": {"jobs": {"integrity-check": {"cron": "0 2 * * *"}}},
                "bank_statements": {"reports_dir": str(tmp_path / "reports")},
            }
        )
    )
    events = [stream.events[0] for stream in generate(3, seed=2)]

    async def seed() -> None:
        node = build(load_config(config, env={}), registry=CollectorRegistry())
        node.store.open()
        try:
            parsed, _ = parse_body(orjson.dumps({"events": events}), dossier_code_field="code", max_events=10)
            await node.ingestor.accept(parsed)
        finally:
            node.store.close()

    asyncio.run(seed())
    assert main(["reconcile", str(config), "integrity-check", "--window", "2026-01-01"]) == 0
    captured = capsys.readouterr()
    assert "integrity-check: 3 dossiers read" in captured.err
    assert "succeeded" in captured.out
