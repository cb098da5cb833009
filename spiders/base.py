"""What every source spider shares: one conditional GET per source, 304 and errors turned into a
PollResult, and a one-line reason for every failure."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import scrapy
from scrapy.http import Response
from twisted.python.failure import Failure

from monitor.errors import FetchError
from monitor.models import BLOCKED_BY_ROBOTS, Entry, PollResult
from monitor.normalize import BadURL, article_url

logger = logging.getLogger(__name__)

# 304 and errors reach the callback so they can be reported; redirects are still followed.
HANDLED_STATUSES = [304, *range(400, 600)]


@dataclass(frozen=True)
class SourceTarget:
    source: str
    url: str
    etag: str | None = None
    last_modified: str | None = None
    max_age: int = 2 * 86400  # sitemap
    follow: str | None = None  # page
    obey_robots: bool = True  # False only for a source whose outlet allowed it


class SourceSpider(scrapy.Spider):
    """Subclasses implement `entries(response, target)`; a sitemap may also yield requests."""

    accept = "*/*"

    def __init__(self, targets: list[SourceTarget], **kwargs: object) -> None:
        super().__init__(**kwargs)
        self.targets = targets
        # Bound once: Scrapy caches what it learns about a callback per callable object, and a
        # bound method made per request would be inspected (getsource, ast.parse) per response.
        self.on_source, self.on_failure = self.parse_source, self.failed

    async def start(self) -> AsyncIterator[scrapy.Request | PollResult]:
        for target in self.targets:
            yield self.first_request(self.start_url(target), target)

    def start_url(self, target: SourceTarget) -> str:
        """The first document fetched for a source (a sitemap at a site root: its robots.txt)."""
        return target.url

    def first_request(self, url: str, target: SourceTarget) -> scrapy.Request | PollResult:
        """The source's own document; a URL Scrapy cannot request fails this source only."""
        try:
            return self.request(url, target, self.on_source, conditional=True)
        except ValueError as exc:
            return PollResult(target.source, None, error=f"bad URL {url!r}: {exc}")

    def follow(self, url: str, target: SourceTarget) -> scrapy.Request | None:
        """A request for a document named inside another (a child sitemap), or None when the
        link is not usable (logged with the source and the reason)."""
        try:
            article_url(url)
            return self.request(url, target, self.on_source, part=True)
        except ValueError as exc:
            logger.warning("source %s: skipped linked document %r: %s", target.source, url[:300], exc)
            return None

    def request(self, url: str, target: SourceTarget, callback: object, conditional: bool = False,
                part: bool = False) -> scrapy.Request:
        headers = {"Accept": self.accept}
        if conditional and target.etag:
            headers["If-None-Match"] = target.etag
        if conditional and target.last_modified:
            headers["If-Modified-Since"] = target.last_modified
        return scrapy.Request(
            url, headers=headers, callback=callback, errback=self.on_failure, dont_filter=True,
            meta={"handle_httpstatus_list": HANDLED_STATUSES, "target": target, "part": part,
                  "origin": target.url, "dont_obey_robotstxt": not target.obey_robots},
        )

    def parse_source(self, response: Response) -> Iterator[PollResult | scrapy.Request]:
        target: SourceTarget = response.meta["target"]
        part = response.meta["part"]
        if response.status == 304:
            yield PollResult(target.source, 304, part=part)
            return
        if response.status != 200:
            yield PollResult(target.source, response.status, error=f"HTTP {response.status}", part=part)
            return
        entries: list[Entry] = []
        try:
            for found in self.entries(response, target):
                if isinstance(found, scrapy.Request):
                    yield found
                elif usable_entry(found, target):
                    entries.append(found)
        except FetchError as exc:
            yield PollResult(target.source, 200, error=str(exc), part=part)
            return
        yield PollResult(target.source, 200, tuple(entries), header(response, b"ETag"),
                         header(response, b"Last-Modified"), part=part)

    def entries(self, response: Response, target: SourceTarget) -> Iterator[Entry | scrapy.Request]:
        raise NotImplementedError

    def failed(self, failure: Failure) -> Iterator[PollResult]:
        request = failure.request
        target: SourceTarget = request.meta["target"]
        yield PollResult(target.source, None, error=describe_failure(failure),
                         part=request.meta.get("part", False))


def usable_entry(entry: Entry, target: SourceTarget) -> bool:
    """One bad link drops its own entry, never the document or the cycle."""
    try:
        article_url(entry.url)
    except BadURL as exc:
        logger.warning("source %s: dropped entry %r: %s", target.source, entry.url[:300], exc)
        return False
    return True


def header(response: Response, name: bytes) -> str | None:
    value = response.headers.get(name)
    return value.decode("latin-1") if value else None


def describe_failure(failure: Failure) -> str:
    """A one-line reason a person can act on: DNS, refused, timeout, robots.txt, too large …"""
    exc = failure.value
    name = type(exc).__name__
    message = str(exc).strip() or name
    if name == "IgnoreRequest" and "robots" in message.lower():
        return BLOCKED_BY_ROBOTS
    if name == "Refused":  # spiders.guard: the message is the whole reason
        return message[:500]
    return f"{name}: {message}"[:500]
