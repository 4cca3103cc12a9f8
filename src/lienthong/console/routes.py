"""The console's routes under ``/admin``: log in and out, the overview, one message, and its replay
(dry run first), discard and reveal, each a plain HTML form.

A POST is taken only from a signed-in operator, from the console's own origin (``Origin``, else
``Referer``; neither: refused), with the session's CSRF token in its form. Forms are read as
``application/x-www-form-urlencoded`` bodies of at most 16 KiB.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any, Literal
from urllib.parse import parse_qs, quote, urlsplit

from fastapi import APIRouter, Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from lienthong.api.admin import AdminAuth, Operations, RateLimited
from lienthong.bus.deadletters import Filter, ReplayPlan
from lienthong.console import pages
from lienthong.console.session import COOKIE, Sessions
from lienthong.model import ERROR_CLASSES
from lienthong.store import units

MAX_FORM_BYTES = 16_384
_HEADERS = {
    "content-security-policy": (
        "default-src 'none'; style-src 'self'; form-action 'self'; frame-ancestors 'none'"
    ),
    "x-frame-options": "DENY",
    "referrer-policy": "same-origin",
    "cache-control": "no-store",
}
Handler = Callable[["_Posted"], Awaitable[Response]]


def console_router(*, ops: Operations, auth: AdminAuth, sessions: Sessions) -> APIRouter:
    router = APIRouter(prefix="/admin", include_in_schema=False)
    console = _Console(ops, auth, sessions)
    router.add_api_route("/static/console.css", console.stylesheet, methods=["GET"])
    router.add_api_route("/login", console.login_form, methods=["GET"])
    router.add_api_route("/login", console.login, methods=["POST"])
    router.add_api_route("/logout", console.logout, methods=["POST"])
    router.add_api_route("", console.overview, methods=["GET"])
    router.add_api_route("/messages/{message_id}", console.message, methods=["GET"])
    for action, handler in (
        ("replay", console.replay),
        ("discard", console.discard),
        ("reveal", console.reveal),
    ):
        router.add_api_route(f"/messages/{{message_id}}/{action}", console.posted(handler), methods=["POST"])
    return router


class _Console:
    def __init__(self, ops: Operations, auth: AdminAuth, sessions: Sessions) -> None:
        self.ops = ops
        self.auth = auth
        self.sessions = sessions
        self.css = resources.files("lienthong.console").joinpath("static/console.css").read_bytes()

    async def stylesheet(self) -> Response:
        return Response(self.css, media_type="text/css", headers={"cache-control": "max-age=3600"})

    async def login_form(self) -> Response:
        return _html(pages.login())

    async def login(self, request: Request) -> Response:
        if not _same_origin(request):
            return _html(pages.login("Refused: the form was not sent from this console."), 403)
        token = (await _form(request)).get("token", "")
        operator = self.auth.identify(token) if token.strip() else None
        if operator is None:
            caller = self.auth.is_caller(token)
            refusal = "This token is a provincial system's, not an operator's." if caller else ""
            return _html(pages.login(refusal or "Not an operator's token."), 403 if caller else 401)
        answer = RedirectResponse("/admin", 303)
        answer.set_cookie(
            COOKIE,
            self.sessions.issue(operator),
            max_age=int(self.sessions.ttl_s),
            path="/",  # the console and the API's docs (server.docs: admin)
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https",
        )
        return answer

    async def logout(self, request: Request) -> Response:
        _, cookie = _signed_in(request, self.sessions)
        form = await _form(request)
        if not _same_origin(request) or not self.sessions.csrf_ok(cookie, form.get("csrf")):
            return _refused()
        self.sessions.end(cookie)
        answer = RedirectResponse("/admin/login", 303)
        answer.delete_cookie(COOKIE, path="/")
        return answer

    async def overview(self, request: Request) -> Response:
        operator, cookie = _signed_in(request, self.sessions)
        if operator is None:
            return RedirectResponse("/admin/login", 303)
        destination = request.query_params.get("destination") or None
        kind = request.query_params.get("error_class") or None
        if kind not in (None, *ERROR_CLASSES):
            kind = None
        body = pages.overview(
            backlog=await self.ops.store.run(units.stats),
            circuits=self.ops.circuit_states(),
            letters=await self.ops.dead_letters.listing(limit=200, where=Filter(destination, kind)),
            runs=await self.ops.store.run(units.recent_runs, 10, None),
            actions=await self.ops.store.run(units.operator_actions, 20, None),
            filters={"destination": destination or "", "error_class": kind or ""},
            destinations=self.ops.destinations,
            kpis=await self.ops.kpis(),
        )
        csrf = self.sessions.csrf(cookie)
        return _html(pages.layout("Overview", body, operator=operator, csrf=csrf))

    async def message(self, request: Request, message_id: str) -> Response:
        operator, cookie = _signed_in(request, self.sessions)
        if operator is None:
            return RedirectResponse("/admin/login", 303)
        done = request.query_params.get("done", "")
        notice = {"replayed": "Replayed: it is pending again.", "discarded": "Discarded for good."}.get(
            done, ""
        )
        return await self._page(message_id, operator, cookie, notice=notice)

    async def _page(
        self,
        message_id: str,
        operator: str,
        cookie: str,
        *,
        reveal_reason: str | None = None,
        status: int = 200,
        plans: Sequence[ReplayPlan] = (),
        notice: str = "",
        problem: str = "",
    ) -> Response:
        reveal_by = operator if reveal_reason is not None else None
        try:
            view = await self.ops.dead_letters.show(
                message_id, reveal_by=reveal_by, reason=reveal_reason or ""
            )
        except LookupError:
            missing = f"<p>No message {pages.esc(message_id)}.</p>"
            return _html(pages.layout("Not found", missing, operator=operator), 404)
        actions = await self.ops.store.run(units.operator_actions, 50, message_id)
        csrf = self.sessions.csrf(cookie)
        body = pages.message_page(
            view,
            csrf=csrf,
            revealed=reveal_by is not None,
            actions=actions,
            plans=plans,
            notice=notice,
            problem=problem,
        )
        return _html(pages.layout(f"Message {message_id}", body, operator=operator, csrf=csrf), status)

    def posted(self, handler: Handler) -> Callable[[Request, str], Awaitable[Response]]:
        """``handler`` behind the checks every POST passes: signed in, same origin, CSRF token."""

        async def checked(request: Request, message_id: str) -> Response:
            operator, cookie = _signed_in(request, self.sessions)
            if operator is None:
                return _html(pages.login("Log in first (or again: the session ended)."), 403)
            form = await _form(request)
            if not _same_origin(request) or not self.sessions.csrf_ok(cookie, form.get("csrf")):
                return _refused()
            return await handler(_Posted(message_id, operator, cookie, form))

        return checked

    async def replay(self, post: _Posted) -> Response:
        mapping: Literal["original", "current"] = (
            "current" if post.form.get("mapping") == "current" else "original"
        )
        dry_run = post.form.get("dry_run") == "1"
        reason = post.form.get("reason", "").strip()
        if not dry_run and not reason:
            return await post.page(self, problem="A replay needs a reason.", status=422)
        try:
            plans, _ = await self.ops.replay(
                [post.message_id], by=post.operator, reason=reason, mapping=mapping, dry_run=dry_run
            )
        except LookupError:
            return await post.page(self, problem="Not a dead letter.", status=409)
        except RateLimited as exc:
            return await post.page(self, problem=str(exc), status=429)
        if dry_run:
            return await post.page(self, plans=plans)
        return _back(post.message_id, "replayed")

    async def discard(self, post: _Posted) -> Response:
        reason = post.form.get("reason", "").strip()
        if not reason:
            return await post.page(self, problem="A discard needs a reason.", status=422)
        try:
            await self.ops.dead_letters.discard([post.message_id], by=post.operator, reason=reason)
        except LookupError:
            return await post.page(self, problem="Not a dead letter.", status=409)
        return _back(post.message_id, "discarded")

    async def reveal(self, post: _Posted) -> Response:
        reason = post.form.get("reason", "").strip()
        if not reason:
            return await post.page(self, problem="A reveal needs a reason.", status=422)
        return await post.page(self, reveal_reason=reason)


@dataclass(frozen=True)
class _Posted:
    """A POST that passed the checks: its message, operator, session cookie and form."""

    message_id: str
    operator: str
    cookie: str
    form: dict[str, str]

    async def page(self, console: _Console, **shown: Any) -> Response:
        return await console._page(self.message_id, self.operator, self.cookie, **shown)


def _refused() -> Response:
    return _html(pages.layout("Refused", "<p>Refused: this form was not sent from the console.</p>"), 403)


def _signed_in(request: Request, sessions: Sessions) -> tuple[str | None, str]:
    cookie = request.cookies.get(COOKIE, "")
    return sessions.operator(cookie), cookie


def _same_origin(request: Request) -> bool:
    """Whether the request says it comes from this console's origin (``Origin``, else ``Referer``)."""
    own = f"{request.url.scheme}://{request.url.netloc}"
    origin = request.headers.get("origin")
    if origin is not None:
        return origin == own
    referer = request.headers.get("referer")
    if referer is None:
        return False
    parts = urlsplit(referer)
    return f"{parts.scheme}://{parts.netloc}" == own


async def _form(request: Request) -> dict[str, str]:
    """The urlencoded form's fields (the first of each name); an oversized or other body reads as empty."""
    kind = request.headers.get("content-type", "").split(";")[0].strip()
    if kind != "application/x-www-form-urlencoded":
        return {}
    body = await request.body()
    if len(body) > MAX_FORM_BYTES:
        return {}
    fields = parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True, max_num_fields=20)
    return {name: values[0] for name, values in fields.items() if not name.startswith("_")}


def _back(message_id: str, done: str) -> Response:
    return RedirectResponse(f"/admin/messages/{quote(message_id, safe='')}?done={done}", 303)


def _html(text: str, status: int = 200) -> Response:
    return HTMLResponse(text, status, headers=_HEADERS)
