"""The daemon: APScheduler triggers one cycle per source on its interval, and a delivery pass
for the outbox; SIGTERM/SIGINT stop it after in-flight work, SIGHUP reloads the config."""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import TypeVar

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from monitor.alerts.digest import describe_bundles, digest_groups
from monitor.alerts.outbox import DeliveryReport
from monitor.config import load_config
from monitor.crawl import STOP_GRACE, Crawler
from monitor.errors import MonitorError, StoreError
from monitor.models import Config, Source
from monitor.pipeline import CycleReport, Monitor, build_matcher, deliver, run_cycle, send_digests
from monitor.store import Store

logger = logging.getLogger(__name__)
T = TypeVar("T")
DELIVERY_INTERVAL = 60
# After the crawls stopped (STOP_GRACE), in-flight work has this long to store, match and
# deliver what it has; then it is cancelled. Both together stay well under 10 s.
SHUTDOWN_GRACE = 4.0
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class Daemon:
    def __init__(self, config: Config, on_cycle: Callable[[CycleReport], None],
                 on_config: Callable[[Config], None] = lambda config: None) -> None:
        self.config = config
        self.on_cycle = on_cycle
        self.on_config = on_config  # told of each configuration taken on reload
        self.stopping = asyncio.Event()
        self.in_flight: set[asyncio.Task] = set()
        self.scheduler = AsyncIOScheduler()
        self.monitor: Monitor | None = None

    async def run(self) -> None:
        store = Store.open(self.config.database)
        crawler = Crawler(self.config.crawl, self.config.sources)
        self.monitor = Monitor.build(self.config, store, crawler)
        self._install_signals()
        self._schedule(self.config)
        self.scheduler.start()
        logger.info("monitor running: %d sources, %d watchlists",
                    len(self.config.sources), len(self.config.watchlists))
        try:
            await self.stopping.wait()
        finally:
            await self._shutdown(crawler, store)

    def _schedule(self, config: Config) -> None:
        now = datetime.now(self.scheduler.timezone)
        for source in config.sources:
            self.scheduler.add_job(
                self._tracked, IntervalTrigger(seconds=source.interval), args=[self._cycle, source],
                id=f"source:{source.name}", next_run_time=now, max_instances=1, coalesce=True,
                misfire_grace_time=None, replace_existing=True,
            )
        self.scheduler.add_job(
            self._tracked, IntervalTrigger(seconds=DELIVERY_INTERVAL), args=[self._deliver],
            id="deliver", max_instances=1, coalesce=True, replace_existing=True,
        )
        for (schedule, timezone), group in digest_groups(config.watchlists).items():
            # A digest runs however late its time was missed (the loop busy, the clock jumped):
            # its alerts are held for it. Missed runs while stopped are not made up for; the
            # next one carries everything held.
            self.scheduler.add_job(
                self._tracked, CronTrigger.from_crontab(schedule, timezone=timezone),
                args=[self._digest, [w.name for w in group]], id=f"digest:{schedule}|{timezone}",
                max_instances=1, coalesce=True, misfire_grace_time=None, replace_existing=True,
            )

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

    async def _cycle(self, source: Source) -> None:
        self.on_cycle(await run_cycle(self.monitor, [source]))

    async def _deliver(self) -> DeliveryReport:
        report = await deliver(self.monitor)
        if report.sent or report.failed:
            logger.info("delivery: %d sent, %d failed, %d pending",
                        report.sent, report.failed, report.pending)
        return report

    async def _digest(self, watchlists: list[str]) -> None:
        bundles, report = await send_digests(self.monitor, watchlists)
        for line in describe_bundles(self.monitor.store, bundles):
            logger.info("%s", line)
        if not bundles:
            logger.info("digest: nothing held for %s", ", ".join(watchlists))
        if report.failed:
            logger.info("delivery: %d sent, %d failed, %d pending",
                        report.sent, report.failed, report.pending)

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
        try:
            config = load_config(Path(self.config.path))
            matcher = build_matcher(config)
        except MonitorError as exc:
            logger.error("reload refused, keeping the running configuration:\n%s", exc)
            return
        if config.database != self.config.database:
            logger.warning("database path changed; it takes effect at the next restart")
            config = replace(config, database=self.config.database)
        self.config = config
        self.on_config(config)
        self.monitor.config, self.monitor.matcher = config, matcher
        self.monitor.crawler.configure(config.crawl, config.sources)
        self.scheduler.remove_all_jobs()
        self._schedule(config)
        logger.info("configuration reloaded: %d sources, %d watchlists",
                    len(config.sources), len(config.watchlists))

    async def _shutdown(self, crawler: Crawler, store: Store) -> None:
        # Paused, not shut down: shutting down APScheduler's executor cancels the running jobs.
        self.scheduler.pause()
        await crawler.stop_crawls()
        await _finish_or_cancel(self.in_flight, SHUTDOWN_GRACE)
        self.scheduler.shutdown(wait=False)
        await crawler.close()
        store.close()


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
