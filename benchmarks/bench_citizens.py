"""Citizen look-ups per second through ``GET /v1/citizens/{id}``, against the sandbox population database.

``lienthong run`` and the sandbox each run in their own process; an aiohttp client keeps 16 look-ups in
flight. The baseline, in the same run, is zeep calling the sandbox directly (the SOAP call alone, with no
API, audit or form mapping), so the ratio shows what prefill adds to the bare call.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import quote

import aiohttp
import httpx

from bench_bus import Child, wait_ready
from lienthong.adapters.http import make_transport
from lienthong.adapters.population import CitizenQuery, PopulationAdapter, make_soap_transport
from lienthong.api.auth import hash_token
from lienthong.serving import bind, new_event_loop, tune_runtime

TOKEN = "bench-token-for-citizen-lookups-0001"
IN_FLIGHT = 16
CITIZENS = 1000


def ids(count: int) -> list[str]:
    return [f"046{n % CITIZENS:09d}" for n in range(count)]


async def through_api(url: str, count: int) -> float:
    headers = {
        "authorization": f"Bearer {TOKEN}",
        "x-official-id": "CB-BENCH",
        "x-purpose": quote("Đo hiệu năng"),
    }
    queue = iter(ids(count))
    async with aiohttp.ClientSession(
        headers=headers, connector=aiohttp.TCPConnector(limit=IN_FLIGHT)
    ) as session:

        async def worker() -> None:
            for id_number in queue:
                async with session.get(f"{url}/v1/citizens/{id_number}") as response:
                    await response.read()
                    if response.status != 200:
                        raise RuntimeError(f"{response.status}: {await response.text()}")

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(IN_FLIGHT)))
        return count / (time.perf_counter() - started)


async def bare_zeep(sandbox_url: str, count: int) -> float:
    client = httpx.AsyncClient(transport=make_transport(max_connections=IN_FLIGHT))
    adapter = PopulationAdapter(
        "bare",
        make_soap_transport(client),
        address=f"{sandbox_url}/ws/congdan",
        ma_tich_hop="LIENTHONG-SANDBOX",
        ma_dvc="DVC-BENCH",
    )
    queue = iter(ids(count))

    async def worker() -> None:
        for n, id_number in enumerate(queue):
            await adapter.lookup(CitizenQuery(id_number, "CB-BENCH", f"bare-{id_number}-{n}"))

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(IN_FLIGHT)))
    rate = count / (time.perf_counter() - started)
    await adapter.aclose()
    return rate


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--smoke", action="store_true", help="a few hundred look-ups: checks the benchmark works"
    )
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    count = 300 if args.smoke else 5_000
    tune_runtime()
    sandbox = Child("sandbox", "population", "--citizens", str(CITIZENS))
    sandbox_url = sandbox.read_url()
    sock = bind()
    port = sock.getsockname()[1]
    sock.close()
    with tempfile.TemporaryDirectory(prefix="lienthong-bench-") as tmp:
        config = {
            "server": {"port": port},
            "auth": {
                "tokens": [{"name": "bench", "sha256": hash_token(TOKEN)}],
                "rate_limit": {"per_second": 0},
            },
            "store": {"path": str(Path(tmp) / "citizens.db")},
            "dispatcher": {"enabled": False},
            "destinations": {
                "population": {
                    "kind": "population",
                    "base_url": sandbox_url,
                    "ma_tich_hop": "LIENTHONG-SANDBOX",
                    "ma_dvc": "DVC-BENCH",
                    "max_connections": IN_FLIGHT,
                }
            },
            "citizens": {"source": "population", "audit_key": "bench-audit-key-0123456789"},
        }
        path = Path(tmp) / "citizens.yaml"
        path.write_text(json.dumps(config))
        bus = Child("run", str(path))
        url = f"http://127.0.0.1:{port}"
        loop = new_event_loop()
        try:
            wait_ready(url)
            api = loop.run_until_complete(through_api(url, count))
            bare = loop.run_until_complete(bare_zeep(sandbox_url, count))
        finally:
            loop.close()
            bus.stop()
            sandbox.stop()
    report = {
        "lookups_per_s_api": round(api),
        "lookups_per_s_bare_zeep": round(bare),
        "ratio_api_to_bare": round(api / bare, 2),
    }
    if args.json:
        print(json.dumps(report))
        return 0
    print(f"citizen look-up benchmark ({'smoke' if args.smoke else 'full'}; {IN_FLIGHT} in flight)")
    print(
        f"  GET /v1/citizens/{{id}}      {report['lookups_per_s_api']:>7} look-ups/s  (audited, mapped to the e-form)"
    )
    print(
        f"  bare zeep to the sandbox  {report['lookups_per_s_bare_zeep']:>7} look-ups/s  api/bare {report['ratio_api_to_bare']}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
