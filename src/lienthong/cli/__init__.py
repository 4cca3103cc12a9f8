"""The ``lienthong`` command. Every subcommand has ``--help``."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import re
import signal
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

# A stop signal while this package's imports run (a second or more on a loaded machine, before any handler
# of ours is in place) is noted rather than acted on: ``main`` then stops quietly before doing anything. Only
# when this process is the command (``lienthong …`` or ``python -m lienthong.cli``), never when imported.
_NOTED_STOPS: list[int] = []


def _note_stop(signum: int, _frame: object) -> None:
    _NOTED_STOPS.append(signum)


_STOPPING_SIGNALS = (signal.SIGINT, signal.SIGTERM)
if sys.argv[:1] == ["-m"] or Path(sys.argv[0]).name == "lienthong":
    for _signal in _STOPPING_SIGNALS:
        signal.signal(_signal, _note_stop)

from lienthong import __version__  # noqa: E402 (after the early handlers, on purpose)
from lienthong.cli import (  # noqa: E402
    about,
    certs,
    db,
    dlq,
    keys,
    mapping,
    msglog,
    payments,
    runs,
    statement,
    xmlsig,
)
from lienthong.cli.envfile import apply_env_file  # noqa: E402
from lienthong.cli.exits import (  # noqa: E402
    EXIT_BROKEN_PIPE,
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_STORE,
    EXIT_USAGE,
)
from lienthong.errors import ConfigError, StoreError  # noqa: E402

SANDBOX_KINDS = ("portal", "emc", "population", "paygov", "vnpt", "viettel", "province")


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; its exit code (``cli/exits.py``, the README's table)."""
    command = list(argv if argv is not None else sys.argv[1:])[:1]
    if command != ["run"] and signal.getsignal(signal.SIGTERM) is _note_stop:
        # Only ``run`` goes on with the noted stops (``_stopped_early``); others get the usual handlers.
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        if _NOTED_STOPS:
            return 128 + _NOTED_STOPS[0]
    try:
        code = _main(argv)
        # Flushed here, not by Python at exit: a reader gone (`lienthong dlq list … | head`) is noticed
        # while it can still be handled quietly.
        sys.stdout.flush()
    except BrokenPipeError:
        # Stop quietly, as Unix tools do, and keep Python from complaining once more when it flushes
        # stdout at exit.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_BROKEN_PIPE
    return code


