"""The configuration: one YAML file, one pydantic model tree.

``load_config`` is the only entry point. Errors name the file, line and YAML path, e.g.
``lienthong.yaml:31 routes[2].deliver[0].to: unknown destination 'portl' (known: emc, portal)``.
Secrets are written as ``${ENV_NAME}`` and resolved from the environment the caller passes in.
"""

from __future__ import annotations

import base64
import ipaddress
import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    PrivateAttr,
    SecretStr,
    Tag,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from lienthong._yaml import LocatedDocument, PathKey, format_path, load_located, substitute_env
from lienthong.bank.csvfile import CsvLayout
from lienthong.bank.records import DEFAULT_MAX_BYTES as DEFAULT_MAX_STATEMENT_BYTES
from lienthong.bus.envelope import EventType
from lienthong.errors import ConfigError, ConfigIssue
from lienthong.mappings.spec import Condition
from lienthong.sealing import Sealer

_SHA256_HEX = re.compile(r"^[0-9a-f]{64}$")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ServerTlsConfig(_Model):
    """HTTPS for the inbound API, and mutual TLS: client certificates from client_ca, each subject mapped to
    a caller by auth.certificates. Files are reloaded when they change, without a restart."""

    cert: str = Field(description="The server's certificate: PEM (with its chain) or PKCS#12 (.p12/.pfx).")
    key: str | None = Field(default=None, description="Its PEM private key, unless in cert.")
    passphrase_env: str | None = Field(
        default=None,
        min_length=1,
        description="Name of the environment variable holding the key's passphrase (never the passphrase).",
    )
    passphrase_file: str | None = Field(
        default=None, min_length=1, description="A file holding the key's passphrase."
    )
    client_ca: str | None = Field(
        default=None,
        description="PEM file of the CA (or CAs) whose client certificates are accepted; none: no mutual"
        " TLS.",
    )
    require_client_cert: bool = Field(
        default=True,
        description="With client_ca: refuse connections without a client certificate (false: callers may"
        " still use a bearer token; a certificate presented is checked all the same).",
    )
    min_version: Literal["1.2", "1.3"] = Field(
        default="1.2", description="The lowest TLS version accepted: 1.2 (default) or 1.3."
    )

    @model_validator(mode="after")
    def _one_source(self) -> ServerTlsConfig:
        _one_passphrase_source(self.passphrase_env, self.passphrase_file)
        return self


class ServerConfig(_Model):
    """The inbound HTTP API."""

    host: str = Field(default="127.0.0.1", description="The address to listen on (0.0.0.0: every one).")
    port: int = Field(default=8080, ge=0, le=65535, description="The port to listen on (0: any free one).")
    max_body_bytes: int = Field(default=4 * 1024 * 1024, ge=1024, description="Larger bodies get 413.")
    max_batch_events: int = Field(default=1000, ge=1, description="Most events in one POST /v1/events.")
    docs: Literal["admin", "public", "off"] = Field(
        default="admin",
        description="/docs, /redoc and /openapi.json: for operators (an admin token or the console's"
        " session), for anyone, or for no one.",
    )
    metrics_from: list[str] = Field(
        default_factory=list,
        description="Networks (CIDR, e.g. 10.0.0.0/8, 127.0.0.1/32) that may read /metrics; others get 403."
        " Empty: any.",
    )
    max_bodies_bytes: int = Field(
        default=8 * 1024 * 1024,
        ge=1024,
        description="Request bodies being read and handled at once, all requests together, in bytes (at"
        " least max_body_bytes); past it: 503 with Retry-After.",
    )
    max_header_bytes: int = Field(
        default=16 * 1024,
        ge=1024,
        description="A request's line and headers, in bytes; larger heads get 431.",
    )
    max_headers: int = Field(default=100, ge=8, description="Header lines in one request; more get 431.")
    header_timeout_s: float = Field(
        default=10.0, gt=0, description="A request's head must arrive within this time (s), else 408."
    )
    body_timeout_s: float = Field(
        default=60.0,
        gt=0,
        description="A body must arrive within this time (s) of its head, else the connection is closed.",
    )

    tls: ServerTlsConfig | None = Field(
        default=None,
        description="Serve HTTPS; with client_ca, accept callers by client certificate (auth.certificates).",
    )

    @model_validator(mode="after")
    def _one_body_fits(self) -> ServerConfig:
        if self.max_bodies_bytes < self.max_body_bytes:
            raise ValueError(
                f"max_bodies_bytes ({self.max_bodies_bytes}) must be at least max_body_bytes"
                f" ({self.max_body_bytes}), or the largest body allowed could never be read"
            )
        for network in self.metrics_from:
            try:
                ipaddress.ip_network(network, strict=False)
            except ValueError as exc:
                raise ValueError(f"metrics_from: {network!r} is not a network (CIDR): {exc}") from exc
        return self


def _token_hash(value: str) -> str:
    if not _SHA256_HEX.match(value):
        raise ValueError("must be 64 lowercase hex characters: the SHA-256 of the token, not the token")
    return value


TokenHash = Annotated[str, AfterValidator(_token_hash)]
"""A token as the config keeps it: its SHA-256 in lowercase hex, never the token."""


class TokenConfig(_Model):
    """A bearer token the provincial system may present, stored as the SHA-256 hex of the token."""

    name: str = Field(min_length=1, description="Who holds the token; shown in logs, never the token.")
    sha256: TokenHash = Field(description="lowercase hex SHA-256 of the token (`lienthong token hash`)")
    read_all: bool = Field(
        default=False,
        description="May read every caller's messages (an operator's token); otherwise a caller sees only"
        " the messages of events it sent.",
    )


class CertificateCallerConfig(_Model):
    """A caller known by the subject of its client certificate (mutual TLS, server.tls.client_ca)."""

    name: str = Field(min_length=1, description="The caller's name, as a token's holder is named.")
    subject: str = Field(
        min_length=1,
        description="The certificate's subject as RFC 4514 writes it, e.g. 'CN=hcc.example.gov.vn,O=So TTTT'"
        " (`lienthong certs show` prints it).",
    )
    read_all: bool = Field(default=False, description="May read every caller's messages.")

    @field_validator("subject")
    @classmethod
    def _rfc4514(cls, value: str) -> str:
        from cryptography import x509  # noqa: PLC0415 (only configs naming certificate callers need it)

        try:
            x509.Name.from_rfc4514_string(value)
        except ValueError as exc:
            raise ValueError(f"not an RFC 4514 subject such as 'CN=name,O=org': {exc}") from exc
        return value


class RateLimitConfig(_Model):
    """How often one caller may call the API (a token bucket per caller; past it, 429 with Retry-After)."""

    per_second: float = Field(
        default=200.0, ge=0, description="Requests a second each caller may make on average; 0: no limit."
    )
    burst: int = Field(default=400, ge=1, description="Requests a caller may make at once above the average.")


class AuthConfig(_Model):
    """Who may call the API: bearer tokens, stored as their SHA-256."""

    tokens: list[TokenConfig] = Field(
        default_factory=list, description="The callers' tokens: {name, sha256, read_all}."
    )
    certificates: list[CertificateCallerConfig] = Field(
        default_factory=list,
        description="Callers known by their client certificate (server.tls.client_ca): {name, subject,"
        " read_all}.",
    )
    rate_limit: RateLimitConfig = RateLimitConfig()


class AdminTokenConfig(_Model):
    """An operator's token for the admin API and console (`lienthong token new`), stored as its SHA-256."""

    name: str = Field(min_length=1, description="Who holds it: recorded with each replay, discard, reveal.")
    sha256: TokenHash = Field(description="lowercase hex SHA-256 of the token (`lienthong token hash`)")


