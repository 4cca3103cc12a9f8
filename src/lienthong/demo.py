"""``lienthong demo``: the sandbox peers and the bus on loopback, a realistic stream of dossiers, a summary.

Everything real runs: the HTTP API with a bearer token, the SQLite outbox in a temporary directory, the
dispatcher, the adapters over HTTP and SOAP, and the sandbox portal, EMC and population database injecting
faults. Before a dossier is received, the desk prefills its e-form from the population database.
"""

from __future__ import annotations

import asyncio
import itertools
import secrets
import tempfile
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import orjson

from lienthong.adapters.http import make_transport
from lienthong.api.auth import hash_token, new_token
from lienthong.app import Lienthong, build
from lienthong.config import Config
from lienthong.sandbox import EmcSandbox, FaultPlan, PortalSandbox
from lienthong.sandbox.dossiers import PROCEDURE_CODES, DossierStream, generate, interleave
from lienthong.sandbox.population import PopulationSandbox, synthetic_citizen
from lienthong.serving import HttpServer, ThreadedServer, run

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
        }

    def table(self) -> str:
        rows = [f"{'destination':<12}{'delivered':>10}{'retried':>10}{'dead':>8}"]
        rows += [
            f"{d:<12}{c['delivered']:>10}{c['retried']:>10}{c['dead']:>8}" for d, c in self.deliveries.items()
        ]
        faults = ", ".join(f"{k} {v}" for k, v in self.faults_injected.items())
        prefill = ", ".join(f"{k} {v}" for k, v in self.prefill.items())
        return "\n".join(
            [
                f"e-forms prefilled {prefill}",
                f"events accepted   {self.events} ({self.duplicates_sent} duplicates sent, accepted once)",
                *rows,
                f"pending           {self.pending}",
                f"faults injected   {faults}",
                f"elapsed           {self.elapsed_s:.2f} s",
                f"throughput        {self.deliveries_per_s:.0f} deliveries/s",
            ]
        )


def demo_config(
    workdir: Path, token: str, urls: dict[str, str], portal: PortalSandbox, population: PopulationSandbox
) -> Config:
    return Config.model_validate(
        {
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
            },
            "routes": DEMO_ROUTES,
            "citizens": {"source": "population", "audit_key": secrets.token_hex(16)},
        }
    )


class Demo:
    """One demo run: peers, bus, traffic, summary."""

    def __init__(self, options: DemoOptions, workdir: Path) -> None:
        self.options = options
        faults = FaultPlan(rate=options.fault_rate, latency_ms=50, retry_after_s=1, seed=options.seed)
        self.portal = PortalSandbox(procedures=PROCEDURE_CODES, faults=faults)
        self.emc = EmcSandbox(faults=FaultPlan(rate=options.fault_rate, latency_ms=50, seed=options.seed + 1))
        self.population = PopulationSandbox(
            faults=FaultPlan(rate=options.fault_rate / 2, latency_ms=50, seed=options.seed + 2)
        )
        self.token = new_token()
        self.workdir = workdir
        self.node: Lienthong | None = None
        self.server: HttpServer | None = None

    async def run(self, *, keep_running: bool = False, on_summary: Any = None) -> DemoSummary:
        with (
            ThreadedServer(lambda: self.portal) as portal_srv,
            ThreadedServer(lambda: self.emc) as emc_srv,
            ThreadedServer(lambda: self.population) as population_srv,
        ):
            urls = {"portal": portal_srv.url, "emc": emc_srv.url, "population": population_srv.url}
            config = demo_config(self.workdir, self.token, urls, self.portal, self.population)
            self.node = build(config)
            self.server = HttpServer(self.node.api, lifespan="on")
            await self.server.start()
            try:
                summary = await self._traffic()
                if on_summary is not None:
                    on_summary(summary, self.server.url)
                if keep_running:
                    await asyncio.Event().wait()
            finally:
                await self.server.stop()
        return summary

    async def _traffic(self) -> DemoSummary:
        assert self.node is not None
        assert self.server is not None
        streams = generate(
            self.options.dossiers, seed=self.options.seed, unknown_share=self.options.unknown_share
        )
        events = list(interleave(streams))
        duplicates = events[:: max(1, len(events) // 20)]  # about 5% sent twice, as a flaky sender would
        started = time.perf_counter()
        client = httpx.AsyncClient(
            base_url=self.server.url, transport=make_transport(max_connections=8), timeout=30
        )
        async with client:
            prefill = await self._prefill(client, streams)
            await self._send_all(client, events, duplicates)
        pending = await self._settle(self.options.timeout_s)
        elapsed = time.perf_counter() - started
        deliveries = self._delivery_counts()
        delivered = sum(c["delivered"] for c in deliveries.values())
        faults = {
            k: sum(peer.faults_injected[k] for peer in (self.portal, self.emc, self.population))
            for k in self.portal.faults_injected
        }
        return DemoSummary(
            len(events), len(duplicates), deliveries, pending, elapsed, delivered / elapsed, faults, prefill
        )

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
        """Wait until no delivery is pending or in flight; returns what is still pending at the timeout."""
        assert self.node is not None
        deadline = time.monotonic() + timeout_s
        while True:
            stats = await self.node.outbox.stats()
            pending = sum(s.pending + s.inflight for s in stats)
            if pending == 0 or time.monotonic() > deadline:
                return pending
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


def run_demo(options: DemoOptions, *, keep_running: bool = False, on_summary: Any = None) -> DemoSummary:
    """Run the demo in a fresh temporary directory and event loop."""
    with tempfile.TemporaryDirectory(prefix="lienthong-demo-") as tmp:
        return run(Demo(options, Path(tmp)).run(keep_running=keep_running, on_summary=on_summary))
