"""The composition root: builds the store, adapters, bus and API from a Config, and runs them together.

Config is read once, by the CLI, and turned into small typed objects here; nothing below reads settings
or the environment.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import os
import ssl
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import httpx
from fastapi import FastAPI
from prometheus_client import CollectorRegistry
from pydantic import BaseModel, ValidationError

from lienthong import __version__
from lienthong._yaml import LocatedDocument, PathKey, load_located, substitute_env
from lienthong.adapters.auth import AuthenticatedTransport, BasicAuth, OAuth2ClientCredentials, StaticBearer
from lienthong.adapters.base import Adapter
from lienthong.adapters.einvoice.viettel import ViettelAccount, ViettelInvoiceAdapter
from lienthong.adapters.einvoice.vnpt import VnptAccount, VnptInvoiceAdapter, VnptServices
from lienthong.adapters.emc import EmcAdapter
from lienthong.adapters.http import HttpPeer, make_transport
from lienthong.adapters.paygov import PayGovAdapter, PayGovSettings
from lienthong.adapters.population import PopulationAdapter, make_soap_transport
from lienthong.adapters.portal import PortalAdapter, PortalCredentials
from lienthong.adapters.provincial import ProvincialAdapter
from lienthong.adapters.results import ResultCheckAdapter, ResultCheckSettings
from lienthong.api import openapi
from lienthong.api.admin import AdminAuth, Operations, ReplayLimit, admin_router
from lienthong.api.auth import BearerAuth, CallerLimits
from lienthong.api.citizens import citizens_router
from lienthong.api.docs_guard import DocsGuard
from lienthong.api.errors import install_error_handlers
from lienthong.api.events import events_router
from lienthong.api.health import health_router
from lienthong.api.limits import BodySizeLimit
from lienthong.api.payments import payments_router
from lienthong.bank.job import BankJobSettings, BankReconciliation
from lienthong.bus.circuits import CircuitBreakers, CircuitSettings
from lienthong.bus.conditions import RouteFacts, compile_route_condition
from lienthong.bus.deadletters import DeadLetters
from lienthong.bus.dispatcher import Dispatcher
from lienthong.bus.emit import EventSink
from lienthong.bus.ingest import Ingestor
from lienthong.bus.middleware import DeadLetterNotice, DeliveryMetrics, Retries
from lienthong.bus.retry import ExponentialBackoff, RetryPolicy, StopAfterAge, StopAfterAttempts
from lienthong.bus.routes import DeliveryRoute, Mapper, Routes
from lienthong.certs import CertificateFile, Passphrase, Reloader, ReloadingContext, TlsFiles
from lienthong.certs.inventory import describe
from lienthong.certs.tls import build_client, build_server, reloading_client, reloading_server
from lienthong.certs.xmldsig import TrustStore
from lienthong.checks.completeness import EmcCompleteness
from lienthong.checks.integrity import IntegrityRules
from lienthong.checks.jobs import IntegrityJob, KpiJob, KpiSettings
from lienthong.checks.kpis import Targets
from lienthong.checks.portal import PortalReconcile
from lienthong.citizens.prefill import Prefill
from lienthong.clock import Clock, now_ms
from lienthong.config import (
    BasicAuthConfig,
    BearerTokenConfig,
    CircuitConfig,
    Config,
    Destination,
    EmcDestination,
    HttpPeerConfig,
    OAuth2Config,
    PayGovDestination,
    PopulationDestination,
    PortalDestination,
    ProvincialDestination,
    ProvincialFeedSource,
    ResultCheckDestination,
    RetryConfig,
    ServerTlsConfig,
    TlsConfig,
    ViettelDestination,
    VnptDestination,
    load_config,
)
from lienthong.console import console_router
from lienthong.console.session import COOKIE, Sessions
from lienthong.errors import ConfigError, ConfigIssue, StoreError
from lienthong.mappings import BUNDLED_PREFIX, CompiledMapping, FunctionRegistry, SpecLoader
from lienthong.mappings.spec import Condition
from lienthong.msglog.checkpointer import Checkpointer, CheckpointSettings, LogDamaged
from lienthong.msglog.checkpoints import SigningKey
from lienthong.msglog.timestamps import Timestamper, load_roots
from lienthong.observability.http import RequestMetrics
from lienthong.observability.logs import RequestId
from lienthong.observability.metrics import Metrics
from lienthong.payments import CallbackScheme, HmacFieldsScheme, PayGovScheme
from lienthong.payments.callbacks import PaymentCallbacks, RefusalLimiter
from lienthong.request_limits import RequestLimits
from lienthong.retention import PayloadRetention
from lienthong.scheduler import JobRegistry
from lienthong.scheduler.jobs import Job, RunContext, RunResult
from lienthong.scheduler.schedule import zone
from lienthong.scheduler.service import Scheduler, job_issues, plans
from lienthong.sources.provincial import FeedSettings, ProvincialFeed
from lienthong.store import Store, build_store, node_name, units

log = logging.getLogger("lienthong.app")


@dataclass
class Lienthong:
    """Everything one lienthong node runs. Build it with ``build``; ``api`` starts and stops the rest."""

    config: Config
    metrics: Metrics
    store: Store
    routes: Routes
    dead_letters: DeadLetters
    ingestor: Ingestor
    dispatcher: Dispatcher
    adapters: dict[str, Adapter]
    clock: Clock
    prefill: Prefill | None = None
    payments: PaymentCallbacks | None = None
    certificates: list[Certificate] = field(default_factory=list)
    """The certificate files the node uses, read at build and again after each reload: gauges, readiness."""
    population: PopulationAdapter | None = None
    scheduler: Scheduler | None = None
    feeds: list[ProvincialFeed] = field(default_factory=list)
    reloader: Reloader = field(default_factory=Reloader)
    """The TLS contexts that follow their certificate files (polled while the node runs; SIGHUP: reload)."""
    checkpointer: Checkpointer | None = None
    """Signs the message log's checkpoints (with ``message_log.key_file``)."""
    api: FastAPI = field(init=False)
    _dispatch_task: asyncio.Task[None] | None = field(default=None, init=False)
    _feed_tasks: list[asyncio.Task[None]] = field(default_factory=list, init=False)
    _certs_task: asyncio.Task[None] | None = field(default=None, init=False)
    _checkpoint_task: asyncio.Task[None] | None = field(default=None, init=False)

    async def start(self) -> None:
        """Open the store, return rows a crash left in flight to pending, and start dispatching."""
        self.store.open()
        await self.store.run(units.save_mappings, self.routes.versions(), now_ms(self.clock))
        # One node per SQLite file: whatever is in flight at start was this node's before it stopped. On a
        # shared store (PostgreSQL) it may be another node's: leases alone return those.
        recovered = 0 if self.store.shared else await self.store.run(units.recover)
        if recovered:
            log.warning("returned %d deliveries left in flight by an earlier stop to pending", recovered)
        if self.config.dispatcher.enabled:
            self._dispatch_task = asyncio.create_task(self.dispatcher.run(), name="lienthong-dispatcher")
        if self.scheduler is not None:
            await self.scheduler.start()  # catches up on missed windows, then follows the schedules
        self._feed_tasks = [
            asyncio.create_task(feed.run(), name=f"lienthong-feed-{feed.settings.name}")
            for feed in self.feeds
        ]
        if len(self.reloader):
            self._certs_task = asyncio.create_task(self.reloader.poll(), name="lienthong-certificates")
        if self.checkpointer is not None:
            self._checkpoint_task = asyncio.create_task(self.checkpointer.run(), name="lienthong-checkpoints")

    async def stop(self) -> None:
        if self._certs_task is not None:
            self._certs_task.cancel()
            await asyncio.gather(self._certs_task, return_exceptions=True)
        for feed in self.feeds:
            feed.stop()  # a page being stored is stored: its transaction holds the events and the cursor
        if self._feed_tasks:
            await asyncio.wait(self._feed_tasks, timeout=self.config.dispatcher.shutdown_grace_s)
            for task in self._feed_tasks:
                task.cancel()
            await asyncio.gather(*self._feed_tasks, return_exceptions=True)
        for feed in self.feeds:
            await feed.aclose()
        if self.scheduler is not None:
            await self.scheduler.stop()  # before the store closes: interrupted runs are recorded
        await self.dispatcher.stop(self.config.dispatcher.shutdown_grace_s)
        if self._dispatch_task is not None:
            self._dispatch_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._dispatch_task
        for adapter in self.adapters.values():
            await adapter.aclose()
        if self.population is not None:
            await self.population.aclose()
        if self.checkpointer is not None and self._checkpoint_task is not None:
            self.checkpointer.stop()
            await asyncio.gather(self._checkpoint_task, return_exceptions=True)
            try:  # the records of the last moments under a checkpoint too
                await self.checkpointer.checkpoint()
            except (StoreError, LogDamaged) as exc:
                log.warning("no last message log checkpoint at the stop: %s", exc)
            await self.checkpointer.aclose()
        self.store.close()

    @asynccontextmanager
    async def lifespan(self, _: FastAPI) -> AsyncIterator[None]:
        await self.start()
        try:
            yield
        finally:
            await self.stop()