class AdminConfig(_Model):
    """The admin API (`/admin/v1/…`) and web console (`/admin`): operators' tokens, apart from the callers'
    (`auth.tokens`), so that no provincial system's token is ever an operator's."""

    tokens: list[AdminTokenConfig] = Field(
        default_factory=list,
        description="Operators' tokens: {name, sha256}. None: the admin API and console refuse everyone.",
    )
    session_ttl_s: float = Field(
        default=28_800.0, gt=0, description="How long a console login lasts, in seconds (8 hours)."
    )
    replays_per_second: float = Field(
        default=10.0,
        gt=0,
        description="Dead letters the admin API and console make pending a second, all operators together;"
        " past it a replay answers 429 with Retry-After.",
    )


_DEADLINE = Field(
    default=10.0,
    ge=0.1,  # below it a busy disk would answer 503 to every call
    description="Every store call's deadline in seconds: past it, ingest answers 503 with Retry-After and"
    " /readyz fails, instead of requests hanging on a frozen disk or database.",
)


class SqliteStoreConfig(_Model):
    """The embedded default store: one SQLite file in WAL mode, one node."""

    kind: Literal["sqlite"] = "sqlite"
    path: str = Field(
        default="lienthong.db", description="The database file, relative to the working directory."
    )
    synchronous: Literal["full", "normal"] = Field(
        default="full",
        description="full: a commit survives power loss; normal: it survives a process crash (kill -9) only.",
    )
    process: bool = Field(
        default=True,
        description="true: run the store in a child process, on its own core (decision 0006); false: on a"
        " thread of the server's process.",
    )
    deadline_s: float = _DEADLINE


class PostgresStoreConfig(_Model):
    """PostgreSQL (psycopg 3, a connection pool): the store for several nodes (decision 0010)."""

    kind: Literal["postgres"]
    dsn: SecretStr = Field(
        min_length=1,
        description="libpq connection string or URI, e.g. postgresql://lienthong@127.0.0.1:5432/lienthong"
        " (use ${ENV} for a password).",
    )
    pool_size: int = Field(
        default=4, ge=1, le=64, description="Connections, one per store worker thread (with process: false)."
    )
    process: bool = Field(
        default=True,
        description="true: the store's work runs in a child process on one connection, with group commit, off"
        " the server's interpreter lock (as SQLite's, decision 0006); false: on a pool of threads in the"
        " server's process.",
    )
    deadline_s: float = _DEADLINE


class MemoryStoreConfig(_Model):
    """Nothing kept after the process ends: for tests and trials only."""

    kind: Literal["memory"]


STORE_KINDS = ("sqlite", "postgres", "memory")


def _store_kind(value: Any) -> str:
    kind = value.get("kind", "sqlite") if isinstance(value, dict) else getattr(value, "kind", "sqlite")
    return kind if isinstance(kind, str) else "sqlite"


StoreConfig = Annotated[
    Annotated[SqliteStoreConfig, Tag("sqlite")]
    | Annotated[PostgresStoreConfig, Tag("postgres")]
    | Annotated[MemoryStoreConfig, Tag("memory")],
    Discriminator(_store_kind),
]


class RetryConfig(_Model):
    """Exponential backoff with jitter, a cap, and limits on attempts and age (see bus.retry)."""

    initial_delay_s: float = Field(default=1.0, gt=0, description="Seconds before the first retry.")
    multiplier: float = Field(default=2.0, ge=1, description="Each delay is the one before times this.")
    max_delay_s: float = Field(default=300.0, gt=0, description="No delay is longer than this (seconds).")
    jitter: float = Field(default=0.2, ge=0, le=1, description="± share of each delay chosen at random")
    max_attempts: int = Field(
        default=12, ge=1, description="Attempts, the first included, before a message is a dead letter."
    )
    max_age_s: float = Field(
        default=86_400.0, gt=0, description="Seconds after which a message still failing is a dead letter."
    )


class CircuitConfig(_Model):
    """A destination's circuit breaker: after failures in a row its messages wait in the outbox, without
    attempts, then one probe decides (see bus.circuits)."""

    enabled: bool = Field(default=True, description="false: every message is tried, whatever came before.")
    failures: int = Field(
        default=5, ge=1, description="Retryable failures in a row (down, overloaded) that open the circuit."
    )
    open_s: float = Field(
        default=30.0,
        gt=0,
        description="Seconds the circuit stays open before a probe; doubled per failed probe.",
    )
    max_open_s: float = Field(
        default=600.0, gt=0, description="The longest the circuit stays open (seconds)."
    )
    probe_wait_s: float = Field(
        default=1.0, gt=0, description="When messages held while a probe is out are due again (seconds)."
    )


class DispatcherConfig(_Model):
    """Delivery of stored messages to the destinations: how many at once, leases, retries."""

    enabled: bool = Field(
        default=True, description="false: accept and store events, deliver nothing (ingest only)."
    )
    max_in_flight: int = Field(
        default=64, ge=1, description="Deliveries under way at once, all destinations."
    )
    poll_interval_s: float = Field(default=0.5, gt=0, description="Idle wait before looking for due retries.")
    shutdown_grace_s: float = Field(
        default=10.0, ge=0, description="Seconds deliveries under way may take to finish when the node stops."
    )
    lease_s: float = Field(
        default=300.0,
        ge=1,
        description="How long a claimed message stays with its delivery. If its outcome cannot be written (a"
        " store fault), it is due again once the lease runs out. Keep it above twice the slowest"
        " destination's timeout: a buffered message starts only with half its lease left.",
    )
    retry: RetryConfig = RetryConfig()
    circuit: CircuitConfig = Field(
        default_factory=CircuitConfig,
        description="Circuit breakers, one per destination; a destination's own `circuit` keys win.",
    )


class JobConfig(_Model):
    """One scheduled job: when it runs, for how long at most, and how it is retried (decision 0012)."""

    cron: str = Field(
        description="When the job runs, as a crontab expression (minute hour day month weekday) in"
        " scheduler.timezone, e.g. '0 2 * * *' (02:00 daily). Weekdays as names (mon-fri): APScheduler 3"
        " reads 0 as Monday. Each run covers the window from the previous fire time to its own.",
    )
    time_limit_s: float = Field(
        default=3600.0, gt=0, description="Seconds one attempt may run; past it, it is timed_out (retried)."
    )
    retries: int = Field(
        default=2, ge=0, le=10, description="Attempts after a failed or timed-out one, before giving up."
    )
    backoff_s: float = Field(
        default=60.0,
        ge=0,
        description="Seconds before the first retry; each later retry waits twice as long as the one before.",
    )
    enabled: bool = Field(
        default=True,
        description="false: not run on schedule (`lienthong reconcile` still runs it by hand).",
    )

    @field_validator("cron")
    @classmethod
    def _crontab(cls, value: str) -> str:
        from lienthong.scheduler.schedule import parse_cron  # noqa: PLC0415 (it imports APScheduler)

        parse_cron(value)  # ValueError says what is wrong
        return value


class SchedulerConfig(_Model):
    """Scheduled jobs (reconciliation, integrity checks, KPIs): each window runs once, whatever the nodes."""

    enabled: bool = Field(
        default=False,
        description="true: this node runs the jobs on their schedules (and catches up at start).",
    )
    timezone: str = Field(
        default="Asia/Ho_Chi_Minh", description="IANA time zone the cron expressions and windows are read in."
    )
    jobs: dict[str, JobConfig] = Field(
        default_factory=dict,
        description="Jobs by name (a job lienthong or an installed plugin provides) → schedule and limits.",
    )

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        from lienthong.scheduler.schedule import zone  # noqa: PLC0415 (it imports APScheduler)

        zone(value)  # ValueError names the zone
        return value


