"""The daemon: an APScheduler tick starts one cycle over the sources due, a delivery pass runs
for the outbox, digests on their cron times; one crawler serves it all for the daemon's life.
SIGTERM/SIGINT stop it after in-flight work, SIGHUP reloads the config off the loop."""

from __future__ import annotations

import asyncio
import logging
import signal
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from monitor.alerts.digest import describe_bundles, digest_groups
from monitor.alerts.outbox import DeliveryReport
from monitor.config import load_config
from monitor.crawl import STOP_GRACE, Crawler, LiveCrawler
from monitor.errors import MonitorError, StoreError
from monitor.http import HttpHandle, start_http
from monitor.metrics import Metrics
from monitor.models import Config, HttpSettings, Source
from monitor.pipeline import CycleReport, Monitor, build_matcher, deliver, run_cycle, send_digests
from monitor.retention import prune_daily
from monitor.rules import Matcher
from monitor.store import Store

logger = logging.getLogger(__name__)
T = TypeVar("T")
DELIVERY_INTERVAL = 60
PRUNE_HOUR, PRUNE_MINUTE = 3, 17  # local time of the daily retention job
TICK = 1  # seconds between looks for due sources
BEHIND_LOG_EVERY = 60  # seconds between two "falling behind" warnings
# After the crawls stopped (STOP_GRACE), in-flight work has this long to store, match and
# deliver what it has; then it is cancelled. Both together stay well under 10 s.
SHUTDOWN_GRACE = 4.0
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class Daemon:
    """Ticks every TICK seconds: every source due then is polled in one cycle (one report per
    tick). A source is due one interval after its last poll started (later while it backs off
    after failures), and never while a poll of it is still running."""

    def __init__(self, config: Config, on_cycle: Callable[[CycleReport], None],
                 on_config: Callable[[Config], None] = lambda config: None) -> None:
        self.config = config
        self.on_cycle = on_cycle
        self.on_config = on_config  # told of each configuration taken on reload
        self.stopping = asyncio.Event()
        self.in_flight: set[asyncio.Task] = set()
        self.scheduler = AsyncIOScheduler()
        self.monitor: Monitor | None = None
        self.last_poll: dict[str, float] = {}  # source → when its last poll started (epoch s)
        self.retry_at: dict[str, float] = {}  # source → backing off until (epoch s)
        self.polling: set[str] = set()  # sources with a poll in flight
        self._behind_logged = 0.0  # when "falling behind" was last logged (monotonic)
        self._reloading = asyncio.Lock()
        self.metrics = Metrics(config)
        self.http: HttpHandle | None = None

    async def run(self) -> None:
        store = Store.open(self.config.database)
        crawler = LiveCrawler(self.config.crawl, self.config.sources)
        await crawler.start()
        self.monitor = Monitor.build(self.config, store, crawler)
        try:
            if self.config.http is not None:
                self.http = await self._listen(self.config)
            self._install_signals()
            self._schedule(self.config)
            self.scheduler.start()
            logger.info("monitor running: %s, %s", _count(len(self.config.sources), "source"),
                        _count(len(self.config.watchlists), "watchlist"))
            await self.stopping.wait()
        finally:
            await self._shutdown(crawler, store)

    async def _listen(self, config: Config) -> HttpHandle:
        try:
            return await start_http(config, self.status, self.metrics)
        except OSError as exc:
            raise MonitorError(f"http.listen: cannot listen on {config.http.host}:{config.http.port}: "
                               f"{exc.strerror or exc}") from None

    def _schedule(self, config: Config) -> None:
        self.scheduler.add_job(
            self._tick, IntervalTrigger(seconds=TICK), id="tick",
            next_run_time=datetime.now(self.scheduler.timezone), max_instances=1, coalesce=True,
            misfire_grace_time=None, replace_existing=True,
        )
        self.scheduler.add_job(
            self._tracked, IntervalTrigger(seconds=DELIVERY_INTERVAL), args=[self._deliver],
            id="deliver", max_instances=1, coalesce=True, replace_existing=True,
        )
        # Retention once a day, at night local time; `monitor prune` does the same by hand.
        self.scheduler.add_job(
            self._tracked, CronTrigger(hour=PRUNE_HOUR, minute=PRUNE_MINUTE), args=[self._prune],
            id="prune", max_instances=1, coalesce=True, misfire_grace_time=None, replace_existing=True,
        )
        self._schedule_digests(config)

    def _schedule_digests(self, config: Config) -> None:
        for job in self.scheduler.get_jobs():
            if job.id.startswith("digest:"):
                job.remove()
        for (schedule, timezone), group in digest_groups(config.watchlists).items():
            # A digest runs however late its time was missed (the loop busy, the clock jumped):
            # its alerts are held for it. Missed runs while stopped are not made up for; the
            # next one carries everything held.
            self.scheduler.add_job(
                self._tracked, CronTrigger.from_crontab(schedule, timezone=timezone),
                args=[self._digest, [w.name for w in group]], id=f"digest:{schedule}|{timezone}",
                max_instances=1, coalesce=True, misfire_grace_time=None, replace_existing=True,
            )

    def next_due(self, source: Source) -> float:
        """When `source` is to be polled next (epoch seconds); 0 for one never polled."""
        last = self.last_poll.get(source.name)
        if last is None:
            return 0.0
        return max(last + source.interval, self.retry_at.get(source.name, 0.0))

    def due(self, now: float) -> list[Source]:
        return [s for s in self.config.sources
                if s.name not in self.polling and self.next_due(s) <= now]

    def lateness(self, now: float) -> dict[str, float]:
        """Seconds each source's poll is overdue (0 when on time); a poll in flight counts from
        the time the next one would have been due."""
        return {s.name: max(0.0, now - self.next_due(s)) if s.name in self.last_poll else 0.0
                for s in self.config.sources}

    async def _tick(self) -> None:
        if self.stopping.is_set():
            return
        now = time.time()
        self._report_lag(now)
        due = self.due(now)
        if not due:
            return
        for source in due:
            self.last_poll[source.name] = now
            self.polling.add(source.name)
        task = asyncio.create_task(self._tracked(self._cycle, due))
        self.in_flight.add(task)  # at once: a stop right now must wait for it too
        task.add_done_callback(self.in_flight.discard)

    def _report_lag(self, now: float) -> None:
        intervals = {s.name: s.interval for s in self.config.sources}
        behind = {name: late for name, late in self.lateness(now).items() if late > intervals[name]}
        if behind and time.monotonic() - self._behind_logged >= BEHIND_LOG_EVERY:
            self._behind_logged = time.monotonic()
            worst = max(behind, key=behind.__getitem__)
            logger.warning("falling behind: %d %s late, the worst by %.0fs (%s)", len(behind),
                           "source" if len(behind) == 1 else "sources", behind[worst], worst)

    def status(self) -> dict[str, Any]:
        """For /healthz and /metrics: whether the scheduler runs, and each source's schedule."""
        now = time.time()
        late = self.lateness(now)
        running = self.scheduler.running and not self.stopping.is_set()
        return {
            "running": running,
            "reason": "" if running else ("stopping" if self.stopping.is_set() else "not started"),
            "sources": {
                s.name: {
                    "last_poll": _iso(self.last_poll.get(s.name)),
                    "next_due": _iso(self.next_due(s) or now),
                    "late": round(late[s.name], 1),
                    "behind": late[s.name] > s.interval,
                    "polling": s.name in self.polling,
                }
                for s in self.config.sources
            },
        }

    async def _tracked(self, job: Callable, *args: object) -> None:
        if self.stopping.is_set():
            return
        task = asyncio.current_task()
        self.in_flight.add(task)
        try:
            await job(*args)
        except asyncio.CancelledError:
            if not self.stopping.is_set():
                raise
            # Cancelled by the shutdown: what it had not stored or sent waits for the next run.
            logger.info("stopped %s before it finished", getattr(job, "__name__", "a job"))
        except StoreError as exc:
            # Locked, read-only, full or damaged: the transaction was rolled back, nothing is
            # half-written, and the next interval tries again.
            logger.error("database error: %s; retrying at the next interval", exc)
        except Exception:
            # A job must never take the daemon down; the next interval tries again.
            logger.exception("job failed")
        finally:
            self.in_flight.discard(task)

    async def _cycle(self, sources: list[Source]) -> None:
        try:
            report = await run_cycle(self.monitor, sources)
        finally:
            self.polling.difference_update(s.name for s in sources)
        for polled in report.sources:
            if polled.retry_at is not None:
                self.retry_at[polled.name] = polled.retry_at.timestamp()
            else:
                self.retry_at.pop(polled.name, None)
        self.metrics.observe_cycle(report)
        self.on_cycle(report)

    async def _deliver(self) -> DeliveryReport:
        report = await deliver(self.monitor)
        self.metrics.observe_delivery(report)
        if report.sent or report.failed:
            logger.info("delivery: %d sent, %d failed, %d pending",
                        report.sent, report.failed, report.pending)
        return report

    async def _digest(self, watchlists: list[str]) -> None:
        bundles, report = await send_digests(self.monitor, watchlists)
        self.metrics.observe_delivery(report)
        for line in describe_bundles(self.monitor.store, bundles):
            logger.info("%s", line)
        if not bundles:
            logger.info("digest: nothing held for %s", ", ".join(watchlists))
        if report.failed:
            logger.info("delivery: %d sent, %d failed, %d pending",
                        report.sent, report.failed, report.pending)

    async def _prune(self) -> None:
        # Under the delivery lock: pruning must not delete what a delivery pass is reading.
        async with self.monitor.delivery_lock:
            prune_daily(self.monitor.store, self.config.retention)

    def _install_signals(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in STOP_SIGNALS:
            loop.add_signal_handler(sig, self.stop)
        loop.add_signal_handler(signal.SIGHUP, self.reload)

    def stop(self) -> None:
        if self.stopping.is_set():
            logger.info("stopping now")  # a second signal: no more grace
            for task in self.in_flight:
                task.cancel()
            return
        logger.info("stopping: finishing in-flight work")
        self.stopping.set()

    def reload(self) -> None:
        task = asyncio.get_running_loop().create_task(self._reload())
        self.in_flight.add(task)
        task.add_done_callback(self.in_flight.discard)

    async def _reload(self) -> None:
        async with self._reloading:  # two SIGHUPs in a row: one reload after the other
            try:
                # Parsing and compiling thousands of watchlists takes seconds: not on the loop.
                config, matcher = await asyncio.to_thread(_load, Path(self.config.path))
            except MonitorError as exc:
                logger.error("reload refused, keeping the running configuration:\n%s", exc)
                return
            if self.stopping.is_set():
                return
            self._swap(config, matcher)
        await self._tick()  # a new source is polled at once

    def _swap(self, config: Config, matcher: Matcher) -> None:
        listening = self.config.http
        if config.database != self.config.database:
            logger.warning("database path changed; it takes effect at the next restart")
            config = replace(config, database=self.config.database)
        self.config = config
        self.on_config(config)
        self.monitor.config, self.monitor.matcher = config, matcher
        self.monitor.crawler.configure(config.crawl, config.sources)
        self.metrics.configure(config)
        if self.http is not None:
            self.http.configure(config)
        if _listen(config.http) != _listen(listening):
            logger.warning("http.listen changed; it takes effect at the next restart")
        # Sources keep their schedule by name: an unchanged one its next time, a new one is
        # due now, a removed one is forgotten (a poll of it in flight still finishes).
        names = {s.name for s in config.sources}
        for state in (self.last_poll, self.retry_at):
            for name in set(state) - names:
                del state[name]
        self._schedule_digests(config)
        logger.info("configuration reloaded: %s, %s", _count(len(config.sources), "source"),
                    _count(len(config.watchlists), "watchlist"))

    async def _shutdown(self, crawler: LiveCrawler, store: Store) -> None:
        started = self.scheduler.running
        if started:
            # Paused, not shut down: shutting down APScheduler's executor cancels running jobs.
            self.scheduler.pause()
        await crawler.stop_crawls()
        await _finish_or_cancel(self.in_flight, SHUTDOWN_GRACE)
        if started:
            self.scheduler.shutdown(wait=False)
        if self.http is not None:  # after the grace: /healthz says "stopping" meanwhile
            await self.http.close()
        await crawler.close()
        store.close()


def _load(path: Path) -> tuple[Config, Matcher]:
    """The configuration at `path` and its compiled watchlists (run in a worker thread)."""
    config = load_config(path)
    return config, build_matcher(config)


def _listen(http: HttpSettings | None) -> tuple[str, int] | None:
    return None if http is None else (http.host, http.port)


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}{'' if number == 1 else 's'}"


