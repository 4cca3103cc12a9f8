"""What the command line prints of text it did not write: shown, never obeyed by the terminal."""

from __future__ import annotations

_CONTROLS = {c: f"\\x{c:02x}" for c in (*range(0x20), *range(0x7F, 0xA0))}


def shown(text: str) -> str:
    """``text`` with control characters as escapes: a bank file's name, a peer's error or an anonymous
    callback's reference can carry an escape sequence (clear the screen, rewrite a line) or a line break
    that forges a listing's next line."""
    return text.translate(_CONTROLS)