class BasicAuthConfig(_Model):
    """HTTP basic authentication."""

    kind: Literal["basic"]
    username: str = Field(min_length=1, description="The user name.")
    password: SecretStr = Field(min_length=1, description="The password (use ${ENV} or ${file:PATH}).")


class BearerTokenConfig(_Model):
    """A fixed token the system issued, sent as ``Authorization: Bearer`` (the payment platform's)."""

    kind: Literal["bearer"]
    token: SecretStr = Field(min_length=1, description="The token (use ${ENV}).")


class OAuth2Config(_Model):
    """OAuth2 client credentials, as provincial LGSP gateways issue Bearer tokens."""

    kind: Literal["oauth2"]
    token_url: str = Field(pattern=r"^https?://", description="The token endpoint.")
    client_id: str = Field(min_length=1, description="The client id the gateway issued.")
    client_secret: SecretStr = Field(min_length=1, description="Its secret (use ${ENV} or ${file:PATH}).")
    scope: str | None = Field(default=None, description="The scope asked for, if the gateway wants one.")


TlsVersion = Literal["1.2", "1.3"]


def _one_passphrase_source(env: str | None, file: str | None) -> None:
    if env is not None and file is not None:
        raise ValueError("give passphrase_env or passphrase_file, not both")


class TlsConfig(_Model):
    """TLS beyond the system's trust store: a private CA, and a client certificate for mutual TLS."""

    ca_file: str | None = Field(
        default=None,
        description="PEM file of the CA that signed the server (a bundle may hold an old and a new CA at"
        " once, while a CA is rotated). Reloaded when it changes.",
    )
    client_cert: str | None = Field(
        default=None,
        description="Client certificate (mutual TLS): PEM (with its chain), or PKCS#12 (.p12/.pfx, key"
        " included). Reloaded when it changes, without a restart.",
    )
    client_key: str | None = Field(
        default=None, description="Its PEM private key (possibly encrypted), unless in client_cert."
    )
    passphrase_env: str | None = Field(
        default=None,
        min_length=1,
        description="Name of the environment variable holding the passphrase of the key or PKCS#12 file"
        " (never the passphrase itself).",
    )
    passphrase_file: str | None = Field(
        default=None,
        min_length=1,
        description="A file holding the passphrase of the key or PKCS#12 file (its final newline ignored).",
    )
    system_trust: bool = Field(
        default=True,
        description="Trust the system's CAs as well as ca_file (false: only ca_file's, for a private PKI).",
    )
    min_version: TlsVersion = Field(
        default="1.2", description="The lowest TLS version offered: 1.2 (default) or 1.3."
    )

    @model_validator(mode="after")
    def _consistent(self) -> TlsConfig:
        _one_passphrase_source(self.passphrase_env, self.passphrase_file)
        if not self.system_trust and self.ca_file is None:
            raise ValueError("system_trust: false needs a ca_file, or nothing would be trusted")
        return self


SOAP_ANSWER_LIMIT = 16 * 1024 * 1024
"""The most a SOAP system's ``max_answer_bytes`` may be: zeep parses an answer at about 40 times its size
(``benchmarks/bench_hostile.py``), so one of 16 MiB may take some 640 MB."""


class _HttpDestination(_Model):
    operations: ClassVar[tuple[str, ...]] = ()
    # The bundled mapping each operation uses when a route names none.
    default_mappings: ClassVar[dict[str, str]] = {}

    def mapping_params(self) -> dict[str, Any]:
        """Params this destination gives every mapping delivered to it (a route's own params win)."""
        return {}

    base_url: str = Field(pattern=r"^https?://", description="Scheme, host and port of the system.")
    timeout_s: float = Field(
        default=10.0, gt=0, description="Seconds one exchange may take, answer included."
    )
    max_connections: int = Field(default=64, ge=1, description="Connections open to the system at once.")
    max_answer_bytes: int | None = Field(
        default=None,
        ge=1024,
        le=1024**3,
        description="The largest answer read from this system, in bytes, as received and as decoded; a"
        " larger one is dropped unparsed and the exchange retried later. Default: 8 MiB.",
    )
    auth: (
        Annotated[BasicAuthConfig | BearerTokenConfig | OAuth2Config, Field(discriminator="kind")] | None
    ) = Field(
        default=None, description="How lienthong authenticates to this system: basic, bearer or oauth2."
    )
    tls: TlsConfig | None = None
    retry: RetryConfig | None = Field(
        default=None,
        description="How deliveries to this system are retried, where it differs from dispatcher.retry:"
        " the keys given here replace dispatcher.retry's, the others are kept. E.g. a portal that is"
        " down for hours deserves {max_age_s: 259200}; a bank's API {max_attempts: 3}.",
    )
    circuit: CircuitConfig | None = Field(
        default=None,
        description="This system's circuit breaker, where it differs from dispatcher.circuit (the keys given"
        " replace dispatcher.circuit's).",
    )


class _SoapDestination(_HttpDestination):
    """A system spoken to over SOAP (zeep), whose answers cost the node more memory than their size."""

    max_answer_bytes: int | None = Field(
        default=None,
        ge=1024,
        le=SOAP_ANSWER_LIMIT,
        description="The largest answer read from this system, in bytes, as received and as decoded; a"
        " larger one is dropped unparsed and the exchange retried later. Default: 256 KiB; at most 16 MiB,"
        " as zeep parses a SOAP answer at about 40 times its size.",
    )


class PortalDestination(_HttpDestination):
    """National Public Service Portal (DVCQG): session login with the dstcode header."""

    operations: ClassVar[tuple[str, ...]] = ("DongBoHoSoMC", "CapNhatTienDoHoSoMC")
    default_mappings: ClassVar[dict[str, str]] = {
        "DongBoHoSoMC": "bundled:portal_dossier",
        "CapNhatTienDoHoSoMC": "bundled:portal_progress",
    }

    kind: Literal["portal"]
    login_path: str = Field(default="/api/auth/login", description="Where the session is opened.")
    service_path: str = Field(default="/api/service", description="Where the portal's services are called.")
    dstcode: str = Field(min_length=1, description="The connection's code the portal issued (dstcode).")
    username: str = Field(min_length=1, description="The connection's user.")
    password: SecretStr = Field(min_length=1, description="Its password (use ${ENV} or ${file:PATH}).")
    madonvi: str | None = Field(
        default=None,
        min_length=1,
        description="The unit code the portal issued to this connection, sent as `madonvi` in every call."
        " Unset: each event's unit_code (the portal expects one value per connection: set it).",
    )


class EmcDestination(_HttpDestination):
    """The EMC monitoring system: TrackingMCDT, identified by SiteId."""

    operations: ClassVar[tuple[str, ...]] = ("TrackingMCDT",)
    default_mappings: ClassVar[dict[str, str]] = {"TrackingMCDT": "bundled:emc_tracking"}

    kind: Literal["emc"]
    tracking_path: str = Field(default="/api/TrackingMCDT", description="Where TrackingMCDT is posted.")
    site_id: str = Field(min_length=1, description="The SiteId EMC issued to the province's system.")
    province_code: str = Field(
        min_length=1, description="The province's code in EMC's `User` field, e.g. H56."
    )
    bearer_token: SecretStr | None = Field(
        min_length=1, default=None, description="A token EMC issued, if it asks one."
    )

    def mapping_params(self) -> dict[str, Any]:
        return {"site_id": self.site_id, "province_code": self.province_code}