def build(
    config: Config,
    *,
    clock: Clock = time.time,
    registry: CollectorRegistry | None = None,
    loader: SpecLoader | None = None,
    init_store: bool = False,
    as_node: bool = True,
    jobs: JobRegistry | None = None,
) -> Lienthong:
    """Build a node. Raises ConfigError when a mapping the routes use does not compile, or a scheduled job
    is unknown. ``init_store`` creates the store even where one ran before and was removed (``lienthong db
    init``); ``as_node=False`` opens it for an operator's tool (dlq, payments) beside a running node,
    without the node's lock. ``jobs``: the scheduler's jobs (default: built-in and installed ones)."""
    loader = loader or SpecLoader(FunctionRegistry.with_plugins())
    routes = build_routes(config, loader)
    metrics = Metrics(registry if registry is not None else CollectorRegistry())
    used = certificates(config)
    for certificate in used:
        metrics.certificate_expiry.labels(certificate.name, certificate.purpose).set(certificate.not_after)
    reloader = Reloader(on_reload=lambda context: refresh_certificates(config, metrics, used, context.name))
    store = build_store(
        config.store,
        init=init_store,
        as_node=as_node,
        message_log=config.message_log.enabled,
        sealer=config.encryption.sealer() if config.encryption is not None else None,
    )
    events = EventSink(config.events.dossier_code_field)
    adapters = {
        name: build_adapter(name, dest, store, events, config.base_dir, clock=clock, reloader=reloader)
        for name, dest in config.destinations.items()
        if not isinstance(dest, PopulationDestination)
    }
    check_local_wsdls(config, adapters)
    mapper = Mapper(routes, store, loader)
    dispatcher = Dispatcher(
        store,
        mapper,
        adapters,
        [
            *circuit_breakers(config, metrics, clock),
            Retries(retry_policy(config.dispatcher.retry), retry_policies(config)),
            DeadLetterNotice(events.delivery_failed),
            DeliveryMetrics(metrics),
        ],
        clock=clock,
        max_in_flight=config.dispatcher.max_in_flight,
        poll_interval_s=config.dispatcher.poll_interval_s,
        lease_s=config.dispatcher.lease_s,
    )
    ingestor = Ingestor(store, routes, metrics, on_accepted=dispatcher.wake, clock=clock)
    events.attach(ingestor)
    dead_letters = DeadLetters(store, routes, mapper, clock=clock)
    node = Lienthong(config, metrics, store, routes, dead_letters, ingestor, dispatcher, adapters, clock)
    node.certificates = used
    node.reloader = reloader
    if config.citizens.source is not None:
        node.population = build_population(config, config.citizens.source, reloader=reloader)
        node.prefill = build_prefill(config, node.population, store, metrics, loader, clock=clock)
    schemes = payment_schemes(config)
    if schemes:
        node.payments = PaymentCallbacks(
            schemes,
            store,
            events,
            metrics,
            limiter=RefusalLimiter(
                config.payments.refusals_per_minute,
                total_per_minute=config.payments.refusals_per_minute_total,
            ),
            clock=clock,
        )
    job_registry = jobs if jobs is not None else JobRegistry.with_plugins()
    built = builtin_jobs(config, store, adapters, metrics, events, routes=routes, mapper=mapper, clock=clock)
    for name, job in built.items():
        if name not in job_registry:  # an installed job of the same name wins
            job_registry.register(name, job)
    node.scheduler = build_scheduler(config, store, metrics, job_registry, clock=clock)
    node.checkpointer = build_checkpointer(config, store, clock)
    node.feeds = [
        build_feed(
            name,
            source,
            config,
            store=store,
            ingestor=ingestor,
            metrics=metrics,
            clock=clock,
            reloader=reloader,
            refusal=node.checkpointer.refusal if node.checkpointer is not None else None,
        )
        for name, source in config.sources.items()
    ]
    node.api = build_api(node)
    return node


