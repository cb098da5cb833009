"""Fetches article pages once each and extracts their main text (in the crawler's worker
processes: monitor.extract_pool)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import scrapy
from scrapy.http import Response, TextResponse
from scrapy.settings import BaseSettings
from twisted.python.failure import Failure

from monitor.extract_pool import ExtractionFailed, ExtractionPool
from monitor.models import PageResult
from spiders.base import HANDLED_STATUSES, describe_failure


@dataclass(frozen=True)
class PageTarget:
    article_id: int
    url: str
    # The configured URL of the source that linked to the page; None when the operator named
    # the page itself (`monitor match URL`). Decides which addresses the request may reach.
    origin: str | None = None
    obey_robots: bool = True  # the source's obey_robots
    # The source's store_text: False keeps the page out of the HTTP cache too (no copy on disk).
    store_text: bool = True


class ArticleSpider(scrapy.Spider):
    name = "article"

    @classmethod
    def update_settings(cls, settings: BaseSettings) -> None:
        """Article pages go through Scrapy's HTTP cache (RFC 2616 rules) when the config gives
        a cache folder; feeds never do, since they make their own conditional requests."""
        super().update_settings(settings)
        cache_dir = settings.get("MONITOR_PAGE_CACHE_DIR")
        if cache_dir:
            settings.setdict({
                "HTTPCACHE_ENABLED": True,
                "HTTPCACHE_DIR": cache_dir,
                "HTTPCACHE_POLICY": "scrapy.extensions.httpcache.RFC2616Policy",
                "HTTPCACHE_IGNORE_HTTP_CODES": list(range(400, 600)),
            }, priority="spider")

    def __init__(self, targets: list[PageTarget], extraction: ExtractionPool | None = None,
                 **kwargs: object) -> None:
        super().__init__(**kwargs)
        self.targets = targets
        # The crawler's pool; without one (a spider made on its own) pages are extracted here.
        self.extraction = extraction if extraction is not None else ExtractionPool(workers=0)
        # Bound once: Scrapy caches what it learns about a callback per callable object, and a
        # bound method made per request would be inspected (getsource, ast.parse) per response.
        self.on_page, self.on_failure = self.parse_page, self.failed

    async def start(self) -> AsyncIterator[scrapy.Request | PageResult]:
        for target in self.targets:
            yield self.page_request(target)

    def page_request(self, target: PageTarget) -> scrapy.Request | PageResult:
        try:
            return scrapy.Request(
                target.url,
                callback=self.on_page,
                errback=self.on_failure,
                dont_filter=True,
                meta={"handle_httpstatus_list": HANDLED_STATUSES, "target": target,
                      "origin": target.url if target.origin is None else target.origin,
                      "dont_obey_robotstxt": not target.obey_robots,
                      "dont_cache": not target.store_text},
            )
        except ValueError as exc:  # one bad address fails its own article only
            return PageResult(target.article_id, target.url, error=f"bad URL: {exc}"[:300])

    async def parse_page(self, response: Response) -> list[PageResult]:
        return [await self.page_result(response)]

    async def page_result(self, response: Response) -> PageResult:
        target: PageTarget = response.meta["target"]
        if response.status != 200:
            return PageResult(target.article_id, target.url, error=f"HTTP {response.status}")
        if not isinstance(response, TextResponse):
            return PageResult(target.article_id, target.url, error="not a text page")
        # response.text is decoded from the header, <meta> or BOM, with latin-1 read as cp1252.
        try:
            extracted = await self.extraction.extract(response.text, response.url)
        except ExtractionFailed as exc:  # a worker died or ran out of time on this page
            return PageResult(target.article_id, target.url, error=str(exc))
        except Exception as exc:  # a hostile page must not stop the others
            return PageResult(target.article_id, target.url, error=f"extraction failed: {exc!r}"[:300])
        if extracted is None:
            return PageResult(target.article_id, target.url, error="no article text found")
        return PageResult(
            article_id=target.article_id,
            url=target.url,
            title=extracted.title or None,
            text=extracted.text,
            author=extracted.author,
            published=extracted.published,
            lang=extracted.lang,
            canonical_url=extracted.canonical_url,
        )

    def failed(self, failure: Failure) -> Iterator[PageResult]:
        target: PageTarget = failure.request.meta["target"]
        yield PageResult(target.article_id, target.url, error=describe_failure(failure))
