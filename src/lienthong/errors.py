"""The exception tree of lienthong.

Every error a user or an external system can cause is one of these, carrying fields rather than only a
message::

    LienthongError
    ├── ConfigError            a config file is wrong; holds every ConfigIssue (file, line, path, message)
    ├── IngestError            an inbound event cannot be accepted
    │   ├── InvalidEvent       malformed JSON or a field that fails validation (holds the field path)
    │   └── IdempotencyConflict  an event_id seen before, with a different payload
    ├── DeliveryError          one delivery to one destination failed (destination, operation)
    │   ├── RetryableError     try again later: timeouts, connection errors, 5xx, 429 (retry_after_s)
    │   └── PermanentError     retrying cannot help: validation, auth, business rejection
    │       └── TranslationError  our translation of the event into the destination's format failed
    │           └── MappingError     a mapping spec failed on one record (mapping, record, field, source)
    ├── StoreError             the store failed or its schema is not one we know
    │   ├── StoreMissing       no store where one is expected (never created, or removed): `db init`
    │   └── StoreUnavailable   the store cannot answer now (its process is down, a call ran out of time,
    │                          its file was removed under it): nothing was acknowledged, try again
    ├── CitizenLookupError     a look-up in the population database did not give a citizen
    │   ├── CitizenNotFound        no citizen has that SoDinhDanh
    │   ├── CitizenMismatch        the citizen exists, but the name or birth date given differs (fields)
    │   ├── PopulationUnavailable  the service is down, slow, or answered garbage: try again later
    │   └── PopulationRefused      the service refused our request (remote_code): a contract or config fault
    ├── RunRefused             a run by hand cannot start (job, run_id): unknown job, a window not over,
    │                          or one run already (without --force)
    └── XmlError               XML lienthong will not read (defined in ``xmlsafe``; also a ValueError)
        ├── XmlRefused         a DTD, too many bytes, too deep (what, source, line)
        └── XmlMalformed       not well-formed XML

Third-party exceptions (httpx, sqlite3, pydantic, yaml) are translated into this tree at one boundary
each, with ``raise ... from exc``; see ``adapters.base.map_transport_errors``.
"""

from __future__ import annotations

from dataclasses import dataclass


class LienthongError(Exception):
    """Root of every error lienthong raises on purpose."""


@dataclass(frozen=True)
class ConfigIssue:
    """One problem in a config or spec file: where it is and what is wrong."""

    path: str
    message: str
    file: str | None = None
    line: int | None = None

    def __str__(self) -> str:
        where = self.file or ""
        if self.line is not None:
            where = f"{where}:{self.line}"
        prefix = f"{where} " if where else ""
        location = f"{self.path}: " if self.path else ""
        return f"{prefix}{location}{self.message}"


class ConfigError(LienthongError):
    """A configuration file is invalid. ``issues`` lists every problem found, not only the first."""

    def __init__(self, issues: list[ConfigIssue]) -> None:
        self.issues = issues
        super().__init__("\n".join(str(issue) for issue in issues))

    @classmethod
    def single(cls, file: str, message: str, *, path: str = "") -> ConfigError:
        return cls([ConfigIssue(path=path, message=message, file=file)])


class IngestError(LienthongError):
    """An inbound event cannot be accepted."""


class InvalidEvent(IngestError):
    """The request body is not valid JSON, or an event fails validation at ``path``."""

    def __init__(self, message: str, *, path: str = "", malformed: bool = False) -> None:
        self.path = path
        self.message = message
        self.malformed = malformed
        super().__init__(f"{path}: {message}" if path else message)


class IdempotencyConflict(IngestError):
    """``event_id`` was accepted before with a different payload; an event id may not be reused."""

    def __init__(self, event_id: str) -> None:
        self.event_id = event_id
        super().__init__(
            f"event_id {event_id!r} was already accepted with a different payload; "
            "use a new event_id for a new event"
        )

    def __reduce__(self) -> tuple[type[IdempotencyConflict], tuple[str]]:
        # Rebuilt from the event id when it crosses from the store's process (store.process).
        return type(self), (self.event_id,)