async def _built_with_the_node(context: RunContext) -> RunResult:
    raise RuntimeError(f"{context.job} runs only in a node built by app.build, with its store")


def build_feed(
    name: str,
    source: ProvincialFeedSource,
    config: Config,
    *,
    store: Store,
    ingestor: Ingestor,
    metrics: Metrics,
    clock: Clock,
    reloader: Reloader | None = None,
    refusal: Callable[[], str | None] | None = None,
) -> ProvincialFeed:
    """The poller of ``sources.<name>``, on the source's own transport (TLS, authentication); while
    ``refusal`` gives a reason (the message log's, as ``POST /v1/events`` answers 503), it takes nothing."""
    transport = destination_transport(source, config.base_dir, name=f"sources.{name}", reloader=reloader)
    peer = HttpPeer(source.base_url, transport, timeout_s=source.timeout_s)
    settings = FeedSettings(
        name=name,
        page_size=source.page_size,
        poll_interval_s=source.poll_interval_s,
        caller=source.caller,
        dossier_code_field=config.events.dossier_code_field,
        cursor_param=source.cursor_param,
        limit_param=source.limit_param,
        items_field=source.items_field,
        next_cursor_field=source.next_cursor_field,
    )
    return ProvincialFeed(
        settings,
        peer,
        source.path,
        store=store,
        ingestor=ingestor,
        metrics=metrics,
        clock=clock,
        refusal=refusal,
    )


def builtin_jobs(
    config: Config,
    store: Store,
    adapters: Mapping[str, Adapter],
    metrics: Metrics,
    events: EventSink,
    *,
    routes: Routes,
    mapper: Mapper,
    clock: Clock,
) -> dict[str, Job]:
    """The jobs lienthong provides, built on this node's store, adapters, metrics and event sink."""
    statements = config.bank_statements
    reports_dir = config.base_dir / statements.reports_dir
    paygov = adapters.get(config.payments.paygov or "")
    settings = BankJobSettings(
        inbox=config.base_dir / (statements.inbox or "bank-statements"),
        reports_dir=reports_dir,
        layouts=statements.layouts,
        max_file_bytes=statements.max_file_bytes,
        date_tolerance_days=statements.matching.date_tolerance_days,
        amount_tolerance=statements.matching.amount_tolerance,
        payer_threshold=statements.matching.payer_threshold,
        zone=zone(config.scheduler.timezone),
    )
    query = paygov.query if isinstance(paygov, PayGovAdapter) else None
    integrity = config.integrity
    rules = IntegrityRules(
        frozenset(integrity.completed_statuses),
        frozenset(integrity.returned_statuses),
        frozenset(integrity.closed_statuses),
    )
    emc = sorted(name for name, dest in config.destinations.items() if isinstance(dest, EmcDestination))
    kpis = config.kpis
    targets = Targets(**kpis.targets.model_dump())
    kpi_settings = KpiSettings(
        kpis.period_days, targets, frozenset(kpis.provincial_centres), kpis.raise_events, reports_dir
    )
    return {
        BankReconciliation.name: BankReconciliation(store, settings, query=query),
        IntegrityJob.name: IntegrityJob(store, rules, reports_dir, metrics),
        KpiJob.name: KpiJob(store, kpi_settings, metrics, events),
        EmcCompleteness.name: EmcCompleteness(store, emc, reports_dir, metrics, clock=clock),
        PayloadRetention.name: PayloadRetention(store, config.retention.payloads_days),
        PortalReconcile.name: PortalReconcile(
            store,
            routes,
            mapper,
            {name: a for name, a in adapters.items() if isinstance(a, PortalAdapter)},
            reports_dir=reports_dir,
            metrics=metrics,
            clock=clock,
        ),
    }


def build_scheduler(
    config: Config, store: Store, metrics: Metrics, jobs: JobRegistry | None = None, *, clock: Clock
) -> Scheduler:
    """The scheduler of ``config.scheduler``; ConfigError naming every configured job nobody provides."""
    return Scheduler(
        store,
        check_jobs(config, jobs),
        plans(config.scheduler),
        metrics,
        clock=clock,
        node=node_name(),
        enabled=config.scheduler.enabled,
    )


BUILTIN_JOBS = tuple(
    job.name
    for job in (BankReconciliation, IntegrityJob, KpiJob, EmcCompleteness, PortalReconcile, PayloadRetention)
)
"""The jobs ``builtin_jobs`` builds, by name (what ``lienthong check`` knows without a store)."""


def check_jobs(config: Config, jobs: JobRegistry | None = None) -> JobRegistry:
    """``jobs`` (default: the built-in and installed ones); ConfigError naming every job of
    ``scheduler.jobs`` that none of them is."""
    if jobs is None:
        jobs = JobRegistry.with_plugins()
        for name in BUILTIN_JOBS:
            if name not in jobs:
                jobs.register(name, _built_with_the_node)
    issues = job_issues(config, jobs)
    if issues:
        raise ConfigError(issues)
    return jobs


