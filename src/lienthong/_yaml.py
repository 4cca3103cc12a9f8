"""YAML loading that remembers where each value came from, so errors can name the line.

PyYAML's safe loader builds plain values and forgets positions; its node graph keeps them. We compose the
node graph once, construct the values from it, and walk it again for the line of every path.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml

from lienthong.errors import ConfigError, ConfigIssue

PathKey = tuple[str | int, ...]
_Explain = Callable[[re.Match[str], Any], str]


class _Loader(yaml.SafeLoader):
    """The safe loader with YAML 1.2 booleans: only true/false. YAML 1.1 also reads on/off/yes/no as
    booleans, which would turn a route's ``on:`` key into ``True``, and dates as dates."""


# YAML 1.2 also has no timestamps: 2026-11-23 stays text, as it would in JSON.
_YAML11_ONLY = ("tag:yaml.org,2002:bool", "tag:yaml.org,2002:timestamp")
_Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag not in _YAML11_ONLY]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)

_REFERENCE = re.compile(r"\$\$|\$\{([^{}]*)\}")
_UNCLOSED = re.compile(r"\$\$|\$\{[^{}]*\}|(\$\{)")
"""Escapes and whole references pass; a ``${`` that starts neither (unclosed, nesting another) is caught."""
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_MAX_SECRET_BYTES = 65_536
_FORMS = "${NAME}, ${NAME:-default}, ${file:PATH}, or $$ for a $"


@dataclass(frozen=True)
class LocatedDocument:
    """A parsed YAML document and the 1-based line of each path in it."""

    data: Any
    lines: dict[PathKey, int]
    file: str

    def line_of(self, path: PathKey) -> int | None:
        """The line of ``path``, or of its nearest ancestor that has one."""
        for end in range(len(path), -1, -1):
            line = self.lines.get(path[:end])
            if line is not None:
                return line
        return None

    def issue(self, path: PathKey, message: str) -> ConfigIssue:
        return ConfigIssue(path=format_path(path), message=message, file=self.file, line=self.line_of(path))


def format_path(path: PathKey) -> str:
    """``("routes", 2, "deliver", 0, "to")`` → ``routes[2].deliver[0].to``."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def load_located(text: str, file: str) -> LocatedDocument:
    """Parse one YAML document. Raises ConfigError naming the file and line of a syntax error."""
    try:
        node = yaml.compose(text, Loader=_Loader)
        data = yaml.load(text, Loader=_Loader)  # noqa: S506 (_Loader is a SafeLoader)
    except yaml.YAMLError as exc:
        raise ConfigError([syntax_issue(exc, text, file)]) from exc
    lines: dict[PathKey, int] = {}
    twice: list[ConfigIssue] = []
    if node is not None:
        _collect_lines(node, (), lines, twice, file)
    if twice:  # YAML keeps the last of two equal keys, silently: an edit lost (a section written twice)
        raise ConfigError(twice)
    return LocatedDocument(data=data, lines=lines, file=file)


def syntax_issue(exc: yaml.YAMLError, text: str, file: str) -> ConfigIssue:
    """A YAML syntax error as an integrator can act on it: line, column, what is wrong in plain words and
    what to do, instead of the parser's terms (``<block end>``, ``simple key``, ``token``)."""
    if isinstance(exc, yaml.reader.ReaderError):
        line = text.count("\n", 0, exc.position) + 1
        column = exc.position - (text.rfind("\n", 0, exc.position) + 1) + 1
        what = f"a control character (#x{exc.character:04x}) that YAML does not allow: remove it"
        return _syntax(file, line, column, what)
    problem = str(getattr(exc, "problem", "") or "")
    context = str(getattr(exc, "context", "") or "")
    mark = getattr(exc, "problem_mark", None)
    opened = getattr(exc, "context_mark", None)
    for pattern, in_context, point, explain in _SYNTAX_HINTS:
        found = re.search(pattern, problem)
        if found is None or in_context not in context:
            continue
        where = opened if point == "opening" and opened is not None else mark
        what = explain(found, opened)
        if where is None:
            return _syntax(file, None, None, what)
        return _syntax(file, where.line + 1, where.column + (0 if point == "before" else 1), what)
    what = (
        "the structure breaks here: check the indentation, colons, quotes and brackets of this line and above"
    )
    return _syntax(file, mark.line + 1 if mark else None, mark.column + 1 if mark else None, what)


