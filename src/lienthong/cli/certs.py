"""``lienthong certs``: keys and certificates (issue 13 §1). Commands are added here as they are built."""

from __future__ import annotations

from typing import Any


def add_commands(sub: Any) -> None:
    """Register the ``certs`` commands (none yet)."""
