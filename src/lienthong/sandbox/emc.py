"""Sandbox EMC: ``TrackingMCDT``, checking the field codes and the ``User`` string (docs/contracts.md §4).

``User`` must be a JSON string holding ``{"ID_local", "ID_QG", "TYPE", "LOCATION"}`` as the public client
writes it: TYPE "1" for a 10-character id (a tax code), "2" otherwise; LOCATION the province's code (checked
when the sandbox is given ``province_code``). EMC's real reply body is not public: this one answers
``{"error_code": 0, "message": "OK"}``, and a refusal with a non-zero ``error_code`` (our assumption).
"""

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
_USER_KEYS = ("ID_local", "ID_QG", "TYPE", "LOCATION")
_REQUIRED_TEXT = ("CodeProfile", "SiteId", "CodeTTHC", "NameTTHC", "MaHoSo", "User")


class EmcSandbox(Peer):
    def __init__(
        self,
        *,
        site_id: str = "SANDBOX-SITE",
        province_code: str | None = None,
        bearer_token: str | None = None,
        faults: FaultPlan | None = None,
        tracking_path: str = "/api/TrackingMCDT",
        token_check: Callable[[str], bool] | None = None,
    ) -> None:
        super().__init__(faults)
        self.site_id = site_id
        self.province_code = province_code
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
        return self._check_user(body["User"])

    def _check_user(self, text: str) -> str | None:
        try:
            user = orjson.loads(text)
        except orjson.JSONDecodeError:
            return "User must be a JSON string"
        if not isinstance(user, dict) or set(user) != set(_USER_KEYS):
            return f"User must hold exactly {', '.join(_USER_KEYS)}, got {text!r}"
        if not all(isinstance(user[k], str) and user[k] for k in _USER_KEYS):
            return f"User: {', '.join(_USER_KEYS)} must be non-empty strings"
        expected = "1" if len(user["ID_local"]) == 10 else "2"
        if user["TYPE"] != expected:
            return f"User.TYPE must be {expected!r} for an id of {len(user['ID_local'])} characters"
        if self.province_code is not None and user["LOCATION"] != self.province_code:
            return f"User.LOCATION {user['LOCATION']!r} is not this province ({self.province_code})"
        return None
