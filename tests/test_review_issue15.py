"""A hostile review of issue 15 ("Integrators' loop"): defects found in what was built.

Every test here fails today and is marked ``xfail(strict=True)``, so the suite stays green until the defect
is fixed; then the test passes, the strict xfail turns red, and the marker must come off. Each docstring
says what is wrong.
"""

from __future__ import annotations

import asyncio
import errno
import os
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from conftest import OPERATOR, RunNode
from lienthong.adapters.provincial import verify, verify_standard
from lienthong.app import build_routes, check_everything
from lienthong.bus.conditions import RouteFacts, compile_route_condition
from lienthong.cli import main
from lienthong.config import parse_config
from lienthong.errors import ConfigError
from lienthong.mappings import SpecLoader
from lienthong.mappings.spec import Condition

TOKEN_SHA = "3690a4a2ed3b26b46a696e9ab873a300d9da3ae56bc84352e2bf724885c91dfd"

BASE = f"""\
auth:
  tokens: [{{name: t, sha256: "{TOKEN_SHA}"}}]
store: {{kind: memory}}
destinations:
  portal: {{kind: portal, base_url: "http://127.0.0.1:9", dstcode: a, username: u, password: "PASSWORD",
            madonvi: "000"}}
  emc: {{kind: emc, base_url: "http://127.0.0.1:9", site_id: s, province_code: H56}}
routes:
  - on: dossier.received
    deliver:
      - {{to: portal, operation: DongBoHoSoMC}}
      - to: emc
        operation: TrackingMCDT
        when: WHEN
"""


def config_text(password: str = "p", when: str = "{path: dossier.code, exists: true}") -> str:
    return BASE.replace('"PASSWORD"', password).replace("WHEN", when)


def problems(text: str, env: dict[str, str] | None = None) -> list[str]:
    """What loading (and building the routes of) ``text`` reports; empty when it loads."""
    try:
        build_routes(parse_config(text, file="lienthong.yaml", env=env or {}), SpecLoader())
    except ConfigError as exc:
        return [str(issue) for issue in exc.issues]
    return []


def event(dossier: dict[str, Any]) -> dict[str, Any]:
    return {
        "event_id": "e-1",
        "type": "dossier.received",
        "occurred_at": "2026-11-23T09:05:00+07:00",
        "unit_code": "000.21.32.H56",
        "dossier": dossier,
    }


# -- §2 routing on content ---------------------------------------------------------------------------------


def test_a_catastrophically_backtracking_route_regex_cannot_stall_ingest() -> None:
    """A route's ``matches`` is compiled with ``re.compile`` and no limit, and ``Ingestor.plan`` evaluates it
    synchronously inside ``accept`` on the event loop. ``(a+)+$`` loads, and one event whose dossier code is
    28 ``a`` and a ``!`` froze a running node for 12 s (``/healthz`` waited 11.5 s); each extra character
    doubles it. Either refuse such patterns at load (a linear-time engine such as ``google-re2``, or a check
    for nested quantifiers) or bound the evaluation; here: the config is refused, or the test is quick."""
    text = config_text(when="{path: dossier.code, matches: '(a+)+$'}")
    try:
        config = parse_config(text, file="lienthong.yaml", env={})
        routes = build_routes(config, SpecLoader())
    except ConfigError:
        return  # refused at load: fine
    (emc,) = [r for r in routes.for_type("dossier.received") if r.destination == "emc"]
    assert emc.when is not None
    started = time.perf_counter()
    emc.when(event({"code": "a" * 27 + "!"}))  # about 6 s with a backtracking engine
    assert time.perf_counter() - started < 1.0  # a bound a busy machine keeps (0.1 s was not always kept)


def test_a_wildcard_path_tested_like_a_single_value_is_a_load_error() -> None:
    """A ``[*]`` path reads a list (or null), so ``matches`` (text only) and ``equals`` a scalar can never hold:
    the route silently never delivers. The README's own mapping example uses ``dossier.fees[*].method``; an
    integrator who writes ``equals: online`` instead of ``contains: online`` gets no error. Issue 15 §2: "A
    condition that can never match ... is a load error"; this case is decidable from the path alone."""
    for when in (
        "{path: 'dossier.fees[*].method', matches: online}",
        "{path: 'dossier.fees[*].method', equals: online}",
    ):
        found = problems(config_text(when=when))
        assert any("can never hold" in p for p in found), (when, found)


