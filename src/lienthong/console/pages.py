"""The console's pages as HTML text. Every value from the store or a request goes through ``esc``
(``html.escape``, quotes included): a dead letter's error is whatever a peer answered."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from html import escape
from typing import Any
from urllib.parse import quote

from lienthong.api.admin import Kpis
from lienthong.bus.deadletters import ReplayPlan, error_class
from lienthong.checks.jobs import KpiRow
from lienthong.model import ERROR_CLASSES, DestinationStats, MessageView
from lienthong.scheduler.runs import RunRecord
from lienthong.store.contract import OperatorAction
from lienthong.timefmt import moment


def esc(value: object) -> str:
    return escape("" if value is None else str(value), quote=True)


def when(ms: int | None) -> str:
    return esc(moment(ms)) if ms else ""


def layout(title: str, body: str, *, operator: str | None = None, csrf: str = "") -> str:
    signed_in = (
        f'<span>{esc(operator)}</span><form method="post" action="/admin/logout">{hidden(csrf)}'
        '<button type="submit">Log out</button></form>'
        if operator
        else ""
    )
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f"<title>{esc(title)} · lienthong</title>"
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<link rel="stylesheet" href="/admin/static/console.css"></head><body>'
        f'<header><a href="/admin"><strong>lienthong</strong> console</a>{signed_in}</header>'
        f"<main><h1>{esc(title)}</h1>{body}</main></body></html>"
    )


def hidden(csrf: str) -> str:
    return f'<input type="hidden" name="csrf" value="{esc(csrf)}">' if csrf else ""


def login(problem: str = "") -> str:
    shown = f'<p class="problem" role="alert">{esc(problem)}</p>' if problem else ""
    form = (
        f'{shown}<form method="post" action="/admin/login">'
        '<label>Operator token <input type="password" name="token" autocomplete="off" required></label> '
        '<button type="submit">Log in</button></form>'
        "<p>An operator's token from <code>admin.tokens</code> (not a provincial system's).</p>"
    )
    return layout("Log in", form)


def table(headers: Sequence[str], rows: Iterable[Sequence[str]], empty: str) -> str:
    body = "".join("<tr>" + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>" for row in rows)
    if not body:
        return f"<p>{esc(empty)}</p>"
    head = "".join(f"<th>{esc(h)}</th>" for h in headers)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def link(message_id: str) -> str:
    return f'<a href="/admin/messages/{quote(message_id, safe="")}">{esc(message_id)}</a>'


def overview(
    *,
    backlog: Sequence[DestinationStats],
    circuits: Sequence[Mapping[str, str]],
    letters: Sequence[MessageView],
    runs: Sequence[RunRecord],
    actions: Sequence[OperatorAction],
    filters: Mapping[str, str],
    destinations: Sequence[str],
    kpis: Kpis,
) -> str:
    parts = [
        "<h2>Backlog</h2>",
        table(
            ("destination", "pending", "in flight", "dead", "oldest pending"),
            (
                (
                    esc(s.destination),
                    _n(s.pending),
                    _n(s.inflight),
                    _n(s.dead),
                    when(s.oldest_pending_created_ms),
                )
                for s in backlog
            ),
            "Nothing waiting and no dead letters.",
        ),
        "<h2>Circuits</h2>",
        table(
            ("destination", "state"),
            (
                (esc(c["destination"]), f'<span class="state-{esc(c["state"])}">{esc(c["state"])}</span>')
                for c in circuits
            ),
            "No destinations.",
        ),
        "<h2>Dead letters</h2>",
        _filter_form(filters, destinations),
        table(
            ("message", "destination", "dossier", "died", "class", "last error"),
            (
                (
                    link(m.message_id),
                    esc(f"{m.destination}.{m.operation}"),
                    esc(m.dossier_code),
                    when(m.updated_ms),
                    esc(error_class(m.last_error)),
                    f'<span class="error">{esc(m.last_error)}</span>',
                )
                for m in letters
            ),
            "No dead letters.",
        ),
        "<h2>Recent runs</h2>",
        table(
            ("job", "run", "attempt", "outcome", "started", "counts"),
            (
                (
                    esc(r.job),
                    esc(r.run_id),
                    _n(r.attempt),
                    esc(r.outcome),
                    when(r.started_ms),
                    _counts(r.counts),
                )
                for r in runs
            ),
            "No runs yet.",
        ),
        *_kpis(kpis),
        "<h2>Operators' actions</h2>",
        _actions(actions),
    ]
    return "".join(parts)


KPI_NAMES = {
    "online": "online",
    "fully_online": "fully online",
    "on_time": "on time",
    "ecopy": "e-copies",
    "signed": "results signed",
}


def _kpis(kpis: Kpis) -> list[str]:
    """Every unit's rates against their targets, a unit below any target first; from the latest run."""
    heading = "<h2>KPIs by unit</h2>"
    if kpis.run is None or not kpis.rows:
        return [heading, f"<p>{esc(kpis.missing or 'The latest KPI run found no dossiers.')}</p>"]
    by_unit: dict[str, dict[str, KpiRow]] = {}
    for row in kpis.rows:
        by_unit.setdefault(row.unit, {})[row.kpi] = row
    units = sorted(by_unit, key=lambda u: (not any(r.below for r in by_unit[u].values()), u))

    def cell(row: KpiRow | None) -> str:
        if row is None:
            return ""
        rate = "–" if row.rate is None else f"{row.rate:.1%}"
        shown = f"{esc(rate)} <small>/ {row.target:.0%}</small>"
        return f'<span class="below">{shown} below</span>' if row.below else shown

    return [
        heading,
        f"<p>From the run {esc(kpis.run.run_id)}, as of {when(kpis.run.window_end_ms)}.</p>",
        table(
            ("unit", *KPI_NAMES.values()),
            ((esc(u), *(cell(by_unit[u].get(k)) for k in KPI_NAMES)) for u in units),
            "No units.",
        ),
    ]