class PopulationDestination(_SoapDestination):
    """The National Population Database (SOAP, through the integration platform): citizen look-ups for
    e-form prefill (`citizens`). It takes no routes."""

    kind: Literal["population"]
    service_path: str = Field(default="/ws/congdan", description="The SOAP service's path.")
    ma_tich_hop: str = Field(
        min_length=1, description="MaTichHop: the integration code issued to the province."
    )
    ma_dvc: str = Field(min_length=1, description="MaDVC: the public service the look-ups serve.")


class PayGovDestination(_HttpDestination):
    """The portal's payment platform (PayGov-style): INIT creates a payment and its pay URL."""

    operations: ClassVar[tuple[str, ...]] = ("INIT",)
    default_mappings: ClassVar[dict[str, str]] = {"INIT": "bundled:paygov_init"}

    kind: Literal["paygov"]
    service_path: str = Field(default="/api/paygov", description="Where the platform's API is called.")
    partner_code: str = Field(min_length=1, description="MaDoiTac: the province's partner code.")
    secret: SecretStr = Field(min_length=1, description="The shared secret of MaXacThuc (use ${ENV}).")


class ProvincialDestination(_HttpDestination):
    """The provincial system's webhook: results it must know, signed with HMAC-SHA256 (see README)."""

    operations: ClassVar[tuple[str, ...]] = ("notify",)
    default_mappings: ClassVar[dict[str, str]] = {"notify": "bundled:provincial_payment"}

    kind: Literal["provincial"]
    webhook_path: str = Field(
        default="/lienthong/callback", description="Where the province receives lienthong's callbacks."
    )
    signature: Literal["lienthong", "standard_webhooks"] = Field(
        default="lienthong",
        description="How callbacks are signed: `lienthong` (X-Lienthong-Signature: t=…,v1=<hex>) or"
        " `standard_webhooks` (webhook-id, webhook-timestamp, webhook-signature; the message id is signed"
        " too), which the province can check with a ready Standard Webhooks library.",
    )
    secret: SecretStr = Field(
        min_length=1,
        description="The key both sides hold for the signature (use ${ENV}); with `standard_webhooks`,"
        " `whsec_` and the base64 of 24 to 64 random bytes.",
    )

    @field_validator("secret")
    @classmethod
    def _standard_webhooks_secret(cls, secret: SecretStr, info: ValidationInfo) -> SecretStr:
        # The key's size from its base64 text, without decoding it (the adapter decodes it).
        key = re.fullmatch(r"whsec_([A-Za-z0-9+/]*={0,2})", secret.get_secret_value())
        text = key.group(1) if key and len(key.group(1)) % 4 == 0 else ""
        size = len(text) * 3 // 4 - text.count("=")
        if info.data.get("signature") == "standard_webhooks" and not 24 <= size <= 64:
            raise ValueError(
                "with signature standard_webhooks, write `whsec_` and the base64 of 24 to 64 random bytes"
                " (`whsec_` followed by what `openssl rand -base64 32` prints)"
            )
        return secret


class _Seller(_Model):
    seller_name: str = Field(min_length=1, description="The collecting unit's name on receipts (NBan/Ten).")
    seller_tax_code: str = Field(min_length=1, description="Its tax code (NBan/MST).")
    seller_address: str = Field(default="", description="The seller's address, as on the receipt.")

    def receipt_params(self, *, template_code: str, series: str) -> dict[str, Any]:
        """What the e-receipt mappings take from a provider's config (their ``params``)."""
        seller = {"seller_name": self.seller_name, "seller_tax_code": self.seller_tax_code}
        return {
            **seller,
            "seller_address": self.seller_address,
            "template_code": template_code,
            "series": series,
        }


class VnptDestination(_SoapDestination, _Seller):
    """VNPT e-invoices (SOAP): receipts published with ImportAndPublishInv under a pattern and serial."""

    operations: ClassVar[tuple[str, ...]] = ("issue", "cancel")
    default_mappings: ClassVar[dict[str, str]] = {
        "issue": "bundled:einvoice_receipt",
        "cancel": "bundled:einvoice_cancel",
    }

    kind: Literal["vnpt"]
    account: str = Field(min_length=1, description="Account (the admin account VNPT issued).")
    ac_password: SecretStr = Field(min_length=1, description="ACpass.")
    username: str = Field(min_length=1, description="The service user.")
    password: SecretStr = Field(
        min_length=1, description="The service password (use ${ENV} or ${file:PATH})."
    )
    pattern: str = Field(min_length=1, description="The receipt template (mẫu số), e.g. 1/001 under TT78.")
    serial: str = Field(min_length=1, description="The receipt series (ký hiệu), e.g. C26TAA.")
    publish_wsdl: str | None = Field(
        default=None,
        description="PublishService's WSDL: a URL (the tenant's own, e.g. https://<tenant>-tt78admin"
        ".vnpt-invoice.com.vn/PublishService.asmx?wsdl) or a file relative to the config; default: the"
        " bundled one. Calls go to {base_url}/PublishService.asmx.",
    )
    business_wsdl: str | None = Field(
        default=None, description="BusinessService's WSDL (cancelInv), likewise; default: bundled."
    )
    portal_wsdl: str | None = Field(
        default=None,
        description="PortalService's WSDL (listInvByCusFkey, the look-up where PublishService has no"
        " GetInvoiceByFkey), likewise; default: bundled.",
    )
    lookup_notax: str = Field(
        default="1",
        description="GetInvoiceByFkey's notax (assumed): a public client saw notax 0 find drafts only.",
    )
    timeout_s: float = Field(
        default=30.0, gt=0, description="Seconds one exchange may take (e-invoice services are slow)."
    )

    @field_validator("publish_wsdl", "business_wsdl", "portal_wsdl")
    @classmethod
    def _fetched_or_a_file(cls, value: str | None) -> str | None:
        if value is not None and "://" in value and not value.lower().startswith(("http://", "https://")):
            raise ValueError(
                f"must be an http(s) URL or a file relative to the config, not {value[:80]!r}: lienthong"
                " fetches WSDLs over http(s) only"
            )
        return value

    def mapping_params(self) -> dict[str, Any]:
        return self.receipt_params(template_code=self.pattern, series=self.serial)


class ViettelDestination(_HttpDestination, _Seller):
    """Viettel S-Invoice (REST): login for a token, createInvoice, search by transactionUuid."""

    operations: ClassVar[tuple[str, ...]] = ("issue",)
    default_mappings: ClassVar[dict[str, str]] = {"issue": "bundled:einvoice_viettel"}

    kind: Literal["viettel"]
    login_path: str = Field(default="/auth/login", description="Where the token is asked for.")
    username: str = Field(min_length=1, description="The S-Invoice account.")
    password: SecretStr = Field(min_length=1, description="Its password (use ${ENV} or ${file:PATH}).")
    supplier_tax_code: str = Field(min_length=1, description="supplierTaxCode in Viettel's paths.")
    template_code: str = Field(min_length=1, description="templateCode of the receipt template.")
    series: str = Field(min_length=1, description="invoiceSeries.")
    timeout_s: float = Field(
        default=30.0, gt=0, description="Seconds one exchange may take (e-invoice services are slow)."
    )
    token_as: Literal["cookie", "bearer", "both"] = Field(
        default="both",
        description="How the login token travels: the cookie access_token, an Authorization: Bearer"
        " header, or both (default; public clients use one or the other).",
    )
    duplicate_codes: list[str] = Field(
        default=["TRANSACTION_UUID_INVALID"],
        min_length=1,
        description="Error codes (`message`) meaning this transactionUuid already has an invoice: it is"
        " looked up, never issued again.",
    )
    not_found_codes: list[str] = Field(
        default=["NOT_FOUND_DATA"],
        min_length=1,
        description="Error codes (`message`) of a search meaning nothing was issued: it is issued now.",
    )

    def mapping_params(self) -> dict[str, Any]:
        return self.receipt_params(template_code=self.template_code, series=self.series)