def _syntax(file: str, line: int | None, column: int | None, what: str) -> ConfigIssue:
    at = f"column {column}: " if column is not None else ""
    return ConfigIssue(path="", message=f"invalid YAML: {at}{what}", file=file, line=line)


def _at(mark: Any) -> str:
    return f"line {mark.line + 1}, column {mark.column + 1}" if mark is not None else "above"


def _unclosed(bracket: str, closing: str) -> _Explain:
    kind, part = ("list", "an item") if bracket == "[" else ("object", "a value")

    def explain(found: re.Match[str], opened: Any) -> str:
        got = found.group(1)
        if got == "<stream end>":
            return (
                f"the {kind} opened with {bracket} at {_at(opened)} is never closed: close it with {closing}"
            )
        instead = "more" if got.startswith("<") else got
        return (
            f"the {kind} opened with {bracket} at {_at(opened)} is not closed: expected , or {closing} but"
            f" found {instead}; close it with {closing}, or quote {part} holding , : [ ] {{ }} or #"
        )

    return explain


def _hint(text: str) -> _Explain:
    return lambda found, opened: text.format(*found.groups(), opened=_at(opened))


# (a pattern of PyYAML's problem, a word its context must hold, where to point: where the parser stopped,
# where the construct it was reading opened, or one character before the stop (the backslash of a bad
# escape), the plain explanation). First match wins.
_SYNTAX_HINTS: list[tuple[str, str, Literal["here", "opening", "before"], _Explain]] = [
    (
        r"found character '\\t'|tab character",
        "",
        "here",
        _hint("a tab: YAML indents with spaces only; replace it"),
    ),
    (
        r"found character '(.)' that cannot start any token",
        "",
        "here",
        _hint("a value cannot start with {0} unless it is quoted: put it in quotes, e.g. '{0}...'"),
    ),
    (
        r"mapping values are not allowed here",
        "",
        "here",
        _hint(
            "a colon and a space inside a value: put the value in quotes if it holds ': ', or indent this"
            " line like the key above it"
        ),
    ),
    (
        r"could not find expected ':'",
        "",
        "opening",
        _hint("a line with no colon: write key: value, or quote text that runs onto the next line"),
    ),
    (r"expected ',' or '\]', but got '?([^']*)'?", "", "here", _unclosed("[", "]")),
    (r"expected ',' or '\}', but got '?([^']*)'?", "", "here", _unclosed("{", "}")),
    (
        r"found unexpected end of stream",
        "quoted scalar",
        "opening",
        _hint("the quoted text that opens here is never closed: add the closing quote"),
    ),
    (
        r"found unknown escape character '?([^']*)'?",
        "",
        "before",
        _hint(
            "in double quotes a backslash starts an escape, and \\{0} is none: use single quotes for text"
            " with backslashes (a regular expression: '\\d+'), or write \\\\ for one backslash"
        ),
    ),
    (
        r"expected <block end>, but found '\?'",
        "",
        "here",
        _hint(
            "a key among the - items of a list, at their indentation: indent it further to belong to an"
            " item, or less to belong to the object around the list"
        ),
    ),
    (
        r"expected <block end>, but found '<scalar>'",
        "",
        "here",
        _hint(
            "text after a complete value: put the whole value in quotes, or start the next key on a new line"
        ),
    ),
    (
        r"expected <block end>, but found '<block (?:mapping|sequence) start>'",
        "",
        "here",
        _hint(
            "this line is indented differently from the keys above it (from {opened}): the keys of one"
            " object start in the same column"
        ),
    ),
    (
        r"expected <block end>, but found '([\]}])'",
        "",
        "here",
        _hint("a closing {0} with no opening bracket before it: remove it, or quote the value"),
    ),
    (
        r"expected the node content, but found '([^']*)'",
        "",
        "here",
        _hint("a value cannot start with {0}: quote it"),
    ),
    (
        r"found undefined alias '([^']*)'",
        "",
        "here",
        _hint("*{0} refers to an anchor &{0} that is not defined above: quote text that starts with *"),
    ),
    (r"second occurrence", "duplicate anchor", "here", _hint("an anchor (&name) defined twice: rename one")),
    (
        r"could not determine a constructor for the tag '([^']*)'",
        "",
        "here",
        _hint("the tag {0} is not supported, only plain values: remove it, or quote text that starts with !"),
    ),
]


