"""YAML loading that remembers where each value came from, so errors can name the line.

PyYAML's safe loader builds plain values and forgets positions; its node graph keeps them. We compose the
node graph once, construct the values from it, and walk it again for the line of every path.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from lienthong.errors import ConfigError, ConfigIssue

PathKey = tuple[str | int, ...]


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
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(
            [ConfigIssue(path="", message=f"invalid YAML: {problem}", file=file, line=line)]
        ) from exc
    lines: dict[PathKey, int] = {}
    if node is not None:
        _collect_lines(node, (), lines)
    return LocatedDocument(data=data, lines=lines, file=file)


def _collect_lines(node: yaml.Node, path: PathKey, lines: dict[PathKey, int]) -> None:
    lines.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key = (*path, str(key_node.value))
            lines[key] = key_node.start_mark.line + 1
            _collect_lines(value_node, key, lines)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _collect_lines(item, (*path, index), lines)


def substitute_env(doc: LocatedDocument, env: Mapping[str, str]) -> Any:
    """Resolve references in every string of the document, so secrets stay out of files:

    - ``${NAME}``, anywhere in a string: the environment variable; unset or empty is an error (an empty
      secret must not pass);
    - ``${NAME:-default}``: the variable, or ``default`` when it is unset or empty (as a shell does);
    - ``${file:PATH}``: a file's content without its last newline (systemd credentials, container
      secrets); a relative PATH is read from the config file's directory;
    - ``$$``: a literal ``$``.

    Every problem is collected, each naming its path, and raised together."""
    issues: list[ConfigIssue] = []
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
            return _REFERENCE.sub(lambda match: resolve(match, path), value)
        return value

    result = walk(doc.data, ())
    if issues:
        raise ConfigError(issues)
    return result
