"""``lienthong --env-file FILE``: the config's references filled from a file of NAME=value lines."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from conftest import EXAMPLE_ENV
from lienthong.cli import main
from lienthong.cli.envfile import apply_env_file, read_env_file
from lienthong.errors import ConfigError

EXAMPLES = Path(__file__).parent.parent / "examples"


def test_the_example_checks_with_an_env_file_and_nothing_exported(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in EXAMPLE_ENV:
        monkeypatch.setenv(name, "set")  # recorded, so that what --env-file puts here is taken back
        monkeypatch.delenv(name)
    env = tmp_path / "lienthong.env"
    lines = [f"{name}={value}" for name, value in EXAMPLE_ENV.items()]
    env.write_text("# filled in\n\nexport " + "\n".join(lines) + "\n")
    assert main(["--env-file", str(env), "check", str(EXAMPLES / "lienthong.yaml")]) == 0
    assert ": ok (" in capsys.readouterr().out


def test_the_environment_wins_over_the_file(tmp_path: Path) -> None:
    env = tmp_path / "lienthong.env"
    env.write_text("A=from-file\nB='quoted value'\nC=\"double\"\n")
    environ = {"A": "from-environment"}
    assert apply_env_file(env, environ) == 2
    assert environ == {"A": "from-environment", "B": "quoted value", "C": "double"}


def test_every_line_that_is_not_name_equals_value_is_named(tmp_path: Path) -> None:
    env = tmp_path / "lienthong.env"
    env.write_text("GOOD=1\nnot a line\n1BAD=2\n")
    with pytest.raises(ConfigError) as caught:
        read_env_file(env)
    assert [str(issue) for issue in caught.value.issues] == [
        f"{env}:2 is not NAME=value",
        f"{env}:3 is not NAME=value",
    ]


def test_a_missing_env_file_is_a_config_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--env-file", str(tmp_path / "nope.env"), "config", "schema"]) == 2  # bad input
    assert "cannot read the env file" in capsys.readouterr().err


def test_the_example_env_file_names_every_variable_the_example_config_uses() -> None:
    used = set(
        re.findall(r"^[^#]*?\$\{([A-Z_][A-Z0-9_]*)\}", (EXAMPLES / "lienthong.yaml").read_text(), re.M)
    )
    listed = set(read_env_file(EXAMPLES / "lienthong.env.example"))
    assert used
    assert used == listed


def test_inline_comments_quotes_and_a_byte_order_mark_read_as_docker_compose_reads_them(
    tmp_path: Path,
) -> None:
    path = tmp_path / "lienthong.env"
    path.write_bytes(
        "\ufeffFIRST=one\n"  # a byte-order mark an editor put there
        "PW=abc # the portal's\n"
        'QUOTED="a b" # with a comment\n'
        "HASH=a#b\n"
        "SINGLE='x # not a comment'\n".encode()
    )
    assert read_env_file(path) == {
        "FIRST": "one",
        "PW": "abc",
        "QUOTED": "a b",
        "HASH": "a#b",
        "SINGLE": "x # not a comment",
    }
    path.write_text('PW="abc"def\n')
    with pytest.raises(ConfigError, match="PW: has text after its closing quote"):
        read_env_file(path)
