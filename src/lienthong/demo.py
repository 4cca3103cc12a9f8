"""``lienthong demo``: the sandbox peers and the bus on loopback, a realistic stream of dossiers, a summary.

Everything real runs: the HTTP API with a bearer token, the SQLite outbox in a temporary directory, the
dispatcher, the adapters over HTTP and SOAP, and the sandbox portal, EMC and population database injecting
faults. Before a dossier is received, the desk prefills its e-form from the population database.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import secrets
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Coroutine, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote

import httpx
import orjson

from lienthong.adapters.http import make_transport
from lienthong.api.auth import hash_token, new_token
from lienthong.app import Lienthong, build
from lienthong.config import Config
from lienthong.msglog.checkpoints import SigningKey
from lienthong.msglog.verify import verify
from lienthong.sandbox import EmcSandbox, FaultPlan, PortalSandbox
from lienthong.sandbox.base import Peer
from lienthong.sandbox.dossiers import PROCEDURE_CODES, UNITS, DossierStream, generate, interleave
from lienthong.sandbox.paygov import PayGovSandbox
from lienthong.sandbox.population import PopulationSandbox, synthetic_citizen
from lienthong.sandbox.provincial import ProvincialSandbox
from lienthong.sandbox.viettel import ViettelSandbox
from lienthong.sandbox.vnpt import VnptSandbox
from lienthong.serving import HttpServer, ThreadedServer, on_stop_signals, run
from lienthong.store import units

T = TypeVar("T")

# Communes' receipts come from Viettel, every other unit's from VNPT: a provider per unit.
VIETTEL_UNITS = [code for code, _ in UNITS if code.startswith("000.2")]
PROVINCE_SECRET = secrets.token_hex(16)
FEE_ROUTES = [
    {"on": "payment.requested", "deliver": [{"to": "paygov", "operation": "INIT"}]},
    {
        "on": "payment.confirmed",
        "deliver": [
            {"to": "vnpt", "operation": "issue", "except_units": VIETTEL_UNITS},
            {"to": "viettel", "operation": "issue", "units": VIETTEL_UNITS},
            {"to": "province", "operation": "notify", "mapping": "bundled:provincial_payment"},
        ],
    },
    {
        "on": "receipt.issued",
        "deliver": [{"to": "province", "operation": "notify", "mapping": "bundled:provincial_receipt"}],
    },
    {
        "on": "delivery.failed",
        "deliver": [{"to": "province", "operation": "notify", "mapping": "bundled:provincial_failure"}],
    },
]
DEMO_ROUTES = [
    {"on": kind, "deliver": [{"to": "portal", "operation": op}, {"to": "emc", "operation": "TrackingMCDT"}]}
    for kind, op in (
        ("dossier.received", "DongBoHoSoMC"),
        ("dossier.status_changed", "CapNhatTienDoHoSoMC"),
        ("dossier.result_issued", "DongBoHoSoMC"),
        ("dossier.returned", "DongBoHoSoMC"),
    )
]


@dataclass(frozen=True)
class DemoOptions:
    dossiers: int = 200
    fault_rate: float = 0.1
    unknown_share: float = 0.02
    seed: int = 7
    batch_size: int = 50
    timeout_s: float = 300.0


@dataclass
class DemoSummary:
    events: int
    duplicates_sent: int
    deliveries: dict[str, dict[str, int]]
    pending: int
    elapsed_s: float
    deliveries_per_s: float
    faults_injected: dict[str, int] = field(default_factory=dict)
    prefill: dict[str, int] = field(default_factory=dict)
    fees: dict[str, int] = field(default_factory=dict)
    receipts: dict[str, int] = field(default_factory=dict)
    notices: dict[str, int] = field(default_factory=dict)
    message_log: dict[str, Any] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return {
            "events": self.events,
            "duplicates_sent": self.duplicates_sent,
            "deliveries": self.deliveries,
            "pending": self.pending,
            "elapsed_s": round(self.elapsed_s, 3),
            "deliveries_per_s": round(self.deliveries_per_s, 1),
            "faults_injected": self.faults_injected,
            "prefill": self.prefill,
            "fees": self.fees,
            "receipts": self.receipts,
            "province_notified": self.notices,
            "message_log": self.message_log,
        }

    def table(self) -> str:
        rows = [f"{'destination':<12}{'delivered':>10}{'retried':>10}{'dead':>8}"]
        rows += [
            f"{d:<12}{c['delivered']:>10}{c['retried']:>10}{c['dead']:>8}" for d, c in self.deliveries.items()
        ]
        faults = ", ".join(f"{k} {v}" for k, v in self.faults_injected.items())

        def line(counts: dict[str, int]) -> str:
            return ", ".join(f"{k} {v}" for k, v in counts.items()) or "none"

        return "\n".join(
            [
                f"e-forms prefilled {line(self.prefill)}",
                f"fees online       {line(self.fees)}",
                f"e-receipts        {line(self.receipts)}",
                f"province told     {line(self.notices)}",
                f"message log       {self.message_log.get('records', 0)} records,"
                f" {'verified' if self.message_log.get('verified') else 'NOT verified'} against its signed"
                f" checkpoint",
                f"events accepted   {self.events} ({self.duplicates_sent} duplicates sent, accepted once)",
                *rows,
                f"pending           {self.pending}",
                f"faults injected   {faults}",
                f"elapsed           {self.elapsed_s:.2f} s",
                f"throughput        {self.deliveries_per_s:.0f} deliveries/s",
            ]
        )


def demo_config(
    workdir: Path,
    token: str,
    urls: dict[str, str],
    peers: DemoPeers,
    port: int = 0,
    *,
    log_key: Path | None = None,
) -> dict[str, Any]:
    """The demo's config, as the document ``lienthong run`` would read (JSON is YAML); with ``log_key``, its
    message log is signed with the key in that file. It writes nothing (``lienthong sandbox`` reads its
    destinations from it)."""
    portal, population = peers.portal, peers.population
    seller = {"seller_name": "Trung tâm Phục vụ hành chính công tỉnh (demo)", "seller_tax_code": "3300000000"}
    return {
        "server": {"host": "127.0.0.1", "port": port},
        "auth": {"tokens": [{"name": "demo-provincial-system", "sha256": hash_token(token)}]},
        "store": {"path": str(workdir / "lienthong.db")},
        "dispatcher": {
            "max_in_flight": 64,
            "poll_interval_s": 0.05,
            "retry": {"initial_delay_s": 0.05, "max_delay_s": 1.0, "max_attempts": 8},
        },
        "destinations": {
            "portal": {
                "kind": "portal",
                "base_url": urls["portal"],
                "dstcode": portal.dstcode,
                "username": portal.username,
                "password": portal.password,
            },
            "emc": {
                "kind": "emc",
                "base_url": urls["emc"],
                "site_id": "SANDBOX-SITE",
                "province_code": "H56",
            },
            "population": {
                "kind": "population",
                "base_url": urls["population"],
                "ma_tich_hop": population.ma_tich_hop,
                "ma_dvc": "DVC-DEMO",
                "timeout_s": 5,
            },
            "paygov": {
                "kind": "paygov",
                "base_url": urls["paygov"],
                "partner_code": peers.paygov.partner_code,
                "secret": peers.paygov.secret,
            },
            "vnpt": {
                "kind": "vnpt",
                "base_url": urls["vnpt"],
                "account": peers.vnpt.credentials[0],
                "ac_password": peers.vnpt.credentials[1],
                "username": peers.vnpt.credentials[2],
                "password": peers.vnpt.credentials[3],
                "pattern": peers.vnpt.pattern,
                "serial": peers.vnpt.serial,
                **seller,
            },
            "viettel": {
                "kind": "viettel",
                "base_url": urls["viettel"],
                "username": peers.viettel.username,
                "password": peers.viettel.password,
                "supplier_tax_code": peers.viettel.supplier_tax_code,
                "template_code": "2/001",
                "series": "K26TBL",
                **seller,
            },
            "province": {"kind": "provincial", "base_url": urls["province"], "secret": PROVINCE_SECRET},
        },
        "routes": [*DEMO_ROUTES, *FEE_ROUTES],
        "citizens": {"source": "population", "audit_key": secrets.token_hex(16)},
        "payments": {"paygov": "paygov"},
        **({"message_log": {"origin": "lienthong.demo", "key_file": str(log_key)}} if log_key else {}),
    }


def _log_key(workdir: Path) -> Path:
    """A throwaway checkpoint signing key for the demo's message log (made once per working directory)."""
    path = workdir / "log.key"
    if not path.exists():
        path.write_text(SigningKey.generate("lienthong.demo").text() + "\n", encoding="ascii")
        path.chmod(0o600)
    return path