def message_page(
    view: MessageView,
    *,
    csrf: str,
    revealed: bool,
    actions: Sequence[OperatorAction],
    plans: Sequence[ReplayPlan] = (),
    notice: str = "",
    problem: str = "",
) -> str:
    facts = table(
        ("field", "value"),
        (
            ("status", f"<strong>{esc(view.status)}</strong>"),
            ("destination", esc(f"{view.destination}.{view.operation}")),
            ("dossier", esc(view.dossier_code)),
            ("event", esc(view.event_id)),
            ("attempts", _n(view.attempts)),
            ("created", when(view.created_ms)),
            ("updated", when(view.updated_ms)),
            ("mapping", esc(f"{view.mapping or ''} {(view.mapping_hash or '')[:12]}")),
            ("error class", esc(error_class(view.last_error))),
            ("last error", f'<span class="error">{esc(view.last_error)}</span>'),
        ),
        "",
    )
    attempts = table(
        ("attempt", "started", "took", "outcome", "http", "error"),
        (
            (
                _n(a.attempt),
                when(a.started_ms),
                esc(f"{a.duration_ms} ms"),
                esc(a.outcome),
                esc(a.http_status),
                f'<span class="error">{esc(a.error)}</span>',
            )
            for a in view.history
        ),
        "No attempts.",
    )
    parts = [
        f'<p class="notice" role="status">{esc(notice)}</p>' if notice else "",
        f'<p class="problem" role="alert">{esc(problem)}</p>' if problem else "",
        _plans(plans),
        facts,
        "<h2>Attempts</h2>",
        "<p>Personal data shown unmasked: this was recorded.</p>" if revealed else "",
        attempts,
    ]
    base = f"/admin/messages/{quote(view.message_id, safe='')}"
    if view.status == "dead":
        parts.append(_dead_letter_forms(base, csrf))
    if not revealed:
        parts.append(
            f'<h2>Personal data</h2><form class="inline" method="post" action="{base}/reveal">{hidden(csrf)}'
            '<label>Why <input type="text" name="reason" required></label> '
            '<button type="submit">Reveal (recorded)</button></form>'
        )
    parts += ["<h2>Operators' actions</h2>", _actions(actions)]
    return "".join(parts)


def _dead_letter_forms(base: str, csrf: str) -> str:
    mapping = (
        '<label>Mapping <select name="mapping"><option value="original">original</option>'
        '<option value="current">current</option></select></label> '
    )
    return (
        "<h2>Replay or discard</h2>"
        f'<form class="inline" method="post" action="{base}/replay">{hidden(csrf)}{mapping}'
        '<input type="hidden" name="dry_run" value="1"><button type="submit">Dry run</button></form>'
        f'<form class="inline" method="post" action="{base}/replay">{hidden(csrf)}{mapping}'
        '<label>Why <input type="text" name="reason" required></label> '
        '<button type="submit">Replay</button></form>'
        f'<form class="inline" method="post" action="{base}/discard">{hidden(csrf)}'
        '<label>Why <input type="text" name="reason" required></label> '
        '<button type="submit">Discard</button></form>'
    )


def _plans(plans: Sequence[ReplayPlan]) -> str:
    if not plans:
        return ""
    lines = "".join(
        f"<li>{esc(p.message.message_id)}: "
        + (f"would fail again: {esc(p.problem)}" if p.problem else "maps cleanly")
        + (" (new mapping version)" if p.changes_version else "")
        + "</li>"
        for p in plans
    )
    return (
        f'<div class="notice" role="status"><strong>Dry run, nothing changed</strong><ul>{lines}</ul></div>'
    )


def _filter_form(filters: Mapping[str, str], destinations: Sequence[str]) -> str:
    def options(values: Sequence[str], chosen: str) -> str:
        first = '<option value="">any</option>'
        return first + "".join(
            f'<option value="{esc(v)}"{" selected" if v == chosen else ""}>{esc(v)}</option>' for v in values
        )

    chosen_destination = options(destinations, filters.get("destination", ""))
    chosen_class = options(ERROR_CLASSES, filters.get("error_class", ""))
    return (
        '<form method="get" action="/admin">'
        f'<label>Destination <select name="destination">{chosen_destination}</select></label> '
        f'<label>Error class <select name="error_class">{chosen_class}</select></label> '
        '<button type="submit">Filter</button></form>'
    )


def _actions(actions: Sequence[OperatorAction]) -> str:
    return table(
        ("when", "who", "what", "message", "why"),
        ((when(a.at_ms), esc(a.actor), esc(a.action), link(a.message_id), esc(a.reason)) for a in actions),
        "None yet.",
    )


def _n(value: int) -> str:
    return esc(value)


def _counts(counts: Mapping[str, Any]) -> str:
    return esc(", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
