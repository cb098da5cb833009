"""Finds the feeds and sitemaps a site advertises: <link rel="alternate"> in a page, Sitemap: lines
in robots.txt, and a few common paths. Every candidate is fetched and reported only if it really
is a feed or a sitemap, so a soft 404 (an HTML page answering 200) never shows up."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterator
from typing import Any, ClassVar
from urllib.parse import urlsplit, urlunsplit

import feedparser
import scrapy
from scrapy.http import Response, TextResponse
from scrapy.spidermiddlewares.httperror import HttpError
from scrapy.utils.sitemap import sitemap_urls_from_robots
from twisted.python.failure import Failure

from monitor.discover import Discovered, Unreachable
from monitor.errors import FetchError
from monitor.feeds import decode_feed, parse_feed
from monitor.normalize import TITLE_MAX, clean_string, one_line
from spiders.base import describe_failure
from spiders.sitemap import NewsSitemap, unzipped

logger = logging.getLogger(__name__)

FEED_TYPES = ("application/rss+xml", "application/atom+xml")
PROBE_PATHS = (
    "/rss", "/rss.xml", "/feed", "/feed.xml", "/atom.xml",
    "/sitemap.xml", "/sitemap_index.xml", "/sitemap-news.xml", "/news-sitemap.xml",
)


class DiscoverSpider(scrapy.Spider):
    name = "discover"
    accept = "application/rss+xml, application/atom+xml, application/xml;q=0.9, */*;q=0.5"
    # A person waits for the answer: an unreachable site is said so within one timeout, not
    # after Scrapy's retries; a probe that failed is simply not a feed.
    custom_settings: ClassVar[dict[str, Any]] = {"RETRY_ENABLED": False}

    def __init__(self, url: str, probes: tuple[str, ...] = PROBE_PATHS, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.url = url
        self.probes = probes
        # Bound once: Scrapy caches what it learns about a callback per callable object (see
        # spiders/base.py).
        self.on_page, self.on_page_failure = self.parse_page, self.page_failed
        self.on_robots, self.on_candidate = self.parse_robots, self.parse_candidate
        self.on_unreachable = self.unreachable

    async def start(self) -> AsyncIterator[scrapy.Request]:
        # The page first, the rest once the host has answered at all: probing eleven paths of
        # a host that refuses connections only makes the user wait.
        yield scrapy.Request(self.url, callback=self.on_page, errback=self.on_page_failure,
                             dont_filter=True, headers={"Accept": self.accept},
                             meta={"via": "", "title": "", "origin": self.url})

    def site_requests(self) -> Iterator[scrapy.Request]:
        root = site_root(self.url)
        yield self.request(root + "robots.txt", self.on_robots)
        for path in self.probes:
            yield self.request(root + path.lstrip("/"), self.on_candidate, via="probe")

    def request(self, url: str, callback: Any, via: str = "", title: str = "") -> scrapy.Request:
        # dont_filter: the same URL may come from several places; monitor.discover dedupes the
        # results and keeps the most telling `via`.
        return scrapy.Request(url, callback=callback, errback=self.on_unreachable, dont_filter=True,
                              headers={"Accept": self.accept},
                              meta={"via": via, "title": title, "origin": self.url})

    def parse_page(self, response: Response) -> Iterator[scrapy.Request]:
        yield from self.site_requests()
        if not isinstance(response, TextResponse):
            return
        for link in response.xpath("//link[@href]"):
            rel = (link.attrib.get("rel") or "").lower().split()
            kind = (link.attrib.get("type") or "").lower().split(";")[0].strip()
            if "alternate" in rel and kind in FEED_TYPES:
                url = response.urljoin(link.attrib["href"].strip())
                title = " ".join((link.attrib.get("title") or "").split())
                yield self.request(url, self.on_candidate, via="link", title=title)

    def parse_robots(self, response: Response) -> Iterator[scrapy.Request]:
        for url in sitemap_urls_from_robots(response.body, base_url=response.url):
            yield self.request(url, self.on_candidate, via="robots")

    def parse_candidate(self, response: Response) -> Iterator[Discovered]:
        try:
            found = classify(response, self.settings.getint("DOWNLOAD_MAXSIZE"))
        except FetchError as exc:
            logger.debug("%s: %s", response.url, exc)
            return
        if found is None:
            logger.debug("%s is neither a feed nor a sitemap", response.url)
            return
        kind, title, news = found
        yield Discovered(kind=kind, url=response.url, title=title or response.meta["title"],
                         via=response.meta["via"], news=news)

    def page_failed(self, failure: Failure) -> Iterator[Unreachable | scrapy.Request]:
        """The page the user named failing is worth telling them; if the host answered (a 404,
        a 500), its robots.txt and common paths may still name feeds."""
        logger.debug("discover: %s: %s", failure.request.url, failure.value)
        yield Unreachable(self.url, describe_failure(failure))
        if failure.check(HttpError):
            yield from self.site_requests()

    def unreachable(self, failure: Failure) -> None:
        # 404s and refused probes are the normal case here, not errors worth a warning.
        logger.debug("discover: %s: %s", failure.request.url, failure.value)


def site_root(url: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, "/", "", ""))


def classify(response: Response, max_size: int = 0) -> tuple[str, str, bool] | None:
    """("sitemap" | "feed", title, is a news sitemap), or None for anything else. Raises
    FetchError for a gzipped body that inflates past `max_size` bytes (0: no limit)."""
    body = unzipped(response.body, max_size)
    # Sitemap first: feedparser accepts any well-formed XML served as application/xml.
    sitemap = _sitemap(body)
    if sitemap is not None:
        return sitemap
    content_type = response.headers.get("Content-Type", b"").decode("latin-1") or None
    title = _feed_title(body, response.url, content_type)
    return None if title is None else ("feed", title, False)


def _sitemap(body: bytes) -> tuple[str, str, bool] | None:
    try:
        sitemap = NewsSitemap(body)
        if sitemap.type not in ("urlset", "sitemapindex"):
            return None
        news = sitemap.type == "urlset" and any(
            key.startswith("news_") for entry in sitemap for key in entry
        )
    except Exception:  # lxml raises several types (and Sitemap a StopIteration) on non-XML
        return None
    return "sitemap", "", news


def _feed_title(body: bytes, url: str, content_type: str | None) -> str | None:
    """The feed's title ("" if it has none), or None when the document is not a feed."""
    try:
        parse_feed(body, url, content_type)
    except FetchError:
        return None
    # Decoded as parse_feed does it, so a hostile feed cannot fail here after passing there.
    parsed = feedparser.parse(decode_feed(body, content_type).encode("utf-8"),
                              response_headers={"content-location": url})
    if not parsed.get("version"):  # parse_feed lets an empty body through
        return None
    return one_line(clean_string(parsed.feed.get("title")), TITLE_MAX)