def _iso(epoch: float | None) -> str | None:
    return None if epoch is None else datetime.fromtimestamp(epoch, UTC).isoformat(timespec="seconds")


async def _finish_or_cancel(tasks: set[asyncio.Task], grace: float) -> None:
    """Let `tasks` finish within `grace` seconds, then cancel the rest and wait for them to
    unwind (a cancelled delivery leaves its alert pending; SQLite writes are never cut)."""
    running = {t for t in tasks if not t.done()}
    if not running:
        return
    _, late = await asyncio.wait(running, timeout=grace)
    for task in late:
        task.cancel()
    if late:
        await asyncio.wait(late, timeout=1)


async def run_until_stopped(work: Awaitable[T], crawler: Crawler) -> T | None:
    """Run `work` (the cycle of `monitor once`) with SIGTERM/SIGINT handled like the daemon's:
    the crawls stop, what was fetched is stored and matched within the grace, then the rest is
    cancelled; a second signal cancels at once. None when the work did not finish."""
    loop = asyncio.get_running_loop()
    task = asyncio.ensure_future(work)
    stopping: list[asyncio.Task] = []

    def stop() -> None:
        if stopping:
            logger.info("stopping now")
            task.cancel()
            return
        logger.info("stopping: finishing in-flight work")
        stopping.append(loop.create_task(crawler.stop_crawls()))
        loop.call_later(STOP_GRACE + SHUTDOWN_GRACE, task.cancel)

    # Left installed until the loop closes, so a signal while the crawler closes is no traceback.
    for sig in STOP_SIGNALS:
        loop.add_signal_handler(sig, stop)
    try:
        return await task
    except asyncio.CancelledError:
        if not task.cancelled() or asyncio.current_task().cancelling():
            raise  # cancelled from outside, not by a signal
        logger.info("stopped before the cycle finished; the rest waits for the next run")
        return None
