"""``lienthong xml``: signed XML documents (issue 13 §2). Commands are added here as they are built."""

from __future__ import annotations

from typing import Any


def add_commands(sub: Any) -> None:
    """Register the ``xml`` commands (none yet)."""