class ResultCheckDestination(_HttpDestination):
    """Not a system lienthong delivers to: the check of result documents' PDF signatures (decision 0022).
    Route `dossier.result_issued` here (operation `verify`): each result document the event carries,
    inline (`content_base64`) or by URL on an allowed host, is verified against the trust roots, and the
    verdict is written to the dossier's ledger entry. Retries, circuit breaker and dead letters apply
    to fetching the documents as to any delivery."""

    operations: ClassVar[tuple[str, ...]] = ("verify",)
    default_mappings: ClassVar[dict[str, str]] = {"verify": "bundled:result_check"}

    kind: Literal["result_check"]
    base_url: str = Field(
        pattern=r"^https?://",
        description="The province's document store: result URLs that are relative resolve against it, and"
        " its host is allowed.",
    )
    trust_roots: list[str] = Field(
        min_length=1,
        description="PEM files of the CAs that issue officials' signing certificates (e.g. the government"
        " CA's root); a signature must chain to one of them to be `signed_valid`.",
    )
    allowed_hosts: list[str] = Field(
        default_factory=list,
        description="Hosts besides base_url's that result documents may be fetched from (exact names,"
        " no port). A URL on any other host is refused, never fetched: its verdict is `unreadable`.",
    )
    max_document_bytes: int = Field(
        default=20 * 1024 * 1024,
        ge=1024,
        le=512 * 1024 * 1024,
        description="The largest result document read, in bytes (default 20 MiB); a larger one is"
        " `unreadable`, dropped unread.",
    )
    verify_timeout_s: float = Field(
        default=30.0,
        gt=0,
        description="Seconds the verification of one document may take (on a worker thread); past it the"
        " verdict is `unreadable`.",
    )
    workers: int = Field(
        default=2, ge=1, le=32, description="Documents verified at once, each on a thread of its own."
    )


Destination = Annotated[
    PortalDestination
    | EmcDestination
    | PopulationDestination
    | PayGovDestination
    | ProvincialDestination
    | VnptDestination
    | ViettelDestination
    | ResultCheckDestination,
    Field(discriminator="kind"),
]
DESTINATION_KINDS = ("emc", "paygov", "population", "portal", "provincial", "result_check", "viettel", "vnpt")
HttpPeerConfig = _HttpDestination
"""What every system reached over HTTP has: its URL, timeout, connections, authentication and TLS."""


class ProvincialFeedSource(_HttpDestination):
    """The province's change feed, polled by lienthong (for one-stop systems that cannot call it):
    `GET path?cursor=…&limit=…` answering `{"changes": [events…], "next_cursor": "…"}`. The names are
    assumed: each is configurable."""

    kind: Literal["provincial_feed"]
    path: str = Field(default="/api/changes", description="The feed's path.")
    page_size: int = Field(default=200, ge=1, le=1000, description="Changes asked for in one page.")
    poll_interval_s: float = Field(
        default=30.0, gt=0, description="Seconds between polls once the feed is caught up."
    )
    caller: str = Field(
        default="province",
        min_length=1,
        description="The name the feed's events are stored under, as a token's name: that token reads"
        " their messages.",
    )
    cursor_param: str = Field(
        default="cursor", min_length=1, description="The query parameter of the cursor."
    )
    limit_param: str = Field(
        default="limit", min_length=1, description="The query parameter of the page size."
    )
    items_field: str = Field(default="changes", min_length=1, description="The page's list of events.")
    next_cursor_field: str = Field(
        default="next_cursor", min_length=1, description="The page's cursor of the next page."
    )


class DeliveryRule(_Model):
    to: str = Field(description="A destination name from `destinations`.")
    operation: str = Field(description="An operation that destination's kind supports.")
    mapping: str | None = Field(
        default=None,
        description="A mapping spec file (relative to this config) or bundled:NAME; "
        "default: the bundled mapping of the operation.",
    )
    params: dict[str, Any] = Field(default_factory=dict, description="Values for the mapping's params.")
    units: list[str] | None = Field(
        default=None,
        description="Only events from these units (unit_code); e.g. the units one provider serves.",
    )
    except_units: list[str] = Field(default_factory=list, description="Events from every unit but these.")
    when: Condition | None = Field(
        default=None,
        description="Only events for which this holds, in the mapping specs' condition language, over the"
        " event: event_id, type, occurred_at, unit_code, dossier.… For example"
        " {path: dossier.procedure.field_code, in: [G05]}. A path outside the event, or a condition that"
        " can never hold for the route, is a load error.",
    )

    @model_validator(mode="after")
    def _one_unit_filter(self) -> DeliveryRule:
        if self.units is not None and self.except_units:
            raise ValueError("give units or except_units, not both")
        return self


class Route(_Model):
    on: EventType = Field(description="The event type this route delivers.")
    deliver: list[DeliveryRule] = Field(
        default_factory=list, description="Its deliveries: each to a destination's operation."
    )


class CitizensConfig(_Model):
    """E-form prefill: `GET /v1/citizens/{id}` looks citizens up in a population destination."""

    source: str | None = Field(
        default=None, description="A destination of kind population; unset: no prefill."
    )
    audit_key: SecretStr | None = Field(
        min_length=1,
        default=None,
        description="Key of the HMAC standing for the citizen's id in the look-up audit (with source).",
    )
    forms: dict[str, str] = Field(
        default_factory=lambda: {"default": "bundled:citizen_eform"},
        description="E-form name → the mapping from CongDan to its fields (?form=NAME picks one).",
    )


class BankConfig(_Model):
    """A bank's payment notifications: HMAC-SHA256 over named fields, sent in a header."""

    secret: SecretStr = Field(
        min_length=1, description="The HMAC key the bank shares (use ${ENV} or ${file:PATH})."
    )
    fields: list[str] = Field(
        default_factory=lambda: ["transaction_id", "reference", "amount", "paid_at", "status"],
        min_length=1,
        description="The signed fields, in order, joined by |.",
    )
    header: str = Field(default="x-signature", description="The header carrying the hex signature.")


_BANK_NAME = re.compile(r"[A-Za-z0-9_]{1,32}")
_CHANNELS_TAKEN = frozenset({"paygov", "event", "pay"})


class PaymentsConfig(_Model):
    """Payment callbacks: POST /v1/payments/paygov/confirm and /v1/payments/banks/{bank}/notify."""

    paygov: str | None = Field(
        default=None, description="The paygov destination whose secret signs confirms."
    )
    banks: dict[str, BankConfig] = Field(
        default_factory=dict,
        description="Banks notifying payments, by name (letters, digits, _):"
        " /v1/payments/banks/{name}/notify.",
    )
    max_callback_bytes: int = Field(
        default=16_384,
        ge=1024,
        le=1_048_576,
        description="Largest callback body accepted (bytes); larger ones are refused (413) and recorded.",
    )

    @field_validator("banks")
    @classmethod
    def _bank_names(cls, banks: dict[str, BankConfig]) -> dict[str, BankConfig]:
        # A bank's name is its payments' channel, and a receipt's key is ``<channel>-<transaction id>``
        # (VNPT's key, Viettel's transactionUuid): "vcb" paying "hn-0001" and "vcb-hn" paying "0001" would
        # share one receipt (found in review). "paygov" is the platform's channel; "event" and "pay" key
        # receipts of no payment.
        for name in banks:
            if not _BANK_NAME.fullmatch(name):
                raise ValueError(f"bank name {name!r}: use letters, digits and _ only (it keys receipts)")
            if name.lower() in _CHANNELS_TAKEN:
                raise ValueError(f"bank name {name!r} is taken by lienthong's own payment channels")
        return banks

    refusals_per_minute: int = Field(
        default=30,
        ge=1,
        description="Refused callbacks one source address may cause per minute; past that its callbacks"
        " are answered 429 unread and unrecorded (only counted).",
    )
    refusals_per_minute_total: int = Field(
        default=300,
        ge=1,
        description="Refused unsigned callbacks recorded per minute from all addresses together; past it"
        " they are only counted (the store's growth is bounded whatever the number of addresses).",
    )
    paygov_reply_code: Literal["echo", "sign"] = Field(
        default="echo",
        description="MaXacThuc of the confirm reply: echo the request's (seen in a public receiver), or"
        " sign MaLoi|MaDoiTac|ThoiGianGD with the secret (assumed).",
    )


