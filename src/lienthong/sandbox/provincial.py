"""Sandbox provincial system: the webhook that receives lienthong's signed callbacks, and the change feed
lienthong polls when a province cannot call it (``GET /api/changes``).

It verifies the signature and its age the way a province should, in the scheme it is set up for
(``signature``: lienthong's own, or Standard Webhooks), refuses bad ones with 401, and records the good ones
(once per message id, as a province deduplicating repeats would) and the requests that carried them
(``deliveries``, headers and body as they came, for an independent verifier).
"""

from __future__ import annotations

import base64
import time

import orjson

from lienthong.adapters.provincial import (
    MESSAGE_ID_HEADER,
    SIGNATURE_HEADER,
    WEBHOOK_ID,
    Scheme,
    standard_key,
    verify,
    verify_standard,
)
from lienthong.sandbox.base import Answer, FaultPlan, Peer, Received, Request


class ProvincialSandbox(Peer):
    def __init__(
        self,
        *,
        secret: str = "sandbox-provincial-secret",  # noqa: S107 (a simulator's own test secret)
        path: str = "/lienthong/callback",
        changes_path: str = "/api/changes",
        faults: FaultPlan | None = None,
        basic: tuple[str, str] | None = None,
        signature: Scheme = "lienthong",
    ) -> None:
        """With ``signature="standard_webhooks"``, ``secret`` is ``whsec_<base64 key>``."""
        super().__init__(faults)
        self.signature = signature
        self.secret = standard_key(secret) if signature == "standard_webhooks" else secret.encode()
        self.deliveries: list[Request] = []
        self.basic = basic  # the province's gateway may also ask for HTTP basic credentials
        self.refused = 0
        self._seen: set[str] = set()
        self.routes[("POST", path)] = self._callback
        self.routes[("GET", changes_path)] = self._changes
        self.changes: list[object] = []  # the change feed: what ``publish`` added, in order
        self.pages_served = 0

    def publish(self, *events: object) -> None:
        """Add changes to the feed (events in the reference format, or anything, to test refusals)."""
        self.changes.extend(events)

    async def _changes(self, request: Request) -> Answer:
        """The change feed: ``?cursor=N&limit=M`` answers changes N.. (at most M) and the next cursor, the
        position after them, as text. No cursor starts at the beginning; a bad one is 400."""
        cursor, limit = request.query.get("cursor", "0"), request.query.get("limit", "100")
        if not (cursor.isdigit() and limit.isdigit()) or int(limit) == 0:
            return Answer.json({"error": "cursor and limit must be counts"}, 400)
        start = int(cursor)
        page = self.changes[start : start + min(int(limit), 1000)]
        self.pages_served += 1
        return Answer.json({"changes": page, "next_cursor": str(start + len(page))})

    async def _callback(self, request: Request) -> Answer:
        if self.basic is not None:
            expected = "Basic " + base64.b64encode(":".join(self.basic).encode()).decode()
            if request.headers.get("authorization") != expected:
                return Answer.json({"error": "basic credentials required"}, 401)
        if not self._verified(request):
            self.refused += 1
            return Answer.json({"error": "bad or stale signature"}, 401)
        try:
            body = orjson.loads(request.body)
        except orjson.JSONDecodeError:
            return Answer.json({"error": "not JSON"}, 400)
        id_header = WEBHOOK_ID if self.signature == "standard_webhooks" else MESSAGE_ID_HEADER
        message_id = request.headers.get(id_header, "")
        self.deliveries.append(request)
        if message_id not in self._seen:
            self._seen.add(message_id)
            self.record(
                Received(str(body.get("kind", "")), message_id, str(body.get("dossier_code", "")), body)
            )
        return Answer.json({"ok": True})

    def _verified(self, request: Request) -> bool:
        if self.signature == "standard_webhooks":
            return verify_standard(request.body, request.headers, self.secret, now=time.time())
        return verify(request.body, request.headers.get(SIGNATURE_HEADER, ""), self.secret, now=time.time())
