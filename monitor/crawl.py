"""Runs Scrapy spiders inside the daemon's one asyncio loop.

Twisted's reactor cannot be restarted, so the asyncio reactor is installed once, on the running
loop, before anything imports ``twisted.internet.reactor``; every crawl afterwards is a new
Crawler on the same AsyncCrawlerRunner. No business logic here: spiders in, items out."""

from __future__ import annotations

import asyncio
import itertools
import logging
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import urlsplit

from scrapy.core.downloader import Downloader  # does not import the reactor

from monitor.extract_pool import ExtractionPool
from monitor.frontier import Frontier, Job, LocalFrontier
from monitor.models import CrawlSettings, PageResult, PollResult, Source

logger = logging.getLogger(__name__)
ASYNCIO_REACTOR = "twisted.internet.asyncioreactor.AsyncioSelectorReactor"
# After a stop, answers already on their way may still arrive for this long; then the crawls
# are abandoned (a page that holds its answer must not hold the shutdown).
STOP_GRACE = 3.0
# Called with each item of a crawl as it comes (on the loop's thread), before the crawl ends.
OnResult = Callable[[Any], None]


def scrapy_settings(crawl: CrawlSettings, sources: Sequence[Source] = ()) -> dict[str, Any]:
    return {
        "USER_AGENT": crawl.user_agent,
        "ROBOTSTXT_OBEY": crawl.obey_robots,
        "ROBOTSTXT_USER_AGENT": crawl.user_agent.split("/")[0],
        "DOWNLOAD_TIMEOUT": crawl.timeout,
        "DOWNLOAD_MAXSIZE": crawl.max_size,
        "DOWNLOAD_WARNSIZE": crawl.max_size // 2,
        "CONCURRENT_REQUESTS": 16,
        "CONCURRENT_REQUESTS_PER_DOMAIN": crawl.concurrency_per_domain,
        "DOWNLOAD_DELAY": crawl.delay,
        "AUTOTHROTTLE_ENABLED": True,
        "AUTOTHROTTLE_START_DELAY": crawl.delay,
        "AUTOTHROTTLE_MAX_DELAY": 30.0,
        "RETRY_TIMES": 2,
        "COOKIES_ENABLED": False,
        "TELNETCONSOLE_ENABLED": False,
        "EXTENSIONS": {
            "scrapy.extensions.remote_control.RemoteControl": None,
            "scrapy.extensions.logstats.LogStats": None,
        },
        "DOWNLOAD_SLOTS": download_slots(sources),
        # Only http(s) is ever fetched: no file:, data:, s3: or ftp: handler exists, and the
        # guard refuses them (and private addresses) with a reason. See spiders/guard.py.
        "DOWNLOAD_HANDLERS": {"file": None, "data": None, "s3": None, "ftp": None},
        # Scrapy's robots.txt middleware lets some requests through unchecked (spiders/robots.py).
        "DOWNLOADER_MIDDLEWARES": {"spiders.guard.LinkGuard": 40,
                                   "scrapy.downloadermiddlewares.robotstxt.RobotsTxtMiddleware": None,
                                   "spiders.robots.RobotsTxt": 100},
        "MONITOR_ALLOW_PRIVATE": crawl.allow_private,
        "MONITOR_HOSTS": {name: list(addresses) for name, addresses in crawl.hosts},
        "MONITOR_SOURCE_HOSTS": sorted({h for h in (urlsplit(s.url).hostname for s in sources) if h}),
        "MONITOR_PAGE_CACHE_DIR": str(crawl.cache_dir) if crawl.cache_dir else None,
        "TWISTED_REACTOR": ASYNCIO_REACTOR,
        "LOG_ENABLED": False,  # our root handler prints Scrapy's warnings; see cli logging
    }


def download_slots(sources: Sequence[Source]) -> dict[str, dict[str, Any]]:
    """A source's own delay and concurrency apply to its whole domain (Scrapy's download slot)."""
    slots: dict[str, dict[str, Any]] = {}
    for source in sources:
        host = urlsplit(source.url).hostname
        slot = {k: v for k, v in (("delay", source.delay), ("concurrency", source.concurrency))
                if v is not None}
        if host and slot:
            slots.setdefault(host, {}).update(slot)
    return slots