class RetentionConfig(_Model):
    """How long personal data is kept (the ``payload-retention`` job applies it)."""

    payloads_days: float | None = Field(
        default=None,
        gt=0,
        description="Purge an event's payload this many days after it was received, once its deliveries are"
        " settled (delivered or discarded); its hash and message log records stay. None: keep.",
    )


class EncryptionConfig(_Model):
    """Personal data at rest: events' payloads sealed with AES-256-GCM, a key id in each (sealing.py)."""

    keys: dict[str, SecretStr] = Field(
        min_length=1,
        description="Key id -> 32 random bytes, base64 (use ${ENV} or ${file:PATH}; `lienthong keys new`"
        " makes one). Keep an old key until `lienthong keys rotate` has sealed everything anew.",
    )
    current: str = Field(description="The key id new payloads are sealed with.")
    refuse_plaintext: bool = Field(
        default=False,
        description="true once `lienthong keys rotate` has sealed everything: a payload or payment dossier"
        " found in plain text was written past the store, and reading it is refused.",
    )

    @model_validator(mode="after")
    def _keys_are_keys(self) -> EncryptionConfig:
        if self.current not in self.keys:
            raise ValueError(
                f"current: {self.current!r} is not among the keys ({', '.join(sorted(self.keys))})"
            )
        for kid, value in self.keys.items():
            if not re.fullmatch(r"[A-Za-z0-9_.-]{1,32}", kid):
                raise ValueError(f"keys: the key id {kid!r} is not 1-32 letters, digits, '_', '.' or '-'")
            try:
                raw = base64.b64decode(value.get_secret_value(), validate=True)
            except ValueError as exc:
                raise ValueError(f"keys.{kid}: not base64") from exc
            if len(raw) != 32:
                raise ValueError(f"keys.{kid}: {len(raw)} bytes; AES-256 needs 32 (`lienthong keys new`)")
        return self

    def sealer(self) -> Sealer:
        keys = {kid: base64.b64decode(v.get_secret_value()) for kid, v in self.keys.items()}
        return Sealer(keys, self.current, self.refuse_plaintext)


class TimestampConfig(_Model):
    """An RFC 3161 timestamp authority for the message log's checkpoints."""

    url: str = Field(
        pattern=r"^https?://", description="The TSA's URL (POST application/timestamp-query, RFC 3161 §3.4)."
    )
    ca_file: str = Field(
        description="PEM file of the CA(s) the TSA's certificate chains to (relative to the config)."
    )
    max_age_s: float = Field(
        default=3600.0,
        ge=0,
        description="Records may wait this long (seconds) for a timestamp; past it new events are refused"
        " (503) until the TSA answers again. 0: never refuse.",
    )
    timeout_s: float = Field(default=10.0, gt=0, description="How long one request to the TSA may take.")


class MessageLogConfig(_Model):
    """The verifiable message log (msglog/): a record of every delivery attempt, payment callback, prefill
    look-up and operator action, in a Merkle tree signed by checkpoints."""

    enabled: bool = Field(
        default=True, description="false: nothing is recorded (a benchmark's baseline; not for production)."
    )
    origin: str = Field(
        default="lienthong",
        min_length=1,
        max_length=200,
        pattern=r"^[^\s+]+$",
        description="The log's name, the first line of every checkpoint (e.g. lienthong.ha-noi).",
    )
    key_file: str | None = Field(
        default=None,
        description="File holding the node's checkpoint signing key (`lienthong log keygen`); none: records"
        " are kept but no checkpoints are signed.",
    )
    checkpoint_every: int = Field(
        default=1000, ge=1, description="A checkpoint once this many records were appended since the last."
    )
    checkpoint_interval_s: float = Field(
        default=60.0, gt=0, description="A checkpoint at least this often (seconds) while records arrive."
    )
    timestamp: TimestampConfig | None = Field(
        default=None,
        description="Timestamp each checkpoint at an RFC 3161 TSA (needs key_file); none: not timestamped.",
    )


class EventsConfig(_Model):
    """How events from the provincial system are read."""

    dossier_code_field: str = Field(
        default="code", min_length=1, description="Key of the dossier code inside each event's `dossier`."
    )


class StatementMatching(_Model):
    """How bank transactions are matched with confirmed payments when no reference ties them."""

    date_tolerance_days: int = Field(
        default=3,
        ge=0,
        le=31,
        description="A transaction without a known reference matches an unmatched payment of the same"
        " amount paid at most this many days before or after its booking date.",
    )
    amount_tolerance: int = Field(
        default=0,
        ge=0,
        description="A transaction found by reference whose amount differs by at most this much (VND)"
        " still matches; past it, the pair is an amount mismatch.",
    )
    payer_threshold: int = Field(
        default=5,
        ge=0,
        description="One payer account paying for this many dossiers of as many applicants in a run is a"
        " finding (officials collecting cash and paying on citizens' behalf); 0 turns the check off.",
    )


class BankStatementsConfig(_Model):
    """Bank statement files for reconciliation: camt.053/camt.054 XML, or CSV through a layout."""

    layouts: dict[str, CsvLayout] = Field(
        default_factory=dict,
        description="CSV layouts by name, one per bank export format (columns, date and number formats).",
    )
    max_file_bytes: int = Field(
        default=DEFAULT_MAX_STATEMENT_BYTES,
        ge=1024,
        description="Largest statement file read (bytes); a larger one fails the run unread.",
    )
    matching: StatementMatching = StatementMatching()
    inbox: str | None = Field(
        default=None,
        description="The directory (relative to this file) where the bank's statement files land; the"
        " bank-reconcile job reads them and moves them to `done/<run>/` once reconciled.",
    )
    reports_dir: str = Field(
        default="reports",
        description="The directory (relative to this file) where runs write their JSON, CSV and HTML"
        " reports.",
    )


class IntegrityConfig(_Model):
    """Which dossier statuses mean what, for the integrity checks (the `integrity-check` job)."""

    completed_statuses: list[str] = Field(
        default=["processed", "returned", "9", "10"],
        description="Statuses that say a dossier is completed: it must then have a result.",
    )
    returned_statuses: list[str] = Field(
        default=["returned", "10"],
        description="Statuses that say the result went back to the citizen: it must then be an e-copy.",
    )
    closed_statuses: list[str] = Field(
        default=["refused", "withdrawn", "stopped"],
        description="Statuses that close a dossier without a result: it is never overdue.",
    )