def build_api(node: Lienthong) -> FastAPI:
    config = node.config
    api = openapi.api(title="lienthong", version=__version__, lifespan=node.lifespan)
    install_error_handlers(api)
    auth = BearerAuth(
        {t.sha256: t.name for t in config.auth.tokens},
        read_all=frozenset(t.name for t in config.auth.tokens if t.read_all)
        | frozenset(c.name for c in config.auth.certificates if c.read_all),
        certificates={c.subject: c.name for c in config.auth.certificates},
        limits=CallerLimits(config.auth.rate_limit.per_second, config.auth.rate_limit.burst)
        if config.auth.rate_limit.per_second > 0
        else None,
    )
    events, post_events = events_router(
        ingestor=node.ingestor,
        store=node.store,
        metrics=node.metrics,
        auth=auth,
        dossier_code_field=config.events.dossier_code_field,
        max_batch_events=config.server.max_batch_events,
        refusal=node.checkpointer.refusal if node.checkpointer is not None else None,
    )
    api.include_router(events)
    api.router.routes.insert(0, post_events)  # the hot path, served first and plain (decision 0024)
    api.include_router(
        health_router(
            store=node.store,
            metrics=node.metrics,
            destinations=tuple(config.destinations),
            dispatcher_running=lambda: node.dispatcher.running or not config.dispatcher.enabled,
            clock=node.clock,
            scheduler_running=lambda: node.scheduler is None or node.scheduler.running,
            certificates=PresentedCertificates(node.certificates),
            metrics_from=tuple(ipaddress.ip_network(n, strict=False) for n in config.server.metrics_from),
        )
    )
    if node.prefill is not None:
        api.include_router(citizens_router(prefill=node.prefill, auth=auth))
    if node.payments is not None:
        api.include_router(
            payments_router(
                callbacks=node.payments,
                store=node.store,
                auth=auth,
                max_callback_bytes=config.payments.max_callback_bytes,
            )
        )
    admin_ops, admin_auth = admin_operations(node)
    api.include_router(admin_router(ops=admin_ops, auth=admin_auth))
    sessions = Sessions(config.admin.session_ttl_s)
    api.include_router(console_router(ops=admin_ops, auth=admin_auth, sessions=sessions))

    def operator(token: str | None, cookie: str | None) -> str | None:
        return (admin_auth.identify(token) if token else None) or sessions.operator(cookie)

    api.add_middleware(DocsGuard, mode=config.server.docs, operator=operator, cookie=COOKIE)
    api.add_middleware(
        BodySizeLimit, max_bytes=config.server.max_body_bytes, max_total_bytes=config.server.max_bodies_bytes
    )
    # Outermost of ours, so that the body limit's refusals are counted too.
    api.add_middleware(RequestMetrics, metrics=node.metrics, templates=lambda: api.openapi()["paths"])
    api.add_middleware(RequestId)  # outermost: every line logged while a request is handled carries its id
    return api


def admin_operations(node: Lienthong) -> tuple[Operations, AdminAuth]:
    """What the admin API and console act on, and who may: operators' tokens, not callers'."""
    config = node.config
    auth = AdminAuth({t.sha256: t.name for t in config.admin.tokens}, [t.sha256 for t in config.auth.tokens])
    # The dispatcher keeps its middleware to itself; the breakers are read from it, not built twice.
    middleware = getattr(node.dispatcher, "_middleware", ())
    ops = Operations(
        node.store,
        node.dead_letters,
        tuple(config.destinations),
        lambda: [m for m in middleware if isinstance(m, CircuitBreakers)],
        ReplayLimit(config.admin.replays_per_second),
    )
    return ops, auth


def request_limits(config: Config) -> RequestLimits:
    """The ``server`` section's limits on each request's head and pace."""
    server = config.server
    return RequestLimits(
        max_header_bytes=server.max_header_bytes,
        max_headers=server.max_headers,
        header_timeout_s=server.header_timeout_s,
        body_timeout_s=server.body_timeout_s,
    )


def route_operations(config: Config, destination: str) -> list[str]:
    """The operations the routes ask of ``destination``, in route order."""
    ops = (rule.operation for route in config.routes for rule in route.deliver if rule.to == destination)
    return list(dict.fromkeys(ops))


def wsdl_issues(config: Config, adapters: dict[str, Adapter], *, fetch: bool) -> list[ConfigIssue]:
    """VNPT operations the routes need that the configured WSDLs lack; ``fetch`` reads WSDLs given as
    URLs too (``check --connect``), else only files are read."""
    issues: list[ConfigIssue] = []
    for name, dest in config.destinations.items():
        adapter = adapters.get(name)
        if not isinstance(dest, VnptDestination) or not isinstance(adapter, VnptInvoiceAdapter):
            continue
        wsdls = (dest.publish_wsdl, dest.business_wsdl, dest.portal_wsdl)
        if not fetch and any(w is not None and "://" in w for w in wsdls):
            continue
        try:
            missing = adapter.missing_operations(route_operations(config, name))
        except Exception as exc:  # zeep and httpx: a WSDL that cannot be read, named with its cause
            message = f"cannot read a VNPT WSDL: {type(exc).__name__}: {str(exc)[:200]}"
            issues.append(config.issue(("destinations", name), message))
            continue
        issues += [
            config.issue(("destinations", name), f"the configured WSDLs lack the operation {op}")
            for op in missing
        ]
    return issues


def check_local_wsdls(config: Config, adapters: dict[str, Adapter]) -> None:
    """Raise ConfigError when a WSDL file lacks an operation the routes need (URLs: ``check --connect``)."""
    issues = wsdl_issues(config, adapters, fetch=False)
    if issues:
        raise ConfigError(issues)


@dataclass(frozen=True)
class Checked:
    """What ``check_everything`` found in a config that has no problem."""

    config: Config
    mappings: list[CompiledMapping]
    forms: dict[str, CompiledMapping]


