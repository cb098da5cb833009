"""One cycle, top to bottom: poll feeds → store what is new → fetch article text → match →
write alerts to the outbox → deliver the outbox."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

from monitor.alerts.outbox import DeliveryReport, deliver_pending
from monitor.alerts.payload import build_body, new_alert_id
from monitor.crawl import Crawler
from monitor.models import Config, FeedResult, Source, StoredArticle
from monitor.rules import Document, Hit, Matcher
from monitor.store import FETCH, MATCH, MatchRecord, NewAlert, Store, utcnow
from spiders.article import PageTarget
from spiders.feed import FeedTarget

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class SourceReport:
    name: str
    status: int | None
    entries: int
    new: int
    error: str | None


@dataclass
class CycleReport:
    sources: list[SourceReport] = field(default_factory=list)
    new_articles: int = 0
    pages_failed: int = 0
    matched_articles: int = 0
    alerts_created: int = 0
    delivery: DeliveryReport = field(default_factory=DeliveryReport)

    @property
    def sources_failed(self) -> int:
        return sum(1 for s in self.sources if s.error)


@dataclass
class Monitor:
    """What a cycle needs, built once from the config (and again on reload)."""

    config: Config
    store: Store
    crawler: Crawler
    matcher: Matcher
    # Cycles of different sources overlap in the daemon; one delivery pass at a time, so an
    # alert is never sent twice concurrently.
    delivery_lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    @classmethod
    def build(cls, config: Config, store: Store, crawler: Crawler) -> Monitor:
        return cls(config, store, crawler, build_matcher(config))


def build_matcher(config: Config) -> Matcher:
    return Matcher({w.name: w.query for w in config.watchlists})


async def run_cycle(monitor: Monitor, sources: Sequence[Source]) -> CycleReport:
    report = CycleReport()
    await poll_feeds(monitor, sources, report)
    names = [s.name for s in sources]
    await fetch_texts(monitor, names, report)
    match_articles(monitor, names, report)
    report.delivery = await deliver(monitor)
    return report


async def deliver(monitor: Monitor) -> DeliveryReport:
    async with monitor.delivery_lock:
        return await deliver_pending(monitor.store, monitor.config)


async def poll_feeds(monitor: Monitor, sources: Sequence[Source], report: CycleReport) -> None:
    store = monitor.store
    targets = [FeedTarget(s.name, s.url, *store.fetch_state(s.name)) for s in sources]
    results = {r.source: r for r in await monitor.crawler.fetch_feeds(targets)}
    for source in sources:
        result = results.get(source.name) or FeedResult(source.name, None, error="no response")
        new_ids = store.save_feed_result(result, source.url, source.full_text)
        report.sources.append(SourceReport(
            source.name, result.status, len(result.entries), len(new_ids), result.error
        ))
        report.new_articles += len(new_ids)


async def fetch_texts(monitor: Monitor, source_names: list[str], report: CycleReport) -> None:
    waiting = monitor.store.articles_in_state(FETCH, source_names)
    pages = await monitor.crawler.fetch_pages([PageTarget(a.id, a.url) for a in waiting])
    for page in pages:
        if page.error:
            report.pages_failed += 1
            logger.warning("article %s: no text (%s); matching on the feed's title and summary",
                           page.url, page.error)
        monitor.store.save_page(page)


def match_articles(monitor: Monitor, source_names: list[str], report: CycleReport) -> None:
    watchlists = {w.name: w for w in monitor.config.watchlists}
    for article in monitor.store.articles_in_state(MATCH, source_names):
        hits = monitor.matcher.match(document(article))
        created = utcnow()
        records, alerts = [], []
        for hit in hits.values():
            records.append(MatchRecord(hit.watchlist, hit.words, hit.snippet))
            alerts += [_alert(hit, notifier, article, created)
                       for notifier in watchlists[hit.watchlist].notify]
        report.alerts_created += monitor.store.save_matches(article.id, records, alerts)
        report.matched_articles += bool(hits)


def _alert(hit: Hit, notifier: str, article: StoredArticle, created: str) -> NewAlert:
    alert_id = new_alert_id()
    body = build_body(alert_id, hit.watchlist, article, hit.words, hit.snippet, created)
    return NewAlert(alert_id, hit.watchlist, notifier, body)


def document(article: StoredArticle) -> Document:
    return Document(
        title=article.title, summary=article.summary, text=article.text,
        source=article.source, url=article.url, lang=article.lang or "",
    )
