"""`monitor sources --test`: each source fetched once, the way a user checks a new source before
trusting it. Nothing is stored (no database, no HTTP cache, no ETag kept) and nothing is sent."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, replace

from monitor.crawl import Crawler
from monitor.models import BLOCKED_BY_ROBOTS, Config, PageResult, PollResult, Source, blocked_by_robots
from monitor.normalize import one_line
from monitor.pipeline import merge_results
from spiders.article import PageTarget
from spiders.base import SourceTarget

FIRST_TITLES = 3
TITLE_SHOWN = 200


@dataclass(frozen=True)
class Probe:
    source: Source
    poll: PollResult
    robots: str  # the robots.txt verdict in words
    page: PageResult | None = None  # the first entry's page, when the source fetches pages

    @property
    def titles(self) -> list[str]:
        # Web strings on a terminal: one line each.
        return [one_line(entry.title or entry.url, TITLE_SHOWN) for entry in self.poll.entries[:FIRST_TITLES]]


def probe_sources(config: Config, sources: Sequence[Source]) -> list[Probe]:
    async def run() -> list[Probe]:
        crawler = Crawler(replace(config.crawl, cache_dir=None), sources)  # no HTTP cache
        try:
            return await _probe(crawler, config, sources)
        finally:
            await crawler.close()

    return asyncio.run(run())


async def _probe(crawler: Crawler, config: Config, sources: Sequence[Source]) -> list[Probe]:
    targets: dict[str, list[SourceTarget]] = {}
    for s in sources:  # no ETag: a test wants the document, not a 304
        targets.setdefault(s.type, []).append(SourceTarget(
            s.name, s.url, max_age=s.max_age, follow=s.follow, obey_robots=s.obey_robots))
    results = merge_results(await crawler.fetch_sources(targets))
    polls = [results.get(s.name) or PollResult(s.name, None, error="no response") for s in sources]
    # The first entry's page at the link the source gave, kept out of the HTTP cache.
    firsts = [PageTarget(i, poll.entries[0].url, s.url, obey_robots=s.obey_robots, store_text=False)
              for i, (s, poll) in enumerate(zip(sources, polls, strict=True))
              if poll.entries and s.full_text]
    pages = {page.article_id: page for page in await crawler.fetch_pages(firsts)}
    return [Probe(s, poll, robots_verdict(config, s, poll, pages.get(i)), pages.get(i))
            for i, (s, poll) in enumerate(zip(sources, polls, strict=True))]


def robots_verdict(config: Config, source: Source, poll: PollResult, page: PageResult | None) -> str:
    if not config.crawl.obey_robots:
        return "not checked (crawl.obey_robots: false)"
    if not source.obey_robots:
        return "not checked (obey_robots: false)"
    if blocked_by_robots(poll.error):
        return BLOCKED_BY_ROBOTS
    if page is not None and blocked_by_robots(page.error):
        return f"source allowed; first article page {BLOCKED_BY_ROBOTS}"
    return "allowed"