class KpiTargetsConfig(_Model):
    """The directives' targets, as shares (0.6 is 60%)."""

    online: float = Field(default=0.6, ge=0, le=1, description="Dossiers received online.")
    online_provincial_centre: float = Field(
        default=0.8, ge=0, le=1, description="Dossiers received online, at a provincial centre."
    )
    fully_online: float = Field(default=0.2, ge=0, le=1, description="Dossiers fully online (level 4).")
    on_time: float = Field(default=1.0, ge=0, le=1, description="Results returned on time or early.")
    ecopy: float = Field(default=1.0, ge=0, le=1, description="Results returned as electronic copies.")
    signed: float = Field(
        default=1.0,
        ge=0,
        le=1,
        description="Results returned whose documents were checked and are validly signed (a `result_check`"
        " destination checks them).",
    )


class KpiConfig(_Model):
    """Per-unit KPIs (the `kpis` job): the period they are measured over, targets, provincial centres."""

    period_days: int = Field(
        default=30, ge=1, le=366, description="Days before the run's window end the rates are measured over."
    )
    targets: KpiTargetsConfig = KpiTargetsConfig()
    provincial_centres: list[str] = Field(
        default_factory=list,
        description="Unit codes of provincial public administration centres (their online target is"
        " `online_provincial_centre`).",
    )
    raise_events: bool = Field(
        default=True,
        description="Raise `unit.below_target` for each unit under a target, once per unit, KPI and day;"
        " route it like any event (to the provincial webhook, say).",
    )


class Config(_Model):
    """The whole lienthong configuration."""

    server: ServerConfig = ServerConfig()
    auth: AuthConfig = AuthConfig()
    admin: AdminConfig = AdminConfig()
    store: StoreConfig = Field(
        default_factory=SqliteStoreConfig,
        description="Where events and messages are kept (kind: sqlite, postgres, memory).",
    )
    dispatcher: DispatcherConfig = DispatcherConfig()
    scheduler: SchedulerConfig = SchedulerConfig()
    events: EventsConfig = EventsConfig()
    destinations: dict[str, Destination] = Field(
        default_factory=dict,
        description="The systems lienthong delivers to or asks, by name; each has a kind.",
    )
    routes: list[Route] = Field(default_factory=list, description="Which deliveries each event type makes.")
    citizens: CitizensConfig = CitizensConfig()
    payments: PaymentsConfig = PaymentsConfig()
    bank_statements: BankStatementsConfig = BankStatementsConfig()
    integrity: IntegrityConfig = IntegrityConfig()
    sources: dict[str, ProvincialFeedSource] = Field(
        default_factory=dict,
        description="Systems lienthong polls for events (kind: provincial_feed), by name.",
    )
    kpis: KpiConfig = KpiConfig()
    message_log: MessageLogConfig = MessageLogConfig()
    retention: RetentionConfig = RetentionConfig()
    encryption: EncryptionConfig | None = Field(
        default=None, description="Seal events' payloads at rest with AES-256-GCM; none: kept as sent."
    )

    _source: LocatedDocument | None = PrivateAttr(default=None)
    _base_dir: Path | None = PrivateAttr(default=None)

    @property
    def base_dir(self) -> Path:
        """The directory relative paths in the config (mapping files) are read from."""
        return self._base_dir or Path()

    def issue(self, path: PathKey, message: str) -> ConfigIssue:
        """A problem at ``path`` of the config file, with its line when the config came from a file."""
        if self._source is None:
            return ConfigIssue(path=format_path(path), message=message)
        return self._source.issue(path, message)


def load_config(path: Path, *, env: Mapping[str, str]) -> Config:
    """Read, validate and cross-check a config file. Raises ConfigError listing every problem."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(
            [ConfigIssue(path="", message=f"cannot read: {exc.strerror}", file=str(path))]
        ) from exc
    return parse_config(text, file=str(path), env=env)


def parse_config(text: str, *, file: str, env: Mapping[str, str]) -> Config:
    doc = load_located(text, file)
    if doc.data is None:
        # An empty file (or comments only) would run a node with no destinations and no routes: surely a
        # mistake (a truncated copy, the wrong file), not a wish.
        raise ConfigError.single(
            file, "the file is empty: it configures nothing (see examples/lienthong.yaml)"
        )
    if not isinstance(doc.data, dict):
        raise ConfigError([doc.issue((), "the top level must be a mapping of sections")])
    # Every phase is checked, whatever the one before found: a missing variable must not hide a key's
    # typo or an unknown destination in the same file.
    issues: list[ConfigIssue] = []
    data = substitute_env(doc, env, issues)
    overridden = apply_env_overrides(data, env, issues)
    # The environment wins over the file: a reference in a value an override replaced does not matter.
    issues[:] = [
        i for i in issues if (i.file is not None and i.file.startswith("$")) or not _under(i.path, overridden)
    ]
    unresolved = {issue.path for issue in issues}
    try:
        config = Config.model_validate(data)
    except ValidationError as exc:
        found = [
            _from_environment(_issue_from_pydantic(doc, err), overridden)
            for err in exc.errors(include_url=False)
        ]
        # A reference left as written fails its field's own test too: said once, by the reference.
        issues.extend(i for i in found if i.path not in unresolved)
        issues.extend(_unknown_destinations(data, doc))
        raise ConfigError(issues) from exc
    issues.extend(_from_environment(issue, overridden) for issue in _cross_check(config, doc))
    if issues:
        raise ConfigError(issues)
    config._source = doc
    config._base_dir = Path(file).parent
    return config


def config_json_schema() -> str:
    """JSON Schema of the config file, for editors' completion (``lienthong.jsonschemas``)."""
    from lienthong.jsonschemas import config_schema, render  # noqa: PLC0415 (it imports this module)

    return render(config_schema())


def _issue_from_pydantic(doc: LocatedDocument, err: Any) -> ConfigIssue:
    # pydantic puts the discriminator's tag into loc for tagged unions ("destinations.x.portal.base_url");
    # drop it so the path is the one in the file.
    loc: PathKey = tuple(err["loc"])
    if len(loc) >= 3 and loc[0] == "destinations" and loc[2] in DESTINATION_KINDS:
        loc = (*loc[:2], *loc[3:])
    if len(loc) >= 2 and loc[0] == "store" and loc[1] in STORE_KINDS:
        loc = (loc[0], *loc[2:])
    message = err["msg"]
    if err["type"] == "extra_forbidden":
        message = "unknown key (check its spelling; `lienthong config schema` lists the keys)"
    elif err["type"] in ("union_tag_invalid", "union_tag_not_found"):
        loc = (*loc, "kind")
        kind = err["input"].get("kind") if isinstance(err["input"], dict) else None
        known = ", ".join(DESTINATION_KINDS if loc[0] == "destinations" else STORE_KINDS)
        message = f"unknown kind {kind!r} (known: {known})" if kind else f"missing (one of: {known})"
    elif err["type"] == "too_short" and err.get("input") == "":
        message = "is empty: a secret or a name must not be (check the variable or file it comes from)"
    elif err["type"] == "literal_error":
        message = f"{message}, got {err['input']!r}"
    return doc.issue(loc, message)


ENV_PREFIX = "LIENTHONG_"
"""Environment variables ``LIENTHONG_SECTION__KEY[__KEY…]`` override the config file's keys."""


