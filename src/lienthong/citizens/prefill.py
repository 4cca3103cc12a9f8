"""E-form prefill: look a citizen up in the population database, return only the form's fields, audit it.

Every look-up is personal-data processing (DESIGN §4): the caller must say which official asks and why,
and each request, whatever its outcome, is recorded (who, why, when, outcome) before the answer leaves.
The record itself is never stored, and the answer holds only the fields the form's mapping names.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import time
import unicodedata
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any

from lienthong.adapters.population import CitizenQuery, PopulationAdapter
from lienthong.citizens.records import LookupRecord
from lienthong.clock import Clock, now_ms
from lienthong.errors import (
    CitizenLookupError,
    CitizenMismatch,
    CitizenNotFound,
    MappingError,
    PopulationRefused,
    PopulationUnavailable,
)
from lienthong.mappings import CompiledMapping
from lienthong.observability.metrics import Metrics
from lienthong.store import Store, units

# ASCII digits, matched whole: Python's \d takes any Unicode digit (full-width ０-９), $ a trailing newline.
_ID = re.compile(r"[0-9]{12}")
_BIRTH = (re.compile(r"([0-9]{2})/([0-9]{2})/([0-9]{4})"), re.compile(r"([0-9]{4})([0-9]{2})([0-9]{2})"))
MAX_PURPOSE_CHARS = 500
"""The longest purpose (X-Purpose, decoded) a look-up may give, in characters."""
MAX_OFFICIAL_ID_CHARS = 100
"""The longest official's id (X-Official-Id), in characters."""
_MAX_FORM_CHARS = 64  # as audited: an unknown form's name is refused, yet recorded
_CONTROL = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})
"""Unicode categories refused in audited text: controls (NUL, CR, LF), format characters (bidi overrides,
zero-width spaces) that change how a record reads, surrogates, and line and paragraph separators."""


class PrefillRefused(Exception):
    """The request itself is wrong: ``status``, ``code`` and ``path`` for the HTTP answer."""

    def __init__(self, status: int, code: str, message: str, *, path: str | None = None) -> None:
        self.status, self.code, self.message, self.path = status, code, message, path
        super().__init__(message)


@dataclass(frozen=True)
class PrefillRequest:
    id_number: str
    caller: str
    official_id: str
    purpose: str
    form: str = "default"
    full_name: str | None = None
    birth_date: str | None = None  # dd/MM/yyyy or yyyyMMdd


@dataclass(frozen=True)
class Prefilled:
    request_id: str
    form: str
    fields: dict[str, Any]


