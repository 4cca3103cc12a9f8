"""The ``result_check`` destination: the PDF signatures of a dossier's result documents, checked and written
to its ledger entry (issue 13 §2; decision 0022).

A route delivers ``dossier.result_issued`` here (operation ``verify``, mapping ``bundled:result_check``):
``{dossier_code, results: [{code, name, url, content_base64, sha256}]}``. Each result with a document is
read, inline (base64) or fetched from its URL, and verified by ``certs.pdf.verify`` on a worker thread;
the dossier's verdict is the worst of its documents' (``certs.pdf.WORST_FIRST``), written with
``units.record_result_signature``. Being a delivery, the check is retried, held by the circuit breaker,
dead-lettered and recorded in the message log like any other.

Fetching: a relative URL resolves against ``base_url``; only ``http``/``https`` URLs on ``base_url``'s host
or an ``allowed_hosts`` host are fetched (any other is refused unfetched: ``unreadable``), with the
destination's timeout and TLS, no redirects followed, and at most ``max_bytes`` read. A transport failure
or a retryable status (429, 5xx) is retried; another status is the document's verdict (``unreadable``).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import yarl

from lienthong.adapters.base import Receipt, map_transport_errors
from lienthong.adapters.exchanges import note
from lienthong.adapters.failures import retryable_status
from lienthong.adapters.http import AnswerTooLarge, HttpPeer, send_over
from lienthong.certs.pdf import DEFAULT_MAX_BYTES, PdfVerdict, verify, worst
from lienthong.certs.xmldsig import TrustStore
from lienthong.errors import PermanentError, RetryableError, StoreError
from lienthong.model import Message, ResultSignature
from lienthong.store import Store, units

OPERATION = "verify"
MAX_NOTE = 1000
"""Characters of the verdict's note kept in the ledger."""
MAX_DOCUMENTS = 32
"""Result documents checked for one event; more are refused (a dossier has one result, or a few)."""


@dataclass(frozen=True)
class ResultCheckSettings:
    """``trust``: the roots signatures must chain to; ``allowed_hosts``: hosts besides ``base_url``'s that
    documents may be fetched from; ``max_bytes``: the largest document read; ``verify_timeout_s``: the
    longest one verification may take; ``workers``: verifications at once."""

    trust: TrustStore
    allowed_hosts: frozenset[str] = frozenset()
    max_bytes: int = DEFAULT_MAX_BYTES
    verify_timeout_s: float = 30.0
    workers: int = 2


@dataclass(frozen=True)
class Checked:
    """One result document's verdict."""

    code: str
    verdict: PdfVerdict

    def line(self) -> str:
        return f"{self.code or '?'}: {self.verdict.verdict} ({self.verdict.detail})"