def check_everything(path: Path, env: Mapping[str, str], loader: SpecLoader) -> Checked:
    """Every check ``lienthong check`` makes, each phase run whatever the others found: the file (its
    YAML, references, schema and cross-references), the mappings the routes use, the e-forms, the jobs
    and the TLS files. Raises ConfigError listing every problem, each with its file, line and path."""
    try:
        config = load_config(path, env=env)
    except ConfigError as exc:
        # No config to build routes from: the mapping files the document names are still checked.
        raise ConfigError([*exc.issues, *_document_issues(path, env, loader)]) from exc
    issues: list[ConfigIssue] = []
    mappings: list[CompiledMapping] = []
    forms: dict[str, CompiledMapping] = {}
    try:
        mappings = build_routes(config, loader).mappings()
    except ConfigError as exc:
        issues.extend(exc.issues)
    phases: list[Callable[[], object]] = [lambda: check_jobs(config)]
    if config.citizens.source:
        phases.append(lambda: forms.update(compile_forms(config, loader)))
    phases.extend(partial(tls_context, d, config.base_dir) for d in config.destinations.values())
    phases.extend(
        partial(result_check_settings, d, config.base_dir)
        for d in config.destinations.values()
        if isinstance(d, ResultCheckDestination)
    )
    if config.server.tls is not None:
        server = server_tls_files(config.server.tls, config.base_dir)
        phases.append(lambda: build_server(server, environ=os.environ))
    for phase in phases:
        try:
            phase()
        except ConfigError as exc:
            issues.extend(exc.issues)
    if issues:
        raise ConfigError(list(dict.fromkeys(issues)))
    return Checked(config, mappings, forms)


def _document_issues(path: Path, env: Mapping[str, str], loader: SpecLoader) -> list[ConfigIssue]:
    """What the later phases would say of a config document that does not load (a variable not set, a
    typo): its routes' mapping files and conditions, its jobs and its TLS files, read from the document."""
    try:
        doc = load_located(path.read_text(encoding="utf-8"), str(path))
    except (OSError, ConfigError):
        return []  # already said by the file's own check
    data = substitute_env(doc, env, [])
    if not isinstance(data, dict):
        return []
    return [
        *_route_issues(doc, data.get("routes"), path.parent, loader),
        *_job_issues(doc, data.get("scheduler")),
        *_tls_issues(doc, data, path.parent),
    ]


def _route_issues(doc: LocatedDocument, routes: Any, base: Path, loader: SpecLoader) -> list[ConfigIssue]:
    issues: list[ConfigIssue] = []
    loaded: dict[str, str | None] = {}
    for r, route in enumerate(routes if isinstance(routes, list) else []):
        rules = route.get("deliver") if isinstance(route, dict) else None
        for d, rule in enumerate(rules if isinstance(rules, list) else []):
            if not isinstance(rule, dict):
                continue
            where: PathKey = ("routes", r, "deliver", d)
            when = rule.get("when")
            if when is not None:
                units = rule.get("units")
                facts = RouteFacts(
                    str(route.get("on", "")),
                    frozenset(map(str, units)) if isinstance(units, list) else None,
                    frozenset(map(str, rule.get("except_units") or [])),
                )
                try:
                    compile_route_condition(Condition.model_validate(when), facts)
                except (ValueError, ValidationError) as exc:
                    issues.append(doc.issue((*where, "when"), str(exc).split("\n")[-1].strip() or str(exc)))
            ref = rule.get("mapping")
            if not isinstance(ref, str) or not ref:
                continue
            if ref not in loaded:
                try:
                    loader.load(ref if ref.startswith(BUNDLED_PREFIX) else str(base / ref))
                    loaded[ref] = None
                except ConfigError as exc:
                    issues.extend(exc.issues)
                    loaded[ref] = _does_not_load(ref)
            problem = loaded[ref]
            if problem is not None:
                issues.append(doc.issue((*where, "mapping"), problem))
    return issues


def _job_issues(doc: LocatedDocument, scheduler: Any) -> list[ConfigIssue]:
    jobs = scheduler.get("jobs") if isinstance(scheduler, dict) else None
    if not isinstance(jobs, dict):
        return []
    known = JobRegistry.with_plugins()
    names = sorted({*known.names(), *BUILTIN_JOBS})
    return [
        doc.issue(("scheduler", "jobs", str(name)), f"unknown job {name!r} (known: {', '.join(names)})")
        for name in jobs
        if name not in names
    ]


def _tls_issues(doc: LocatedDocument, data: dict[str, Any], base: Path) -> list[ConfigIssue]:
    issues: list[ConfigIssue] = []
    for section in ("destinations", "sources"):
        peers = data.get(section)
        for name, peer in peers.items() if isinstance(peers, dict) else ():
            tls = peer.get("tls") if isinstance(peer, dict) else None
            if not isinstance(tls, dict):
                continue
            try:
                settings = TlsConfig.model_validate(tls)
            except ValidationError:
                continue  # said by the document's own check
            try:
                build_client(tls_files(settings, base), environ=os.environ)
            except ConfigError as exc:
                issues.extend(doc.issue((section, str(name), "tls"), str(issue)) for issue in exc.issues)
    return issues


def _does_not_load(ref: str) -> str:
    return f"mapping {ref} does not load (its problems are listed with it)"