class DeliveryError(LienthongError):
    """A delivery to ``destination``/``operation`` failed."""

    retryable: bool = False

    def __init__(
        self,
        message: str,
        *,
        destination: str = "",
        operation: str = "",
        status: int | None = None,
        remote_code: str | None = None,
    ) -> None:
        self.message = message
        self.destination = destination
        self.operation = operation
        self.status = status
        self.remote_code = remote_code
        super().__init__(message)

    def describe(self) -> str:
        """One line for dead letters and logs: what failed, where, and the remote's answer."""
        parts = [f"{self.destination}.{self.operation}" if self.destination else "", self.message]
        if self.status is not None:
            parts.append(f"http {self.status}")
        if self.remote_code is not None:
            parts.append(f"remote code {self.remote_code}")
        return ": ".join(p for p in parts[:2] if p) + "".join(f" ({p})" for p in parts[2:])


class RetryableError(DeliveryError):
    """A transient failure. ``retry_after_s`` is the peer's own hint (``Retry-After``), if it gave one."""

    retryable = True

    def __init__(
        self,
        message: str,
        *,
        retry_after_s: float | None = None,
        destination: str = "",
        operation: str = "",
        status: int | None = None,
    ) -> None:
        self.retry_after_s = retry_after_s
        super().__init__(message, destination=destination, operation=operation, status=status)


class PermanentError(DeliveryError):
    """A failure that retrying cannot fix; the delivery becomes a dead letter at once."""


class TranslationError(PermanentError):
    """The event could not be translated for the destination: ``field`` names the offending field."""

    def __init__(self, message: str, *, field: str, destination: str = "", operation: str = "") -> None:
        self.field = field
        super().__init__(f"{field}: {message}", destination=destination, operation=operation)


class MappingError(TranslationError):
    """A compiled mapping failed on one record.

    ``field`` is the output field (``TaiLieuNop[1].TenTepDinhKem``), ``source`` the input path it reads
    (``dossier.documents[1].name``), ``record`` the record's id (an event id) when the caller gave one.
    """

    def __init__(
        self, message: str, *, mapping: str, field: str, source: str | None = None, record: str | None = None
    ) -> None:
        self.mapping = mapping
        self.source = source
        self.record = record
        where = f"mapping {mapping}" + (f", record {record}" if record else "")
        reads = f" (from {source})" if source else ""
        super().__init__(f"{message} [{where}]", field=f"{field}{reads}" if field else (source or "input"))


class StoreError(LienthongError):
    """The store failed, or its schema version is not one this code knows."""


class StoreMissing(StoreError):
    """No store where one is expected: it was never created (``lienthong db init``), or it was removed."""


class StoreUnavailable(StoreError):
    """The store cannot answer now: its process is down, a call ran past its deadline, or its file was
    removed under it. What was not acknowledged may be sent again."""


class CitizenLookupError(LienthongError):
    """A population-database look-up did not give a citizen."""

    def __init__(self, message: str) -> None:
        self.message = message
        super().__init__(message)


class CitizenNotFound(CitizenLookupError):
    """No citizen has the SoDinhDanh asked for."""


class CitizenMismatch(CitizenLookupError):
    """The citizen exists, but what the caller gave (``fields``: name, birth_date) does not match."""

    def __init__(self, fields: list[str]) -> None:
        self.fields = fields
        super().__init__(f"the citizen's {' and '.join(f.replace('_', ' ') for f in fields)} do not match")


class PopulationUnavailable(CitizenLookupError):
    """The service is down, too slow, or answered something that is not its SOAP reply."""

    def __init__(self, message: str, *, retry_after_s: float | None = None) -> None:
        self.retry_after_s = retry_after_s
        super().__init__(message)


class PopulationRefused(CitizenLookupError):
    """The service refused our request (a soap:Client fault, a 4xx): fix the config or the contract."""

    def __init__(self, message: str, *, remote_code: str | None = None) -> None:
        self.remote_code = remote_code
        super().__init__(message)


class RunRefused(LienthongError):
    """A run by hand (``lienthong reconcile``) cannot start: ``job``, and ``run_id`` when a window was
    chosen; the message says why and what to do."""

    def __init__(self, message: str, *, job: str, run_id: str | None = None) -> None:
        super().__init__(message)
        self.job = job
        self.run_id = run_id
