"""The provincial change feed: for provinces whose one-stop system cannot call lienthong, lienthong polls
it.

``GET {base_url}{path}?cursor=<cursor>&limit=<page_size>`` answers a page of changes, each an event in the
reference format (docs/provincial-format.md), and the cursor of the next page::

    {"changes": [{"event_id": …, "type": …, "occurred_at": …, "unit_code": …, "dossier": {…}}, …],
     "next_cursor": "…"}

No public specification of such a feed was found (docs/contracts.md §11), so every name in it is config
(``cursor_param``, ``limit_param``, ``items_field``, ``next_cursor_field``).

Each change is checked as ``POST /v1/events`` checks an event; a change that is not a valid event is
refused alone (logged and counted), never blocking the ones after it. A page's events and the cursor
past it are stored in one transaction (``units.ingest_from_feed``): the cursor never moves ahead of events
not stored, so a crash or a store fault means the page is read again, and its events, deduplicated by id,
are delivered at least once. A page that answers the cursor it was asked with, or no cursor, ends the
catch-up; the next poll is after ``poll_interval_s``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass

import orjson

from lienthong.adapters.failures import classify
from lienthong.adapters.http import HttpPeer
from lienthong.bus.emit import refused_from_outside
from lienthong.bus.envelope import parse_body
from lienthong.bus.ingest import Ingestor
from lienthong.clock import Clock, now_ms
from lienthong.errors import IdempotencyConflict, IngestError, StoreError
from lienthong.model import IngestItem
from lienthong.observability.metrics import Metrics
from lienthong.store import Store, units

log = logging.getLogger("lienthong.sources")
MAX_PAGES_AT_ONCE = 1000
"""Pages read one after the other before the feed waits for its next poll, whatever the peer says."""


@dataclass(frozen=True)
class FeedSettings:
    """One feed's shape and pace (from config ``sources.<name>``)."""

    name: str
    page_size: int
    poll_interval_s: float
    caller: str
    dossier_code_field: str
    cursor_param: str = "cursor"
    limit_param: str = "limit"
    items_field: str = "changes"
    next_cursor_field: str = "next_cursor"
    max_backoff_s: float = 300.0


class FeedError(Exception):
    """A page that cannot be read (not JSON, not the feed's shape): the poll is tried again later."""


class NodeRefuses(FeedError):
    """The node takes no events now (``refusal``): nothing is asked of the province; looked at again
    every ``poll_interval_s``, not backed off, since the province is not failing."""


@dataclass(frozen=True)
class Page:
    events: list[IngestItem]
    next_cursor: str | None
    refused: int
    size: int


def _no_constant(name: str) -> object:
    raise ValueError(f"{name} is not a JSON number")


def _is_text(value: str) -> bool:
    try:
        value.encode()
    except UnicodeEncodeError:
        return False
    return True


