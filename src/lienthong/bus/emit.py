"""Events lienthong itself raises (a receipt issued), accepted through ingest like the province's own.

An adapter that causes something the province must hear of emits an event; routes then deliver it like
any other (to the provincial webhook, say). Event ids are derived from what happened, so emitting again
after a retry is a duplicate, accepted once.
"""

from __future__ import annotations

from typing import Any

import orjson

from lienthong.bus.envelope import parse_body
from lienthong.bus.ingest import Ingestor

INTERNAL_EVENT_TYPES = frozenset({"receipt.issued"})
"""Types only lienthong raises; the API refuses them from outside."""


class EventSink:
    def __init__(self, dossier_code_field: str) -> None:
        self._code_field = dossier_code_field
        self._ingestor: Ingestor | None = None

    def attach(self, ingestor: Ingestor) -> None:
        """Connect the ingestor (built after the adapters that emit, in the composition root)."""
        self._ingestor = ingestor

    async def emit(self, event: dict[str, Any]) -> None:
        """Raises StoreError when the event cannot be stored (the caller retries)."""
        assert self._ingestor is not None, "EventSink.attach was not called"
        parsed, _ = parse_body(orjson.dumps(event), dossier_code_field=self._code_field, max_events=1)
        await self._ingestor.accept(parsed)
