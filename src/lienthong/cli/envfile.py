"""``lienthong --env-file FILE …``: variables for the config's references, from a file of ``NAME=value``
lines (as docker compose and systemd's ``EnvironmentFile`` read them).

A line is ``NAME=value`` or ``export NAME=value``; blank lines and ``#`` comments are skipped; a value in
single or double quotes loses them (a comment may follow the closing quote); in an unquoted value, `` #``
starts a comment (a ``#`` inside a word stays), as docker compose reads it.
The environment the command runs in wins over the file, so an operator
can override one value for one run.
"""

from __future__ import annotations

import os
import re
from collections.abc import MutableMapping
from pathlib import Path

from lienthong.errors import ConfigError, ConfigIssue

_LINE = re.compile(r"(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)=(.*)")
_INLINE_COMMENT = re.compile(r"\s+#")
MAX_BYTES = 1_048_576


def read_env_file(path: Path) -> dict[str, str]:
    """The variables of the file at ``path``; ConfigError naming every line that is not ``NAME=value``."""
    try:
        if path.stat().st_size > MAX_BYTES:
            raise ConfigError.single(str(path), f"the env file is larger than {MAX_BYTES:,} bytes")
        text = path.read_text(encoding="utf-8-sig")  # an editor's byte-order mark is not part of line 1
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise ConfigError.single(str(path), f"cannot read the env file: {reason}") from exc
    values: dict[str, str] = {}
    issues: list[ConfigIssue] = []
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        found = _LINE.fullmatch(line)
        if found is None:
            issues.append(ConfigIssue(path="", message="is not NAME=value", file=str(path), line=number))
            continue
        name, value = found.group(1), found.group(2).strip()
        quote = value[:1]
        if quote in ("'", '"') and quote in value[1:]:  # quoted: the quotes delimit; a comment may follow
            end = value.index(quote, 1)
            rest = value[end + 1 :].strip()
            if rest and not rest.startswith("#"):
                message = f"has text after its closing quote: {rest[:20]!r}"
                issues.append(ConfigIssue(path=name, message=message, file=str(path), line=number))
                continue
            value = value[1:end]
        else:  # unquoted: " #" starts a comment, as docker compose reads it; a # inside a word stays
            value = _INLINE_COMMENT.split(value, maxsplit=1)[0].rstrip()
        if "\x00" in value:
            # The environment cannot hold a NUL byte (``os.environ`` raises ValueError on one).
            issues.append(
                ConfigIssue(path=name, message="has a NUL byte in its value", file=str(path), line=number)
            )
            continue
        values[name] = value
    if issues:
        raise ConfigError(issues)
    return values


def apply_env_file(path: Path, environ: MutableMapping[str, str] = os.environ) -> int:
    """Put the file's variables into ``environ`` where it has none of that name; how many were set."""
    added = 0
    for name, value in read_env_file(path).items():
        if name not in environ:
            environ[name] = value
            added += 1
    return added
