"""What every source spider shares: one conditional GET per source, 304 and errors turned into a
PollResult, and a one-line reason for every failure."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import scrapy
from scrapy.http import Response
from twisted.python.failure import Failure

from monitor.errors import FetchError
from monitor.models import Entry, PollResult

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


class SourceSpider(scrapy.Spider):
    """Subclasses implement `entries(response, target)`; a sitemap may also yield requests."""

    accept = "*/*"

    def __init__(self, targets: list[SourceTarget], **kwargs: object) -> None:
        super().__init__(**kwargs)
        self.targets = targets

    async def start(self) -> AsyncIterator[scrapy.Request]:
        for target in self.targets:
            yield self.request(target.url, target, self.parse_source, conditional=True)

    def request(self, url: str, target: SourceTarget, callback: object, conditional: bool = False,
                part: bool = False) -> scrapy.Request:
        headers = {"Accept": self.accept}
        if conditional and target.etag:
            headers["If-None-Match"] = target.etag
        if conditional and target.last_modified:
            headers["If-Modified-Since"] = target.last_modified
        return scrapy.Request(
            url, headers=headers, callback=callback, errback=self.failed, dont_filter=True,
            meta={"handle_httpstatus_list": HANDLED_STATUSES, "target": target, "part": part},
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
                else:
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


def header(response: Response, name: bytes) -> str | None:
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
