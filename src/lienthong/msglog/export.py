"""``log export --day D``: one day's records in a signed archive (a tar file).

- ``records.jsonl``: one line per record stamped that day (Vietnam time), ``{"index": i, "record": text}``,
  the record's text exactly as the log keeps it (its leaf is SHA-256(0x00 || text));
- ``manifest.note``: a C2SP signed note, signed with the node's checkpoint key, whose text is::

      lienthong log export
      origin <origin>
      day <YYYY-MM-DD>
      records <count> <first index> <last index>
      sha256 <hex of records.jsonl>
      checkpoint <size> <base64 root>

  the last line names the checkpoint that covered the log when the archive was made (a record of the
  day is proved in it with ``log prove``).

Records are read page by page; the archive is written as it goes, so a busy day needs no memory to match.
"""

from __future__ import annotations

import base64
import hashlib
import io
import tarfile
import tempfile
from datetime import date, datetime, time, timedelta
from pathlib import Path

import orjson

from lienthong.mappings.dates import VIETNAM
from lienthong.msglog.checkpoints import SigningKey, sign_note
from lienthong.store import Store, units

PAGE = 10_000


async def export_day(store: Store, day: date, key: SigningKey, origin: str, out: Path) -> tuple[int, str]:
    """Write the archive of ``day`` to ``out`` (a new file); how many records, and the manifest's text.
    LookupError when a record of the day is damaged (not text), before anything is written."""
    start = datetime.combine(day, time(0), VIETNAM)
    start_ms = int(start.timestamp() * 1000)
    end_ms = int((start + timedelta(days=1)).timestamp() * 1000)
    digest, count, first, last = hashlib.sha256(), 0, -1, -1
    with tempfile.TemporaryFile() as records:
        after = -1
        while page := await store.run(units.log_between, start_ms, end_ms, after, PAGE):
            for index, data in page:
                try:
                    text = data.decode()
                except UnicodeDecodeError:
                    raise LookupError(f"record {index} is not UTF-8 text: run log verify") from None
                line = orjson.dumps({"index": index, "record": text}) + b"\n"
                records.write(line)
                digest.update(line)
                first = index if first < 0 else first
                last, count = index, count + 1
            after = page[-1][0]
        latest = await store.run(units.log_checkpoints, 1)
        covered = (
            f"{latest[0].size} {base64.b64encode(bytes.fromhex(latest[0].root)).decode()}"
            if latest
            else "0 -"
        )
        text = (
            "lienthong log export\n"
            f"origin {origin}\n"
            f"day {day.isoformat()}\n"
            f"records {count} {first} {last}\n"
            f"sha256 {digest.hexdigest()}\n"
            f"checkpoint {covered}\n"
        )
        note = sign_note(text, key).encode()
        with out.open("xb") as file, tarfile.open(fileobj=file, mode="w") as archive:
            size = records.tell()
            records.seek(0)
            archive.addfile(_member("records.jsonl", size), records)
            archive.addfile(_member("manifest.note", len(note)), io.BytesIO(note))
    return count, text


def _member(name: str, size: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size, info.mode = size, 0o644
    return info
