"""Polls feeds: one conditional GET per source, one FeedResult item per source."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import scrapy
from scrapy.http import Response
from twisted.python.failure import Failure

from monitor.errors import FetchError
from monitor.feeds import parse_feed
from monitor.models import FeedResult

# 304 and errors reach the callback so they can be reported; redirects are still followed.
HANDLED_STATUSES = [304, *range(400, 600)]


@dataclass(frozen=True)
class FeedTarget:
    source: str
    url: str
    etag: str | None = None
    last_modified: str | None = None


class FeedSpider(scrapy.Spider):
    name = "feed"

    def __init__(self, targets: list[FeedTarget], **kwargs: object) -> None:
        super().__init__(**kwargs)
        self.targets = targets

    async def start(self) -> AsyncIterator[scrapy.Request]:
        for target in self.targets:
            yield scrapy.Request(
                target.url,
                headers=_conditional_headers(target),
                callback=self.parse_feed,
                errback=self.failed,
                dont_filter=True,
                meta={"handle_httpstatus_list": HANDLED_STATUSES, "target": target},
            )

    def parse_feed(self, response: Response) -> Iterator[FeedResult]:
        target: FeedTarget = response.meta["target"]
        if response.status == 304:
            yield FeedResult(source=target.source, status=304)
            return
        if response.status != 200:
            yield FeedResult(source=target.source, status=response.status,
                             error=f"HTTP {response.status}")
            return
        content_type = response.headers.get("Content-Type", b"").decode("latin-1") or None
        try:
            entries = parse_feed(response.body, response.url, content_type)
        except FetchError as exc:
            yield FeedResult(source=target.source, status=200, error=str(exc))
            return
        yield FeedResult(
            source=target.source,
            status=200,
            entries=entries,
            etag=_header(response, b"ETag"),
            last_modified=_header(response, b"Last-Modified"),
        )

    def failed(self, failure: Failure) -> Iterator[FeedResult]:
        target: FeedTarget = failure.request.meta["target"]
        yield FeedResult(source=target.source, status=None, error=describe_failure(failure))


def _conditional_headers(target: FeedTarget) -> dict[str, str]:
    headers = {"Accept": "application/rss+xml, application/atom+xml, application/xml;q=0.9, */*;q=0.5"}
    if target.etag:
        headers["If-None-Match"] = target.etag
    if target.last_modified:
        headers["If-Modified-Since"] = target.last_modified
    return headers


def _header(response: Response, name: bytes) -> str | None:
    value = response.headers.get(name)
    return value.decode("latin-1") if value else None


def describe_failure(failure: Failure) -> str:
    """A one-line reason a person can act on: DNS, refused, timeout, robots.txt, too large …"""
    exc = failure.value
    name = type(exc).__name__
    message = str(exc).strip() or name
    if name == "IgnoreRequest" and "robots" in message.lower():
        return "forbidden by robots.txt"
    return f"{name}: {message}"[:500]
