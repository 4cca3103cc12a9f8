"""Prometheus metric definitions, on a registry the application owns (never the global one).

Conventions: base units (seconds, bytes, ratios 0 to 1), counters end in ``_total``, moments in
``_timestamp_seconds``; labels are bounded sets (destination, operation, outcome, job, unit code, route
template, status), never ids. The registry also holds the process, platform and garbage-collector
collectors; ``Metrics.exposition`` leaves out the ``_created`` series, which double the series count and
which Prometheus's text format does not use, without switching them off for other registries in the process.
"""

from __future__ import annotations

import platform
from collections.abc import Iterable

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    GCCollector,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.metrics_core import Metric

from lienthong import __version__
from lienthong.checks.kpis import KPIS
from lienthong.model import DestinationStats

# Deliveries cross loopback in a millisecond and a slow national system in tens of seconds.
LATENCY_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
# A scheduled job reads a day of the ledger or a bank statement: from a second to an hour.
RUN_BUCKETS_S = (1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1200.0, 1800.0, 3600.0, 7200.0)
# An accepted event commits in milliseconds; a store past its deadline answers 503 after store.deadline_s.
HTTP_BUCKETS_S = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Metrics:
    """Every metric lienthong exports. Build one per application with its own registry."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self._runtime(registry)
        self._inbound(registry)
        self.events_received = Counter(
            "lienthong_events_received",
            "Events from the provincial system, by type and outcome (accepted, duplicate, rejected).",
            ["type", "outcome"],
            registry=registry,
        )
        self.deliveries = Counter(
            "lienthong_deliveries",
            "Delivery attempts by destination, operation and outcome (delivered, retry, dead).",
            ["destination", "operation", "outcome"],
            registry=registry,
        )
        self.delivery_latency = Histogram(
            "lienthong_delivery_duration_seconds",
            "Time one delivery attempt took, in seconds.",
            ["destination", "operation"],
            buckets=LATENCY_BUCKETS_S,
            registry=registry,
        )
        self.outbox_pending = Gauge(
            "lienthong_outbox_pending",
            "Outbox rows not yet delivered nor dead (pending or in flight), per destination.",
            ["destination"],
            registry=registry,
        )
        self.outbox_oldest_age = Gauge(
            "lienthong_outbox_oldest_pending_age_seconds",
            "Age of the oldest undelivered outbox row, per destination; 0 when none is pending.",
            ["destination"],
            registry=registry,
        )
        self.certificate_expiry = Gauge(
            "lienthong_certificate_expiry_timestamp_seconds",
            "When each certificate file the node uses expires (the earliest of a bundle), by name (a"
            " destination or source, or server) and purpose: client (presented to it, mutual TLS), ca"
            " (trusted for it), server (the API's own) or client_ca (trusted for the API's callers). Set"
            " again on each reload.",
            ["name", "purpose"],
            registry=registry,
        )
        self.circuit_state = Gauge(
            "lienthong_circuit_state",
            "Each destination's circuit breaker: 0 closed, 1 half-open (probing), 2 open (messages held).",
            ["destination"],
            registry=registry,
        )
        self.circuit_opened = Counter(
            "lienthong_circuit_opened",
            "Times a destination's circuit opened (after failures in a row, or a failed probe).",
            ["destination"],
            registry=registry,
        )
        self.dead_letters = Gauge(
            "lienthong_dead_letters",
            "Dead letters waiting for a person, per destination.",
            ["destination"],
            registry=registry,
        )

        self.citizen_lookups = Counter(
            "lienthong_citizen_lookups",
            "Population-database look-ups for e-form prefill, by outcome (found, not_found, mismatch,"
            " unavailable, refused, invalid, form_failed, failed, cancelled).",
            ["outcome"],
            registry=registry,
        )
        self.payment_callbacks = Counter(
            "lienthong_payment_callbacks",
            "Payment callbacks received, by channel and verdict (accepted, repeat, duplicate_payment, stale,"
            " contradiction, unknown_reference, amount_mismatch, transaction_reused, bad_signature, invalid,"
            " too_large; unrecorded: refused past the sender's recording budget).",
            ["channel", "verdict"],
            registry=registry,
        )

        self.scheduler_runs = Counter(
            "lienthong_scheduler_runs",
            "Attempts at scheduled jobs' windows, by job and outcome (succeeded, failed, timed_out; skipped:"
            " a window missed while no node ran, coalesced into a later run).",
            ["job", "outcome"],
            registry=registry,
        )
        self.scheduler_last_success = Gauge(
            "lienthong_scheduler_last_success_timestamp_seconds",
            "When the job's last successful run ended (seconds since the epoch; 0: none recorded).",
            ["job"],
            registry=registry,
        )
        self.scheduler_run_duration = Histogram(
            "lienthong_scheduler_run_duration_seconds",
            "Time one attempt at a scheduled job took, in seconds.",
            ["job"],
            buckets=RUN_BUCKETS_S,
            registry=registry,
        )

        self.discrepancies = Gauge(
            "lienthong_reconciliation_discrepancies",
            "Discrepancies the last run of a job found, by job and kind (amount_mismatch, missing_from_bank,"
            " completed_without_result…).",
            ["job", "kind"],
            registry=registry,
        )
        self.rows_processed = Counter(
            "lienthong_reconciliation_rows_processed",
            "Rows a job read (bank transactions, dossiers of the ledger), by job.",
            ["job"],
            registry=registry,
        )
        self.unit_kpi = {
            kpi: Gauge(
                f"lienthong_unit_{kpi}_ratio",
                f"The unit's {kpi.replace('_', ' ')} rate over the KPI period of the last KPI run (0 to 1).",
                ["unit"],
                registry=registry,
            )
            for kpi in KPIS
        }
        self.unit_kpi_target = {
            kpi: Gauge(
                f"lienthong_unit_{kpi}_target_ratio",
                f"The unit's target for its {kpi.replace('_', ' ')} rate (0 to 1).",
                ["unit"],
                registry=registry,
            )
            for kpi in KPIS
        }

    def _runtime(self, registry: CollectorRegistry) -> None:
        """The build, the process (CPU, memory, file descriptors), Python and its garbage collector."""
        self.build_info = Gauge(
            "lienthong_build_info",
            "Always 1: the lienthong version and the Python version it runs on, as labels.",
            ["version", "python"],
            registry=registry,
        )
        self.build_info.labels(__version__, platform.python_version()).set(1)
        ProcessCollector(registry=registry)
        PlatformCollector(registry=registry)
        GCCollector(registry=registry)

    def _inbound(self, registry: CollectorRegistry) -> None:
        """Inbound HTTP requests (counted by ``observability.http.RequestMetrics``), and the store as the
        last scrape found it."""
        self.http_requests = Counter(
            "lienthong_http_requests",
            "Inbound HTTP requests answered, by route template (unmatched: no route), method and status"
            " (499: the client went away before an answer).",
            ["route", "method", "status"],
            registry=registry,
        )
        self.http_duration = Histogram(
            "lienthong_http_request_duration_seconds",
            "Time from an inbound request's arrival to the end of its answer, in seconds.",
            ["route", "method"],
            buckets=HTTP_BUCKETS_S,
            registry=registry,
        )
        self.store_up = Gauge(
            "lienthong_store_up",
            "1 when the store answered this scrape's reading of the outbox, 0 when it did not (the outbox"
            " and dead-letter gauges are then left out rather than served stale).",
            registry=registry,
        )

    def exposition(self) -> bytes:
        """The registry in Prometheus's text format, without ``_created`` series."""
        return generate_latest(_WithoutCreated(self.registry))

    def observe_store_unavailable(self) -> None:
        """The store did not answer: say so, and drop the gauges read from it, so that a scrape holds no
        stale backlog (Prometheus marks the dropped series stale; alerts on them resolve or wait)."""
        self.store_up.set(0)
        for gauge in (self.outbox_pending, self.outbox_oldest_age, self.dead_letters):
            gauge.clear()

    def observe_outbox(
        self, stats: Iterable[DestinationStats], destinations: Iterable[str], now_ms: int
    ) -> None:
        """Set the outbox gauges from a fresh reading; destinations with no rows read 0."""
        self.store_up.set(1)
        by_name = {s.destination: s for s in stats}
        for name in {*destinations, *by_name}:
            s = by_name.get(name)
            pending = (s.pending + s.inflight) if s else 0
            oldest = s.oldest_pending_created_ms if s else None
            self.outbox_pending.labels(name).set(pending)
            self.outbox_oldest_age.labels(name).set(max(0.0, (now_ms - oldest) / 1000) if oldest else 0.0)
            self.dead_letters.labels(name).set(s.dead if s else 0)


class _WithoutCreated:
    """A registry's families as Prometheus's text format shows them, less each ``<name>_created`` sample."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self._registry = registry

    def collect(self) -> Iterable[Metric]:
        for family in self._registry.collect():
            created = f"{family.name}_created"
            kept = Metric(family.name, family.documentation, family.type, family.unit)
            kept.samples = [s for s in family.samples if s.name != created]
            yield kept
