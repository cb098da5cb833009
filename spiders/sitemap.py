"""News sitemaps and sitemap indexes, read with Scrapy's sitemap support. Only entries newer than
the source's max_age are reported; a site root is looked up through its robots.txt."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import scrapy
from scrapy.http import Response
from scrapy.utils.gz import gunzip
from scrapy.utils.sitemap import Sitemap, sitemap_urls_from_robots

from monitor.errors import FetchError
from monitor.models import Entry
from spiders.base import SourceSpider, SourceTarget

NEWS_NAMESPACE = "sitemap-news"


class NewsSitemap(Sitemap):
    """Scrapy's Sitemap, also reading the nested <news:news> fields (publication_date, title)."""

    def _process_sitemap_element(self, elem: Any) -> dict[str, Any] | None:
        # Read before the parent class clears the element.
        news = {
            f"news_{el.tag.partition('}')[2]}": (el.text or "").strip()
            for el in elem.iter()
            if isinstance(el.tag, str) and NEWS_NAMESPACE in el.tag
        }
        found = super()._process_sitemap_element(elem)
        if found is not None:
            found.update(news)
        return found


class SitemapSpider(SourceSpider):
    name = "sitemap"
    accept = "application/xml, text/xml;q=0.9, */*;q=0.5"

    def parse_source(self, response: Response) -> Iterator[Any]:
        if _is_robots(response.url) and response.status == 200:
            target: SourceTarget = response.meta["target"]
            for url in sitemap_urls_from_robots(response.text, base_url=response.url):
                request = self.follow(url, target)
                if request is not None:
                    yield request
        yield from super().parse_source(response)

    async def start(self) -> Any:
        for target in self.targets:
            if urlsplit(target.url).path in ("", "/"):
                yield self.first_request(target.url.rstrip("/") + "/robots.txt", target)
            else:
                yield self.first_request(target.url, target)

    def entries(self, response: Response, target: SourceTarget) -> Iterator[Entry | scrapy.Request]:
        if _is_robots(response.url):
            return
        body = _body(response)
        try:
            sitemap = NewsSitemap(body)
        except Exception as exc:  # lxml raises several types on garbage
            raise FetchError(f"not a sitemap: {exc}") from None
        oldest = datetime.now(UTC) - timedelta(seconds=target.max_age)
        if sitemap.type == "sitemapindex":
            for child in sitemap:
                if _newer(child.get("lastmod"), oldest, default=True):
                    request = self.follow(child.get("loc", ""), target)
                    if request is not None:
                        yield request
        elif sitemap.type == "urlset":
            for item in sitemap:
                published = item.get("news_publication_date") or item.get("lastmod")
                if _newer(published, oldest, default=True):
                    yield Entry(url=item.get("loc", ""), guid=None, title=item.get("news_title", ""),
                                summary="", published=_iso(published))
        else:
            raise FetchError(f"not a sitemap: root element <{sitemap.type}>")


def _is_robots(url: str) -> bool:
    return urlsplit(url).path == "/robots.txt"


def _body(response: Response) -> bytes:
    if response.body[:2] == b"\x1f\x8b":
        return gunzip(response.body)
    return response.body


def _parse_time(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _newer(value: str | None, oldest: datetime, default: bool) -> bool:
    parsed = _parse_time(value)
    return default if parsed is None else parsed >= oldest


def _iso(value: str | None) -> str | None:
    parsed = _parse_time(value)
    return parsed.astimezone(UTC).isoformat(timespec="seconds") if parsed else None