def apply_env_overrides(data: Any, env: Mapping[str, str], issues: list[ConfigIssue]) -> dict[str, str]:
    """Set the keys environment variables override, in ``data`` (the file's, references resolved):
    ``LIENTHONG_DISPATCHER__MAX_IN_FLIGHT=32`` sets ``dispatcher.max_in_flight``. Parts are separated
    by ``__`` and lower-cased; a number picks a list's item; a value starting with ``[`` or ``{`` is
    JSON, any other is text (the schema converts ``32`` and ``true``). Only names with a ``__`` count,
    so other variables of the prefix are left alone. Returns each overridden path with its variable.

    pydantic-settings does this for settings read from the environment alone; here the values land in a
    document read from YAML, whose problems are reported by line, so the 30 lines are ours (decision
    0016)."""
    overridden: dict[str, str] = {}
    if not isinstance(data, dict):
        return overridden
    for name in sorted(env):
        if not name.startswith(ENV_PREFIX) or "__" not in name:
            continue
        parts = name.removeprefix(ENV_PREFIX).lower().split("__")
        # ASCII digits only: str.isdigit also takes "²", which int() refuses.
        path: PathKey = tuple(int(p) if p.isascii() and p.isdigit() else p for p in parts)
        value: Any = env[name]
        if value[:1] in ("[", "{"):
            try:
                value = json.loads(value)
            except (ValueError, RecursionError) as exc:
                why = "nested too deep" if isinstance(exc, RecursionError) else str(exc)
                issues.append(ConfigIssue(format_path(path), f"not JSON: {why}", file=f"${name}"))
                continue
        made = _set_at(data, path, value) if all(parts) else None
        if made is None:
            issues.append(ConfigIssue(format_path(path), "no such place in the config", file=f"${name}"))
            continue
        # Problems at the key, under it, or at an object the override made on its way, are the variable's.
        overridden[format_path(path)] = overridden[format_path(made)] = name
    return overridden


def _set_at(data: Any, path: PathKey, value: Any) -> PathKey | None:
    """Set ``path`` in ``data``, making the objects on the way; the shallowest path it made (``path``
    itself when nothing on the way was missing), or None where a step cannot be taken."""
    *steps, last = path
    made: PathKey | None = None
    for depth, step in enumerate(steps):
        if isinstance(data, list) and isinstance(step, int) and step < len(data):
            data = data[step]
        elif isinstance(data, dict) and isinstance(step, str):
            key = _key_named(data, step)
            if key not in data and made is None:
                made = path[: depth + 1]
            data = data.setdefault(key, {})
        else:
            return None
    settable = isinstance(data, list) and isinstance(last, int) and last < len(data)
    if not (settable or (isinstance(data, dict) and isinstance(last, str))):
        return None
    data[_key_named(data, last) if isinstance(data, dict) and isinstance(last, str) else last] = value
    return made or path


def _key_named(data: dict[Any, Any], lowered: str) -> str:
    """The key of ``data`` a lower-cased variable part names: itself, or a key written with capitals (a
    destination or job the integrator named ``Portal_HCM``); environment names carry no case."""
    if lowered in data:
        return lowered
    return next((k for k in data if isinstance(k, str) and k.lower() == lowered), lowered)


def _under(path: str, overridden: Mapping[str, str]) -> str | None:
    """The variable that overrode ``path`` or a key above it, if any."""
    for key, name in overridden.items():
        if path == key or path.startswith((f"{key}.", f"{key}[")):
            return name
    return None


def _from_environment(issue: ConfigIssue, overridden: Mapping[str, str]) -> ConfigIssue:
    """An issue at (or under) an overridden key names the variable, not the file's line."""
    name = _under(issue.path, overridden)
    return issue if name is None else ConfigIssue(issue.path, issue.message, file=f"${name}")


def _unknown_destinations(data: Any, doc: LocatedDocument) -> list[ConfigIssue]:
    """The routes' destinations that are not configured, read from the document itself: what
    ``_cross_check`` says, for a file whose other problems leave no config to check."""
    destinations = data.get("destinations") if isinstance(data, dict) else None
    routes = data.get("routes") if isinstance(data, dict) else None
    if not isinstance(destinations, dict) or not isinstance(routes, list):
        return []
    known = ", ".join(sorted(map(str, destinations))) or "none configured"
    issues = []
    for r, route in enumerate(routes):
        rules = route.get("deliver") if isinstance(route, dict) else None
        for d, rule in enumerate(rules if isinstance(rules, list) else []):
            to = rule.get("to") if isinstance(rule, dict) else None
            if isinstance(to, str) and to not in destinations:
                where: PathKey = ("routes", r, "deliver", d, "to")
                issues.append(doc.issue(where, f"unknown destination {to!r} (known: {known})"))
    return issues


RECEIPT_ON = "payment.confirmed"
"""The one event an e-invoice destination (vnpt, viettel) may be routed from."""


def _cross_check(config: Config, doc: LocatedDocument) -> list[ConfigIssue]:
    issues: list[ConfigIssue] = []
    known = ", ".join(sorted(config.destinations)) or "none configured"
    seen: set[tuple[str, str, str]] = set()
    for r, route in enumerate(config.routes):
        for d, rule in enumerate(route.deliver):
            where: PathKey = ("routes", r, "deliver", d)
            destination = config.destinations.get(rule.to)
            if destination is None:
                issues.append(doc.issue((*where, "to"), f"unknown destination {rule.to!r} (known: {known})"))
                continue
            if rule.operation not in destination.operations:
                ops = ", ".join(destination.operations)
                msg = f"{destination.kind} has no operation {rule.operation!r} (known: {ops})"
                issues.append(doc.issue((*where, "operation"), msg))
            invoicer = isinstance(destination, VnptDestination | ViettelDestination)
            if invoicer and rule.operation == "issue" and route.on != RECEIPT_ON:
                # A receipt is for money that moved: only lienthong raises payment.confirmed. Bound to an
                # event a caller posts, every post (any event id) would issue one (found in review).
                msg = f"e-receipts are issued on {RECEIPT_ON} only, not on {route.on}"
                issues.append(doc.issue((*where, "to"), msg))
            if (route.on, rule.to, rule.operation) in seen:
                issues.append(doc.issue(where, f"{rule.to}.{rule.operation} is listed twice for {route.on}"))
            seen.add((route.on, rule.to, rule.operation))
    issues.extend(_check_citizens(config, doc))
    if config.payments.paygov is not None and not isinstance(
        config.destinations.get(config.payments.paygov), PayGovDestination
    ):
        kinds = sorted(n for n, d in config.destinations.items() if isinstance(d, PayGovDestination))
        known = ", ".join(kinds) or "none configured"
        message = f"not a paygov destination: {config.payments.paygov!r} (known: {known})"
        issues.append(doc.issue(("payments", "paygov"), message))
    slowest = max(
        ((getattr(d, "timeout_s", 0.0), name) for name, d in config.destinations.items()), default=(0.0, "")
    )
    if config.dispatcher.lease_s < 2 * slowest[0]:
        message = (
            f"must be at least twice the slowest destination's timeout ({slowest[1]}: {slowest[0]:g} s):"
            " a buffered message starts only with half its lease left, and an attempt is cut off before"
            " its lease ends"
        )
        issues.append(doc.issue(("dispatcher", "lease_s"), message))
    return issues


def _check_citizens(config: Config, doc: LocatedDocument) -> list[ConfigIssue]:
    citizens = config.citizens
    if citizens.source is None:
        return []
    source = config.destinations.get(citizens.source)
    if not isinstance(source, PopulationDestination):
        kinds = sorted(n for n, d in config.destinations.items() if isinstance(d, PopulationDestination))
        known = ", ".join(kinds) or "none configured"
        return [
            doc.issue(
                ("citizens", "source"), f"not a population destination: {citizens.source!r} (known: {known})"
            )
        ]
    if citizens.audit_key is None or len(citizens.audit_key.get_secret_value()) < 16:
        return [
            doc.issue(("citizens", "audit_key"), "needed with source: at least 16 characters (use ${ENV})")
        ]
    return []