def start_reactor() -> Any:
    """The asyncio Twisted reactor, on the running loop (installed once per process)."""
    from scrapy.utils.reactor import install_reactor, is_asyncio_reactor_installed

    install_reactor(ASYNCIO_REACTOR)
    if not is_asyncio_reactor_installed():
        raise RuntimeError("a non-asyncio Twisted reactor was installed before the crawler")
    from twisted.internet import reactor

    if not reactor.running:
        # The asyncio loop is already running; mark the reactor as running on top of it.
        reactor.startRunning(installSignalHandlers=False)
    if logging.getLogger("scrapy").level == logging.NOTSET:  # else `-vv` (cli) chose it
        logging.getLogger("scrapy").setLevel(logging.WARNING)
        # Download failures reach the spiders' errbacks and are reported per source and per
        # article; Scrapy's own tracebacks for them would only repeat that.
        for name in ("scrapy.downloadermiddlewares.retry", "scrapy.downloadermiddlewares.robotstxt"):
            logging.getLogger(name).setLevel(logging.CRITICAL)
    return reactor


class Crawler:
    """One crawl per call (`monitor once`, discover, probe). Create it inside the running
    asyncio loop."""

    def __init__(self, crawl: CrawlSettings, sources: Sequence[Source] = ()) -> None:
        self._reactor = start_reactor()
        self.stopped = False
        self._abandoned = asyncio.Event()
        # Article pages are extracted on every core; the workers start with the first poll.
        self.extraction = ExtractionPool(crawl.extract_workers, crawl.extract_timeout)
        self.configure(crawl, sources)

    def configure(self, crawl: CrawlSettings, sources: Sequence[Source]) -> None:
        """New settings for the crawls that start from now on (at start and on reload)."""
        from scrapy.crawler import AsyncCrawlerRunner

        self._runner = AsyncCrawlerRunner(scrapy_settings(crawl, sources))

    async def run(self, spider_class: type, on_result: OnResult | None = None, **kwargs: Any) -> list[Any]:
        """Run one crawl of `spider_class` and return every item it yielded; after stop_crawls(),
        only the items yielded until then. `on_result` sees each item as it comes."""
        from scrapy import signals

        if self.stopped:
            return []
        items: list[Any] = []

        def collect(item: Any, **_: Any) -> None:
            items.append(item)
            if on_result is not None:
                on_result(item)

        crawler = self._runner.create_crawler(spider_class)
        # Signals hold weak references; `collect` lives until the crawl returns.
        crawler.signals.connect(collect, signal=signals.item_scraped)
        crawl = asyncio.ensure_future(self._runner.crawl(crawler, **kwargs))
        abandoned = asyncio.ensure_future(self._abandoned.wait())
        try:
            # Not `await crawl`: cancelling our caller must not cancel Scrapy halfway.
            await asyncio.wait({crawl, abandoned}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            abandoned.cancel()
        if not crawl.done():
            crawl.add_done_callback(_consume)  # abandoned: its end is of no interest any more
            return list(items)
        crawl.result()
        return items

    async def fetch_sources(self, targets: dict[str, list[Any]]) -> list[PollResult]:
        """One crawl per source type (feed, sitemap, page), all at once."""
        from spiders.feed import FeedSpider
        from spiders.listing import ListingSpider
        from spiders.sitemap import SitemapSpider

        spiders = {"feed": FeedSpider, "sitemap": SitemapSpider, "page": ListingSpider}
        self.extraction.start()  # the new articles' pages come next
        crawls = [self.run(spiders[kind], targets=group) for kind, group in targets.items() if group]
        return [item for items in await asyncio.gather(*crawls) for item in items]

    async def fetch_pages(self, targets: list[Any], on_result: OnResult | None = None) -> list[PageResult]:
        """Every page's result; `on_result` is called with each as soon as it is in."""
        from spiders.article import ArticleSpider

        if not targets:
            return []
        return await self.run(ArticleSpider, on_result, targets=targets, extraction=self.extraction)

    async def stop_crawls(self) -> None:
        """Stop starting requests; pages already on their way have STOP_GRACE seconds to be
        handed back, then every crawl returns what it has. Callers see `stopped` and leave the
        rest for the next run. Crawls started after this return nothing."""
        if self.stopped:
            return
        self.stopped = True
        await _stop_runner(self._runner, self._abandoned)

    async def close(self) -> None:
        await self.stop_crawls()
        self.extraction.close()
        # Twisted's thread pool (DNS lookups) keeps the process alive at exit. Firing the whole
        # "shutdown" event would also stop the asyncio loop under asyncio.run's feet.
        self._reactor.getThreadPool().stop()


def _consume(task: asyncio.Future) -> None:
    if not task.cancelled():
        task.exception()


async def _stop_runner(runner: Any, abandoned: asyncio.Event) -> None:
    """Stop the runner's crawls, giving answers on their way STOP_GRACE seconds; then every
    caller waiting on `abandoned` returns what it has (both crawlers stop this way)."""
    try:
        await asyncio.wait_for(runner.stop(), STOP_GRACE)
    except TimeoutError:
        logger.info("crawls still waiting for answers are abandoned")
        _quiet_when_dropped(asyncio.get_running_loop())
    abandoned.set()


def _quiet_when_dropped(loop: asyncio.AbstractEventLoop) -> None:
    """An abandoned crawl's tasks are still waiting for their answers when the loop closes at
    exit; asyncio would report each one dropped as an error, and Python each coroutine."""
    previous = loop.get_exception_handler()

    def handler(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        if context.get("message", "").startswith("Task was destroyed but it is pending"):
            logger.debug("dropped at exit: %s", context.get("task"))
        elif previous is not None:
            previous(loop, context)
        else:
            loop.default_exception_handler(context)

    loop.set_exception_handler(handler)
    warnings.filterwarnings("ignore", r"coroutine '.*' was never awaited", RuntimeWarning)


# A domain's robots.txt is kept this long, then fetched again before its next request.
ROBOTS_MAX_AGE = 24 * 3600
# A domain's download slot (its concurrency, delay and AutoThrottle state) outlives idle spells
# this long; Scrapy's default of 60 s would forget it between two polls of a feed.
SLOT_KEEP = 7 * 24 * 3600


def live_settings(crawl: CrawlSettings, sources: Sequence[Source]) -> dict[str, Any]:
    """The one-crawl settings, for one crawl that lasts: the page cache is on for the whole
    crawl and skipped per request by everything but article pages (spiders/live.py)."""
    settings = scrapy_settings(crawl, sources)
    settings["DOWNLOADER"] = "monitor.crawl.LongLivedDownloader"
    settings["MONITOR_ROBOTS_MAX_AGE"] = ROBOTS_MAX_AGE
    # First come, first fetched (Scrapy's default is last in, first out): article pages go in
    # the order the feed gave them, and a poll queued earlier is not overtaken by a later one.
    settings["SCHEDULER_MEMORY_QUEUE"] = "scrapy.squeues.FifoMemoryQueue"
    if crawl.cache_dir:
        settings |= {
            "HTTPCACHE_ENABLED": True,
            "HTTPCACHE_DIR": str(crawl.cache_dir),
            "HTTPCACHE_POLICY": "scrapy.extensions.httpcache.RFC2616Policy",
            "HTTPCACHE_IGNORE_HTTP_CODES": list(range(400, 600)),
        }
    return settings


class LongLivedDownloader(Downloader):
    def _slot_gc(self, age: float = SLOT_KEEP) -> None:
        super()._slot_gc(age)


@dataclass
class _Batch:
    """What one caller waits for: the items of its jobs, done when none is outstanding."""

    outstanding: int
    done: asyncio.Future
    items: list[Any] = field(default_factory=list)
    on_result: OnResult | None = None


class LiveCrawler:
    """The daemon's crawler: one Scrapy crawl, open from start() to close(), fed through a
    frontier. Its `fetch_sources`/`fetch_pages` are those of Crawler, so a cycle runs on either.
    Being one crawl, robots.txt is fetched once per domain (again after ROBOTS_MAX_AGE), and
    one download slot per domain holds concurrency, delay and AutoThrottle for all sources."""

    def __init__(self, crawl: CrawlSettings, sources: Sequence[Source] = (),
                 frontier: Frontier | None = None) -> None:
        self._reactor = start_reactor()
        self.frontier: Frontier = frontier if frontier is not None else LocalFrontier()
        self.stopped = False
        self._abandoned = asyncio.Event()
        self._batches: dict[int, _Batch] = {}
        self._ids = itertools.count(1)
        self._crawl_settings = crawl
        self.extraction = ExtractionPool(crawl.extract_workers, crawl.extract_timeout)  # see Crawler
        from scrapy.crawler import AsyncCrawlerRunner

        self._runner = AsyncCrawlerRunner(live_settings(crawl, sources))
        self._crawler: Any = None
        self._crawl: asyncio.Future | None = None

    async def start(self) -> None:
        from spiders.live import LiveSpider

        self.extraction.start()
        self._crawler = self._runner.create_crawler(LiveSpider)
        self._crawl = asyncio.ensure_future(
            self._runner.crawl(self._crawler, frontier=self.frontier, router=self,
                               extraction=self.extraction))
        self._crawl.add_done_callback(self._ended)

    def _ended(self, crawl: asyncio.Future) -> None:
        if not crawl.cancelled() and crawl.exception() is not None:
            logger.error("the crawler stopped: %r", crawl.exception())
        elif not self.stopped:
            logger.error("the crawler stopped unexpectedly")
        self._abandoned.set()  # no answer will come any more

    def configure(self, crawl: CrawlSettings, sources: Sequence[Source]) -> None:
        """On reload: the sources' per-domain delay and concurrency and the link guard's hosts
        apply at once; other crawl settings need a restart (one crawl holds its settings)."""
        from spiders.guard import install_resolver

        if replace(crawl, hosts=(), allow_private=False) != replace(
                self._crawl_settings, hosts=(), allow_private=False):
            logger.warning("crawl settings changed; they take effect at the next restart "
                           "(crawl.hosts and the sources' delay and concurrency apply now)")
        install_resolver(crawl.allow_private, {n: list(a) for n, a in crawl.hosts},
                         sorted({h for h in (urlsplit(s.url).hostname for s in sources) if h}))
        engine = self._crawler.engine if self._crawler else None
        if engine is None or engine.downloader is None:
            return
        downloader = engine.downloader
        downloader.per_slot_settings = download_slots(sources)
        for key, slot in downloader.slots.items():
            wanted = downloader.per_slot_settings.get(key, {})
            slot.concurrency = wanted.get("concurrency", downloader.domain_concurrency)
            slot.delay = max(slot.delay, wanted.get("delay", 0.0))

    async def fetch_sources(self, targets: dict[str, list[Any]]) -> list[PollResult]:
        """Every source of every kind in one batch; the crawl's slots pace them per domain."""
        return await self._submit([(kind, t) for kind, group in targets.items() for t in group])

    async def fetch_pages(self, targets: list[Any], on_result: OnResult | None = None) -> list[PageResult]:
        """Every page's result; `on_result` is called with each as soon as it is in."""
        return await self._submit([("article", t) for t in targets], on_result)

    async def _submit(self, work: list[tuple[str, Any]], on_result: OnResult | None = None) -> list[Any]:
        """Push the jobs and wait for their items; after stop_crawls(), only those answered
        within the grace."""
        if self.stopped or not work or self._abandoned.is_set():
            return []
        batch_id = next(self._ids)
        batch = _Batch(len(work), asyncio.get_running_loop().create_future(), on_result=on_result)
        self._batches[batch_id] = batch
        self.frontier.push(Job(batch_id, kind, target) for kind, target in work)
        abandoned = asyncio.ensure_future(self._abandoned.wait())
        try:
            # Not `await batch.done` alone: a stop must not wait for answers that never come.
            await asyncio.wait({batch.done, abandoned}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            abandoned.cancel()
            self._batches.pop(batch_id, None)
        return list(batch.items)

    # The router side, called by spiders/live.py.
    def expect(self, batch_id: int, count: int) -> None:
        batch = self._batches.get(batch_id)
        if batch is not None:
            batch.outstanding += count

    def deliver(self, batch_id: int, item: Any) -> None:
        batch = self._batches.get(batch_id)
        if batch is not None:  # else its caller gave up (stopped): nobody waits for it
            batch.items.append(item)
            if batch.on_result is not None:
                batch.on_result(item)

    def finished(self, batch_id: int) -> None:
        batch = self._batches.get(batch_id)
        if batch is None:
            return
        batch.outstanding -= 1
        if batch.outstanding <= 0 and not batch.done.done():
            batch.done.set_result(None)

    async def stop_crawls(self) -> None:
        """Stop taking jobs; answers on their way have STOP_GRACE seconds, then every waiting
        caller gets what it has. Later calls fetch nothing."""
        if self.stopped:
            return
        self.stopped = True
        if self._crawler is not None and self._crawler.spider is not None:
            self._crawler.spider.closing = True
        await _stop_runner(self._runner, self._abandoned)

    async def close(self) -> None:
        await self.stop_crawls()
        if self._crawl is not None and not self._crawl.done():
            self._crawl.add_done_callback(_consume)
        self.extraction.close()
        self._reactor.getThreadPool().stop()
