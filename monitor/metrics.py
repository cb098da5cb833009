"""Prometheus metrics of the daemon, on a registry of its own (never prometheus-client's global
one): counters and histograms that move with each cycle and delivery pass, and gauges worked out
at scrape time from the database and the scheduler's status.

The daemon keeps one `Metrics` for its life, calls `observe_cycle(report)` after every cycle
(and `observe_delivery(report)` after a delivery pass or digest outside a cycle), and
`configure(config)` on reload. `/metrics` (monitor/http.py) renders it."""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from monitor.alerts.outbox import DeliveryReport
from monitor.errors import StoreError
from monitor.models import Config
from monitor.pipeline import CycleReport, SourceReport
from monitor.store import FAILED, HELD, PENDING, Store

logger = logging.getLogger(__name__)
CONTENT_TYPE = CONTENT_TYPE_LATEST
# From a 304 in a few milliseconds to a cycle that fetches many pages over minutes.
DURATION_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600)
OUTBOX_STATES = (PENDING, HELD, FAILED)


@dataclass(frozen=True)
class SchedulerStatus:
    """What /healthz and /metrics need from the scheduler.

    `running`: the scheduler is started and not stopping; `reason` says why not when it is not.
    `late`: per source, seconds its poll is behind its scheduled time (absent or 0: on time).
    `behind`: the sources the scheduler counts as falling behind (late by more than one
    interval); when the status does not say, every source with a positive `late`."""

    running: bool
    reason: str = ""
    late: Mapping[str, float] = field(default_factory=dict)
    behind: frozenset[str] = frozenset()

    @classmethod
    def of(cls, value: SchedulerStatus | Mapping[str, Any]) -> SchedulerStatus:
        """From a SchedulerStatus or from the Daemon.status() dict:
        {"running": bool, "reason"?: str, "sources": {name: {"late": seconds, "behind"?: bool}}}."""
        if isinstance(value, SchedulerStatus):
            return value
        sources: Mapping[str, Mapping[str, Any]] = value.get("sources") or {}
        late = {name: float(facts.get("late") or 0) for name, facts in sources.items()}
        behind = frozenset(name for name, facts in sources.items()
                           if facts.get("behind", late[name] > 0))
        running = bool(value.get("running"))
        reason = str(value.get("reason") or ("" if running else "the scheduler is not running"))
        return cls(running, reason, late, behind)


# The daemon's side of the contract: called on the event loop for each /healthz and /metrics.
Health = Callable[[], SchedulerStatus | Mapping[str, Any]]


def fetch_status(source: SourceReport) -> str | None:
    """The `status` label of one poll: the HTTP code (304 for an unchanged feed), "error" when
    no answer came; None for a source that was not fetched (backing off)."""
    if source.backing_off:
        return None
    if source.status is not None:
        return str(source.status)
    return "error"


class Metrics:
    def __init__(self, config: Config) -> None:
        self.config = config
        self.registry = CollectorRegistry()
        self._lock = threading.Lock()  # one scrape at a time: the status gauges are set per scrape
        self._status = SchedulerStatus(running=False, reason="not started")
        registry = self.registry
        self.fetches = Counter("monitor_fetches", "Polls of sources, by source and HTTP status "
                               "(\"error\": no answer)", ["source", "status"], registry=registry)
        self.articles = Counter("monitor_articles_stored", "New articles stored, by source",
                                ["source"], registry=registry)
        self.pages_failed = Counter("monitor_pages_failed", "Article pages whose text could not "
                                    "be fetched", registry=registry)
        self.matches = Counter("monitor_matches", "Articles matched, by watchlist", ["watchlist"],
                               registry=registry)
        self.alerts = Counter("monitor_alerts_created", "Alerts written to the outbox (one per "
                              "notifier), by watchlist", ["watchlist"], registry=registry)
        self.delivered = Counter("monitor_alerts_delivered", "Outbox messages handled by a "
                                 "delivery pass, by notifier and outcome (sent, failed: tried "
                                 "again later, gave_up: failed for good)", ["notifier", "outcome"],
                                 registry=registry)
        self.cycle_seconds = Histogram("monitor_cycle_duration_seconds", "Wall time of a cycle",
                                       buckets=DURATION_BUCKETS, registry=registry)
        self.stage_seconds = Histogram("monitor_stage_duration_seconds", "Wall time of a cycle's "
                                       "stages: poll, articles (pages fetched, stored, grouped and "
                                       "matched as they come), deliver", ["stage"],
                                       buckets=DURATION_BUCKETS, registry=registry)
        registry.register(_ScrapeTimeCollector(self))

    def configure(self, config: Config) -> None:
        """A reloaded configuration: sources removed from it are no longer reported as silent."""
        self.config = config

    def observe_cycle(self, report: CycleReport) -> None:
        for source in report.sources:
            status = fetch_status(source)
            if status is not None:
                self.fetches.labels(source.name, status).inc()
            if source.new:
                self.articles.labels(source.name).inc(source.new)
        if report.pages_failed:
            self.pages_failed.inc(report.pages_failed)
        for watchlist, count in report.matches_by_watchlist.items():
            self.matches.labels(watchlist).inc(count)
        for watchlist, count in report.alerts_by_watchlist.items():
            self.alerts.labels(watchlist).inc(count)
        for stage, seconds in report.durations.items():
            self.stage_seconds.labels(stage).observe(seconds)
        if report.durations:
            self.cycle_seconds.observe(sum(report.durations.values()))
        self.observe_delivery(report.delivery)

    def observe_delivery(self, report: DeliveryReport) -> None:
        for (notifier, outcome), count in report.outcomes.items():
            self.delivered.labels(notifier, outcome).inc(count)

    def render(self, status: SchedulerStatus) -> bytes:
        """The exposition text. Blocking (the database is read): call it in a worker thread,
        with the status taken on the loop."""
        with self._lock:
            self._status = status
            return generate_latest(self.registry)


