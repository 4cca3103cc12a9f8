"""`lienthong check` lists every problem of a config in one pass, whatever phase each belongs to."""

from __future__ import annotations

from pathlib import Path

import pytest

from lienthong.app import check_everything
from lienthong.errors import ConfigError
from lienthong.mappings import SpecLoader

CONFIG = """\
auth:
  tokens: [{name: t, sha256: "${TOKEN_SHA}"}]
dispatcher:
  retyr: {}
destinations:
  portal: {kind: portal, base_url: "${PORTAL_URL}", dstcode: a, username: u, password: p, madonvi: "000"}
  emc: {kind: emc, base_url: "http://127.0.0.1:9", site_id: s, province_code: H56}
routes:
  - on: dossier.received
    deliver:
      - {to: portl, operation: DongBoHoSoMC}
      - {to: portal, operation: DongBoHoSoMC, mapping: broken.yaml}
      - {to: emc, operation: TrackingMCDT, mapping: missing.yaml}
"""


def problems(tmp_path: Path, config: str, env: dict[str, str] | None = None) -> list[str]:
    (tmp_path / "broken.yaml").write_text("fields:\n  MaHoSo: {from: dossier.code, apply: no_such}\n")
    (tmp_path / "lienthong.yaml").write_text(config)
    with pytest.raises(ConfigError) as caught:
        check_everything(tmp_path / "lienthong.yaml", env or {}, SpecLoader())
    return [str(issue) for issue in caught.value.issues]


def test_env_schema_references_and_mappings_are_all_reported_each_with_its_line(tmp_path: Path) -> None:
    found = problems(tmp_path, CONFIG)
    expected = [
        "lienthong.yaml:2 auth.tokens[0].sha256: environment variable TOKEN_SHA is not set",
        "lienthong.yaml:6 destinations.portal.base_url: environment variable PORTAL_URL is not set",
        "lienthong.yaml:4 dispatcher.retyr: unknown key",
        "lienthong.yaml:11 routes[0].deliver[0].to: unknown destination 'portl' (known: emc, portal)",
        "broken.yaml:2 fields.MaHoSo: unknown function 'no_such'",
        "lienthong.yaml:12 routes[0].deliver[1].mapping: mapping broken.yaml does not load",
        "missing.yaml: No such file or directory",
        "lienthong.yaml:13 routes[0].deliver[2].mapping: mapping missing.yaml does not load",
    ]
    for text in expected:
        assert any(text in problem for problem in found), (text, found)
    assert len(found) == len(expected), found  # an unresolved reference is not also a bad URL


def test_with_a_valid_file_the_mappings_and_the_tls_files_are_still_all_checked(tmp_path: Path) -> None:
    config = CONFIG.replace("  retyr: {}\n", "  max_in_flight: 8\n")
    config = config.replace(
        "{to: portl, operation: DongBoHoSoMC}", "{to: portal, operation: CapNhatTienDoHoSoMC}"
    )
    config = config.replace(
        '  emc: {kind: emc, base_url: "http://127.0.0.1:9",',
        '  emc: {kind: emc, tls: {ca_file: no-ca.pem}, base_url: "http://127.0.0.1:9",',
    )
    env = {"TOKEN_SHA": "0" * 64, "PORTAL_URL": "http://127.0.0.1:8"}
    found = problems(tmp_path, config, env)
    assert any("routes[0].deliver[1].mapping: mapping broken.yaml does not load" in p for p in found), found
    assert any("routes[0].deliver[2].mapping: mapping missing.yaml does not load" in p for p in found), found
    assert any("no-ca.pem" in p for p in found), found


def test_lienthong_check_prints_every_problem_and_exits_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from lienthong.cli import main  # noqa: PLC0415

    monkeypatch.delenv("TOKEN_SHA", raising=False)
    monkeypatch.delenv("PORTAL_URL", raising=False)
    problems(tmp_path, CONFIG)  # writes the files
    assert main(["check", str(tmp_path / "lienthong.yaml")]) == 1
    said = capsys.readouterr().err
    for text in (
        "TOKEN_SHA is not set",
        "dispatcher.retyr",
        "'portl'",
        "no_such",
        "missing.yaml does not load",
    ):
        assert text in said, said