def test_an_empty_any_is_a_load_error_like_an_empty_in() -> None:
    """``in: []`` is refused as "can never hold", but ``any: []`` (false for every event) loads, and the
    delivery silently never happens."""
    found = problems(config_text(when="{any: []}"))
    assert any("can never hold" in p for p in found), found


def test_a_route_condition_does_not_take_true_for_1() -> None:
    """``equals``/``in`` use Python's ``==``: ``{equals: 1}`` holds for ``true`` and ``{in: [0]}`` for
    ``false``. The golden assert files (``golden_checks._same``) were written to tell them apart ("true is not
    1"); the route conditions, "the same condition language", do not."""
    facts = RouteFacts("dossier.received")
    one = compile_route_condition(Condition.model_validate({"path": "dossier.priority", "equals": 1}), facts)
    zero = compile_route_condition(Condition.model_validate({"path": "dossier.urgent", "in": [0]}), facts)
    assert not one(event({"priority": True}))
    assert not zero(event({"urgent": False}))


# -- §1 config and secrets ---------------------------------------------------------------------------------


def test_a_missing_variable_does_not_hide_route_conditions_jobs_or_tls_files(tmp_path: Path) -> None:
    """``check_everything`` runs ``build_routes``, ``check_jobs`` and ``tls_context`` only when the file loads;
    an unset ``${TOKEN_SHA}`` makes it not load, so a ``when:`` naming ``dosier.code``, an unknown job and a
    missing CA file are all reported only after the variable is set: "one phase at a time", which issue 15
    §1 asked to end ("every problem in one pass")."""
    (tmp_path / "lienthong.yaml").write_text(
        'auth:\n  tokens: [{name: t, sha256: "${TOKEN_SHA}"}]\n'
        "store: {kind: memory}\n"
        'scheduler:\n  jobs:\n    no-such-job: {cron: "0 2 * * *"}\n'
        "destinations:\n"
        '  portal: {kind: portal, base_url: "http://127.0.0.1:9", dstcode: a, username: u, password: p,'
        ' madonvi: "000", tls: {ca_file: no-ca.pem}}\n'
        "routes:\n"
        "  - on: dossier.received\n"
        "    deliver:\n"
        "      - {to: portal, operation: DongBoHoSoMC, when: {path: dosier.code, exists: true}}\n"
    )
    with pytest.raises(ConfigError) as caught:
        check_everything(tmp_path / "lienthong.yaml", {}, SpecLoader())
    said = "\n".join(str(i) for i in caught.value.issues)
    assert "TOKEN_SHA is not set" in said
    for text in ("dosier.code", "no-such-job", "no-ca.pem"):
        assert text in said, said


def test_a_reference_left_unresolved_is_an_error_not_literal_text() -> None:
    """``_REFERENCE`` only matches ``${[^{}]*}``: ``http://${HOST:8080`` (a brace forgotten) and the shell's
    nested ``${HOST:-${FALLBACK}}`` (only the inner one resolved) leave ``${`` in the value, and ``check``
    says ok: the literal ``${HOST}`` of issue 15's complaint, by another road."""
    for password in ('"${PW"', '"${PW:-${FALLBACK}}"', '"${PW:-{x}}"'):
        assert problems(config_text(password=password), {"FALLBACK": "f"}), password


def test_an_empty_secret_is_an_error_whatever_its_road() -> None:
    """Issue 15 §1: "an empty required secret is an error". ``${PW}`` empty is refused, but ``${PW:-}``,
    ``password: ""`` and ``LIENTHONG_DESTINATIONS__PORTAL__PASSWORD=`` (an empty override) all load a portal
    with an empty password."""
    assert problems(config_text(password='"${PW:-}"')), "${PW:-}"
    assert problems(config_text(password='""')), 'password: ""'
    assert problems(config_text(), {"LIENTHONG_DESTINATIONS__PORTAL__PASSWORD": ""}), "empty override"