class ProvincialFeed:
    """Polls one feed until ``stop``; ``poll_once`` reads and stores one page."""

    def __init__(
        self,
        settings: FeedSettings,
        peer: HttpPeer,
        path: str,
        *,
        store: Store,
        ingestor: Ingestor,
        metrics: Metrics,
        clock: Clock,
        refusal: Callable[[], str | None] | None = None,
    ) -> None:
        self.settings = settings
        self._refusal = refusal
        self._peer = peer
        self._endpoint = peer.endpoint(path)
        self._store = store
        self._ingestor = ingestor
        self._metrics = metrics
        self._clock = clock
        self._stopping = asyncio.Event()
        self._failing = False
        self._passed: set[str] = set()  # cursors passed in this catch-up: one coming back is a loop

    async def run(self) -> None:
        """Poll: page after page while the feed has more, then every ``poll_interval_s``; a failure backs
        off (doubling, up to ``max_backoff_s``), logged once per change of state. While the node refuses
        events, it looks again every ``poll_interval_s``."""
        delay = self.settings.poll_interval_s
        while not self._stopping.is_set():
            try:
                more = await self.poll_once()
            except NodeRefuses as exc:
                self._state(str(exc))
                delay = self.settings.poll_interval_s
            except (FeedError, StoreError, IngestError) as exc:
                self._state(str(exc))
                delay = min(delay * 2, self.settings.max_backoff_s)
            except Exception as exc:
                failure = classify(exc, "the provincial feed")
                if failure is None:
                    raise
                self._state(failure.message)
                delay = min(delay * 2, self.settings.max_backoff_s)
            else:
                self._state(None)
                delay = self.settings.poll_interval_s
                if more:
                    continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), delay)

    def stop(self) -> None:
        self._stopping.set()

    async def aclose(self) -> None:
        await self._peer.aclose()

    async def poll_once(self) -> bool:
        """Read the page after the stored cursor and store its events with the next cursor, in one
        transaction. True when the feed may have more at once."""
        settings = self.settings
        refused = self._refusal() if self._refusal is not None else None
        if refused is not None:  # the events wait at the province, as a POST of them would be refused
            raise NodeRefuses(f"not polling: {refused}")
        cursor = await self._store.run(units.feed_cursor, settings.name)
        query = {settings.limit_param: str(settings.page_size)}
        if cursor is not None:
            query[settings.cursor_param] = cursor
        answer = await self._endpoint.get(query, {"accept": "application/json"})
        if not 200 <= answer.status_code < 300:
            raise FeedError(f"the provincial feed answered http {answer.status_code}")
        page = self._read(answer.content)
        next_cursor = page.next_cursor if page.next_cursor is not None else cursor
        if page.events or (next_cursor is not None and next_cursor != cursor):
            answers = await self._store.run(
                units.ingest_from_feed, page.events, settings.name, next_cursor or "", now_ms(self._clock)
            )
            self._count(page.events, answers)
        if page.refused:
            self._metrics.events_received.labels("unknown", "rejected").inc(page.refused)
        full = page.size >= settings.page_size
        if not full or next_cursor == cursor or next_cursor is None:
            self._passed.clear()
            return False
        if next_cursor in self._passed or len(self._passed) >= MAX_PAGES_AT_ONCE:
            # A peer whose cursors go round (A, B, A…) would be asked without pause: wait for the next poll.
            log.warning(
                "%s: the feed's cursor %r came back; reading again at the next poll",
                settings.name,
                next_cursor,
            )
            self._passed.clear()
            return False
        self._passed.add(next_cursor)
        return True  # a full page that moved on: the next one may be waiting

    def _read(self, content: bytes) -> Page:
        settings = self.settings
        try:
            data = orjson.loads(content)
        except orjson.JSONDecodeError as exc:
            # The stdlib's parser takes what orjson refuses of RFC 8259's grammar: a lone surrogate escape
            # ("\ud83d", from a summary cut in the middle of an emoji). That change is refused alone below
            # (it cannot be stored as UTF-8), not the whole page, which would stop the feed for good.
            try:  # NaN and Infinity are no JSON (orjson would store them as null): refused as before
                data = json.loads(content, parse_constant=_no_constant)
            except (ValueError, RecursionError) as again:
                raise FeedError(f"the provincial feed's page is not JSON: {exc}") from again
        if not isinstance(data, dict):
            raise FeedError("the provincial feed's page is not a JSON object")
        changes = data.get(settings.items_field)
        if not isinstance(changes, list):
            raise FeedError(f"the provincial feed's page has no list {settings.items_field!r}")
        if len(changes) > settings.page_size:
            raise FeedError(
                f"the provincial feed answered {len(changes)} changes for a page of {settings.page_size}"
            )
        next_cursor = data.get(settings.next_cursor_field)
        if next_cursor is not None and (
            isinstance(next_cursor, bool) or not isinstance(next_cursor, str | int)
        ):
            raise FeedError(f"the provincial feed's {settings.next_cursor_field!r} is not a string")
        if isinstance(next_cursor, str) and not _is_text(next_cursor):  # a lone surrogate: no UTF-8
            raise FeedError(f"the provincial feed's {settings.next_cursor_field!r} is not valid text")
        items: list[IngestItem] = []
        seen: dict[str, str] = {}  # event id: payload hash
        refused = 0
        for n, change in enumerate(changes):
            try:
                (parsed,), _ = parse_body(
                    orjson.dumps(change), dossier_code_field=settings.dossier_code_field, max_events=1
                )
            except (IngestError, TypeError, ValueError) as exc:
                refused += 1
                log.warning("%s: change %d of the page refused: %s", settings.name, n, exc)
                continue
            refused_here = refused_from_outside(parsed.event)
            if refused_here is not None:
                refused += 1
                log.warning("%s: change %d of the page refused: %s", settings.name, n, refused_here[1])
                continue
            first_sha = seen.get(parsed.event.event_id)
            if first_sha == parsed.payload_sha256:
                continue  # the same event twice in a page: once is enough
            if first_sha is not None:  # refused as a reused id is across pages: counted and logged
                refused += 1
                log.warning(
                    "%s: change %d of the page refused: event_id %r is used by another change of the page",
                    settings.name,
                    n,
                    parsed.event.event_id,
                )
                continue
            seen[parsed.event.event_id] = parsed.payload_sha256
            items.append(self._ingestor.plan(parsed, settings.caller))
        return Page(items, None if next_cursor is None else str(next_cursor), refused, len(changes))

    def _count(self, items: list[IngestItem], answers: list[units.Answer]) -> None:
        accepted: list[IngestItem] = []
        for item, answer in zip(items, answers, strict=True):
            if isinstance(answer, IdempotencyConflict):
                self._metrics.events_received.labels(item.event.type, "rejected").inc()
                log.warning("%s: %s", self.settings.name, answer)
            elif answer[0].duplicate:
                self._metrics.events_received.labels(item.event.type, "duplicate").inc()
            else:
                accepted.append(item)
        if accepted:
            self._ingestor.stored(accepted)

    def _state(self, error: str | None) -> None:
        if error is not None and not self._failing:
            log.warning(
                "%s: the provincial feed cannot be read (retrying with backoff): %s",
                self.settings.name,
                error,
            )
        elif error is None and self._failing:
            log.warning("%s: the provincial feed is read again", self.settings.name)
        self._failing = error is not None