class DemoPeers:
    """Every external system the demo simulates, each with its own seeded faults."""

    def __init__(self, options: DemoOptions) -> None:
        def faults(n: int, share: float = 1.0) -> FaultPlan:
            return FaultPlan(
                rate=options.fault_rate * share, latency_ms=50, retry_after_s=1, seed=options.seed + n
            )

        self.portal = PortalSandbox(procedures=PROCEDURE_CODES, faults=faults(0))
        self.emc = EmcSandbox(faults=faults(1))
        self.population = PopulationSandbox(faults=faults(2, 0.5))
        self.paygov = PayGovSandbox(faults=faults(3, 0.5))
        self.vnpt = VnptSandbox(faults=faults(4, 0.5))
        self.viettel = ViettelSandbox(faults=faults(5, 0.5))
        self.province = ProvincialSandbox(secret=PROVINCE_SECRET, faults=faults(6, 0.5))

    def named(self) -> dict[str, Peer]:
        return {name: peer for name, peer in vars(self).items() if isinstance(peer, Peer)}


Say = Callable[[str], None]


class Demo:
    """One demo run: peers, bus, traffic, summary."""

    def __init__(self, options: DemoOptions, workdir: Path, *, say: Say | None = None) -> None:
        self.options = options
        self.peers = DemoPeers(options)
        self.portal, self.emc, self.population = self.peers.portal, self.peers.emc, self.peers.population
        self.token = new_token()
        self.workdir = workdir
        self.node: Lienthong | None = None
        self.server: HttpServer | None = None
        self._say: Say = say or (lambda _: None)
        self._started = time.perf_counter()
        self.progress_every_s = 2.0  # while waiting for deliveries to settle, say how many are left

    def _phase(self, text: str) -> None:
        """Say what the demo is doing now, with the seconds since the traffic started."""
        self._say(f"{time.perf_counter() - self._started:6.1f} s  {text}")

    async def run(
        self,
        *,
        keep_running: bool = False,
        on_summary: Any = None,
        stop: asyncio.Event | None = None,
        port: int = 0,
    ) -> DemoSummary | None:
        """Run the traffic and return its summary; None when ``stop`` was set before it finished.

        With ``keep_running``, serve on after the summary until ``stop`` is set.
        """
        stop = stop or asyncio.Event()
        with contextlib.ExitStack() as stack:
            self._say("starting sandbox peers: " + ", ".join(self.peers.named()))
            urls = {
                name: stack.enter_context(ThreadedServer(lambda peer=peer: peer)).url  # type: ignore[misc]
                for name, peer in self.peers.named().items()
            }
            self.peers.paygov.base_url = urls["paygov"]
            self.server = await self._start_bus(urls, port)
            try:
                summary = await _unless(stop, self._traffic())
                if summary is not None and on_summary is not None:
                    on_summary(summary, self.server.url)
                if summary is not None and keep_running:
                    await stop.wait()
            finally:
                self._say("stopping: deliveries under way may finish, then the store closes")
                await self.server.stop()
        return summary

    async def _start_bus(self, urls: dict[str, str], port: int) -> HttpServer:
        document = demo_config(
            self.workdir, self.token, urls, self.peers, port, log_key=_log_key(self.workdir)
        )
        self.node = build(Config.model_validate(document))
        server = HttpServer(self.node.api, port=port, lifespan="on")
        document["server"]["port"] = server.port
        config_path = self.workdir / "lienthong.yaml"
        config_path.write_text(json.dumps(document, ensure_ascii=False, indent=2), encoding="utf-8")
        await server.start()
        self._say(f"bus serving on {server.url}; bearer token {self.token}")
        self._say(f"config {config_path} (try: lienthong dlq list {config_path})")
        return server

    async def _traffic(self) -> DemoSummary:
        assert self.node is not None
        assert self.server is not None
        streams = generate(
            self.options.dossiers, seed=self.options.seed, unknown_share=self.options.unknown_share
        )
        events = list(interleave(streams))
        duplicates = events[:: max(1, len(events) // 20)]  # about 5% sent twice, as a flaky sender would
        started = self._started = time.perf_counter()
        client = httpx.AsyncClient(
            base_url=self.server.url, transport=make_transport(max_connections=8), timeout=30
        )
        async with client:
            self._phase(f"prefilling {len(streams)} e-forms from the population database")
            prefill = await self._prefill(client, streams)
            self._phase(f"sending {len(events)} events of {len(streams)} dossiers ({len(duplicates)} twice)")
            await self._send_all(client, events, duplicates)
            fees = await self._fees(client, streams)
        self._phase("waiting for every delivery to settle")
        pending = await self._settle(self.options.timeout_s)
        self._phase(f"settled: {pending} deliveries still pending" if pending else "settled: nothing pending")
        elapsed = time.perf_counter() - started
        deliveries = self._delivery_counts()
        delivered = sum(c["delivered"] for c in deliveries.values())
        peers = self.peers.named().values()
        faults = {k: sum(peer.faults_injected[k] for peer in peers) for k in self.portal.faults_injected}
        receipts = {"vnpt": len(self.peers.vnpt.invoices), "viettel": len(self.peers.viettel.invoices)}
        self._phase("signing a message log checkpoint and verifying the log against it")
        message_log = await self._message_log()
        notices = dict(sorted(Counter(r.operation for r in self.peers.province.received).items()))
        return DemoSummary(
            len(events),
            len(duplicates),
            deliveries,
            pending,
            elapsed,
            delivered / elapsed,
            faults,
            prefill,
            fees,
            receipts,
            notices,
            message_log,
        )

    async def _message_log(self) -> dict[str, Any]:
        """A checkpoint now, and the whole log verified against it with the demo key's verifier."""
        assert self.node is not None
        checkpointer = self.node.checkpointer
        assert checkpointer is not None
        await checkpointer.checkpoint()
        verdict = await verify(self.node.store, verifier=checkpointer.key.verifier())
        return {
            "records": verdict.records,
            "checkpoints": verdict.checkpoints,
            "verified": verdict.ok,
            "problems": verdict.problems[:5],
        }

    async def _fees(self, client: httpx.AsyncClient, streams: list[DossierStream]) -> dict[str, int]:
        """Each dossier with fees asks for an online payment; the citizen pays (one in ten fails at the
        bank); the platform calls back. Receipts and the province's notices follow through the routes."""
        requests = []
        for stream in streams:
            received = stream.events[0]
            if received["dossier"]["fees"]:
                dossier = {**received["dossier"], "payment": {"reference": f"TT-{stream.code}"}}
                requests.append(
                    {
                        **received,
                        "event_id": f"{received['event_id']}-payreq",
                        "type": "payment.requested",
                        "dossier": dossier,
                    }
                )
        headers = {"authorization": f"Bearer {self.token}", "content-type": "application/json"}
        self._phase(f"asking for {len(requests)} fees online; waiting for the platform's pay URLs")
        for batch in _batches(requests, self.options.batch_size):
            await _post(client, orjson.dumps({"events": batch}), headers)
        await self._settle(self.options.timeout_s)
        self._phase(f"{len(requests)} payments initiated; citizens pay at the sandbox platform")
        callback = f"{client.base_url}/v1/payments/paygov/confirm"
        outcomes: Counter[str] = Counter(requested=len(requests))
        limit = asyncio.Semaphore(8)

        async def pay(n: int, request: dict[str, Any]) -> None:
            reference = request["dossier"]["payment"]["reference"]
            if reference not in self.peers.paygov.payments:
                outcomes["not_initiated"] += 1
                return
            status = "4" if n % 10 == 9 else "1"
            async with limit:
                answer = await asyncio.to_thread(self.peers.paygov.pay, reference, callback, status)
            outcomes["paid" if status == "1" and answer.status_code == 200 else "failed"] += 1

        await asyncio.gather(*(pay(n, r) for n, r in enumerate(requests)))
        return dict(outcomes)

    async def _prefill(self, client: httpx.AsyncClient, streams: list[DossierStream]) -> dict[str, int]:
        """The desk looks each applicant up before receiving the dossier. Most citizens are in the
        population database; a few are not (a typo in the id, a newborn not yet registered)."""
        outcomes: Counter[str] = Counter()
        for n, stream in enumerate(streams):
            applicant = stream.events[0]["dossier"]["applicant"]
            if n % 25 != 24:
                self.population.add(synthetic_citizen(applicant["id_number"], applicant["full_name"]))
        headers = {
            "authorization": f"Bearer {self.token}",
            "x-official-id": "CB-DEMO-01",
            "x-purpose": quote("Tiếp nhận hồ sơ (demo)"),
        }
        limit = asyncio.Semaphore(8)

        async def one(stream: DossierStream) -> None:
            applicant = stream.events[0]["dossier"]["applicant"]
            async with limit:
                answer = await client.get(f"/v1/citizens/{applicant['id_number']}", headers=headers)
            code = answer.json()["error"]["code"] if answer.status_code != 200 else "found"
            outcomes[
                {"citizen_not_found": "not_found", "population_unavailable": "unavailable"}.get(code, code)
            ] += 1

        await asyncio.gather(*(one(s) for s in streams))
        return dict(sorted(outcomes.items()))

    async def _send_all(
        self, client: httpx.AsyncClient, events: list[dict[str, Any]], duplicates: list[Any]
    ) -> None:
        headers = {"authorization": f"Bearer {self.token}", "content-type": "application/json"}
        singles, rest = events[:20], events[20:]  # the first few one by one, as a desk would send them
        for event in [*singles, *duplicates[:5]]:
            await _post(client, orjson.dumps(event), headers)
        for batch in _batches([*rest, *duplicates[5:]], self.options.batch_size):
            await _post(client, orjson.dumps({"events": batch}), headers)

    async def _settle(self, timeout_s: float) -> int:
        """Wait until no delivery is pending or in flight; returns what is still pending at the timeout.
        Says how many are left every ``progress_every_s`` seconds of waiting."""
        assert self.node is not None
        deadline = time.monotonic() + timeout_s
        next_report = time.monotonic() + self.progress_every_s
        while True:
            stats = await self.node.store.run(units.stats)
            pending = sum(s.pending + s.inflight for s in stats)
            if pending == 0 or time.monotonic() > deadline:
                return pending
            if time.monotonic() >= next_report:
                self._phase(f"{pending} deliveries pending or in flight")
                next_report = time.monotonic() + self.progress_every_s
            await asyncio.sleep(0.05)

    def _delivery_counts(self) -> dict[str, dict[str, int]]:
        assert self.node is not None
        counts: dict[str, dict[str, int]] = {}
        for metric in self.node.metrics.deliveries.collect():
            for sample in metric.samples:
                if not sample.name.endswith("_total"):
                    continue
                dest = counts.setdefault(
                    sample.labels["destination"], {"delivered": 0, "retried": 0, "dead": 0}
                )
                key = {"delivered": "delivered", "retry": "retried", "dead": "dead"}[sample.labels["outcome"]]
                dest[key] += int(sample.value)
        return dict(sorted(counts.items()))


async def _post(client: httpx.AsyncClient, body: bytes, headers: dict[str, str]) -> None:
    response = await client.post("/v1/events", content=body, headers=headers)
    if response.status_code != 202:
        raise RuntimeError(f"the bus refused demo traffic: {response.status_code} {response.text}")


def _batches(items: Iterable[Any], size: int) -> Iterator[list[Any]]:
    iterator = iter(items)
    while batch := list(itertools.islice(iterator, size)):
        yield batch


def run_demo(
    options: DemoOptions,
    *,
    keep_running: bool = False,
    on_summary: Any = None,
    port: int = 0,
    say: Say | None = None,
    stop_on_signals: bool = False,
) -> DemoSummary | None:
    """Run the demo in a fresh temporary directory and event loop; the directory is removed at the end.

    With ``stop_on_signals`` (the command line), SIGINT and SIGTERM stop it in order: None is returned
    when that happened before the summary.
    """

    async def main(workdir: Path) -> DemoSummary | None:
        demo = Demo(options, workdir, say=say)
        stop = asyncio.Event()
        if not stop_on_signals:
            return await demo.run(keep_running=keep_running, on_summary=on_summary, stop=stop, port=port)
        with on_stop_signals(stop):
            return await demo.run(keep_running=keep_running, on_summary=on_summary, stop=stop, port=port)

    with tempfile.TemporaryDirectory(prefix="lienthong-demo-") as tmp:
        return run(main(Path(tmp)))


async def _unless(stop: asyncio.Event, work: Coroutine[Any, Any, T]) -> T | None:
    """``work``'s result, or None if ``stop`` is set first (``work`` is then cancelled)."""
    task = asyncio.ensure_future(work)
    stopping = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({task, stopping}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopping.cancel()
    if task.done():
        return task.result()
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    return None
