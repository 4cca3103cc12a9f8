"""Shared fixtures: sandbox peers on loopback threads, a config pointing at them, and a running node."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client import CollectorRegistry

import stores
from lienthong.api.auth import hash_token
from lienthong.app import Lienthong, build
from lienthong.config import Config
from lienthong.sandbox import EmcSandbox, PortalSandbox
from lienthong.sandbox.dossiers import PROCEDURE_CODES
from lienthong.sandbox.provincial import ProvincialSandbox
from lienthong.serving import HttpServer, ThreadedServer
from lienthong.store import Store, units
from processes import Bus, free_port

# The store's own process (store.process) loads units of work by module name: let it import test modules.
os.environ["PYTHONPATH"] = os.pathsep.join(
    p for p in (str(Path(__file__).parent), os.environ.get("PYTHONPATH", "")) if p
)

TOKEN = "test-token-for-the-provincial-system"
# What examples/lienthong.yaml reads from the environment.
EXAMPLE_ENV = {
    "PORTAL_DSTCODE": "D1",
    "PORTAL_USERNAME": "u",
    "PORTAL_PASSWORD": "p",
    "EMC_SITE_ID": "S1",
    "EMC_TOKEN": "t",
    "POPULATION_MA_TICH_HOP": "T1",
    "CITIZEN_AUDIT_KEY": "an-audit-key-of-sixteen-plus",
    "PAYGOV_SECRET": "s",
    "VNPT_ACCOUNT": "a",
    "VNPT_ACPASS": "ap",
    "VNPT_USERNAME": "vu",
    "VNPT_PASSWORD": "vp",
    "VIETTEL_USERNAME": "tu",
    "VIETTEL_PASSWORD": "tp",
    "PROVINCE_WEBHOOK_SECRET": "w",
    "LGSP_CLIENT_SECRET": "c",
}
AUTH = {"authorization": f"Bearer {TOKEN}"}
OPERATOR_TOKEN = "test-token-of-an-operator-for-the-docs"
OPERATOR = {"authorization": f"Bearer {OPERATOR_TOKEN}"}
"""An operator's credential (``admin.tokens`` of ``config_dict``): ``/openapi.json`` asks for one."""
QUICK_CIRCUIT = {"open_s": 0.1, "max_open_s": 0.4, "probe_wait_s": 0.05}
"""Circuit breakers as in production, on a test's time scale: a peer made to fail holds its messages for a
tenth of a second, not half a minute. Tests that give their own ``dispatcher`` section add it."""
ROUTES = [
    {
        "on": "dossier.received",
        "deliver": [
            {"to": "portal", "operation": "DongBoHoSoMC"},
            {"to": "emc", "operation": "TrackingMCDT"},
        ],
    },
    {"on": "dossier.status_changed", "deliver": [{"to": "portal", "operation": "CapNhatTienDoHoSoMC"}]},
    {"on": "dossier.result_issued", "deliver": [{"to": "portal", "operation": "DongBoHoSoMC"}]},
    {
        "on": "dossier.returned",
        "deliver": [
            {"to": "portal", "operation": "DongBoHoSoMC"},
            {"to": "emc", "operation": "TrackingMCDT"},
        ],
    },
]


@dataclass
class Peers:
    portal: PortalSandbox
    emc: EmcSandbox
    portal_url: str
    emc_url: str


@pytest.fixture
def province() -> Iterator[tuple[ProvincialSandbox, str]]:
    """The sandbox provincial system (its webhook, and its change feed: ``publish``) and its URL."""
    peer = ProvincialSandbox()
    with ThreadedServer(lambda: peer) as server:
        yield peer, server.url


@pytest.fixture
def peers() -> Iterator[Peers]:
    portal = PortalSandbox(procedures=PROCEDURE_CODES)
    emc = EmcSandbox()
    with ThreadedServer(lambda: portal) as p, ThreadedServer(lambda: emc) as e:
        yield Peers(portal, emc, p.url, e.url)


def config_dict(tmp_path: Path, peers: Peers, **overrides: Any) -> dict[str, Any]:
    """A full config as a dict, pointing at ``peers``; ``overrides`` replace whole top-level sections."""
    data: dict[str, Any] = {
        "auth": {"tokens": [{"name": "tests", "sha256": hash_token(TOKEN)}]},
        "admin": {"tokens": [{"name": "ops", "sha256": hash_token(OPERATOR_TOKEN)}]},
        "store": {"path": str(tmp_path / "lienthong.db"), "synchronous": "normal"},
        "dispatcher": {
            "max_in_flight": 16,
            "poll_interval_s": 0.02,
            "shutdown_grace_s": 2,
            "retry": {"initial_delay_s": 0.01, "max_delay_s": 0.05, "jitter": 0, "max_attempts": 4},
            "circuit": QUICK_CIRCUIT,
        },
        "destinations": {
            "portal": {
                "kind": "portal",
                "base_url": peers.portal_url,
                "dstcode": peers.portal.dstcode,
                "username": peers.portal.username,
                "password": peers.portal.password,
                "timeout_s": 2,
            },
            "emc": {
                "kind": "emc",
                "base_url": peers.emc_url,
                "site_id": "SANDBOX-SITE",
                "province_code": "H56",
            },
        },
        "routes": ROUTES,
    }
    data.update(overrides)
    return data


