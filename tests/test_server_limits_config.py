"""The ``server`` section's request limits reach the server `lienthong run` starts."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest

from conftest import Peers, config_dict
from processes import Bus, free_port

pytestmark = pytest.mark.slow


def test_run_applies_the_configured_header_limit(tmp_path: Path, peers: Peers) -> None:
    port = free_port()
    server = {"host": "127.0.0.1", "port": port, "max_header_bytes": 2048, "max_headers": 10}
    config = config_dict(tmp_path, peers, server=server)
    path = tmp_path / "lienthong.yaml"
    path.write_text(json.dumps(config), encoding="utf-8")
    bus = Bus(path, tmp_path / "bus.log", f"http://127.0.0.1:{port}")
    bus.start()
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 4096 + b"\r\n\r\n")
            answer = sock.recv(4096)
        assert answer.startswith(b"HTTP/1.1 431"), answer[:80]
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            assert sock.recv(4096).startswith(b"HTTP/1.1 200")
    finally:
        bus.stop()
