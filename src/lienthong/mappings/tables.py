"""Code tables: one system's codes to another's, e.g. provincial status → portal TrangThaiHoSo.

Keys are compared as text, so a table written with YAML keys ``1:`` matches the input ``1`` and ``"1"``;
booleans match ``true``/``false``. A strict table (the default) refuses an unknown code with an error that
lists the known ones, instead of sending a silent null.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from lienthong.mappings.failure import MappingFailure

_NO_DEFAULT = object()


def table_key(value: Any) -> str:
    """The text a code is compared by: ``True`` → ``true``, ``1`` and ``1.0`` → ``1``."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


class CodeTable:
    def __init__(
        self, name: str, values: Mapping[Any, Any], *, strict: bool = True, default: Any = _NO_DEFAULT
    ) -> None:
        self.name = name
        self.strict = strict and default is _NO_DEFAULT
        self._default = None if default is _NO_DEFAULT else default
        self._values = {table_key(k): v for k, v in values.items()}
        shown = list(self._values)[:20]
        self._known = ", ".join(shown) + (", …" if len(self._values) > 20 else "")

    def lookup(self, code: Any) -> Any:
        try:
            return self._values[code if type(code) is str else table_key(code)]
        except KeyError:
            if self.strict:
                raise MappingFailure(
                    f"unknown code {code!r} in table {self.name} (known: {self._known})"
                ) from None
            return self._default