def test_an_override_wins_over_a_missing_reference_in_the_value_it_replaces() -> None:
    """``substitute_env`` records "PW is not set" before ``apply_env_overrides`` replaces that very value, so
    ``LIENTHONG_DESTINATIONS__PORTAL__PASSWORD=x`` with ``password: ${PW}`` still fails: "the environment wins
    over the file" (decision 0016) does not hold for a container that sets only the override."""
    env = {"LIENTHONG_DESTINATIONS__PORTAL__PASSWORD": "from-the-environment"}
    assert problems(config_text(password='"${PW}"'), env) == []


def test_a_problem_an_override_made_names_its_variable_not_a_line_of_the_file() -> None:
    """``LIENTHONG_FOO__BAR=1`` creates ``foo``; the schema's "unknown key" at ``foo`` is reported as
    ``lienthong.yaml:1 foo: unknown key``, a line of a file that has no ``foo``. ``_from_environment`` only
    matches issues at or under the overridden path, not at the object the override made on its way."""
    found = problems(config_text(), {"LIENTHONG_FOO__BAR": "1"})
    assert found
    assert all(p.startswith("$LIENTHONG_FOO__BAR") for p in found), found


def test_odd_override_names_and_values_are_reported_not_raised() -> None:
    """``p.isdigit()`` is true for ``²`` but ``int('²')`` raises ValueError; a JSON value nested deeper than the
    recursion limit raises RecursionError (only ValueError is caught). Both end ``lienthong check`` with a
    traceback and exit 1 ("found problems") instead of a line naming the variable."""
    for env in (
        {"LIENTHONG_ROUTES__²__ON": "x"},
        {"LIENTHONG_DISPATCHER__RETRY": "[" * 100_000 + "]" * 100_000},
    ):
        try:
            found = problems(config_text(), env)
        except (ValueError, RecursionError) as exc:
            pytest.fail(f"{next(iter(env))}: {type(exc).__name__}")
        assert found


def test_a_duplicate_key_is_a_config_error() -> None:
    """PyYAML keeps the last of two equal keys. A config with two ``dispatcher:`` sections loses the first
    (``enabled: false`` silently becomes the default ``true``), two ``portal:`` destinations keep one; a spec
    with a field written twice maps the second. ``check`` says ok. yaml-language-server, which the modelines
    point editors at, flags them; ``check`` should too, with both lines."""
    text = config_text() + "dispatcher: {enabled: false}\ndispatcher: {max_in_flight: 8}\n"
    (said,) = problems(text)
    assert said.startswith("lienthong.yaml:16 dispatcher: written twice, on line 15 and here")


