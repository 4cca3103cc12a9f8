"""Read a bank statement file, whatever its format: camt XML is told apart by its namespace, anything
else is read as CSV through a layout from config."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from lienthong.bank import camt, csvfile
from lienthong.bank.records import DEFAULT_MAX_BYTES, Item, StatementError


def read_statements(
    path: Path, *, csv_layout: csvfile.CsvLayout | None = None, max_bytes: int = DEFAULT_MAX_BYTES
) -> Iterator[Item]:
    """Every transaction of the file at ``path``, each statement's summary after its transactions.

    XML files are told apart by their namespace (camt.053 or camt.054, 001.02 to 001.08); anything else
    is read as CSV, which needs ``csv_layout`` (a ``csvfile.CsvLayout``). Raises StatementError.
    """
    name = str(path)
    try:
        size = path.stat().st_size
        with path.open("rb") as handle:
            head = handle.read(4096)
    except OSError as exc:
        raise StatementError(name, f"cannot be read: {exc.strerror or exc}") from exc
    if size > max_bytes:
        raise StatementError(name, f"is {size:,} bytes, more than the limit of {max_bytes:,}")
    if camt.looks_like_xml(head):
        yield from camt.read(path, name=name)
        return
    if csv_layout is None:
        raise StatementError(name, "is not camt XML, and no CSV layout was given to read it as CSV")
    yield from csvfile.read(path, csv_layout, name=name)