class ResultCheckAdapter:
    operations = (OPERATION,)

    def __init__(
        self,
        name: str,
        peer: HttpPeer,
        settings: ResultCheckSettings,
        store: Store,
        *,
        clock: Callable[[], float],
    ) -> None:
        self.name = name
        self._peer = peer
        self._settings = settings
        self._store = store
        self._clock = clock
        self._base = yarl.URL(str(peer.base_url))
        hosts = {h.casefold() for h in settings.allowed_hosts}
        self._hosts = frozenset({*hosts, (self._base.host or "").casefold()} - {""})
        # Verification is CPU work: on threads of its own, so hostile documents cannot take the loop's
        # default executor (or the loop) from everything else.
        self._threads = ThreadPoolExecutor(settings.workers, thread_name_prefix=f"result-check-{name}")

    async def deliver(self, message: Message, body: dict[str, Any]) -> Receipt:
        if message.operation != OPERATION:
            raise PermanentError(
                f"unknown operation {message.operation!r}", destination=self.name, operation=message.operation
            )
        results = [r for r in body.get("results") or () if isinstance(r, dict) and _has_document(r)]
        if not results:
            return Receipt()  # nothing to check: no verdict either way
        if len(results) > MAX_DOCUMENTS:
            raise PermanentError(
                f"{len(results)} result documents, over the limit of {MAX_DOCUMENTS}",
                destination=self.name,
                operation=OPERATION,
            )
        checked = [Checked(_text(r.get("code")), await self._check(r)) for r in results]
        await self._record(message, checked)
        return Receipt()

    async def _check(self, result: dict[str, Any]) -> PdfVerdict:
        data = await self._document(result)
        if isinstance(data, PdfVerdict):
            return data
        listed = _text(result.get("sha256")).lower()
        if listed and hashlib.sha256(data).hexdigest() != listed:
            return PdfVerdict.unreadable("not the document the dossier lists: its SHA-256 differs")
        return await self._verify(data)

    async def _document(self, result: dict[str, Any]) -> bytes | PdfVerdict:
        """The document's bytes, or the verdict that there are none to read."""
        inline = _text(result.get("content_base64"))
        if inline:
            return self._decode(inline)
        try:
            url = self._base.join(yarl.URL(_text(result.get("url"))))
        except ValueError:
            return PdfVerdict.unreadable("its url is not a URL")
        if url.scheme not in ("http", "https") or (url.host or "").casefold() not in self._hosts:
            where = url.host or f"{url.scheme}: URL"
            return PdfVerdict.unreadable(f"{where} is not an allowed host (allowed_hosts): not fetched")
        return await self._fetch(url)

    def _decode(self, text: str) -> bytes | PdfVerdict:
        max_bytes = self._settings.max_bytes
        if len(text) * 3 // 4 > max_bytes + 2:  # refused before decoding it
            return PdfVerdict.unreadable(f"inline document over the limit of {max_bytes:,} bytes: not read")
        try:
            data = base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError):
            return PdfVerdict.unreadable("content_base64 is not valid base64")
        note(b"", data)  # the message log's hash of what was checked
        return data

    async def _fetch(self, url: yarl.URL) -> bytes | PdfVerdict:
        max_bytes = self._settings.max_bytes
        with map_transport_errors(self.name, OPERATION):
            try:
                answer = await send_over(
                    self._peer.transport,
                    "GET",
                    url,
                    b"",
                    {"accept": "application/pdf"},
                    max_bytes=max_bytes,
                    timeout_s=self._peer.timeout_s,
                )
            except AnswerTooLarge:
                return PdfVerdict.unreadable(f"larger than the limit of {max_bytes:,} bytes: dropped unread")
        note(b"", answer.content)
        status = answer.status_code
        if retryable_status(status):
            raise RetryableError(
                f"fetching a result document: http {status}",
                destination=self.name,
                operation=OPERATION,
                status=status,
            )
        if not 200 <= status < 300:
            return PdfVerdict.unreadable(f"its URL answered http {status}")
        return answer.content

    async def _verify(self, data: bytes) -> PdfVerdict:
        settings = self._settings
        now = datetime.fromtimestamp(self._clock(), UTC)
        loop = asyncio.get_running_loop()
        work = loop.run_in_executor(
            self._threads, lambda: verify(data, settings.trust, now=now, max_bytes=settings.max_bytes)
        )
        try:
            return await asyncio.wait_for(work, settings.verify_timeout_s)
        except TimeoutError:
            # The thread runs on to its end; the pool's size bounds how many such threads there can be.
            return PdfVerdict.unreadable(f"verification took longer than {settings.verify_timeout_s:g} s")

    async def _record(self, message: Message, checked: Sequence[Checked]) -> None:
        verdict = worst([c.verdict.verdict for c in checked])
        text = "; ".join(c.line() for c in checked)[:MAX_NOTE]
        event_ms = int(datetime.fromisoformat(message.event.occurred_at).timestamp() * 1000)
        now_ms = int(self._clock() * 1000)
        signature = ResultSignature(message.dossier_code, verdict, text, event_ms)
        try:
            await self._store.run(units.record_result_signature, signature, now_ms)
        except StoreError as exc:
            raise RetryableError(
                f"cannot record the verdict: {exc}", destination=self.name, operation=OPERATION
            ) from exc

    async def aclose(self) -> None:
        self._threads.shutdown(wait=False, cancel_futures=True)
        await self._peer.aclose()


def _has_document(result: dict[str, Any]) -> bool:
    return bool(_text(result.get("content_base64")) or _text(result.get("url")))


def _text(value: object) -> str:
    return value.strip() if isinstance(value, str) else ""
