"""Environment overrides of any config key: ``LIENTHONG_SECTION__KEY``."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import EXAMPLE_ENV
from lienthong.config import load_config, parse_config
from lienthong.errors import ConfigError

EXAMPLE = Path(__file__).parent.parent / "examples" / "lienthong.yaml"


def test_a_variable_overrides_a_key_of_the_file_and_the_schema_converts_its_text() -> None:
    env = {
        **EXAMPLE_ENV,
        "LIENTHONG_DISPATCHER__MAX_IN_FLIGHT": "32",
        "LIENTHONG_DISPATCHER__RETRY__JITTER": "0",
        "LIENTHONG_DESTINATIONS__PORTAL__TIMEOUT_S": "2.5",
        "LIENTHONG_SCHEDULER__ENABLED": "true",
        "LIENTHONG_KPIS__PROVINCIAL_CENTRES": '["000.00.12.H56"]',
        "LIENTHONG_ROUTES__0__DELIVER__0__PARAMS": '{"note": "from the environment"}',
        "LIENTHONG_TEST_PG": "postgresql://elsewhere",  # no __: not an override, left alone
    }
    config = load_config(EXAMPLE, env=env)
    assert config.dispatcher.max_in_flight == 32
    assert config.dispatcher.retry.jitter == 0
    assert config.destinations["portal"].timeout_s == 2.5
    assert config.scheduler.enabled is True
    assert config.kpis.provincial_centres == ["000.00.12.H56"]
    assert config.routes[0].deliver[0].params == {"note": "from the environment"}
    unchanged = load_config(EXAMPLE, env=EXAMPLE_ENV)
    assert unchanged.dispatcher.max_in_flight != 32


def test_a_bad_override_names_its_variable_among_the_files_other_problems() -> None:
    env = {
        **EXAMPLE_ENV,
        "LIENTHONG_DISPATCHER__MAX_IN_FLIGHT": "many",
        "LIENTHONG_DISPATCHER__MAX_IN_FLYGHT": "8",
        "LIENTHONG_ROUTES__99__DELIVER": "[]",
        "LIENTHONG_SERVER__PORT__X": "1",
        "LIENTHONG_KPIS__PROVINCIAL_CENTRES": "[not json",
    }
    with pytest.raises(ConfigError) as caught:
        load_config(EXAMPLE, env=env)
    found = [str(issue) for issue in caught.value.issues]
    expected = [
        "$LIENTHONG_DISPATCHER__MAX_IN_FLIGHT dispatcher.max_in_flight: Input should be a valid integer",
        "$LIENTHONG_DISPATCHER__MAX_IN_FLYGHT dispatcher.max_in_flyght: unknown key",
        "$LIENTHONG_ROUTES__99__DELIVER routes[99].deliver: no such place in the config",
        "$LIENTHONG_SERVER__PORT__X server.port.x: no such place in the config",
        "$LIENTHONG_KPIS__PROVINCIAL_CENTRES kpis.provincial_centres: not JSON",
    ]
    for text in expected:
        assert any(problem.startswith(text) for problem in found), (text, found)
    assert len(found) == len(expected), found


def test_a_key_the_integrator_wrote_with_capitals_can_be_overridden() -> None:
    text = EXAMPLE.read_text(encoding="utf-8").replace("\n  portal:\n", "\n  Portal_HCM:\n", 1)
    text = text.replace("to: portal,", "to: Portal_HCM,").replace("to: portal\n", "to: Portal_HCM\n")
    config = parse_config(
        text, file="lienthong.yaml", env={**EXAMPLE_ENV, "LIENTHONG_DESTINATIONS__PORTAL_HCM__TIMEOUT_S": "3"}
    )
    assert config.destinations["Portal_HCM"].timeout_s == 3
