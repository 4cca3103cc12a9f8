"""``lienthong --env-file FILE …``: variables for the config's references, from a file of ``NAME=value``
lines (as docker compose and systemd's ``EnvironmentFile`` read them).

A line is ``NAME=value`` or ``export NAME=value``; blank lines and ``#`` comments are skipped; a value in
single or double quotes loses them. The environment the command runs in wins over the file, so an operator
can override one value for one run.
"""

from __future__ import annotations

import os
import re
from collections.abc import MutableMapping
from pathlib import Path

from lienthong.errors import ConfigError, ConfigIssue

_LINE = re.compile(r"(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)=(.*)")
MAX_BYTES = 1_048_576


def read_env_file(path: Path) -> dict[str, str]:
    """The variables of the file at ``path``; ConfigError naming every line that is not ``NAME=value``."""
    try:
        if path.stat().st_size > MAX_BYTES:
            raise ConfigError.single(str(path), f"the env file is larger than {MAX_BYTES:,} bytes")
        text = path.read_text(encoding="utf-8")
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
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
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
