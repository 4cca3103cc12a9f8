"""Sandbox EMC: ``TrackingMCDT``, checking the field codes DESIGN §4 lists."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson

from lienthong.sandbox.base import Answer, FaultPlan, Peer, Received, Request

_CODES: dict[str, frozenset[int]] = {
    "Status": frozenset({0, 1, 2, 3, 4}),
    "FormsReception": frozenset({1, 2}),
    "FormsPayments": frozenset({0, 1, 2}),
    "Level": frozenset({0, 1, 3, 4}),
    "IsFromDVCQG": frozenset({0, 1}),
    "IsDVCBC": frozenset({0, 1, 2}),
}
_REQUIRED_TEXT = ("CodeProfile", "SiteId", "CodeTTHC", "NameTTHC", "MaHoSo", "User")


class EmcSandbox(Peer):
    def __init__(
        self,
        *,
        site_id: str = "SANDBOX-SITE",
        bearer_token: str | None = None,
        faults: FaultPlan | None = None,
        tracking_path: str = "/api/TrackingMCDT",
        token_check: Callable[[str], bool] | None = None,
    ) -> None:
        super().__init__(faults)
        self.site_id = site_id
        self.bearer_token = bearer_token
        self.token_check = token_check  # behind an LGSP gateway: accept the tokens it issued
        self.routes[("POST", tracking_path)] = self._track

    async def _track(self, request: Request) -> Answer:
        if self.bearer_token and request.headers.get("authorization") != f"Bearer {self.bearer_token}":
            return Answer.json({"error_code": "401", "message": "unauthorized"}, 401)
        if self.token_check is not None:
            token = request.headers.get("authorization", "").removeprefix("Bearer ")
            if not self.token_check(token):
                return Answer.json({"error_code": "401", "message": "invalid or expired token"}, 401)
        try:
            body = orjson.loads(request.body)
        except orjson.JSONDecodeError:
            return Answer.json({"error_code": "400", "message": "body is not JSON"}, 400)
        problem = self._check(body)
        if problem:
            return Answer.json({"error_code": "400", "message": problem})
        self.record(Received("TrackingMCDT", request.headers.get("idempotency-key"), body["MaHoSo"], body))
        return Answer.json({"error_code": 0, "message": "OK"})

    def _check(self, body: Any) -> str | None:
        if not isinstance(body, dict):
            return "body must be a JSON object"
        missing = [f for f in _REQUIRED_TEXT if not isinstance(body.get(f), str) or not body[f]]
        if missing:
            return f"missing required fields {', '.join(missing)}"
        if body["SiteId"] != self.site_id:
            return f"SiteId {body['SiteId']!r} is not registered"
        for name, allowed in _CODES.items():
            if body.get(name) not in allowed:
                return f"{name}: must be one of {sorted(allowed)}, got {body.get(name)!r}"
        try:
            user = orjson.loads(body["User"])
        except orjson.JSONDecodeError:
            return "User must be a JSON string"
        if not isinstance(user, dict):
            return "User must be a JSON object in a string"
        return None
