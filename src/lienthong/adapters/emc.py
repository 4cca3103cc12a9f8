"""EMC adapter: reports each dossier event with ``TrackingMCDT``.

Contract (DESIGN §4): a JSON POST per event, identified by ``SiteId``. The body is the bundled
``emc_tracking`` mapping's output (SiteId comes from the destination's config as a mapping param). The reply
shape is assumed to follow the portal's (``error_code`` 0 on success); authentication is none or a Bearer
token from the LGSP.
"""

from __future__ import annotations

from typing import Any

import orjson

from lienthong.adapters.base import Receipt, json_body, map_transport_errors, raise_for_status
from lienthong.adapters.http import HttpPeer
from lienthong.bus.store import ClaimedDelivery
from lienthong.errors import PermanentError

SUCCESS_CODES = frozenset({"0", "00"})


class EmcAdapter:
    operations = ("TrackingMCDT",)

    def __init__(
        self,
        name: str,
        peer: HttpPeer,
        *,
        tracking_path: str = "/api/TrackingMCDT",
        bearer_token: str | None = None,
    ) -> None:
        self.name = name
        self._peer = peer
        self._tracking = peer.endpoint(tracking_path)
        self._auth = {"authorization": f"Bearer {bearer_token}"} if bearer_token else {}

    async def deliver(self, delivery: ClaimedDelivery, body: dict[str, Any]) -> Receipt:
        op = delivery.operation
        if op != "TrackingMCDT":
            raise PermanentError(f"unknown operation {op!r}", destination=self.name, operation=op)
        with map_transport_errors(self.name, op):
            headers = {
                "content-type": "application/json",
                "idempotency-key": delivery.message_id,
                **self._auth,
            }
            response = await self._tracking.post(orjson.dumps(body), headers)
            raise_for_status(response, self.name, op)
            answer = json_body(response, self.name, op)
        code = str(answer.get("error_code"))
        if code not in SUCCESS_CODES:
            message = f"EMC refused the event: {answer.get('message', '')}".rstrip(": ")
            raise PermanentError(message, destination=self.name, operation=op, status=200, remote_code=code)
        return Receipt(http_status=response.status_code)

    async def aclose(self) -> None:
        await self._peer.aclose()