def build_routes(config: Config, loader: SpecLoader) -> Routes:
    """Compile every mapping the routes use. Raises ConfigError listing every problem: the spec's own
    (file, line, key) and the route's (a param the mapping needs and nobody gives)."""
    issues: list[ConfigIssue] = []
    compiled: dict[str, CompiledMapping] = {}
    broken: dict[str, str] = {}
    table: dict[str, list[DeliveryRoute]] = {}
    for r, route in enumerate(config.routes):
        for d, rule in enumerate(route.deliver):
            destination = config.destinations[rule.to]
            ref = rule.mapping or destination.default_mappings[rule.operation]
            path = ref if ref.startswith(BUNDLED_PREFIX) else str(config.base_dir / ref)
            where = ("routes", r, "deliver", d)
            if path not in compiled:
                try:
                    compiled[path] = loader.load(path)
                except ConfigError as exc:
                    issues.extend(exc.issues)
                    broken[path] = _does_not_load(ref)
            if path in broken:
                issues.append(config.issue((*where, "mapping"), broken[path]))
                continue
            mapping = compiled[path]
            params = {**destination.mapping_params(), **rule.params}
            missing = mapping.missing_params(params)
            if missing:
                message = f"mapping {mapping.name} needs params: {', '.join(missing)}"
                issues.append(config.issue((*where, "params"), message))
            units = frozenset(rule.units) if rule.units is not None else None
            except_units = frozenset(rule.except_units)
            when = None
            if rule.when is not None:
                try:
                    when = compile_route_condition(rule.when, RouteFacts(route.on, units, except_units))
                except ValueError as exc:
                    issues.append(config.issue((*where, "when"), str(exc)))
            delivery = DeliveryRoute(rule.to, rule.operation, mapping, params, units, except_units, when)
            table.setdefault(route.on, []).append(delivery)
    if issues:
        raise ConfigError(list(dict.fromkeys(issues)))
    return Routes(table)


def build_population(config: Config, name: str, *, reloader: Reloader | None = None) -> PopulationAdapter:
    dest = config.destinations[name]
    base_dir = config.base_dir
    assert isinstance(dest, PopulationDestination)  # checked when the config loaded
    where = f"destinations.{name}"
    client = httpx.AsyncClient(transport=destination_transport(dest, base_dir, name=where, reloader=reloader))
    return PopulationAdapter(
        name,
        make_soap_transport(client, max_answer_bytes=dest.max_answer_bytes),
        address=f"{dest.base_url.rstrip('/')}{dest.service_path}",
        ma_tich_hop=dest.ma_tich_hop,
        ma_dvc=dest.ma_dvc,
        timeout_s=dest.timeout_s,
    )


def build_prefill(
    config: Config,
    population: PopulationAdapter,
    store: Store,
    metrics: Metrics,
    loader: SpecLoader,
    *,
    clock: Clock = time.time,
) -> Prefill:
    """Raises ConfigError when a form's mapping does not compile."""
    forms = compile_forms(config, loader)
    key = config.citizens.audit_key
    assert key is not None  # checked when the config loaded
    return Prefill(population, forms, store, metrics, audit_key=key.get_secret_value().encode(), clock=clock)


def compile_forms(config: Config, loader: SpecLoader) -> dict[str, CompiledMapping]:
    """The e-form mappings of ``citizens.forms``. Raises ConfigError listing every problem."""
    forms: dict[str, CompiledMapping] = {}
    issues: list[ConfigIssue] = []
    for name, ref in config.citizens.forms.items():
        path = ref if ref.startswith(BUNDLED_PREFIX) else str(config.base_dir / ref)
        try:
            forms[name] = loader.load(path)
        except ConfigError as exc:
            issues.extend(exc.issues)
    if issues:
        raise ConfigError(issues)
    return forms


def retry_policy(config: RetryConfig) -> RetryPolicy:
    backoff = ExponentialBackoff(config.initial_delay_s, config.multiplier, config.max_delay_s, config.jitter)
    return RetryPolicy(backoff, StopAfterAttempts(config.max_attempts) | StopAfterAge(config.max_age_s))


def build_checkpointer(config: Config, store: Store, clock: Clock) -> Checkpointer | None:
    """The message log's checkpointer, when the log is on and has a key; ConfigError naming a key file
    that cannot be read or is not a signing key."""
    settings = config.message_log
    if not settings.enabled or settings.key_file is None:
        return None
    path = config.base_dir / settings.key_file
    try:
        key = SigningKey.parse(path.read_text(encoding="ascii").strip())
    except OSError as exc:
        raise ConfigError.single(str(path), f"cannot read the message log's key: {exc.strerror}") from exc
    except (ValueError, UnicodeDecodeError) as exc:
        raise ConfigError.single(
            str(path), f"not a signing key (make one with `lienthong log keygen`): {exc}"
        ) from exc
    timestamper, max_unstamped_s = None, 0.0
    if settings.timestamp is not None:
        tsa = settings.timestamp
        ca_file = config.base_dir / tsa.ca_file
        try:
            roots = load_roots(ca_file)
        except OSError as exc:
            raise ConfigError.single(str(ca_file), f"cannot read the TSA's CA: {exc.strerror}") from exc
        except ValueError as exc:
            raise ConfigError.single(str(ca_file), f"not a PEM CA certificate: {exc}") from exc
        peer = HttpPeer(tsa.url, make_transport(max_connections=2), timeout_s=tsa.timeout_s)
        timestamper, max_unstamped_s = Timestamper(peer, "", roots), tsa.max_age_s
    return Checkpointer(
        store,
        key,
        CheckpointSettings(
            settings.origin, settings.checkpoint_every, settings.checkpoint_interval_s, max_unstamped_s
        ),
        clock=clock,
        timestamper=timestamper,
    )


def circuit_breakers(config: Config, metrics: Metrics, clock: Clock) -> list[CircuitBreakers]:
    """The breakers middleware (none when dispatcher.circuit is off); a destination's keys over the
    dispatcher's. A destination whose own `circuit` says `enabled: false` gets one that never opens."""
    base = config.dispatcher.circuit

    def settings(own: CircuitConfig) -> CircuitSettings:
        never = 2**31 if not own.enabled else own.failures
        return CircuitSettings(never, own.open_s, own.max_open_s, own.probe_wait_s)

    by_destination = {name: settings(own) for name, own in destinations_own(config, "circuit", base).items()}
    if not base.enabled and not by_destination:
        return []
    breakers = CircuitBreakers(
        settings(base),
        clock=clock,
        state_gauge=metrics.circuit_state,
        opened=metrics.circuit_opened,
        by_destination=by_destination,
    )
    return [breakers]


def retry_policies(config: Config) -> dict[str, RetryPolicy]:
    """The destinations whose deliveries are retried their own way: their keys over dispatcher.retry's."""
    own = destinations_own(config, "retry", config.dispatcher.retry)
    return {name: retry_policy(settings) for name, settings in own.items()}


M = TypeVar("M", bound=BaseModel)


