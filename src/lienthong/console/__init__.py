"""The web console at ``/admin``: dead letters, backlog, circuits and runs for operators, in plain HTML.

Server-rendered pages (``pages``), no JavaScript and nothing fetched from elsewhere (a province's network
may be air-gapped); a login with an operator's token sets a signed, HttpOnly, SameSite=Strict session
cookie (``session``), and every POST carries a token bound to the session and must come from the
console's own origin (``routes``).
"""

from lienthong.console.routes import console_router

__all__ = ["console_router"]
