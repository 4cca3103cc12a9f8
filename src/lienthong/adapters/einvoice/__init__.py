"""E-invoice / e-receipt providers: VNPT (SOAP) and Viettel S-Invoice (REST)."""

from __future__ import annotations

from lienthong.bus.emit import EventSink
from lienthong.errors import RetryableError, StoreError
from lienthong.model import Message


async def announce(
    events: EventSink | None, destination: str, message: Message, receipt: dict[str, str]
) -> None:
    """Raise ``receipt.issued`` so routes can tell the province the receipt's number. A store that cannot
    take it makes the delivery retry: the provider then finds the receipt it already issued."""
    if events is None:
        return
    empty = sorted(k for k in ("provider", "fkey", "number") if not receipt.get(k))
    if empty:  # an event id (receipt:<provider>:<key>) built from an empty value would collide
        raise RetryableError(
            f"the receipt has no {', '.join(empty)}: not announced",
            destination=destination,
            operation="issue",
        )
    try:
        await events.receipt_issued(message, receipt)
    except StoreError as exc:
        raise RetryableError(
            f"cannot record the receipt: {exc}", destination=destination, operation="issue"
        ) from exc