def destinations_own(config: Config, section: str, base: M) -> dict[str, M]:
    """The destinations that set their own ``section`` (retry, circuit): the keys they give over
    ``base``'s (the dispatcher's), the others kept."""
    return {
        name: base.model_copy(update=own.model_dump(exclude_unset=True))
        for name, dest in config.destinations.items()
        if (own := getattr(dest, section, None)) is not None
    }


def payment_schemes(config: Config) -> dict[str, CallbackScheme]:
    schemes: dict[str, CallbackScheme] = {}
    if config.payments.paygov is not None:
        paygov = config.destinations[config.payments.paygov]
        assert isinstance(paygov, PayGovDestination)  # checked when the config loaded
        schemes["paygov"] = PayGovScheme(
            paygov.secret.get_secret_value(),
            paygov.partner_code,
            reply_code=config.payments.paygov_reply_code,
        )
    for bank, settings in config.payments.banks.items():
        secret = settings.secret.get_secret_value()
        schemes[bank] = HmacFieldsScheme(bank, secret, settings.fields, settings.header)
    return schemes


@dataclass(frozen=True)
class Certificate:
    """A certificate the node uses: ``name`` (the destination or source), ``purpose`` (``client``: presented
    to it, mutual TLS; ``ca``: trusted for it), the file, and when it (the earliest of a bundle) expires."""

    name: str
    purpose: str
    file: str
    not_after: float


def certificates(config: Config) -> list[Certificate]:
    """Every certificate file the destinations, sources and the server name, with its expiry."""
    found = []
    for entry in certificate_files(config):
        expires = min(info.not_after for info in describe(entry, os.environ)).timestamp()
        found.append(Certificate(entry.name, entry.purpose, str(entry.file), expires))
    return found


def refresh_certificates(config: Config, metrics: Metrics, used: list[Certificate], reloaded: str) -> None:
    """After the context ``reloaded`` (``destinations.<name>``, ``sources.<name>``, ``server.tls``) was
    built again: its certificate files' expiry, in ``used`` (in place: readiness reads it) and the gauge."""
    name = "server" if reloaded == "server.tls" else reloaded.partition(".")[2]
    files = {(e.name, e.purpose): e for e in certificate_files(config)}
    for index, known in enumerate(used):
        if known.name != name:
            continue
        entry = files[known.name, known.purpose]
        try:
            expires = min(info.not_after for info in describe(entry, os.environ)).timestamp()
        except ConfigError:
            continue
        used[index] = replace(known, not_after=expires)
        metrics.certificate_expiry.labels(known.name, known.purpose).set(expires)


def certificate_files(config: Config) -> list[CertificateFile]:
    """Every certificate file the config names (``lienthong certs``, gauges), relative paths resolved."""
    base = config.base_dir
    found = []
    for name, peer in {**config.destinations, **config.sources}.items():
        tls = getattr(peer, "tls", None)
        if tls is None:
            continue
        files = tls_files(tls, base)
        if files.cert_file is not None:
            found.append(
                CertificateFile(
                    name, "client", files.cert_file, files.passphrase, files.ca_file, files.system_trust
                )
            )
        if files.ca_file is not None:
            found.append(CertificateFile(name, "ca", files.ca_file))
    server = config.server.tls
    if server is not None:
        files = server_tls_files(server, base)
        assert files.cert_file is not None
        found.append(CertificateFile("server", "server", files.cert_file, files.passphrase))
        if files.ca_file is not None:
            found.append(CertificateFile("server", "client_ca", files.ca_file))
    return found


class PresentedCertificates(Sequence[tuple[str, float]]):
    """``client_certificates`` of a list that reloads change, read anew each time (readiness)."""

    def __init__(self, found: list[Certificate]) -> None:
        self._found = found

    def __getitem__(self, index: Any) -> Any:
        return client_certificates(self._found)[index]

    def __len__(self) -> int:
        return len(client_certificates(self._found))


def client_certificates(found: list[Certificate]) -> list[tuple[str, float]]:
    """(what, when it expires) of each client certificate among ``found`` (presented: mutual TLS); an
    expired one makes the node not ready."""
    return [(f"{c.name}'s client certificate {c.file}", c.not_after) for c in found if c.purpose == "client"]


def _passphrase(env: str | None, file: str | None, base: Path) -> Passphrase:
    return Passphrase(env=env, file=base / file if file is not None else None)


def tls_files(tls: TlsConfig, base: Path) -> TlsFiles:
    """What a destination's TLS context is made of, files relative to the config's directory."""

    def where(name: str | None) -> Path | None:
        return base / name if name is not None else None

    return TlsFiles(
        ca_file=where(tls.ca_file),
        cert_file=where(tls.client_cert),
        key_file=where(tls.client_key),
        passphrase=_passphrase(tls.passphrase_env, tls.passphrase_file, base),
        system_trust=tls.system_trust,
        min_version=tls.min_version,
    )


def server_tls_files(tls: ServerTlsConfig, base: Path) -> TlsFiles:
    """What the API's server context is made of (``server.tls``)."""
    return TlsFiles(
        ca_file=base / tls.client_ca if tls.client_ca is not None else None,
        cert_file=base / tls.cert,
        key_file=base / tls.key if tls.key is not None else None,
        passphrase=_passphrase(tls.passphrase_env, tls.passphrase_file, base),
        min_version=tls.min_version,
        require_client_cert=tls.require_client_cert,
    )


def server_tls(node: Lienthong) -> ReloadingContext | None:
    """The API's TLS context (``server.tls``), following its files with the node's other contexts."""
    tls = node.config.server.tls
    if tls is None:
        return None
    files = server_tls_files(tls, node.config.base_dir)
    found = node.reloader.get("server.tls")
    return found or node.reloader.add(reloading_server("server.tls", files, environ=os.environ))


