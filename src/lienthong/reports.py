"""A run's report as one self-contained HTML page a manager can read: a summary, a chart of the
discrepancy categories, the units below target, and the top discrepancies with what to do about each.

The page needs nothing from outside: styles inline, the chart an inline SVG, no script, no font or image
to fetch, so it opens the same on an air-gapped desk. Every text is escaped.
"""

from __future__ import annotations

import csv
import html
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

_FORMULA = ("=", "+", "-", "@", "\t", "\r")
_NUMBER = re.compile(r"[+-]?[0-9][0-9.,]*\Z")


def csv_cell(value: object) -> object:
    """``value`` made safe for a spreadsheet: text starting as a formula would (``=``, ``+``, ``-``, ``@``,
    a tab or a return) is prefixed with ``'`` (OWASP's CSV injection advice), unless it is a plain number.
    Dossier codes, references and names come from outside."""
    if isinstance(value, str) and value.startswith(_FORMULA) and not _NUMBER.match(value):
        return "'" + value
    return value


def write_csv(path: Path, header: Sequence[str], rows: Iterable[Sequence[object]]) -> Path:
    """A CSV report whose every cell went through ``csv_cell``."""
    with path.open("w", encoding="utf-8", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(header)
        writer.writerows([csv_cell(cell) for cell in row] for row in rows)
    return path


TOP = 50
"""How many discrepancies the page lists (the JSON and CSV files hold them all)."""


@dataclass(frozen=True)
class Discrepancy:
    """One line of the page's table: what, about which reference, the detail, and what to do."""

    kind: str
    reference: str
    detail: str
    where: str = ""


@dataclass(frozen=True)
class UnitBelowTarget:
    unit: str
    kpi: str
    value: float
    target: float


@dataclass(frozen=True)
class RunPage:
    """What the page shows of one run."""

    title: str
    run_id: str
    outcome: str
    summary: Sequence[tuple[str, str]]
    categories: Mapping[str, int]
    advice: Mapping[str, str]
    discrepancies: Sequence[Discrepancy] = ()
    units_below_target: Sequence[UnitBelowTarget] = field(default_factory=tuple)


_STYLE = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,Arial,sans-serif;margin:2rem;color:#1f2933;
max-width:70rem}
h1{font-size:1.5rem;margin-bottom:.25rem}h2{font-size:1.15rem;margin-top:2rem}
.meta{color:#52606d}.ok{color:#1b7f3b}.bad{color:#b42318}
table{border-collapse:collapse;width:100%}th,td{text-align:left;padding:.35rem .6rem;
border-bottom:1px solid #d9e2ec;vertical-align:top}th{background:#f0f4f8}
td.n{text-align:right;font-variant-numeric:tabular-nums}
dl{display:grid;grid-template-columns:max-content auto;gap:.25rem 1.5rem}dt{color:#52606d}dd{margin:0}
"""


def render(page: RunPage) -> str:
    """The page as HTML text."""
    e = html.escape
    total = sum(page.categories.values())
    verdict = "ok" if page.outcome == "succeeded" and total == 0 else "bad"
    parts = [
        "<!doctype html>",
        '<html lang="vi"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{e(page.title)}</title><style>{_STYLE}</style></head><body>",
        f"<h1>{e(page.title)}</h1>",
        f'<p class="meta">run <code>{e(page.run_id)}</code>: <strong class="{verdict}"'
        f' id="outcome">{e(page.outcome)}</strong>, <span id="discrepancies">{total:,}</span>'
        " discrepancies</p>",
        "<h2>Summary</h2><dl>",
        *(f"<dt>{e(label)}</dt><dd>{e(value)}</dd>" for label, value in page.summary),
        "</dl>",
        "<h2>Discrepancies by category</h2>",
        _chart(page.categories),
        _units(page.units_below_target),
        _top(page),
        "</body></html>",
    ]
    return "\n".join(parts)


def write(page: RunPage, path: Path) -> Path:
    """Write the page to ``path`` (its directory is made); the path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render(page), encoding="utf-8")
    return path


def _chart(categories: Mapping[str, int]) -> str:
    """Horizontal bars, one per category, as an inline SVG (with its numbers as text, for a reader)."""
    if not categories:
        return "<p>None.</p>"
    e = html.escape
    widest = max(categories.values()) or 1
    row, label_w, bar_w = 28, 260, 420
    height = row * len(categories) + 8
    bars = []
    for i, (kind, count) in enumerate(sorted(categories.items(), key=lambda kv: -kv[1])):
        y = 4 + i * row
        width = max(2, round(bar_w * count / widest)) if count else 0
        bars.append(
            f'<text x="0" y="{y + 18}" font-size="14">{e(kind)}</text>'
            f'<rect x="{label_w}" y="{y + 4}" width="{width}" height="18" fill="#b42318"/>'
            f'<text x="{label_w + width + 6}" y="{y + 18}" font-size="14">{count:,}</text>'
        )
    return (
        f'<svg role="img" aria-label="discrepancies by category" width="{label_w + bar_w + 80}"'
        f' height="{height}" xmlns="http://www.w3.org/2000/svg">{"".join(bars)}</svg>'
    )


def _units(units: Sequence[UnitBelowTarget]) -> str:
    if not units:
        return "<h2>Units below target</h2><p>None.</p>"
    e = html.escape
    rows = "".join(
        f"<tr><td>{e(u.unit)}</td><td>{e(u.kpi)}</td><td class='n'>{u.value:.1%}</td>"
        f"<td class='n'>{u.target:.0%}</td></tr>"
        for u in units
    )
    return (
        "<h2>Units below target</h2><table><thead><tr><th>unit</th><th>KPI</th><th>value</th>"
        f"<th>target</th></tr></thead><tbody>{rows}</tbody></table>"
    )


def _top(page: RunPage) -> str:
    e = html.escape
    shown = page.discrepancies[:TOP]
    if not shown:
        return "<h2>Top discrepancies</h2><p>None.</p>"
    rows = "".join(
        f"<tr><td>{e(d.kind)}</td><td>{e(d.reference)}</td><td>{e(d.detail)}</td><td>{e(d.where)}</td>"
        f"<td>{e(page.advice.get(d.kind, ''))}</td></tr>"
        for d in shown
    )
    more = len(page.discrepancies) - len(shown)
    note = f"<p class='meta'>{more:,} more in the JSON and CSV files.</p>" if more > 0 else ""
    return (
        f"<h2>Top discrepancies</h2><table><thead><tr><th>category</th><th>reference</th><th>detail</th>"
        f"<th>where</th><th>what to do</th></tr></thead><tbody>{rows}</tbody></table>{note}"
    )
