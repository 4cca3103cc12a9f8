"""The failure raised inside a compiled mapping while it runs, and how it learns where it happened.

Compiled pieces raise ``MappingFailure`` with what went wrong and, when they know it, the source path. As it
unwinds through objects and lists each level adds its part of the output path (and of the source path, for
list items), so the public ``MappingError`` names the record, the output field and the input field.
"""

from __future__ import annotations


class MappingFailure(Exception):
    def __init__(self, message: str, *, source: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.source = source
        self._out: list[str] = []

    def inside_field(self, key: str, source: str | None) -> MappingFailure:
        """The failure happened while computing output field ``key``, which reads ``source``."""
        self._out.append(key)
        if self.source is None:
            self.source = source
        return self

    def inside_item(self, index: int, list_source: str) -> MappingFailure:
        """The failure happened in item ``index`` of the list at ``list_source``."""
        self._out.append(f"[{index}]")
        if self.source is None or self.source == "@":
            self.source = f"{list_source}[{index}]"
        elif not self.source.startswith("$"):
            self.source = f"{list_source}[{index}].{self.source}"
        return self

    @property
    def field(self) -> str:
        out = ""
        for part in reversed(self._out):
            out += part if part.startswith("[") or not out else f".{part}"
        return out