class Prefill:
    def __init__(
        self,
        population: PopulationAdapter,
        forms: Mapping[str, CompiledMapping],
        store: Store,
        metrics: Metrics,
        *,
        audit_key: bytes,
        clock: Clock = time.time,
        new_id: Callable[[], str] = lambda: f"lk-{uuid.uuid4().hex}",
    ) -> None:
        self._population = population
        self._forms = forms
        self._store = store
        self._clock = clock
        self._metrics = metrics
        self._audit_key = audit_key
        self._new_id = new_id

    async def lookup(self, request: PrefillRequest) -> Prefilled:
        """Raises PrefillRefused for a bad request, a CitizenLookupError for the service's answer, and
        StoreError when the audit cannot be written (then nothing is answered)."""
        request_id = self._new_id()
        outcome = "invalid"
        try:
            form, birth = self._check(request)
            query = CitizenQuery(request.id_number, request.official_id, request_id, request.full_name, birth)
            citizen = await self._population.lookup(query)
            fields = form(citizen.model_dump(), record_id=request_id)
            outcome = "found"
            return Prefilled(request_id, request.form, fields)
        except CitizenLookupError as exc:
            outcome = _outcome(exc)
            raise
        except MappingError:
            outcome = "form_failed"
            raise
        except PrefillRefused:
            raise
        except Exception:
            outcome = "failed"  # our fault, not the request's: never audited as "invalid"
            raise
        except BaseException:  # cancelled: the service may have been asked; never the request's fault
            outcome = "cancelled"
            raise
        finally:
            self._metrics.citizen_lookups.labels(outcome).inc()
            await self._audit(request, request_id, outcome)

    def _check(self, request: PrefillRequest) -> tuple[CompiledMapping, str | None]:
        if not request.official_id.strip() or not request.purpose.strip():
            raise PrefillRefused(
                400,
                "accountability_required",
                "say who asks and why: send the official's id in X-Official-Id and the purpose in X-Purpose",
            )
        _check_text(request.official_id, "X-Official-Id", MAX_OFFICIAL_ID_CHARS, "invalid_official_id")
        _check_text(request.purpose, "X-Purpose", MAX_PURPOSE_CHARS, "invalid_purpose")
        if not _ID.fullmatch(request.id_number):
            raise PrefillRefused(422, "invalid_id", "SoDinhDanh must be 12 digits", path="id")
        form = self._forms.get(request.form)
        if form is None:
            known = ", ".join(sorted(self._forms))
            raise PrefillRefused(
                404, "unknown_form", f"no form {request.form!r} (known: {known})", path="form"
            )
        return form, _birth_date(request.birth_date)

    async def _audit(self, request: PrefillRequest, request_id: str, outcome: str) -> None:
        subject = hmac.new(self._audit_key, request.id_number.encode(), hashlib.sha256).hexdigest()
        record = LookupRecord(
            request_id,
            now_ms(self._clock),
            request.caller,
            _audited(request.official_id, MAX_OFFICIAL_ID_CHARS),
            _audited(request.purpose, MAX_PURPOSE_CHARS),
            subject,
            _audited(request.form, _MAX_FORM_CHARS),
            outcome,
        )
        # No audit, no answer: a StoreError here replaces the result, and the caller gets 503.
        await self._store.run(units.record_lookup, record)


def _check_text(text: str, header: str, max_chars: int, code: str) -> None:
    """Refuse (422, naming ``header``) text longer than ``max_chars`` or holding control characters."""
    if len(text) > max_chars:
        message = f"{header} holds at most {max_chars} characters (decoded), this one has {len(text)}"
        raise PrefillRefused(422, code, message, path=header)
    control = next((n for n, c in enumerate(text) if unicodedata.category(c) in _CONTROL), None)
    if control is not None:
        message = (
            f"{header} must not hold control characters: U+{ord(text[control]):04X} at position {control}"
        )
        raise PrefillRefused(422, code, message, path=header)


def _audited(text: str, max_chars: int) -> str:
    """``text`` as the audit may keep it, whatever the request held: control characters shown as U+FFFD,
    at most ``max_chars`` characters."""
    return "".join("\ufffd" if unicodedata.category(c) in _CONTROL else c for c in text[:max_chars])


def _birth_date(text: str | None) -> str | None:
    if text is None or not text.strip():
        return None
    for pattern in _BIRTH:
        match = pattern.fullmatch(text.strip())
        if match:
            parts = match.groups()
            day = "".join(reversed(parts)) if pattern is _BIRTH[0] else "".join(parts)
            try:  # 31/02/1990 has the shape, not a day: the population database would say "mismatch"
                date(int(day[:4]), int(day[4:6]), int(day[6:]))
            except ValueError:
                raise PrefillRefused(
                    422,
                    "invalid_birth_date",
                    f"birth_date {text.strip()} is no day of the calendar",
                    path="birth_date",
                ) from None
            return day
    raise PrefillRefused(
        422, "invalid_birth_date", "birth_date must be dd/MM/yyyy or yyyyMMdd", path="birth_date"
    )


def _outcome(exc: CitizenLookupError) -> str:
    if isinstance(exc, CitizenNotFound):
        return "not_found"
    if isinstance(exc, CitizenMismatch):
        return "mismatch"
    if isinstance(exc, PopulationRefused):
        return "refused"
    if isinstance(exc, PopulationUnavailable):
        return "unavailable"
    return "failed"