def _collect_lines(
    node: yaml.Node, path: PathKey, lines: dict[PathKey, int], twice: list[ConfigIssue], file: str
) -> None:
    lines.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        first: dict[str, int] = {}
        for key_node, value_node in node.value:
            name, line = str(key_node.value), key_node.start_mark.line + 1
            if name in first and name != "<<":  # merge keys (<<: *anchor) may repeat
                message = f"written twice, on line {first[name]} and here: YAML would keep only this one"
                twice.append(
                    ConfigIssue(path=format_path((*path, name)), message=message, file=file, line=line)
                )
            first.setdefault(name, line)
            key = (*path, name)
            lines[key] = line
            _collect_lines(value_node, key, lines, twice, file)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _collect_lines(item, (*path, index), lines, twice, file)


def substitute_env(
    doc: LocatedDocument, env: Mapping[str, str], issues: list[ConfigIssue] | None = None
) -> Any:
    """Resolve references in every string of the document, so secrets stay out of files:

    - ``${NAME}``, anywhere in a string: the environment variable; unset or empty is an error (an empty
      secret must not pass);
    - ``${NAME:-default}``: the variable, or ``default`` when it is unset or empty (as a shell does);
    - ``${file:PATH}``: a file's content without its last newline (systemd credentials, container
      secrets); a relative PATH is read from the config file's directory;
    - ``$$``: a literal ``$``.

    Every problem is collected, each naming its path, and raised together; or, given ``issues``, added
    to it, the document returned with each bad reference left as written (so that the rest of the file
    can still be checked)."""
    raise_them = issues is None
    issues = [] if issues is None else issues
    base = Path(doc.file).parent

    def resolve(match: re.Match[str], path: PathKey) -> str:
        if match.group(0) == "$$":
            return "$"
        inner = match.group(1)
        if inner.startswith("file:"):
            return read_secret(inner.removeprefix("file:"), path)
        name, sep, default = inner.partition(":-")
        if _ENV_NAME.fullmatch(name) is None:
            issues.append(
                doc.issue(
                    path,
                    f"${{{inner}}} is no reference: use {_FORMS}",
                )
            )
            return match.group(0)
        value = env.get(name)
        if value:
            return value
        if sep:
            return default
        problem = "is not set" if value is None else "is empty"
        issues.append(doc.issue(path, f"environment variable {name} {problem}"))
        return match.group(0)

    def read_secret(name: str, path: PathKey) -> str:
        where = base / name
        try:
            with where.open("rb") as handle:
                data = handle.read(_MAX_SECRET_BYTES + 1)
        except OSError as exc:
            issues.append(doc.issue(path, f"cannot read the secret file {name}: {exc.strerror or exc}"))
            return ""
        if len(data) > _MAX_SECRET_BYTES:
            issues.append(
                doc.issue(path, f"the secret file {name} is larger than {_MAX_SECRET_BYTES:,} bytes")
            )
            return ""
        text = data.decode("utf-8", errors="replace").removesuffix("\n").removesuffix("\r")
        if not text:
            issues.append(doc.issue(path, f"the secret file {name} is empty"))
        return text

    def walk(value: Any, path: PathKey) -> Any:
        if isinstance(value, dict):
            return {k: walk(v, (*path, str(k))) for k, v in value.items()}
        if isinstance(value, list):
            return [walk(v, (*path, i)) for i, v in enumerate(value)]
        if isinstance(value, str) and "$" in value:
            if any(m.group(1) for m in _UNCLOSED.finditer(value)):
                issues.append(
                    doc.issue(path, f"a ${{ without its }}, or a reference inside another: use {_FORMS}")
                )
                return value
            return _REFERENCE.sub(lambda match: resolve(match, path), value)
        return value

    result = walk(doc.data, ())
    if issues and raise_them:
        raise ConfigError(issues)
    return result
