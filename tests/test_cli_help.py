"""Every command and every argument of ``lienthong`` says what it is for in ``--help``."""

from __future__ import annotations

import argparse
import subprocess
import sys
from collections.abc import Iterator

import pytest

from lienthong.cli import build_parser, main


def commands(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    """The path of every parser in the tree, the root's () first, subcommands depth first."""
    yield path
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from commands(sub, (*path, name))


def parser_at(path: tuple[str, ...]) -> argparse.ArgumentParser:
    parser = build_parser()
    for name in path:
        (action,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        parser = action.choices[name]
    return parser


def without_help(parser: argparse.ArgumentParser) -> list[str]:
    """The arguments and subcommands of ``parser`` that ``--help`` would show without a word."""
    missing = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helped = {c.dest for c in action._choices_actions if (c.help or "").strip()}
            missing += [f"{name} (command)" for name in action.choices if name not in helped]
        elif not (action.help or "").strip() or action.help == argparse.SUPPRESS:
            missing.append("/".join(action.option_strings) or action.dest)
    return missing


ALL = list(commands(build_parser()))


def test_the_walk_reaches_every_command_and_its_subcommands() -> None:
    assert len(ALL) > 30
    for path in [
        ("dlq", "replay"),
        ("mapping", "test"),
        ("config", "show"),
        ("statement", "show"),
        ("about",),
    ]:
        assert path in ALL


@pytest.mark.parametrize("path", ALL, ids=lambda p: " ".join(p) or "lienthong")
def test_every_argument_has_a_help_text(path: tuple[str, ...]) -> None:
    assert without_help(parser_at(path)) == []


@pytest.mark.parametrize("path", [p for p in ALL if p], ids=" ".join)
def test_help_prints_and_exits_0(path: tuple[str, ...], capsys: pytest.CaptureFixture[str]) -> None:
    assert main([*path, "--help"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: lienthong {' '.join(path)}")


def test_a_wrong_argument_exits_2_with_argparse_s_message(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["dlq", "list"]) == 2
    assert "the following arguments are required: config" in capsys.readouterr().err
    assert main(["dlq", "list", "c.yaml", "--limit", "many"]) == 2
    assert "invalid int value: 'many'" in capsys.readouterr().err


def test_the_command_imports_none_of_the_heavy_modules_before_it_runs() -> None:
    """`import lienthong.cli` took 1.1 s (dlq imported the dead letters, and through them the bus, the store
    and pydantic): `lienthong --help` waited for it, and a stop signal during it found no handler yet. The
    commands import what they need when they run."""
    heavy = (
        "lienthong.bus",
        "lienthong.store",
        "lienthong.bank",
        "lienthong.config",
        "pydantic",
        "zeep",
        "lxml",
    )
    probe = f"import sys, lienthong.cli; print([m for m in sys.modules if m.startswith({heavy!r})])"
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    )
    assert done.stdout.strip() == "[]"
