"""News sitemaps and sitemap indexes, read with Scrapy's sitemap support. Only entries newer than
the source's max_age are reported; a site root is looked up through its robots.txt."""

from __future__ import annotations

import logging
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
from monitor.normalize import TITLE_MAX, clean_string, plausible_date
from spiders.base import SourceSpider, SourceTarget

logger = logging.getLogger(__name__)
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

    def start_url(self, target: SourceTarget) -> str:
        if urlsplit(target.url).path in ("", "/"):
            return target.url.rstrip("/") + "/robots.txt"
        return target.url

    def entries(self, response: Response, target: SourceTarget) -> Iterator[Entry | scrapy.Request]:
        if _is_robots(response.url):
            return
        body = unzipped(response.body, self.settings.getint("DOWNLOAD_MAXSIZE"))
        try:
            sitemap = NewsSitemap(body)
        except Exception as exc:  # lxml raises several types on garbage
            raise FetchError(f"not a sitemap: {exc}") from None
        if sitemap.type not in ("sitemapindex", "urlset"):
            raise FetchError(f"not a sitemap: root element <{sitemap.type}>")
        oldest = datetime.now(UTC) - timedelta(seconds=target.max_age)
        for item in sitemap:
            # Each entry on its own: a bad date or address costs that entry, not the sitemap.
            try:
                found = self._entry(sitemap.type, item, target, oldest)
            except (KeyError, ValueError, TypeError, OverflowError) as exc:
                logger.warning("source %s: sitemap entry dropped: %s", target.source,
                               clean_string(repr(exc), 300))
                continue
            if found is not None:
                yield found

    def _entry(self, kind: str, item: dict[str, Any], target: SourceTarget,
               oldest: datetime) -> Entry | scrapy.Request | None:
        loc = clean_string(item["loc"])
        if kind == "sitemapindex":
            if not _newer(item.get("lastmod"), oldest):
                return None
            return self.follow(loc, target)
        published = plausible_date(item.get("news_publication_date") or item.get("lastmod"))
        if not _newer(published, oldest):
            return None
        return Entry(url=loc, guid=None, title=clean_string(item.get("news_title"), TITLE_MAX),
                     summary="", published=_iso(published))


def _is_robots(url: str) -> bool:
    return urlsplit(url).path == "/robots.txt"


def unzipped(body: bytes, max_size: int) -> bytes:
    """A gzipped document (a .xml.gz sitemap) inflated, at most `max_size` bytes of it
    (crawl.max_size, which also caps every download): a small bomb must not inflate to gigabytes."""
    if body[:2] != b"\x1f\x8b":
        return body
    try:
        return gunzip(body, max_size=max_size)
    except ValueError:  # scrapy's _DecompressionMaxSizeExceeded, its only ValueError
        raise FetchError(f"decompressed size exceeds max_size ({max_size} bytes)") from None
    except (OSError, EOFError) as exc:
        raise FetchError(f"not a gzip document: {exc}") from None


def _newer(value: str | datetime | None, oldest: datetime) -> bool:
    """A date that is missing or not plausible counts as new: better fetched than missed."""
    parsed = plausible_date(value)
    return parsed is None or parsed >= oldest


def _iso(value: datetime | None) -> str | None:
    return value.astimezone(UTC).isoformat(timespec="seconds") if value else None
