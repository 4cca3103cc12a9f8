"""Numbers and money the way Vietnamese documents write them.

``format_number(8000)`` → ``8.000`` (dot thousands, comma decimals). ``in_words(1_250_000)`` →
``Một triệu hai trăm năm mươi nghìn``: e-receipts carry the total in words (``TgTTTBChu``), read by the
usual rules (``linh`` for an empty tens place, ``mốt``/``tư``/``lăm`` after a tens digit, ``không trăm``
inside a larger number).
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

_DIGITS = ("không", "một", "hai", "ba", "bốn", "năm", "sáu", "bảy", "tám", "chín")
_GROUPS = ("", "nghìn", "triệu")
_BILLION = 1_000_000_000


def to_decimal(value: object) -> Decimal:
    """A number from an int, a float or text (``"8000"``, ``"8000.50"``); ValueError otherwise."""
    if isinstance(value, int | Decimal) and not isinstance(value, bool):
        return Decimal(value)
    if isinstance(value, float):
        return Decimal(repr(value))
    if isinstance(value, str):
        try:
            number = Decimal(value.strip())
        except InvalidOperation:
            raise ValueError(f"expected a number, got {value!r}") from None
        if number.is_finite():
            return number
    raise ValueError(f"expected a number, got {value!r}")


def format_number(value: Decimal, *, decimals: int, thousands: str, decimal: str) -> str:
    """``value`` rounded half-up to ``decimals`` places, grouped by thousands."""
    quantum = Decimal(1).scaleb(-decimals)
    text = f"{value.quantize(quantum, rounding=ROUND_HALF_UP):,.{decimals}f}"
    return text.replace(",", "\x00").replace(".", decimal).replace("\x00", thousands)


def in_words(amount: int) -> str:
    """A whole, non-negative amount in Vietnamese words, first letter capitalised."""
    if amount < 0:
        raise ValueError(f"cannot write a negative amount in words: {amount}")
    words = _read(amount) if amount else "không"
    return words[0].upper() + words[1:]


def _read(n: int, *, inner: bool = False) -> str:
    """Read ``n`` > 0. ``inner``: a higher group came before, so a short group says ``không trăm``."""
    if n >= _BILLION:
        high, low = divmod(n, _BILLION)
        head = f"{_read(high, inner=inner)} tỷ"
        return f"{head} {_read(low, inner=True)}" if low else head
    groups = [(n // 1000**i) % 1000 for i in range(2, -1, -1)]
    parts: list[str] = []
    for position, group in enumerate(groups):
        if group:
            unit = _GROUPS[2 - position]
            text = _three(group, full=inner or bool(parts))
            parts.append(f"{text} {unit}".strip())
    return " ".join(parts)


def _three(n: int, *, full: bool) -> str:
    hundreds, rest = divmod(n, 100)
    tens, units = divmod(rest, 10)
    words: list[str] = []
    if hundreds or full:
        words += [_DIGITS[hundreds], "trăm"]
    if tens == 0:
        if units and words:
            words.append("linh")
    elif tens == 1:
        words.append("mười")
    else:
        words += [_DIGITS[tens], "mươi"]
    if units:
        words.append(_unit(units, tens))
    return " ".join(words)


def _unit(units: int, tens: int) -> str:
    if units == 1 and tens >= 2:
        return "mốt"
    if units == 4 and tens >= 2:
        return "tư"
    if units == 5 and tens >= 1:
        return "lăm"
    return _DIGITS[units]
