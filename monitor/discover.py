"""`monitor discover URL`: the feeds and sitemaps a site advertises, printed as `sources:` entries
ready to paste into config.yaml. The fetching is spiders/discover.py; here we dedupe, name and
format what it found."""

from __future__ import annotations

import asyncio
import json
import re
import sys
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import yaml

from monitor.models import CrawlSettings

if TYPE_CHECKING:
    from monitor.crawl import Crawler

VIA_RANK = {"link": 0, "robots": 1, "probe": 2}  # how directly the site advertised a source
VIA_TEXT = {"link": "via <link rel=alternate>", "robots": "via robots.txt", "probe": "at a common path"}
# Path segments that say "this is a feed" but not which one.
GENERIC_SEGMENTS = {"rss", "rss2", "feed", "feeds", "atom", "xml", "index", "api", "www"}


@dataclass(frozen=True)
class Discovered:
    kind: str  # "feed" | "sitemap"
    url: str
    title: str  # the feed's title, "" for sitemaps
    via: str  # "link" | "robots" | "probe"
    news: bool = False  # a sitemap with <news:news> entries


@dataclass(frozen=True)
class Unreachable:
    """The page the user named could not be fetched."""

    url: str
    reason: str


@dataclass(frozen=True)
class Discovery:
    found: list[Discovered]  # one per URL, feeds first
    unreachable: str | None = None  # why the page itself could not be fetched
    url: str = ""  # the address asked: the one given, with the scheme that was tried last


async def discover(crawler: Crawler, url: str) -> Discovery:
    """Every feed and sitemap found for `url`, and whether the page itself was reachable.
    An address without a scheme is tried over https, then over http when https failed on a
    port other than 443 (`127.0.0.1:8765`: a local or internal server without TLS)."""
    first = await _discover(crawler, with_scheme(url))
    if first.unreachable and plain_http_worth_trying(url):
        second = await _discover(crawler, f"http://{url}")
        if not second.unreachable or second.found:
            return second
        return Discovery(second.found, f"{first.unreachable}; over http: {second.unreachable}",
                         first.url)
    return first


async def _discover(crawler: Crawler, url: str) -> Discovery:
    from spiders.discover import DiscoverSpider

    items = await crawler.run(DiscoverSpider, url=url)
    reasons = [item.reason for item in items if isinstance(item, Unreachable)]
    found = dedupe(item for item in items if isinstance(item, Discovered))
    return Discovery(found, reasons[0] if reasons else None, url)


def plain_http_worth_trying(url: str) -> bool:
    """Typed without a scheme, with a port that is not https's own."""
    if re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*://", url):
        return False
    try:
        port = urlsplit(f"//{url}").port
    except ValueError:
        return False
    return port is not None and port != 443


def run_discover(crawl: CrawlSettings, url: str) -> Discovery:
    """discover() in a fresh asyncio loop, for a command that does nothing else."""
    from monitor.crawl import Crawler

    async def crawl_once() -> Discovery:
        crawler = Crawler(crawl)
        try:
            return await discover(crawler, url)
        finally:
            await crawler.close()

    return asyncio.run(crawl_once())


def with_scheme(url: str) -> str:
    """People type `svt.se`; Scrapy needs a scheme."""
    return url if re.match(r"^https?://", url, re.IGNORECASE) else f"https://{url}"


def dedupe(found: Iterable[Discovered]) -> list[Discovered]:
    """One entry per URL, keeping the most direct `via`; feeds before sitemaps. Responses arrive
    in any order, so the result is sorted to print the same thing every time."""
    best: dict[str, Discovered] = {}
    for item in found:
        kept = best.get(item.url)
        if kept is None or VIA_RANK[item.via] < VIA_RANK[kept.via]:
            best[item.url] = item
    return sorted(best.values(), key=lambda d: (d.kind != "feed", VIA_RANK[d.via], d.url))


# --- YAML output -----------------------------------------------------------------------------


