"""The daemon's one spider: open for the daemon's life, fed jobs from the frontier.

It polls feeds, sitemaps and listing pages and fetches article pages with the parsing code of
the one-crawl spiders (feed.py, sitemap.py, listing.py, article.py); the callback of each
request is chosen by the job's kind. Like scrapy-redis, it never closes when idle
(spider_idle → DontCloseSpider) and pulls more work then. What the callbacks produce is handed
to the router (monitor.crawl.LiveCrawler), which gives it back to the caller waiting for it."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable, Iterable
from typing import Any, Protocol

import scrapy
from scrapy import signals
from scrapy.exceptions import DontCloseSpider
from scrapy.http import Response
from twisted.python.failure import Failure

from monitor.extract_pool import ExtractionPool
from monitor.frontier import Frontier, Job
from spiders.article import ArticleSpider
from spiders.base import SourceSpider
from spiders.feed import FeedSpider
from spiders.listing import ListingSpider
from spiders.sitemap import SitemapSpider

logger = logging.getLogger(__name__)
# Jobs taken from the frontier per pull; Scrapy's scheduler orders them by priority after that.
PULL = 1000
# A poll goes before waiting article pages, so a long queue of pages never delays a source.
SOURCE_PRIORITY = 10


class Router(Protocol):
    def expect(self, batch: int, count: int) -> None: ...

    def deliver(self, batch: int, item: Any) -> None: ...

    def finished(self, batch: int) -> None: ...


class LiveSpider(scrapy.Spider):
    name = "live"

    def __init__(self, frontier: Frontier, router: Router, extraction: ExtractionPool | None = None,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.frontier, self.router = frontier, router
        self.closing = False
        # The parsers of the one-crawl spiders, used as plain objects.
        self.sources: dict[str, SourceSpider] = {
            "feed": FeedSpider([]), "sitemap": SitemapSpider([]), "page": ListingSpider([])}
        self.articles = ArticleSpider([], extraction)
        # One bound callback per kind, made once; every request of that kind refers to it.
        self.callbacks: dict[str, Callable[[Response], Any]] = {
            "feed": self.parse_feed, "sitemap": self.parse_sitemap, "page": self.parse_listing,
            "article": self.parse_article}
        self.errbacks: dict[str, Callable[[Failure], list[Any]]] = {
            kind: self.failed_source for kind in self.sources} | {"article": self.failed_article}

    @classmethod
    def from_crawler(cls, crawler: Any, *args: Any, **kwargs: Any) -> LiveSpider:
        spider = super().from_crawler(crawler, *args, **kwargs)
        for parser in (*spider.sources.values(), spider.articles):
            parser.settings = crawler.settings  # the sitemap parser reads DOWNLOAD_MAXSIZE
        crawler.signals.connect(spider.opened, signal=signals.spider_opened)
        crawler.signals.connect(spider.idle, signal=signals.spider_idle)
        crawler.signals.connect(spider.dropped, signal=signals.request_dropped)
        return spider

    async def start(self) -> AsyncIterator[scrapy.Request]:
        return  # all work comes from the frontier
        yield  # pragma: no cover  (makes this an async generator)

    def opened(self, spider: scrapy.Spider) -> None:
        self.frontier.listen(self.drain)
        self.drain()

    def idle(self, spider: scrapy.Spider) -> None:
        self.drain()
        if not self.closing:
            raise DontCloseSpider

    def drain(self) -> None:
        """Hand every waiting job to the engine."""
        while not self.closing:
            jobs = self.frontier.pop(PULL)
            if not jobs:
                return
            for job in jobs:
                self._schedule(job)

    def _schedule(self, job: Job) -> None:
        if job.kind == "article":
            request = self.articles.page_request(job.target)
        else:
            parser = self.sources[job.kind]
            request = parser.first_request(parser.start_url(job.target), job.target)
        if not isinstance(request, scrapy.Request):  # a URL Scrapy cannot request
            self.router.deliver(job.batch, request)
            self.router.finished(job.batch)
            return
        self.crawler.engine.crawl(self._adopt(request, job.kind, job.batch))

    def _adopt(self, request: scrapy.Request, kind: str, batch: int) -> scrapy.Request:
        """A request of the parsers, answered through this spider's callback for `kind`."""
        request.callback, request.errback = self.callbacks[kind], self.errbacks[kind]
        request.meta["kind"], request.meta["batch"] = kind, batch
        if kind != "article":
            request.priority = SOURCE_PRIORITY
            # Feeds make their own conditional requests; the page cache is for article pages.
            request.meta["dont_cache"] = True
        return request

    def parse_feed(self, response: Response) -> list[scrapy.Request]:
        return self._route(response.meta, self.sources["feed"].parse_source(response))

    def parse_sitemap(self, response: Response) -> list[scrapy.Request]:
        return self._route(response.meta, self.sources["sitemap"].parse_source(response))

    def parse_listing(self, response: Response) -> list[scrapy.Request]:
        return self._route(response.meta, self.sources["page"].parse_source(response))

    async def parse_article(self, response: Response) -> list[scrapy.Request]:
        # The page is extracted in a worker process; the loop fetches meanwhile.
        return self._route(response.meta, [await self.articles.page_result(response)])

    def failed_source(self, failure: Failure) -> list[scrapy.Request]:
        meta = failure.request.meta
        return self._route(meta, self.sources[meta["kind"]].failed(failure))

    def failed_article(self, failure: Failure) -> list[scrapy.Request]:
        return self._route(failure.request.meta, self.articles.failed(failure))

    def _route(self, meta: dict[str, Any], outputs: Iterable[Any]) -> list[scrapy.Request]:
        """Items go to the router; follow-up requests (a sitemap's children) join the same
        batch before this request counts as finished, so the batch cannot end early."""
        batch, kind = meta["batch"], meta["kind"]
        follow: list[scrapy.Request] = []
        try:
            for output in outputs:
                if isinstance(output, scrapy.Request):
                    self.router.expect(batch, 1)
                    follow.append(self._adopt(output, kind, batch))
                else:
                    self.router.deliver(batch, output)
        finally:
            self.router.finished(batch)
        return follow

    def dropped(self, request: scrapy.Request, spider: scrapy.Spider) -> None:
        if "batch" in request.meta:
            self.router.finished(request.meta["batch"])