class _ScrapeTimeCollector(Collector):
    """Gauges worked out at each scrape: the outbox, the sources' last successes, the database
    size, and the scheduler's lateness. Cheap queries only (monitor/store.py, "metrics")."""

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics

    def collect(self) -> Iterator[Metric]:
        yield from self._scheduler(self.metrics._status)
        path = self.metrics.config.database
        size = GaugeMetricFamily("monitor_database_size_bytes",
                                 "Size of the SQLite database: the file and its write-ahead log")
        size.add_metric([], database_size(path))
        yield size
        readable = GaugeMetricFamily("monitor_database_readable",
                                     "1 when the gauges read from the database below are current")
        try:
            store = Store.open_reader(path)
            try:
                families = list(self._database(store))
            finally:
                store.close()
        except StoreError as exc:
            logger.warning("/metrics: cannot read the database: %s", exc)
            readable.add_metric([], 0)
            yield readable
            return
        readable.add_metric([], 1)
        yield readable
        yield from families

    def _scheduler(self, status: SchedulerStatus) -> Iterator[Metric]:
        running = GaugeMetricFamily("monitor_scheduler_running", "1 while the scheduler runs")
        running.add_metric([], 1 if status.running else 0)
        yield running
        late = GaugeMetricFamily("monitor_source_late_seconds", "How far behind its schedule a "
                                 "source's poll is", labels=["source"])
        for name, seconds in sorted(status.late.items()):
            late.add_metric([name], seconds)
        yield late
        behind = GaugeMetricFamily("monitor_sources_behind", "Sources whose polls are late by "
                                   "more than one interval")
        behind.add_metric([], len(status.behind))
        yield behind

    def _database(self, store: Store) -> Iterator[Metric]:
        depth = GaugeMetricFamily("monitor_outbox_alerts", "Outbox messages not done with, by "
                                  "status (pending, held, failed) and notifier",
                                  labels=["status", "notifier"])
        counts = store.outbox_depth()
        notifiers = sorted({n.name for n in self.metrics.config.notifiers}
                           | {notifier for _, notifier in counts})
        for status in OUTBOX_STATES:
            for notifier in notifiers:
                depth.add_metric([status, notifier], counts.get((status, notifier), 0))
        yield depth
        oldest = GaugeMetricFamily("monitor_oldest_pending_alert_age_seconds", "Age of the oldest "
                                   "alert waiting to be sent (0: none waits)")
        oldest.add_metric([], age_seconds(store.oldest_pending_alert()) or 0.0)
        yield oldest
        since = GaugeMetricFamily("monitor_source_last_success_age_seconds", "Seconds since the "
                                  "source's last successful poll (absent: never succeeded)",
                                  labels=["source"])
        failures = GaugeMetricFamily("monitor_source_consecutive_failures", "Failed polls of the "
                                     "source since its last success", labels=["source"])
        successes = store.source_successes()
        for source in self.metrics.config.sources:
            if source.name not in successes:
                continue  # not polled yet
            last_success, failed = successes[source.name]
            age = age_seconds(last_success)
            if age is not None:
                since.add_metric([source.name], age)
            failures.add_metric([source.name], failed)
        yield since
        yield failures


def database_size(path: Path) -> int:
    """The database file and its write-ahead log, in bytes (a WAL not yet checkpointed holds
    recent writes and takes disk space too)."""
    total = 0
    for file in (path, path.with_name(path.name + "-wal")):
        with contextlib.suppress(FileNotFoundError):
            total += file.stat().st_size
    return total


def age_seconds(stamp: str | None) -> float | None:
    """Seconds from a stored UTC timestamp to now; None for none."""
    if not stamp:
        return None
    when = datetime.fromisoformat(stamp)
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (datetime.now(UTC) - when).total_seconds())