@dataclass
class Running:
    node: Lienthong
    client: httpx.AsyncClient
    registry: CollectorRegistry

    async def post(self, body: Any, headers: dict[str, str] | None = None) -> httpx.Response:
        return await self.client.post(
            "/v1/events", json=body, headers=headers if headers is not None else AUTH
        )

    async def settle(self, timeout_s: float = 20.0) -> None:
        """Wait until nothing is pending or in flight."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            stats = await self.node.store.run(units.stats)
            if sum(s.pending + s.inflight for s in stats) == 0:
                return
            await asyncio.sleep(0.01)
        raise AssertionError(f"deliveries did not settle within {timeout_s} s: {stats}")

    def sample(self, name: str, **labels: str) -> float:
        return self.registry.get_sample_value(name, labels) or 0.0


RunNode = Callable[..., Any]


@pytest.fixture
async def run_node(tmp_path: Path, peers: Peers) -> AsyncIterator[RunNode]:
    """Start a node (API on loopback + dispatcher) from ``config_dict`` with overrides; stopped at teardown."""
    started: list[tuple[HttpServer, httpx.AsyncClient]] = []

    async def start(**overrides: Any) -> Running:
        registry = CollectorRegistry()
        config = config_dict(tmp_path, peers, **overrides)
        if started and "store" not in overrides:
            # One node per SQLite file: a second node running beside the first gets a store of its own.
            config["store"] = {
                **config.get("store", {}),
                "path": str(tmp_path / f"lienthong-{len(started)}.db"),
            }
        node = build(Config.model_validate(config), registry=registry)
        server = HttpServer(node.api, lifespan="on")
        await server.start()
        client = httpx.AsyncClient(base_url=server.url, timeout=10)
        started.append((server, client))
        return Running(node, client, registry)

    yield start
    for server, client in started:
        await client.aclose()
        await server.stop()


@pytest.fixture
def bus(tmp_path: Path, peers: Peers) -> Iterator[Bus]:
    port = free_port()
    config = config_dict(tmp_path, peers, server={"host": "127.0.0.1", "port": port})
    config["store"] = {"path": str(tmp_path / "lienthong.db")}  # the default, synchronous=full
    config["dispatcher"]["max_in_flight"] = 8
    path = tmp_path / "lienthong.yaml"
    path.write_text(json.dumps(config), encoding="utf-8")  # JSON is YAML
    bus = Bus(path, tmp_path / "bus.log", f"http://127.0.0.1:{port}")
    yield bus
    bus.stop()


@pytest.fixture
def pg_bus(tmp_path: Path, peers: Peers, pg_dsn: str) -> Iterator[Bus]:
    """``bus`` on PostgreSQL. A restarted node leaves messages in flight to their leases (the store is
    shared), so the lease is short here."""
    port = free_port()
    config = config_dict(tmp_path, peers, server={"host": "127.0.0.1", "port": port})
    config["store"] = {"kind": "postgres", "dsn": pg_dsn, "pool_size": 2}
    config["dispatcher"]["max_in_flight"] = 8
    config["dispatcher"]["lease_s"] = 6
    for destination in config["destinations"].values():
        destination["timeout_s"] = 3  # the lease must be at least twice every timeout
    path = tmp_path / "lienthong.yaml"
    path.write_text(json.dumps(config), encoding="utf-8")
    bus = Bus(path, tmp_path / "bus.log", f"http://127.0.0.1:{port}")
    yield bus
    bus.stop()


@pytest.fixture(params=stores.BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    """Each backend's name in turn: memory, sqlite (thread), sqlite-process, postgres (thread pool),
    postgres-process."""
    kind: str = request.param
    if kind.startswith("postgres"):
        stores.postgres_or_skip()
    return kind


@pytest.fixture
def pg_dsn() -> Iterator[str]:
    """A DSN on a fresh PostgreSQL schema (skips locally, fails under CI, without a server)."""
    yield from stores.pg_schema()


@pytest.fixture
async def store(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> AsyncIterator[Store]:
    """An opened store of each backend in turn."""
    dsn = request.getfixturevalue("pg_dsn") if backend.startswith("postgres") else None
    opened = stores.make_store(backend, tmp_path, dsn)
    opened.open()
    yield opened
    opened.close()


PORTAL_PROGRESS_CASES = Path("golden") / "portal_progress"


@pytest.fixture
def specs(tmp_path: Path) -> Path:
    """A copy of the bundled portal_progress spec with its three golden cases (two outputs, one error),
    for tests that change specs and golden files."""
    from lienthong.mappings import bundled_dir  # noqa: PLC0415

    shutil.copy(bundled_dir() / "portal_progress.yaml", tmp_path)
    shutil.copy(bundled_dir() / "reference.yaml", tmp_path)
    shutil.copytree(bundled_dir() / PORTAL_PROGRESS_CASES, tmp_path / PORTAL_PROGRESS_CASES)
    return tmp_path