def _main(argv: Sequence[str] | None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help and --version (0), a wrong argument (2, after argparse's message)
        return exc.code if isinstance(exc.code, int) else EXIT_OK if exc.code is None else EXIT_USAGE
    if not hasattr(args, "handler"):
        parser.print_help()
        return EXIT_USAGE
    from lienthong.observability.logs import configure  # noqa: PLC0415

    level = "DEBUG" if args.verbose else getattr(args, "log_level", None) or "INFO"
    configure(level, getattr(args, "log_format", None) or "text")
    try:
        if args.env_file is not None:
            apply_env_file(args.env_file)
        code: int = args.handler(args)
    except ConfigError as exc:
        print(f"configuration error:\n{exc}", file=sys.stderr)
        return EXIT_USAGE
    except StoreError as exc:
        print(f"store error: {exc}", file=sys.stderr)
        return EXIT_STORE
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    return code


def build_parser() -> argparse.ArgumentParser:
    """The whole command tree (tests walk it: every argument has a help text)."""
    parser = argparse.ArgumentParser(prog="lienthong", description="Provincial integration bus.")
    parser.add_argument("--version", action="version", version=f"lienthong {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug detail to stderr")
    parser.add_argument(
        "--env-file",
        type=Path,
        metavar="FILE",
        help="read NAME=value lines for the config's ${NAME} references (the environment wins over it)",
    )
    sub = parser.add_subparsers(title="commands", metavar="COMMAND")

    run = sub.add_parser("run", help="serve the API and deliver events (the production entry point)")
    run.add_argument("config", type=Path, help="the YAML config file")
    run.add_argument(
        "--log-level",
        choices=("DEBUG", "INFO", "WARNING", "ERROR"),
        type=str.upper,
        default="INFO",
        help="the least severe lines logged (INFO: start, stop, retries; WARNING: dead letters, replays,"
        " circuits, refused callbacks, the store failing)",
    )
    run.add_argument(
        "--log-format",
        choices=("json", "text", "auto"),
        default="auto",
        help="JSON lines, or readable text; auto: text on a terminal, JSON otherwise (a service manager)",
    )
    run.set_defaults(handler=_run)

    check = sub.add_parser(
        "check", help="validate a config file and the mappings it uses; lists every problem with its line"
    )
    check.add_argument("config", type=Path, help="the YAML config file to check")
    check.add_argument(
        "--connect",
        action="store_true",
        help="also try each destination without sending business data: TLS and certificate dates, the"
        " OAuth2 token endpoint, the portal's and Viettel's logins, VNPT's WSDLs and operations; exit 1"
        " if any fails",
    )
    check.set_defaults(handler=_check)

    config = sub.add_parser("config", help="config helpers")
    config_sub = config.add_subparsers(title="config commands", metavar="COMMAND")
    schema = config_sub.add_parser("schema", help="print the config's JSON Schema (for editor completion)")
    schema.set_defaults(handler=_schema)
    show = config_sub.add_parser(
        "show",
        help="print a config file; --resolved: the effective config, references filled, secrets masked",
    )
    show.add_argument("config", type=Path, help="the YAML config file")
    show.add_argument(
        "--resolved",
        action="store_true",
        help="every default filled in and every ${...} reference resolved, as a node would run it; secrets"
        " (passwords, tokens, keys, DSNs) shown as ********",
    )
    show.set_defaults(handler=_show_config)

    token = sub.add_parser("token", help="bearer tokens for the provincial system")
    token_sub = token.add_subparsers(title="token commands", metavar="COMMAND")
    token_new = token_sub.add_parser(
        "new", help="make a random token and print it with its SHA-256 for config"
    )
    token_new.set_defaults(handler=_token_new)
    token_hash = token_sub.add_parser("hash", help="print the SHA-256 of a token read from stdin")
    token_hash.set_defaults(handler=_token_hash)

    demo = sub.add_parser(
        "demo", help="run the bus against sandbox peers with a realistic stream of dossiers"
    )
    demo.add_argument("--events", type=int, default=200, metavar="N", help="how many dossiers (default 200)")
    demo.add_argument(
        "--fault-rate", type=float, default=0.1, metavar="SHARE", help="share of peer requests faulted (0.1)"
    )
    demo.add_argument(
        "--seed", type=int, default=7, help="seed of the dossiers and the faults: the same seed, the same run"
    )
    demo.add_argument("--json", action="store_true", help="print only the summary, as one JSON object")
    demo.add_argument("--keep-running", action="store_true", help="keep serving (see /metrics) until Ctrl-C")
    demo.add_argument("--port", type=int, default=0, help="the bus API's port (default: a free one)")
    demo.set_defaults(handler=_demo)

    sandbox = sub.add_parser(
        "sandbox",
        help="serve sandbox peers on loopback; print the destinations (with credentials) that reach them",
    )
    sandbox.add_argument("peer", choices=(*SANDBOX_KINDS, "all"), help="one kind of peer, or all of them")
    sandbox.add_argument("--port", type=int, default=0, help="one peer: its port (0 picks a free one)")
    sandbox.add_argument(
        "--fault-rate",
        type=float,
        default=0.0,
        metavar="SHARE",
        help="share of requests answered with a fault: latency, error, throttle, drop, malformed (0)",
    )
    sandbox.add_argument(
        "--citizens",
        type=int,
        default=1000,
        metavar="N",
        help="population: register N synthetic citizens, SoDinhDanh 046000000000 upwards (1000)",
    )
    sandbox.set_defaults(handler=_sandbox)

    for commands in (about, mapping, dlq, payments, db, runs, statement, certs, xmlsig, msglog, keys):
        commands.add_commands(sub)
    return parser


def _load(path: Path) -> Any:
    from lienthong.config import load_config  # noqa: PLC0415 (keep `lienthong --help` fast)

    return load_config(path, env=os.environ)


def _check(args: argparse.Namespace) -> int:
    """Exit 1 when the config has problems (what ``check`` is for), 2 when there is no file to check."""
    try:
        with args.config.open("rb"):
            pass
    except OSError as exc:
        print(f"cannot read {args.config}: {exc.strerror or exc}", file=sys.stderr)
        return EXIT_USAGE
    try:
        return _check_config(args)
    except ConfigError as exc:
        print(f"configuration error:\n{exc}", file=sys.stderr)
        return EXIT_FAILED


def _check_config(args: argparse.Namespace) -> int:
    from lienthong.app import check_everything  # noqa: PLC0415
    from lienthong.mappings import FunctionRegistry, SpecLoader  # noqa: PLC0415

    # Every phase (the file, the routes' mappings, e-forms, jobs, TLS files), whatever the others found; a
    # function plugin that does not load is one more problem among them, the config checked without it.
    functions, broken = FunctionRegistry.loading_plugins()
    try:
        checked = check_everything(args.config, os.environ, SpecLoader(functions))
    except ConfigError as exc:
        raise ConfigError([*broken, *exc.issues]) from exc
    if broken:
        raise ConfigError(broken)
    config, mappings, forms = checked.config, checked.mappings, checked.forms
    routes = sum(len(r.deliver) for r in config.routes)
    counts = (
        f"{len(config.destinations)} destinations, {routes} deliveries in {len(config.routes)} routes,"
        f" {len(mappings)} mappings: {', '.join(f'{m.name}@{m.short_hash}' for m in mappings)}"
        + (f"; e-forms: {', '.join(f'{n}@{m.short_hash}' for n, m in forms.items())}" if forms else "")
    )
    print(f"{args.config}: ok ({counts})")
    return _connect(config) if args.connect else EXIT_OK


def _connect(config: Any) -> int:
    import time  # noqa: PLC0415

    from lienthong.app import build_adapter, wsdl_issues  # noqa: PLC0415
    from lienthong.bus.emit import EventSink  # noqa: PLC0415
    from lienthong.config import MemoryStoreConfig, PopulationDestination  # noqa: PLC0415
    from lienthong.connect import probe_all  # noqa: PLC0415
    from lienthong.serving import run  # noqa: PLC0415
    from lienthong.store import build_store  # noqa: PLC0415

    unopened = build_store(MemoryStoreConfig(kind="memory"))  # never opened: probes store nothing
    events = EventSink(config.events.dossier_code_field)
    adapters = {
        name: build_adapter(name, dest, unopened, events, config.base_dir, clock=time.time)
        for name, dest in config.destinations.items()
        if not isinstance(dest, PopulationDestination)
    }

    def wsdl_problems(name: str) -> list[str]:
        issues = wsdl_issues(config, {name: adapters[name]}, fetch=True)
        return [issue.message for issue in issues]

    async def main() -> list[Any]:
        try:
            return await probe_all(config, adapters, wsdl_problems=wsdl_problems)
        finally:
            for adapter in adapters.values():
                await adapter.aclose()

    probes = run(main())
    for probe in probes:
        print(probe.line())
    failed = [p.destination for p in probes if not p.ok]
    if failed:
        print(f"{len(failed)} of {len(probes)} destinations failed: {', '.join(failed)}", file=sys.stderr)
        return EXIT_FAILED
    return EXIT_OK


def _schema(args: argparse.Namespace) -> int:
    from lienthong.config import config_json_schema  # noqa: PLC0415

    print(config_json_schema())
    return EXIT_OK


def _show_config(args: argparse.Namespace) -> int:
    if not args.resolved:
        try:
            print(args.config.read_text(encoding="utf-8"), end="")
        except OSError as exc:
            print(f"cannot read {args.config}: {exc.strerror or exc}", file=sys.stderr)
            return EXIT_USAGE
        return EXIT_OK
    import yaml  # noqa: PLC0415

    config = _load(args.config)
    effective = masked(config.model_dump(mode="json", by_alias=True))
    print(yaml.safe_dump(effective, sort_keys=False, allow_unicode=True), end="")
    return EXIT_OK


_SECRET_NAMES = ("password", "secret", "token", "key", "dsn", "passphrase")
MASK = "********"


def masked(value: Any, name: str = "") -> Any:
    """``value`` with every secret masked: pydantic already masks ``SecretStr`` fields; any other string
    under a name that says secret (password, token, key, DSN...) is masked too, as a second line of
    defence for a field typed as plain text."""
    if isinstance(value, dict):
        return {k: masked(v, str(k)) for k, v in value.items()}
    if isinstance(value, list):
        return [masked(v, name) for v in value]
    lowered = name.lower()
    secret = any(lowered == word or lowered.endswith(f"_{word}") for word in _SECRET_NAMES)
    if isinstance(value, str) and value and secret:  # client_secret, ac_password; not token_url, token_as
        return MASK
    if isinstance(value, str) and "://" in value and "@" in value:  # a URL's password: user:pass@host
        return _USERINFO_PASSWORD.sub(rf"\1{MASK}@", value)
    return value


_USERINFO_PASSWORD = re.compile(r"(://[^/@:\s]*:)[^/@\s]*@")


def _token_new(args: argparse.Namespace) -> int:
    from lienthong.api.auth import hash_token, new_token  # noqa: PLC0415

    token = new_token()
    print(f"token:  {token}\nsha256: {hash_token(token)}")
    print("Give the token to the provincial system; put only the sha256 in the config.", file=sys.stderr)
    return EXIT_OK


def _token_hash(args: argparse.Namespace) -> int:
    from lienthong.api.auth import hash_token  # noqa: PLC0415

    print(hash_token(sys.stdin.readline().strip()))
    return EXIT_OK


def _run(args: argparse.Namespace) -> int:
    with _stopped_early():  # from the first moment: a service manager may stop us while we start
        _stop_if_noted()
        return _serve(args)
    return EXIT_OK  # stopped while starting


def _summary(config: Any) -> str:
    """The config in a line, for the start of the log: what this node will do."""
    destinations = ", ".join(f"{n} ({d.kind})" for n, d in config.destinations.items()) or "none"
    store = config.store
    where = getattr(store, "path", None) or ("PostgreSQL" if store.kind == "postgres" else "memory")
    jobs = ", ".join(config.scheduler.jobs) if config.scheduler.enabled else "off"
    deliveries = sum(len(r.deliver) for r in config.routes)
    dispatcher = config.dispatcher
    return (
        f"store {store.kind} ({where}); destinations {destinations}; {deliveries} deliveries in"
        f" {len(config.routes)} routes; dispatcher {'on' if dispatcher.enabled else 'off'}"
        f" ({dispatcher.max_in_flight} in flight); scheduler {jobs}; {len(config.auth.tokens)} callers"
    )


def _serve(args: argparse.Namespace) -> int:
    """Serve until stopped. A node that cannot start says why in one line: the port taken (2), the store
    held by another node or unusable (3); the config's own problems are said by ``main`` (2)."""
    from lienthong.app import build, request_limits, server_tls  # noqa: PLC0415
    from lienthong.serving import (  # noqa: PLC0415
        HttpServer,
        on_reload_signal,
        on_stop_signals,
        run,
        tune_runtime,
    )

    config = _load(args.config)
    node = build(config)
    tune_runtime()
    log = logging.getLogger("lienthong")

    async def serve() -> int:
        where = f"{config.server.host}:{config.server.port}"
        try:
            server = HttpServer(
                node.api, host=config.server.host, port=config.server.port, lifespan="off",
                limits=request_limits(config), tls=server_tls(node),
            )  # fmt: skip
        except OSError as exc:
            print(f"cannot listen on {where}: {exc.strerror or exc} (server.port)", file=sys.stderr)
            return EXIT_USAGE
        try:
            await node.start()  # the store opened before a request is taken: a node that cannot, says so
        except StoreError as exc:
            server.close()
            node.store.close()
            print(f"cannot start: {exc}", file=sys.stderr)
            return EXIT_STORE
        log.info("serving on %s: %s", server.url, _summary(config))
        stop = asyncio.Event()
        try:
            with on_stop_signals(stop), on_reload_signal(node.reloader.reload):
                await server.serve_until(stop)
        finally:
            await node.stop()  # after the server: requests under way are answered first
        log.info("stopped")
        return EXIT_OK

    return run(serve())


class _StopRequested(Exception):
    """A stop signal before the server's own handlers were in place."""


def _stop_if_noted() -> None:
    """Stop now if a stop signal came while the command's modules were imported (``_note_stop``)."""
    if _NOTED_STOPS:
        raise _StopRequested(_NOTED_STOPS[0])


def _requested_stop(exc: BaseException | None) -> bool:
    """Whether ``exc`` is a stop signal's, or was caused by one (the chain walked, cycles cut)."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, _StopRequested):
            return True
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return False


@contextlib.contextmanager
def _stopped_early() -> Iterator[None]:
    """SIGINT or SIGTERM ends the block quietly wherever it is (starting up: nothing is acknowledged yet).
    Once serving, ``serving.on_stop_signals`` handles them in the event loop instead, in order."""

    def stop(signum: int, _frame: object) -> None:
        raise _StopRequested(signum)

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    except BaseException as exc:
        # The signal's exception is raised wherever the interpreter was, and some places wrap it: in a
        # class body being made (an import), it arrives as RuntimeError("Error calling __set_name__").
        if not _requested_stop(exc):
            raise
        logging.getLogger("lienthong").info("stopped while starting")
    finally:
        usual: dict[int, signal._HANDLER] = {
            signal.SIGINT: signal.default_int_handler,
            signal.SIGTERM: signal.SIG_DFL,
        }
        for sig, handler in previous.items():
            # Noting is for the imports only: from now on, the usual handlers (or the server's).
            signal.signal(sig, usual[sig] if handler is _note_stop else handler)


def _demo(args: argparse.Namespace) -> int:
    from lienthong.demo import DemoOptions, DemoSummary, run_demo  # noqa: PLC0415

    if args.json:
        logging.getLogger().setLevel(logging.ERROR)

    def say(line: str) -> None:
        if not args.json:
            print(f"demo: {line}", file=sys.stderr, flush=True)

    def show(summary: DemoSummary, url: str) -> None:
        if args.json:
            print(json.dumps(summary.as_json(), ensure_ascii=False), flush=True)
        else:
            print(summary.table(), flush=True)
        if args.keep_running:
            print(f"serving on {url} (metrics: {url}/metrics); Ctrl-C to stop", file=sys.stderr, flush=True)

    options = DemoOptions(dossiers=args.events, fault_rate=args.fault_rate, seed=args.seed)
    summary = run_demo(
        options,
        keep_running=args.keep_running,
        on_summary=show,
        port=args.port,
        say=say,
        stop_on_signals=True,
    )
    if summary is None:
        print("demo: stopped before the summary", file=sys.stderr)
        return EXIT_OK
    verified = summary.message_log.get("verified", False)
    return EXIT_OK if summary.pending == 0 and verified else EXIT_FAILED


def _sandbox(args: argparse.Namespace) -> int:
    from lienthong.demo import DemoOptions, DemoPeers, demo_config  # noqa: PLC0415
    from lienthong.sandbox.population import synthetic_citizen  # noqa: PLC0415
    from lienthong.serving import HttpServer, on_stop_signals, run  # noqa: PLC0415

    peers = DemoPeers(DemoOptions(fault_rate=args.fault_rate))
    for n in range(args.citizens):
        peers.population.add(synthetic_citizen(f"046{n:09d}", f"Công Dân Thử {n}"))
    chosen = {k: p for k, p in peers.named().items() if args.peer in ("all", k)}

    async def serve() -> None:
        port = args.port if len(chosen) == 1 else 0
        servers = {name: HttpServer(peer, port=port, lifespan="off") for name, peer in chosen.items()}
        peers.paygov.base_url = servers["paygov"].url if "paygov" in servers else ""
        for server in servers.values():
            await server.start()
        urls = {name: servers[name].url if name in servers else "" for name in peers.named()}
        destinations = demo_config(Path("."), "", urls, peers)["destinations"]
        shown = {name: destinations[name] for name in servers}
        print(json.dumps({"destinations": shown}, ensure_ascii=False, indent=2), flush=True)
        print(
            "the destinations above reach these peers (paste them into a config); Ctrl-C to stop",
            file=sys.stderr,
        )
        stop = asyncio.Event()
        with on_stop_signals(stop):
            await stop.wait()
        for server in servers.values():
            await server.stop()

    run(serve())
    return EXIT_OK
