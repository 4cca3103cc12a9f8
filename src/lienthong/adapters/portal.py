"""National Public Service Portal (Cổng DVCQG) adapter: session login, DongBoHoSoMC, CapNhatTienDoHoSoMC.

Contract (docs/contracts.md §5): JSON POSTs; log in with ``{"username","password"}`` and the ``dstcode``
header to get a ``session``; every later call carries ``session``, ``madonvi`` and ``service`` in its body
and ``dstcode`` again. ``madonvi`` is one value per connection, as a public client configures it
(``PortalCredentials.madonvi``); unset, each event's unit code is sent instead (not what that client
does). Replies are ``{"error_code": 0|"00", "message", "result"}``. DongBoHoSoMC must say whether it
creates or updates (``isUpdating``), which ``TraCuuHoSo`` tells; dossiers we have seen on the portal are
remembered so their later syncs skip the look-up (a miss costs only one extra look-up).
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import orjson

from lienthong.adapters.base import Receipt, json_body, map_transport_errors, raise_for_status
from lienthong.adapters.credentials import CredentialCache
from lienthong.adapters.http import HttpPeer
from lienthong.errors import PermanentError
from lienthong.model import Message

SUCCESS_CODES = frozenset({"0", "00"})


@dataclass(frozen=True)
class PortalCredentials:
    dstcode: str
    username: str
    password: str
    login_path: str = "/api/auth/login"
    service_path: str = "/api/service"
    madonvi: str | None = None  # the connection's unit code; None: each event's unit_code
    # (assumed) error codes the portal uses for a missing or expired session; we log in again once.
    session_expired_codes: frozenset[str] = frozenset({"401"})


@dataclass(frozen=True)
class _Caller:
    """Who a call is for: the unit (``madonvi`` when the connection has none of its own) and the call's
    idempotency key (a message's id)."""

    unit_code: str
    key: str

    @classmethod
    def of(cls, message: Message) -> _Caller:
        return cls(message.event.unit_code, message.message_id)


class PortalAdapter:
    """Delivers dossier syncs and progress steps to the portal over an injected HTTP peer."""

    operations = ("DongBoHoSoMC", "CapNhatTienDoHoSoMC")

    def __init__(
        self, name: str, peer: HttpPeer, credentials: PortalCredentials, *, remember: int = 100_000
    ) -> None:
        self.name = name
        self._peer = peer
        self._creds = credentials
        self._service = peer.endpoint(credentials.service_path)
        self._login_endpoint = peer.endpoint(credentials.login_path)
        self._session = CredentialCache(self._login)  # a session lasts until the portal says it expired
        self._on_portal: OrderedDict[str, None] = OrderedDict()
        self._remember = remember

    async def deliver(self, message: Message, body: dict[str, Any]) -> Receipt:
        """``body`` is one item of the operation's ``data`` list (the bundled portal_* mappings)."""
        op = message.operation
        with map_transport_errors(self.name, op):
            if op == "DongBoHoSoMC":
                return await self._sync(message, body)
            if op == "CapNhatTienDoHoSoMC":
                await self._call(op, _Caller.of(message), {"data": [body]})
                return Receipt(http_status=200)
        raise PermanentError(f"unknown operation {op!r}", destination=self.name, operation=op)

    async def aclose(self) -> None:
        await self._peer.aclose()

    async def _sync(self, message: Message, item: dict[str, Any]) -> Receipt:
        code = item.get("MaHoSo")
        if not isinstance(code, str) or not code:
            raise PermanentError(
                "the mapped dossier has no MaHoSo; the mapping must produce it",
                destination=self.name,
                operation="DongBoHoSoMC",
            )
        if code not in self._on_portal:
            found = await self._call("TraCuuHoSo", _Caller.of(message), {"mahoso": code})
            if found.get("result"):
                self._seen(code)
        updating = "True" if code in self._on_portal else "False"
        await self._call("DongBoHoSoMC", _Caller.of(message), {"isUpdating": updating, "data": [item]})
        self._seen(code)
        return Receipt(http_status=200)

    def _seen(self, code: str) -> None:
        self._on_portal[code] = None
        self._on_portal.move_to_end(code)
        if len(self._on_portal) > self._remember:
            self._on_portal.popitem(last=False)

    async def lookup(self, dossier_code: str, unit_code: str) -> dict[str, Any] | None:
        """The portal's record of a dossier (``TraCuuHoSo``), or None when it has none. Raises
        RetryableError or PermanentError as a delivery would."""
        with map_transport_errors(self.name, "TraCuuHoSo"):
            found = await self._call(
                "TraCuuHoSo", _Caller(unit_code, f"lookup:{dossier_code}"), {"mahoso": dossier_code}
            )
        result = found.get("result")
        if isinstance(result, list) and result and isinstance(result[0], dict):
            self._seen(dossier_code)
            return result[0]
        # Not there (any more): the next sync must create it, not update what this adapter remembers.
        self._on_portal.pop(dossier_code, None)
        return None

    async def _call(self, service: str, caller: _Caller, body: dict[str, Any]) -> dict[str, Any]:
        """POST one service call; log in again once if the portal says the session is gone."""

        async def post(session: str) -> dict[str, Any] | None:
            return await self._post(service, caller, session, body)

        answer = await self._session.call(post, refused=lambda answer: answer is None)
        if answer is None:
            raise PermanentError(
                "the portal refused a fresh session", destination=self.name, operation=service
            )
        return answer

    async def _post(
        self, service: str, caller: _Caller, session: str, body: dict[str, Any]
    ) -> dict[str, Any] | None:
        """The portal's answer; None when it says the session is gone."""
        madonvi = self._creds.madonvi or caller.unit_code
        payload = {"session": session, "madonvi": madonvi, "service": service, **body}
        headers = {
            "dstcode": self._creds.dstcode,
            "content-type": "application/json",
            "idempotency-key": caller.key,
        }
        response = await self._service.post(orjson.dumps(payload), headers)
        if response.status_code == 401:
            return None
        raise_for_status(response, self.name, service)
        answer = json_body(response, self.name, service)
        code = str(answer.get("error_code"))
        if code in self._creds.session_expired_codes:
            return None
        if code not in SUCCESS_CODES:
            reason = f"portal refused {service}: {answer.get('message', '')}".rstrip(": ")
            raise PermanentError(
                reason, destination=self.name, operation=service, status=200, remote_code=code
            )
        return answer

    async def probe(self) -> str:
        """Log in (``check --connect``): the credentials and dstcode work, and nothing else is sent."""
        with map_transport_errors(self.name, "login"):
            await self._session.get()
        return "portal login ok (a session was given)"

    async def _login(self) -> tuple[str, None]:
        body = {"username": self._creds.username, "password": self._creds.password}
        headers = {"dstcode": self._creds.dstcode, "content-type": "application/json"}
        response = await self._login_endpoint.post(orjson.dumps(body), headers)
        raise_for_status(response, self.name, "login")
        answer = json_body(response, self.name, "login")
        session = answer.get("session")
        if str(answer.get("error_code")) not in SUCCESS_CODES or not isinstance(session, str) or not session:
            raise PermanentError(
                f"portal login refused: {answer.get('message', 'no session in the answer')}",
                destination=self.name,
                operation="login",
                remote_code=str(answer.get("error_code")),
            )
        return session, None