def tls_context(
    dest: HttpPeerConfig, base_dir: Path, *, name: str = "", reloader: Reloader | None = None
) -> ssl.SSLContext | None:
    """The destination's TLS context, files relative to the config. Raises ConfigError naming the file.
    With ``reloader``, a context that follows its files, kept there under ``name`` (one per peer)."""
    if dest.tls is None:
        return None
    files = tls_files(dest.tls, base_dir)
    if reloader is None:
        return build_client(files, environ=os.environ)
    found = reloader.get(name)
    return found or reloader.add(reloading_client(name, files, environ=os.environ))


def destination_transport(
    dest: HttpPeerConfig, base_dir: Path, *, name: str = "", reloader: Reloader | None = None
) -> httpx.AsyncBaseTransport:
    """The destination's HTTP transport: TLS as configured, wrapped by its authentication strategy."""
    context = tls_context(dest, base_dir, name=name, reloader=reloader)
    transport = make_transport(
        max_connections=dest.max_connections,
        ssl_context=context,
        max_answer_bytes=dest.max_answer_bytes,
    )
    auth = dest.auth
    if auth is None:
        return transport
    if isinstance(auth, BasicAuthConfig):
        return AuthenticatedTransport(transport, BasicAuth(auth.username, auth.password.get_secret_value()))
    if isinstance(auth, BearerTokenConfig):
        return AuthenticatedTransport(transport, StaticBearer(auth.token.get_secret_value()))
    return AuthenticatedTransport(transport, oauth2(auth, transport, dest.timeout_s))


def oauth2(
    auth: OAuth2Config, transport: httpx.AsyncBaseTransport, timeout_s: float
) -> OAuth2ClientCredentials:
    """The OAuth2 client-credentials strategy ``auth`` configures, fetching tokens over ``transport``."""
    return OAuth2ClientCredentials(
        transport,
        token_url=auth.token_url,
        client_id=auth.client_id,
        client_secret=auth.client_secret.get_secret_value(),
        scope=auth.scope,
        timeout_s=timeout_s,
    )


def build_vnpt(
    name: str, dest: VnptDestination, events: EventSink, base_dir: Path, *, reloader: Reloader | None = None
) -> VnptInvoiceAdapter:
    account = VnptAccount(
        dest.account,
        dest.ac_password.get_secret_value(),
        dest.username,
        dest.password.get_secret_value(),
        dest.pattern,
        dest.serial,
        comtaxcode=dest.seller_tax_code,
        notax=dest.lookup_notax,
    )

    def where(wsdl: str | None) -> str | None:
        if wsdl is None or "://" in wsdl:
            return wsdl
        return str(base_dir / wsdl)

    services = VnptServices.at(
        dest.base_url,
        publish=where(dest.publish_wsdl),
        business=where(dest.business_wsdl),
        portal=where(dest.portal_wsdl),
    )
    peer = f"destinations.{name}"
    client = httpx.AsyncClient(transport=destination_transport(dest, base_dir, name=peer, reloader=reloader))
    context = tls_context(dest, base_dir, name=peer, reloader=reloader)
    # Tenants host their own WSDLs: fetched (verified TLS) once, when first needed.
    fetcher = httpx.Client(verify=context or True, timeout=dest.timeout_s, trust_env=False)
    transport = make_soap_transport(client, wsdl_client=fetcher, max_answer_bytes=dest.max_answer_bytes)
    return VnptInvoiceAdapter(
        name, transport, services=services, account=account, timeout_s=dest.timeout_s, events=events
    )


def result_check_settings(dest: ResultCheckDestination, base_dir: Path) -> ResultCheckSettings:
    """The trust roots read (relative to the config; ConfigError naming a file that is not PEM) and the
    limits of a ``result_check`` destination."""
    return ResultCheckSettings(
        TrustStore.from_pem_files([base_dir / path for path in dest.trust_roots]),
        allowed_hosts=frozenset(dest.allowed_hosts),
        max_bytes=dest.max_document_bytes,
        verify_timeout_s=dest.verify_timeout_s,
        workers=dest.workers,
    )


def build_adapter(
    name: str,
    dest: Destination,
    store: Store,
    events: EventSink,
    base_dir: Path = Path(),
    *,
    clock: Clock = time.time,
    reloader: Reloader | None = None,
) -> Adapter:
    transport = destination_transport(dest, base_dir, name=f"destinations.{name}", reloader=reloader)
    peer = HttpPeer(dest.base_url, transport, timeout_s=dest.timeout_s)
    if isinstance(dest, PortalDestination):
        credentials = PortalCredentials(
            dstcode=dest.dstcode,
            username=dest.username,
            password=dest.password.get_secret_value(),
            login_path=dest.login_path,
            service_path=dest.service_path,
            madonvi=dest.madonvi,
        )
        return PortalAdapter(name, peer, credentials)
    if isinstance(dest, EmcDestination):
        token = dest.bearer_token.get_secret_value() if dest.bearer_token else None
        return EmcAdapter(name, peer, tracking_path=dest.tracking_path, bearer_token=token)
    if isinstance(dest, VnptDestination):
        return build_vnpt(name, dest, events, base_dir, reloader=reloader)
    if isinstance(dest, ViettelDestination):
        viettel = ViettelAccount(
            dest.username,
            dest.password.get_secret_value(),
            dest.supplier_tax_code,
            dest.login_path,
            token_as=dest.token_as,
            duplicate_codes=frozenset(dest.duplicate_codes),
            not_found_codes=frozenset(dest.not_found_codes),
        )
        return ViettelInvoiceAdapter(name, peer, viettel, events=events)
    if isinstance(dest, ProvincialDestination):
        secret = dest.secret.get_secret_value()
        return ProvincialAdapter(
            name, peer, secret=secret, webhook_path=dest.webhook_path, signature=dest.signature
        )
    if isinstance(dest, PayGovDestination):
        settings = PayGovSettings(dest.partner_code, dest.secret.get_secret_value(), dest.service_path)
        return PayGovAdapter(name, peer, settings, store, clock=clock)
    if isinstance(dest, ResultCheckDestination):
        return ResultCheckAdapter(name, peer, result_check_settings(dest, base_dir), store, clock=clock)
    raise AssertionError(f"unhandled destination kind {dest!r}")