def format_sources(found: list[Discovered], site_url: str) -> str:
    lines = [f"# {_summary(found)} on {site_url}"]
    if not found:
        return "\n".join([*lines, "sources: []", ""])
    lines.append("sources:")
    names = source_names(found, site_url)
    width = max(len(name) for name in names)
    for item, name in zip(found, names, strict=True):
        lines.append(f"  - name: {name.ljust(width)}  # {_describe(item)}")
        lines.append(f"    type: {item.kind}")
        lines.append(f"    url: {_scalar(item.url)}")
    return "\n".join([*lines, ""])


def _summary(found: list[Discovered]) -> str:
    feeds = sum(d.kind == "feed" for d in found)
    sitemaps = len(found) - feeds
    if not found:
        return "found no feeds or sitemaps"
    return f"found {_count(feeds, 'feed')} and {_count(sitemaps, 'sitemap')}"


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def _describe(item: Discovered) -> str:
    via = VIA_TEXT[item.via]
    title = " ".join(item.title.split())  # a newline would end the comment mid-title
    if item.kind == "feed":
        return f'"{title}" ({via})' if title else f"feed ({via})"
    if item.news:
        return f"news sitemap ({via})"
    return f"sitemap ({via})"


def _scalar(value: str) -> str:
    """Plain when YAML reads it back unchanged, else double-quoted (JSON strings are YAML)."""
    try:
        if yaml.safe_load(value) == value and "#" not in value:
            return value
    except yaml.YAMLError:
        pass
    return json.dumps(value, ensure_ascii=False)


# --- names -----------------------------------------------------------------------------------


def source_names(found: list[Discovered], site_url: str) -> list[str]:
    """`<site>-<what>`, e.g. svt-nyheter-utrikes; a clash gets -2, -3 …"""
    site = site_label(site_url)
    names: list[str] = []
    for item in found:
        base = f"{site}-{_what(item, site)}"
        name, n = base, 2
        while name in names:
            name, n = f"{base}-{n}", n + 1
        names.append(name)
    return names


def site_label(url: str) -> str:
    """The registered name without its public suffix: www.svt.se → svt, bbc.co.uk → bbc."""
    import tldextract

    host = urlsplit(with_scheme(url)).hostname or "site"
    # The bundled suffix list only: no download, no cache file.
    extract = tldextract.TLDExtract(cache_dir=None, suffix_list_urls=())
    return slug(extract(host).domain or host) or "site"


def _what(item: Discovered, site: str) -> str:
    segments = [s for s in (slug(_stem(p)) for p in urlsplit(item.url).path.split("/")) if s]
    if item.kind == "sitemap":
        path = "-".join(segments[-2:]) or "sitemap"
        return path if "sitemap" in path else f"sitemap-{path}"
    telling = [s for s in segments if s not in GENERIC_SEGMENTS]
    title = slug(item.title).removeprefix(f"{site}-").removesuffix(f"-{site}")
    return "-".join(telling[-2:]) or title or "feed"


def _stem(segment: str) -> str:
    return re.sub(r"(\.(xml|rss|atom|gz|php|aspx?|html?))+$", "", segment, flags=re.IGNORECASE)


def slug(text: str) -> str:
    """ASCII, lower case, words joined by '-': 'Utrikes – Världen' → 'utrikes-varlden'."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-")


# --- `python -m monitor.discover URL`, for tests until the CLI subcommand is wired --------------


def report(discovery: Discovery, url: str) -> bool:
    """Prints what was found (stdout) and why the page failed (stderr); False when the site
    could not be reached and nothing was found."""
    if discovery.unreachable:
        print(f"monitor: could not fetch {discovery.url or with_scheme(url)}: {discovery.unreachable}",
              file=sys.stderr)
        if not discovery.found:
            return False
    print(format_sources(discovery.found, url), end="")
    return True


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m monitor.discover URL", file=sys.stderr)
        return 2
    url = with_scheme(argv[0])
    return 0 if report(run_discover(CrawlSettings(user_agent="monitor-test", delay=0), url), url) else 1


if __name__ == "__main__":
    # Through the imported module, so the spider's Discovered is the same class as ours.
    from monitor.discover import main as imported_main

    sys.exit(imported_main(sys.argv[1:]))