def test_config_show_resolved_masks_a_password_in_a_url(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """``masked`` goes by key names only: ``base_url: http://admin:${PW}@host`` prints the resolved password in
    clear ("secrets masked", issue 15 §1)."""
    monkeypatch.setenv("REVIEW15_PW", "hunter2-secret")
    text = config_text().replace(
        '"http://127.0.0.1:9", dstcode', '"http://admin:${REVIEW15_PW}@h:9", dstcode'
    )
    (tmp_path / "lienthong.yaml").write_text(text)
    assert main(["config", "show", str(tmp_path / "lienthong.yaml"), "--resolved"]) == 0
    shown = capsys.readouterr().out
    assert "hunter2-secret" not in shown
    assert "http://admin:********@h:9" in shown


def test_an_env_file_value_with_a_nul_byte_is_a_config_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``apply_env_file`` puts the value into ``os.environ``, which refuses an embedded NUL with ValueError:
    a traceback and exit 1, where the table says a file that cannot be read is 2 with its line."""
    (tmp_path / "lienthong.yaml").write_text(config_text())
    (tmp_path / "x.env").write_bytes(b"REVIEW15_NUL=a\x00b\n")
    try:
        code = main(["--env-file", str(tmp_path / "x.env"), "check", str(tmp_path / "lienthong.yaml")])
    except ValueError as exc:
        pytest.fail(f"raised {exc!r}")
    finally:
        os.environ.pop("REVIEW15_NUL", None)
    assert code == 2


# -- §3 mapping tests --------------------------------------------------------------------------------------


def golden_dir(tmp_path: Path) -> Path:
    (tmp_path / "s.yaml").write_text("fields:\n  code: {from: dossier.code, required: true}\n")
    (tmp_path / "golden" / "s").mkdir(parents=True)
    (tmp_path / "golden" / "s" / "ok.input.json").write_text('{"dossier": {"code": "A"}}')
    return tmp_path


def test_update_on_a_read_only_folder_says_so_and_exits_without_a_traceback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """``golden._write`` and ``_remove`` call ``write_text``/``unlink`` unguarded: on a read-only checkout
    (reproduced with a read-only bind mount: ``OSError: [Errno 30] Read-only file system``) ``mapping test
    --update`` prints a traceback and exits 1, which the table reserves for a failing case; no result of the
    run is printed. (Simulated here: root ignores file modes.)"""
    folder = golden_dir(tmp_path)

    def read_only(self: Path, *args: Any, **kwargs: Any) -> int:
        raise OSError(errno.EROFS, "Read-only file system", str(self))

    monkeypatch.setattr(Path, "write_text", read_only)
    try:
        code = main(["mapping", "test", str(folder), "--update"])
    except OSError as exc:
        pytest.fail(f"raised {exc!r}")
    assert code == 2
    assert "Read-only file system" in capsys.readouterr().err


def test_a_case_file_that_cannot_be_read_fails_its_case_not_the_run(tmp_path: Path) -> None:
    """``_read_json`` catches only JSONDecodeError, and expected files are read with ``read_text`` unguarded:
    a ``NAME.input.json`` that is a folder (IsADirectoryError) or an expected file that is not UTF-8
    (UnicodeDecodeError) stops every spec's run with a traceback instead of failing that case."""
    folder = golden_dir(tmp_path)
    (folder / "golden" / "s" / "ok.expected.json").write_bytes(b"\xff\xfe")
    (folder / "golden" / "s" / "dir.input.json").mkdir()
    try:
        code = main(["mapping", "test", str(folder)])
    except (OSError, UnicodeDecodeError) as exc:
        pytest.fail(f"raised {exc!r}")
    assert code == 1


# -- plugins ------------------------------------------------------------------------------------------------


class _BrokenEntryPoint:
    name = "broken"
    value = "no_such_module_review15:FUNC"
    group = "lienthong.mappings"

    def load(self) -> Any:
        raise ModuleNotFoundError("No module named 'no_such_module_review15'")


def test_about_json_names_a_broken_plugin_instead_of_raising(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """``FunctionRegistry.with_plugins`` calls ``entry.load()`` unguarded: an installed package whose entry
    point does not import makes ``about --json``, ``check``, ``mapping run|test`` (and ``run``) end in a
    ModuleNotFoundError traceback (reproduced with a real dist-info on PYTHONPATH). ``about``, the command
    that describes the build, cannot even say which plugin is broken."""
    import lienthong.mappings.functions as functions  # noqa: PLC0415

    monkeypatch.setattr(functions, "entry_points", lambda group: [_BrokenEntryPoint()])
    try:
        code = main(["about", "--json"])
    except ImportError as exc:
        pytest.fail(f"raised {exc!r}")
    captured = capsys.readouterr()
    assert "broken" in captured.out + captured.err
    assert code in (0, 1, 2)


def test_a_plugin_cannot_silently_replace_a_builtin_function(monkeypatch: pytest.MonkeyPatch) -> None:
    """The registry is a dict by name, plugins last: a package declaring a function ``upper`` (or
    ``format_date``) replaces the built-in for every spec, and a spec's hash (which covers files, not
    functions) does not change, so rows pinned to it map differently. Refuse the clash, or namespace plugins."""
    import lienthong.mappings.functions as functions  # noqa: PLC0415
    from lienthong.mappings.functions import Function, FunctionRegistry, NoArgs  # noqa: PLC0415

    shadow = Function("upper", lambda args, ctx: lambda value: "PWNED", NoArgs, "shadows upper")

    class Entry:
        name = "upper"

        def load(self) -> Any:
            return shadow

    monkeypatch.setattr(functions, "entry_points", lambda group: [Entry()])
    try:
        registry = FunctionRegistry.with_plugins()
    except (ValueError, ConfigError):
        return
    assert registry.get("upper") is not shadow


# -- §4 the API contract -----------------------------------------------------------------------------------


async def test_every_refusal_the_node_sends_is_declared(run_node: RunNode) -> None:
    """``BodySizeLimit`` wraps every route: ``GET /v1/messages/x`` or ``GET /healthz`` with a large body gets
    413 ``body_too_large``, which their operations do not declare. The head limits answer 431
    ``headers_too_large`` and 408 ``request_timeout`` on any path, declared nowhere. Issue 15 §4: "our real
    error shape for every refusal status"; decision 0014: "including those the body-limit middleware ...
    sends"."""
    running = await run_node()
    document = (await running.client.get("/openapi.json", headers=OPERATOR)).json()
    answer = await running.client.request(
        "GET", "/v1/messages/x", content=b"x" * (4 * 1024 * 1024 + 1), headers={"authorization": "Bearer x"}
    )
    assert answer.status_code == 413
    for path, item in document["paths"].items():
        for method, operation in item.items():
            if path.startswith("/v1/") or path in ("/healthz", "/readyz"):
                declared = set(operation["responses"])
                assert {"413", "431", "408"} <= declared, (method, path, sorted(declared))


async def test_a_malformed_request_gets_the_documented_error_body(run_node: RunNode) -> None:
    """``limited_protocol.send_400_response`` falls back to uvicorn's answer for any parser error: ``POST
    /v1/events`` with ``Content-Length: abc`` (or a header name with a space) answers ``400 text/plain
    Invalid HTTP request received.``, where the document declares 400 as ``{"error": {...}}`` and the README
    says "Every refusal has the same body"."""
    running = await run_node()
    url = urlsplit(str(running.client.base_url))

    def exchange() -> bytes:
        with socket.create_connection((url.hostname or "127.0.0.1", url.port or 80), timeout=5) as sock:
            sock.sendall(b"POST /v1/events HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n")
            return sock.recv(4096)

    answer = await asyncio.to_thread(exchange)
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400")
    assert b"application/json" in head.lower(), head
    assert body.startswith(b'{"error":'), body


def test_the_reference_verifiers_refuse_hostile_headers_instead_of_raising() -> None:
    """The README names ``adapters.provincial.verify`` the reference verifier (and the sandbox province runs
    it and ``verify_standard`` on every callback). A fresh ``t=`` with a non-ASCII ``v1`` reaches
    ``hmac.compare_digest`` as text: TypeError (the very bug decision 0014 found in ``payments/schemes.py``).
    ``verify_standard`` trusts ``str.isdigit``: ``webhook-timestamp: ²`` or 5,000 digits raise ValueError. A
    verifier should answer False."""
    now = time.time()
    cases: list[Callable[[], bool]] = [
        lambda: verify(b"{}", f"t={int(now)},v1=\u00e9", b"secret", now=now),
        lambda: verify_standard(
            b"{}",
            {"webhook-id": "m-1", "webhook-timestamp": "²", "webhook-signature": "v1,x"},
            b"k" * 32,
            now=now,
        ),
        lambda: verify_standard(
            b"{}",
            {"webhook-id": "m-1", "webhook-timestamp": "9" * 5000, "webhook-signature": "v1,x"},
            b"k" * 32,
            now=now,
        ),
    ]
    for i, case in enumerate(cases):
        try:
            assert case() is False, i
        except (TypeError, ValueError) as exc:
            pytest.fail(f"case {i}: {type(exc).__name__}: {exc}")


def test_check_reports_a_broken_function_plugin_among_the_configs_other_problems(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """One pass: a plugin that does not load is said beside the config's own problems, not alone."""
    import lienthong.mappings.functions as functions  # noqa: PLC0415

    monkeypatch.setattr(functions, "entry_points", lambda group: [_BrokenEntryPoint()])
    (tmp_path / "lienthong.yaml").write_text(config_text(when="{path: dosier.code, exists: true}"))
    assert main(["check", str(tmp_path / "lienthong.yaml")]) == 1
    said = capsys.readouterr().err
    assert "broken" in said
    assert "unknown path 'dosier.code'" in said
