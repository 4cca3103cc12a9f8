"""Golden test results for people and for CI: text lines, one JSON object, or JUnit XML.

JUnit XML is the form CI systems (GitLab, Jenkins, GitHub actions that read test reports) show test by
test: one ``<testsuite>`` per spec, one ``<testcase>`` per case, a ``<failure>`` holding the detail.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Sequence
from itertools import groupby
from typing import Any

from lxml import etree

from lienthong.mappings.golden import CaseResult

_MARKS = {"passed": "ok", "failed": "FAIL", "refused": "REFUSED"}


def summary(results: Sequence[CaseResult]) -> dict[str, int]:
    """Counts: cases run, failed (refused updates and stale files included), refused, files written,
    removed and stale."""
    changes = Counter(f.change for r in results for f in r.files)
    return {
        "cases": sum(r.outcome not in ("stale", "removed") for r in results),
        "failed": sum(not r.passed for r in results),
        "refused": sum(r.outcome == "refused" for r in results),
        "written": changes["new"] + changes["changed"],
        "removed": changes["removed"],
        "stale": changes["stale"],
    }


def text_lines(results: Sequence[CaseResult], *, update: bool) -> Iterator[str]:
    """One line per case (``ok``/``FAIL``/``REFUSED``) or per file written, removed or stale, the detail
    of each failure indented below it, and a summary line."""
    for result in results:
        if result.files:
            yield from (f"{f.change:8} {f.path}" for f in result.files)
        else:
            yield f"{_MARKS.get(result.outcome, result.outcome):8} {result.spec} / {result.case}"
        if result.detail and not result.passed:
            yield "    " + result.detail.replace("\n", "\n    ")
    counts = summary(results)
    line = f"{counts['cases']} cases, {counts['failed']} failed"
    if counts["refused"]:
        line += f" ({counts['refused']} refused: they would change what the case expects)"
    if update:
        line += f", {counts['written']} files written, {counts['removed']} removed"
    if counts["stale"]:
        line += f", {counts['stale']} stale files"
    yield line


def as_json(results: Sequence[CaseResult]) -> dict[str, Any]:
    """``{ok, summary, cases: [{spec, case, outcome, detail, duration_s, files: [{path, change}]}]}``."""
    return {
        "ok": all(r.passed for r in results),
        "summary": summary(results),
        "cases": [
            {
                "spec": r.spec,
                "case": r.case,
                "outcome": r.outcome,
                "detail": r.detail,
                "duration_s": r.duration_s,
                "files": [{"path": str(f.path), "change": f.change} for f in r.files],
            }
            for r in results
        ],
    }


def junit_xml(results: Sequence[CaseResult], *, name: str = "lienthong mapping test") -> bytes:
    """The results as JUnit XML: a suite per spec; a refused update or stale files count as failures."""
    root = etree.Element("testsuites", name=name)
    for spec, group in groupby(results, key=lambda r: r.spec):
        cases = list(group)
        suite = etree.SubElement(
            root,
            "testsuite",
            name=spec,
            tests=str(len(cases)),
            failures=str(sum(not r.passed for r in cases)),
            errors="0",
            skipped="0",
            time=f"{sum(r.duration_s for r in cases):.6f}",
        )
        for result in cases:
            _testcase(suite, result)
    root.set("tests", str(len(results)))
    root.set("failures", str(sum(not r.passed for r in results)))
    return bytes(etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True))


def _testcase(suite: etree._Element, result: CaseResult) -> None:
    case = etree.SubElement(suite, "testcase", classname=f"golden.{result.spec}", name=result.case)
    case.set("time", f"{result.duration_s:.6f}")
    if not result.passed:
        first = result.detail.splitlines()[0] if result.detail else result.outcome
        failure = etree.SubElement(case, "failure", message=first, type=result.outcome)
        failure.text = "\n".join([result.detail, *(f"{f.change} {f.path}" for f in result.files)]).strip()
    elif result.files:
        out = etree.SubElement(case, "system-out")
        out.text = "\n".join(f"{f.change} {f.path}" for f in result.files)
