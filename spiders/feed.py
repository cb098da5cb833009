"""Polls feeds: one conditional GET per source; feedparser reads the document."""

from __future__ import annotations

from collections.abc import Iterator

from scrapy.http import Response

from monitor.feeds import parse_feed
from monitor.models import Entry
from spiders.base import SourceSpider, SourceTarget


class FeedSpider(SourceSpider):
    name = "feed"
    accept = "application/rss+xml, application/atom+xml, application/xml;q=0.9, */*;q=0.5"

    def entries(self, response: Response, target: SourceTarget) -> Iterator[Entry]:
        content_type = response.headers.get("Content-Type", b"").decode("latin-1") or None
        yield from parse_feed(response.body, response.url, content_type)
