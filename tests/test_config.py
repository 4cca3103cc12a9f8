"""Config loading: every problem is reported with its file, line and YAML path."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import EXAMPLE_ENV
from lienthong.app import build_routes
from lienthong.config import PortalDestination, config_json_schema, load_config, parse_config
from lienthong.errors import ConfigError
from lienthong.mappings import SpecLoader

EXAMPLE = Path(__file__).parent.parent / "examples" / "lienthong.yaml"


def errors_of(text: str, env: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_config(text, file="lienthong.yaml", env=env or {})
    return [str(issue) for issue in caught.value.issues]


def example_with(old: str, new: str) -> str:
    text = EXAMPLE.read_text(encoding="utf-8")
    assert old in text
    return text.replace(old, new, 1)


def line_of(text: str, needle: str) -> int:
    return next(i for i, line in enumerate(text.splitlines(), 1) if needle in line)


def test_the_example_config_is_valid() -> None:
    config = load_config(EXAMPLE, env=EXAMPLE_ENV)
    assert set(config.destinations) == {
        "emc",
        "population",
        "portal",
        "paygov",
        "vnpt",
        "viettel",
        "province",
    }
    routes = build_routes(config, SpecLoader()).for_type("dossier.received")
    assert [(r.destination, r.operation, r.mapping.name) for r in routes] == [
        ("portal", "DongBoHoSoMC", "portal_dossier"),
        ("emc", "TrackingMCDT", "emc_tracking"),
    ]
    assert routes[1].params == {"site_id": "S1", "province_code": "H56"}
    assert config.destinations["portal"].password.get_secret_value() == "p"  # type: ignore[union-attr]


def test_an_unknown_destination_names_its_path_line_and_the_known_ones() -> None:
    text = example_with(
        "- {to: emc, operation: TrackingMCDT}\n  - on: dossier.result_issued",
        "- {to: portl, operation: TrackingMCDT}\n  - on: dossier.result_issued",
    )
    line = line_of(text, "to: portl")
    assert errors_of(text, EXAMPLE_ENV) == [
        f"lienthong.yaml:{line} routes[1].deliver[1].to: unknown destination 'portl' (known: emc, paygov, population, portal, province, viettel, vnpt)"
    ]


def test_an_operation_the_destination_lacks_is_named_with_the_known_ones() -> None:
    text = example_with(
        "{to: portal, operation: CapNhatTienDoHoSoMC}", "{to: portal, operation: TrackingMCDT}"
    )
    (error,) = errors_of(text, EXAMPLE_ENV)
    assert error.endswith(
        "routes[1].deliver[0].operation: portal has no operation 'TrackingMCDT' (known: DongBoHoSoMC, CapNhatTienDoHoSoMC)"
    )


def test_every_problem_is_listed_not_only_the_first() -> None:
    text = example_with("max_attempts: 12", "max_attempts: 0\n    retyr: 3")
    errors = errors_of(text, EXAMPLE_ENV)
    assert len(errors) == 2
    assert any(
        "dispatcher.retry.max_attempts: Input should be greater than or equal to 1" in e for e in errors
    )
    assert any(f":{line_of(text, 'retyr')} dispatcher.retry.retyr: unknown key" in e for e in errors)


def test_a_wrong_destination_field_names_the_destination_not_its_kind() -> None:
    text = example_with("base_url: https://emc.example.gov.vn", "base_url: emc.example.gov.vn")
    (error,) = errors_of(text, EXAMPLE_ENV)
    assert f"lienthong.yaml:{line_of(text, 'base_url: emc')} destinations.emc.base_url:" in error


def test_an_unknown_destination_kind_lists_the_known_kinds() -> None:
    (error,) = errors_of("destinations:\n  x:\n    kind: ftp\n")
    assert (
        error
        == "lienthong.yaml:3 destinations.x.kind: unknown kind 'ftp' (known: emc, paygov, population, portal, provincial, result_check, viettel, vnpt)"
    )


def test_an_unknown_store_kind_lists_the_store_kinds() -> None:
    (error,) = errors_of("store:\n  kind: mysql\n")
    assert error == "lienthong.yaml:2 store.kind: unknown kind 'mysql' (known: sqlite, postgres, memory)"


def test_a_store_deadline_below_a_tenth_of_a_second_is_refused() -> None:
    (error,) = errors_of("store:\n  deadline_s: 0.001\n")
    assert error.startswith("lienthong.yaml:2 store.deadline_s: Input should be greater than or equal to 0.1")


def test_a_postgres_store_needs_its_dsn() -> None:
    (error,) = errors_of("store:\n  kind: postgres\n")
    assert error == "lienthong.yaml:1 store.dsn: Field required"


def test_a_lease_shorter_than_twice_a_destination_s_timeout_is_refused() -> None:
    text = (
        "dispatcher:\n  lease_s: 20\n"
        "destinations:\n  portal: {kind: portal, base_url: 'http://x', dstcode: d, username: u, password: p,"
        " timeout_s: 30}\n"
    )
    (error,) = errors_of(text)
    assert error.startswith(
        "lienthong.yaml:2 dispatcher.lease_s: must be at least twice the slowest destination's timeout (portal: 30 s)"
    )


def test_an_unknown_event_type_is_refused() -> None:
    (error,) = errors_of("routes:\n  - on: dossier.recieved\n")
    assert error.startswith("lienthong.yaml:2 routes[0].on: Input should be")
    assert "got 'dossier.recieved'" in error


def test_a_token_given_in_plain_text_is_refused() -> None:
    (error,) = errors_of("auth:\n  tokens:\n    - {name: a, sha256: my-secret-token}\n")
    assert "auth.tokens[0].sha256" in error
    assert "not the token" in error


def test_a_missing_environment_variable_is_named() -> None:
    errors = errors_of(
        EXAMPLE.read_text(encoding="utf-8"), {k: v for k, v in EXAMPLE_ENV.items() if k != "EMC_TOKEN"}
    )
    assert errors == [
        f"lienthong.yaml:{line_of(EXAMPLE.read_text(), 'bearer_token')} destinations.emc.bearer_token: environment variable EMC_TOKEN is not set"
    ]


def test_a_yaml_syntax_error_names_the_line() -> None:
    (error,) = errors_of("server:\n  port: 8080\n  host: [unclosed\n")
    assert error.startswith("lienthong.yaml:4 invalid YAML:")


def test_a_delivery_listed_twice_for_one_event_type_is_refused() -> None:
    text = example_with(
        "- {to: portal, operation: CapNhatTienDoHoSoMC}",
        "- {to: portal, operation: CapNhatTienDoHoSoMC}\n      - {to: portal, operation: CapNhatTienDoHoSoMC}",
    )
    (error,) = errors_of(text, EXAMPLE_ENV)
    assert "portal.CapNhatTienDoHoSoMC is listed twice for dossier.status_changed" in error


def test_an_unreadable_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "missing.yaml", env={})


@pytest.mark.parametrize("text", ["", "\n\n", "# only a comment\n"])
def test_an_empty_file_is_an_error_not_the_defaults(text: str) -> None:
    with pytest.raises(ConfigError, match="empty.yaml the file is empty: it configures nothing"):
        parse_config(text, file="empty.yaml", env={})


def test_references_resolve_inside_strings_with_defaults_files_and_escapes(tmp_path: Path) -> None:
    secret = tmp_path / "portal-password"
    secret.write_text("s3cret-from-a-file\n")
    text = (
        "destinations:\n"
        "  portal:\n"
        "    kind: portal\n"
        "    base_url: http://${HOST}:${PORT:-8080}/dvc\n"
        "    dstcode: $$DST-${UNIT:-H56}\n"
        "    username: ${USER_NAME}\n"
        "    password: ${file:portal-password}\n"
    )
    config = parse_config(
        text, file=str(tmp_path / "lienthong.yaml"), env={"HOST": "10.0.0.5", "USER_NAME": "lt", "UNIT": ""}
    )
    portal = config.destinations["portal"]
    assert isinstance(portal, PortalDestination)
    assert portal.base_url == "http://10.0.0.5:8080/dvc"  # inside a string; the default for an unset one
    assert portal.dstcode == "$DST-H56"  # $$ is a $; an empty variable takes the default too
    assert portal.password.get_secret_value() == "s3cret-from-a-file"


def test_every_bad_reference_is_reported_in_one_pass(tmp_path: Path) -> None:
    (tmp_path / "empty-secret").write_text("\n")
    text = (
        "server: {host: '${HOST}'}\n"
        "auth: {tokens: [{name: '${EMPTY}', sha256: '${file:empty-secret}'}]}\n"
        "events: {dossier_code_field: '${file:missing}'}\n"
        "dispatcher: {poll_interval_s: '${1BAD}'}\n"
    )
    with pytest.raises(ConfigError) as caught:
        parse_config(text, file=str(tmp_path / "lienthong.yaml"), env={"EMPTY": ""})
    messages = [issue.message for issue in caught.value.issues]
    assert "environment variable HOST is not set" in messages
    assert "environment variable EMPTY is empty" in messages  # an empty secret must not pass
    assert "the secret file empty-secret is empty" in messages
    assert any(m.startswith("cannot read the secret file missing") for m in messages)
    assert any(m.startswith("${1BAD} is no reference") for m in messages)
    assert len(messages) == 5


def test_the_top_level_must_be_a_mapping() -> None:
    assert errors_of("- a\n- b\n") == ["lienthong.yaml:1 the top level must be a mapping of sections"]


def test_the_json_schema_describes_the_sections() -> None:
    schema = json.loads(config_json_schema())
    assert schema["title"] == "lienthong configuration"
    assert {"server", "auth", "store", "dispatcher", "destinations", "routes"} <= set(schema["properties"])


def test_a_destination_without_a_kind_says_which_kinds_exist() -> None:
    (error,) = errors_of("destinations:\n  x:\n    base_url: http://a\n")
    assert (
        error
        == "lienthong.yaml:2 destinations.x.kind: missing (one of: emc, paygov, population, portal, provincial, result_check, viettel, vnpt)"
    )


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        ("vcb-hn", "use letters, digits and _ only (it keys receipts)"),
        ("vcb.hn", "use letters, digits and _ only (it keys receipts)"),
        ("paygov", "is taken by lienthong's own payment channels"),
    ],
)
def test_a_bank_name_that_could_share_a_receipt_key_is_refused(name: str, problem: str) -> None:
    """A bank's name is its payments' channel, and a receipt's key ``<channel>-<transaction id>``: banks
    "vcb" paying "hn-0001" and "vcb-hn" paying "0001" would get one receipt for two payments (review)."""
    bank = f"  banks:\n    {name}: {{secret: s, fields: [reference, amount]}}\n"
    text = example_with("payments:\n  paygov: paygov\n", f"payments:\n  paygov: paygov\n{bank}")
    (issue,) = errors_of(text, EXAMPLE_ENV)
    assert f"payments.banks: Value error, bank name {name!r}" in issue
    assert problem in issue


def test_a_bank_name_of_letters_digits_and_underscores_is_taken() -> None:
    bank = "  banks:\n    vcb_hn: {secret: s, fields: [reference, amount]}\n"
    text = example_with("payments:\n  paygov: paygov\n", f"payments:\n  paygov: paygov\n{bank}")
    assert "vcb_hn" in parse_config(text, file="lienthong.yaml", env=EXAMPLE_ENV).payments.banks


def test_an_e_receipt_bound_to_any_event_but_payment_confirmed_is_refused() -> None:
    """Only lienthong raises payment.confirmed, for money that moved. Bound to an event a caller posts,
    every post (any event id) published a receipt for a payment never made (found in review)."""
    text = example_with(
        "  - on: payment.confirmed\n    deliver:\n      - {to: vnpt, operation: issue,",
        "  - on: payment.requested\n    deliver:\n      - {to: vnpt, operation: issue,",
    )
    line = line_of(text, "{to: vnpt, operation: issue")
    issues = errors_of(text, EXAMPLE_ENV)
    assert f"lienthong.yaml:{line} routes[" in issues[0]
    assert issues[0].endswith("e-receipts are issued on payment.confirmed only, not on payment.requested")
