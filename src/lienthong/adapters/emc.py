"""EMC adapter: reports each dossier event with ``TrackingMCDT``.

Contract (docs/contracts.md §4): a JSON POST per event, identified by ``SiteId``; the body is the bundled
``emc_tracking`` mapping's output. Authentication is none (a public client sends only ``Accept``) or a
Bearer token from the LGSP.

EMC's reply body is not public, and the public client reads only the HTTP status. So a 2xx is success
unless its body carries an explicit error, read defensively by ``EmcReplyRules`` (all assumed):

- a JSON object with an error-code key (``error_code``, ``ErrorCode``, ``errorCode``: any case, with or
  without ``_``) whose value is not ``0``, ``"0"``, ``"00"``, empty or null: a refusal (permanent);
- a JSON object whose ``status`` (any case) is ``error``, ``fail`` or ``failed``, or whose ``success``
  / ``IsSuccess`` is ``false``: a refusal;
- an empty body, plain text (``OK``) or any other JSON: success;
- an HTML page, or a body declared JSON that does not parse: retried (a gateway's page, a cut answer).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from lienthong.adapters.base import Receipt, map_transport_errors, raise_for_status
from lienthong.adapters.http import Answer, HttpPeer
from lienthong.errors import PermanentError, RetryableError
from lienthong.model import Message


@dataclass(frozen=True)
class EmcReplyRules:
    """How a 2xx reply is read (assumed, see the module docstring). Key names are compared lower-cased
    with ``_`` removed."""

    error_code_keys: frozenset[str] = frozenset({"errorcode"})
    success_codes: frozenset[str] = frozenset({"0", "00", ""})
    status_keys: frozenset[str] = frozenset({"status"})
    failed_statuses: frozenset[str] = frozenset({"error", "fail", "failed"})
    success_flag_keys: frozenset[str] = frozenset({"success", "issuccess"})

    def refusal(self, reply: dict[str, Any]) -> tuple[str, str] | None:
        """(remote code, message) when ``reply`` says the event was refused; None when it was taken."""
        fields = {key.replace("_", "").lower(): value for key, value in reply.items()}
        message = str(fields.get("message") or fields.get("description") or "")
        for key in self.error_code_keys & fields.keys():
            code = fields[key]
            if str(code if code is not None else "").strip() not in self.success_codes:
                return str(code), message
        for key in self.status_keys & fields.keys():
            status = fields[key]
            if isinstance(status, str) and status.strip().lower() in self.failed_statuses:
                return status, message
        for key in self.success_flag_keys & fields.keys():
            if fields[key] is False:
                return f"{key}=false", message
        return None


class EmcAdapter:
    operations = ("TrackingMCDT",)

    def __init__(
        self,
        name: str,
        peer: HttpPeer,
        *,
        tracking_path: str = "/api/TrackingMCDT",
        bearer_token: str | None = None,
        rules: EmcReplyRules | None = None,
    ) -> None:
        self.name = name
        self._peer = peer
        self._tracking = peer.endpoint(tracking_path)
        self._auth = {"authorization": f"Bearer {bearer_token}"} if bearer_token else {}
        self._rules = rules or EmcReplyRules()

    async def deliver(self, message: Message, body: dict[str, Any]) -> Receipt:
        op = message.operation
        if op != "TrackingMCDT":
            raise PermanentError(f"unknown operation {op!r}", destination=self.name, operation=op)
        with map_transport_errors(self.name, op):
            headers = {
                "content-type": "application/json",
                "accept": "application/json",
                "idempotency-key": message.message_id,
                **self._auth,
            }
            response = await self._tracking.post(orjson.dumps(body), headers)
            raise_for_status(response, self.name, op)
        reply = self._reply(response, op)
        refused = self._rules.refusal(reply) if isinstance(reply, dict) else None
        if refused is not None:
            code, text = refused
            reason = f"EMC refused the event: {text}".rstrip(": ")
            raise PermanentError(
                reason, destination=self.name, operation=op, status=response.status_code, remote_code=code
            )
        return Receipt(http_status=response.status_code)

    def _reply(self, response: Answer, op: str) -> Any:
        """The 2xx reply's JSON, or None when it has no JSON; an HTML page or cut JSON is retried."""
        kind = response.headers.get("content-type", "").lower()
        text = response.content.strip()
        if "html" in kind or text.startswith(b"<"):
            raise self._unreadable(response, op, kind or "no content type")
        if not text:
            return None
        try:
            return orjson.loads(text)
        except orjson.JSONDecodeError:
            if "json" in kind:
                raise self._unreadable(response, op, kind) from None
            return None  # plain text ("OK"): the public client reads no body at all

    def _unreadable(self, response: Answer, op: str, kind: str) -> RetryableError:
        return RetryableError(
            f"answer is not JSON ({kind}): {response.text[:120]!r}",
            destination=self.name, operation=op, status=response.status_code,
        )  # fmt: skip

    async def aclose(self) -> None:
        await self._peer.aclose()
