"""One cycle, top to bottom: poll sources → store what is new → fetch article text → group
copies into stories → match → write alerts to the outbox → deliver the outbox.

After the poll, articles flow: those that need no page are matched at once, and each page is
stored, grouped and matched in a small batch as soon as the crawl hands it over, while the
others are still being fetched; a batch that wrote alerts starts a delivery pass."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter, deque
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

from monitor.alerts.digest import Bundle, Hold, bundle_and_deliver, hold_for, release_catchups
from monitor.alerts.outbox import DeliveryReport, deliver_pending
from monitor.alerts.payload import StoryContext, build_body, new_alert_id
from monitor.alerts.trouble import report_source_trouble
from monitor.crawl import Crawler, LiveCrawler
from monitor.models import (
    BLOCKED_BY_ROBOTS,
    Config,
    PageResult,
    PollResult,
    Source,
    StoredArticle,
    Watchlist,
    blocked_by_robots,
)
from monitor.normalize import one_line
from monitor.rules import MATCH_BUDGET, Document, Matcher
from monitor.store import FETCH, MATCH, MatchRecord, NewAlert, PollOutcome, Store, utcnow
from monitor.stories import StoryIndex, body_hash, comparable, is_current_signature, signature
from spiders.article import PageTarget
from spiders.base import SourceTarget

logger = logging.getLogger(__name__)
# A near-duplicate joins a story whose articles were first seen within this window.
STORY_WINDOW = timedelta(days=7)
# Warnings quote addresses and reasons that came from the web; a line stays a line.
LOGGED_URL_MAX = 500
LOGGED_ERROR_MAX = 500


@dataclass(frozen=True)
class SourceReport:
    name: str
    status: int | None
    entries: int
    new: int
    error: str | None
    backing_off: str | None = None
    revised: int = 0
    pages_blocked: int = 0  # article pages that robots.txt disallowed
    retry_at: datetime | None = None  # backing off: when the source may be polled again


@dataclass
class CycleReport:
    sources: list[SourceReport] = field(default_factory=list)
    new_articles: int = 0
    pages_failed: int = 0
    matched_articles: int = 0
    alerts_created: int = 0
    delivery: DeliveryReport = field(default_factory=DeliveryReport)
    # For /metrics: matched articles and alerts written per watchlist, and each stage's wall
    # time in seconds (poll; articles: pages fetched, stored, grouped and matched as they came;
    # deliver: the last delivery pass), in the order they ran.
    matches_by_watchlist: Counter[str] = field(default_factory=Counter)
    alerts_by_watchlist: Counter[str] = field(default_factory=Counter)
    durations: dict[str, float] = field(default_factory=dict)

    @property
    def sources_failed(self) -> int:
        return sum(1 for s in self.sources if s.error)


@dataclass
class Monitor:
    """What a cycle needs, built once from the config (and again on reload)."""

    config: Config
    store: Store
    crawler: Crawler | LiveCrawler  # one crawl per call (once) or one for the daemon's life
    matcher: Matcher
    stories: RecentStories
    # Cycles of different sources overlap in the daemon; one delivery pass at a time, so an
    # alert is never sent twice concurrently.
    delivery_lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    @classmethod
    def build(cls, config: Config, store: Store, crawler: Crawler | LiveCrawler) -> Monitor:
        return cls(config, store, crawler, build_matcher(config), RecentStories(store))


def build_matcher(config: Config) -> Matcher:
    return Matcher({w.name: w.query for w in config.watchlists})


async def run_cycle(monitor: Monitor, sources: Sequence[Source]) -> CycleReport:
    report = CycleReport()
    with timed(report, "poll"):
        await poll_sources(monitor, sources, report)
    names = [s.name for s in sources]
    deliveries = Deliveries(monitor, report)
    try:
        with timed(report, "articles"):
            await process_articles(monitor, names, report, deliveries.kick)
            drop_texts(monitor, names)
        with timed(report, "deliver"):
            await deliveries.finish()
    finally:
        deliveries.cancel()
    return report


@contextmanager
def timed(report: CycleReport, stage: str) -> Iterator[None]:
    started = time.perf_counter()
    try:
        yield
    finally:
        report.durations[stage] = time.perf_counter() - started


class Deliveries:
    """A cycle's delivery passes: one as soon as a batch of articles has written alerts, so an
    alert goes out seconds after its article came in, not when the crawl ends. One at a time:
    alerts written while a pass runs go out in one more pass right after it (and every pass
    holds the monitor's delivery lock). The cycle's report adds up what they sent."""

    def __init__(self, monitor: Monitor, report: CycleReport) -> None:
        self.monitor = monitor
        self.report = report
        self._pass: asyncio.Task | None = None
        self._again = False

    def kick(self) -> None:
        if self._pass is not None and not self._pass.done():
            self._again = True
            return
        self._pass = asyncio.get_running_loop().create_task(self._passes())

    async def _passes(self) -> None:
        self._again = True
        while self._again:
            self._again = False
            try:
                self._add(await deliver(self.monitor))
            except Exception:
                # Nothing is lost: the alerts stay in the outbox for the cycle's last pass.
                logger.exception("a delivery pass during the cycle failed; the last one tries again")
                return

    async def finish(self) -> None:
        """Wait for the pass under way, then run the cycle's last pass: catch-ups, notices and
        retries due go out in it too."""
        if self._pass is not None:
            await self._pass
        self._add(await deliver(self.monitor))

    def cancel(self) -> None:
        if self._pass is not None and not self._pass.done():
            self._pass.cancel()  # a stop: what it had not sent stays pending

    def _add(self, later: DeliveryReport) -> None:
        """This pass's sends added to the earlier passes'; the outbox as it stands now."""
        total = self.report.delivery
        self.report.delivery = replace(
            later, sent=total.sent + later.sent, failed=total.failed + later.failed,
            gave_up=total.gave_up + later.gave_up, outcomes=total.outcomes + later.outcomes)


async def deliver(monitor: Monitor) -> DeliveryReport:
    async with monitor.delivery_lock:
        # Catch-ups of hours that have ended join the outbox first, and go out in this pass;
        # so do notices of sources that started or stopped failing or going silent.
        release_catchups(monitor.store, monitor.config)
        check_sources(monitor)
        return await deliver_pending(monitor.store, monitor.config)


def check_sources(monitor: Monitor) -> None:
    try:
        report_source_trouble(monitor.store, monitor.config)
    except Exception:
        # A notice about the monitor itself must never cost an alert.
        logger.exception("checking the sources for trouble failed; alerts are delivered anyway")


async def send_digests(monitor: Monitor, watchlists: Sequence[str]) -> tuple[list[Bundle], DeliveryReport]:
    """Bundle the held alerts of these watchlists into their digests and deliver the outbox,
    in one hold of the delivery lock."""
    async with monitor.delivery_lock:
        return await bundle_and_deliver(monitor.store, monitor.config, watchlists)


async def poll_sources(monitor: Monitor, sources: Sequence[Source],
                       report: CycleReport) -> list[tuple[Source, PollOutcome]]:
    """Poll the sources that are not backing off and store what they gave; returns each polled
    source's new and revised articles (a cluster's crawler hands them on by id)."""
    store = monitor.store
    polled: list[tuple[Source, PollOutcome]] = []
    # One primary-key lookup per source: nothing here grows with the articles stored.
    health = store.backoff_facts(source.name for source in sources)
    due, waiting = [], []
    for source in sources:
        retry_at = backoff_until(source, health.get(source.name), monitor.config.crawl.max_backoff)
        (waiting if retry_at else due).append((source, retry_at))
    for source, retry_at in waiting:
        failures = health[source.name]["consecutive_failures"]
        report.sources.append(SourceReport(source.name, None, 0, 0, None, backing_off=(
            f"backing off after {failures} failures until {retry_at:%H:%M:%S} UTC"),
            retry_at=retry_at))
    targets: dict[str, list[SourceTarget]] = {}
    for source, _ in due:
        targets.setdefault(source.type, []).append(SourceTarget(
            source.name, source.url, *store.fetch_state(source.name), max_age=source.max_age,
            follow=source.follow, obey_robots=source.obey_robots))
    results = merge_results(await monitor.crawler.fetch_sources(targets))
    for source, _ in due:
        result = results.get(source.name)
        if result is None and monitor.crawler.stopped:
            continue  # stopped before it answered: not a failure, polled again next run
        result = result or PollResult(source.name, None, error="no response")
        outcome = store.save_poll_result(result, source.url, source.full_text,
                                         revisions=source.type == "feed")
        report.sources.append(SourceReport(
            source.name, result.status, len(result.entries), len(outcome.new), result.error,
            revised=len(outcome.revised),
        ))
        report.new_articles += len(outcome.new)
        polled.append((source, outcome))
    return polled


def backoff_until(source: Source, health: dict | None, cap: int) -> datetime | None:
    """When a failing source may be tried again: one interval after the first failure, doubling
    with each further failure, never longer than `cap`. None when it is due now."""
    if not health or not health["consecutive_failures"] or not health["last_fetch"]:
        return None
    delay = min(source.interval * 2 ** (health["consecutive_failures"] - 1), cap)
    retry_at = datetime.fromisoformat(health["last_fetch"]) + timedelta(seconds=delay)
    return retry_at if retry_at > datetime.now(UTC) + timedelta(seconds=1) else None


def merge_results(results: list[PollResult]) -> dict[str, PollResult]:
    """One result per source: a sitemap's child documents add their entries to the root's.
    A source whose entries robots.txt blocked, all of them, is blocked, not "0 entries"."""
    merged = {r.source: r for r in results if not r.part}
    blocked: set[str] = set()
    for part in (r for r in results if r.part):
        root = merged.get(part.source)
        if part.error:
            logger.warning("source %s: a linked sitemap failed: %s", part.source,
                           one_line(part.error, LOGGED_ERROR_MAX))
            if blocked_by_robots(part.error):
                blocked.add(part.source)
        elif root is not None and root.ok:
            merged[part.source] = replace(root, entries=root.entries + part.entries)
    for name in blocked:
        root = merged.get(name)
        if root is not None and root.ok and not root.entries:
            merged[name] = replace(root, error=f"{BLOCKED_BY_ROBOTS} (its linked sitemaps)")
    return merged


# Pages are stored, grouped and matched in batches of up to this many, or of those that came
# within this many seconds of the batch's first: one transaction per batch, and an alert at
# most this long after its page.
BATCH_PAGES = 100
BATCH_WINDOW = 0.2


async def process_articles(monitor: Monitor, source_names: list[str], report: CycleReport,
                           alerted: Callable[[], None] = lambda: None) -> None:
    """The articles of these sources as they become ready: those waiting for matching (feed-only
    ones, and any a stopped run left) at once, then each fetched page, in batches, while the
    crawl goes on. `alerted` is called after a batch has written alerts. A stop leaves what
    was not stored or matched in its state for the next run."""
    pages: asyncio.Queue[PageResult | None] = asyncio.Queue()
    ready = [article.id for article in monitor.store.articles_in_state(MATCH, source_names)]
    crawl = asyncio.create_task(fetch_texts(monitor, source_names, report, pages.put_nowait))
    crawl.add_done_callback(lambda _: pages.put_nowait(None))  # the end, however it ended
    try:
        for start in range(0, len(ready), BATCH_PAGES):
            await ingest(monitor, [], ready[start:start + BATCH_PAGES], report, alerted)
        while batch := await next_batch(pages):
            await ingest(monitor, batch, [page.article_id for page in batch], report, alerted)
        await crawl
    finally:
        crawl.cancel()


async def next_batch(pages: asyncio.Queue[PageResult | None], size: int = BATCH_PAGES,
                     window: float = BATCH_WINDOW) -> list[PageResult]:
    """The next page to come and those that follow it within `window` seconds, at most `size`;
    empty at the end of the crawl (None in the queue, left there for the next call)."""
    loop = asyncio.get_running_loop()
    first = await pages.get()
    if first is None:
        pages.put_nowait(None)
        return []
    batch, deadline = [first], loop.time() + window
    while len(batch) < size:
        try:
            page = pages.get_nowait()
        except asyncio.QueueEmpty:
            try:
                page = await asyncio.wait_for(pages.get(), max(deadline - loop.time(), 0))
            except TimeoutError:
                break
        if page is None:
            pages.put_nowait(None)
            break
        batch.append(page)
    return batch


async def ingest(monitor: Monitor, pages: list[PageResult], article_ids: list[int],
                 report: CycleReport, alerted: Callable[[], None]) -> None:
    """Store these pages, put their articles (and those of `article_ids` waiting for matching)
    in stories, in one transaction; then match them and write their alerts."""
    store = monitor.store
    with store.transaction():
        store.save_pages(pages)
        articles = store.articles_with_ids(article_ids, MATCH)
        assign_stories(monitor, articles)
        waiting = wanted_articles(monitor, articles)
    if await match_waiting(monitor, waiting, report):
        alerted()


async def fetch_texts(monitor: Monitor, source_names: list[str], report: CycleReport,
                      arrived: Callable[[PageResult], None]) -> None:
    """Fetch the pages of these sources' articles waiting for their text; each result is handed
    to `arrived` as soon as it is in."""
    waiting = monitor.store.articles_in_state(FETCH, source_names)
    sources = {s.name: s for s in monitor.config.sources}
    article_source = {a.id: a.source for a in waiting}
    blocked: Counter[str] = Counter()

    def take(page: PageResult) -> None:
        note_page(page, article_source, blocked, report)
        arrived(page)

    pages = await monitor.crawler.fetch_pages(
        [page_target(a, sources.get(a.source)) for a in waiting], on_result=take)
    # A crawl stopped early (shutdown) leaves the rest waiting for the next cycle; a page that
    # produced nothing at all (a spider fault) must still not hold its article back forever.
    if not monitor.crawler.stopped:
        for page in unanswered(pages, [(article.id, article.url) for article in waiting]):
            take(page)
    report.sources = [replace(s, pages_blocked=blocked[s.name]) for s in report.sources]


def unanswered(pages: Sequence[PageResult], asked: Sequence[tuple[int, str]]) -> list[PageResult]:
    """A failed result ("no response") for each (article id, URL) asked for that the crawl
    gave no result at all (a spider fault): its article must still move on to matching."""
    answered = {page.article_id for page in pages}
    return [PageResult(article_id, url, error="no response") for article_id, url in asked
            if article_id not in answered]


def note_page(page: PageResult, article_source: dict[int, str], blocked: Counter[str],
              report: CycleReport) -> None:
    """A failed page is counted and logged (the article is matched on its feed text)."""
    if not page.error:
        return
    if blocked_by_robots(page.error):
        blocked[article_source.get(page.article_id, "")] += 1
    report.pages_failed += 1
    logger.warning("article %s: no text (%s); matching on the feed's title and summary",
                   one_line(page.url, LOGGED_URL_MAX), one_line(page.error, LOGGED_ERROR_MAX))


def page_target(article: StoredArticle, source: Source | None) -> PageTarget:
    # Fetched at the link the outlet gave: the canonical form is our identity of the article,
    # and a server may answer only at its own spelling (escapes, parameter order).
    link = article.link or article.url
    if source is None:  # a source since removed from the config: no addresses of its own
        return PageTarget(article.id, link, "")
    # The source's URL decides which addresses its links may reach (spiders/guard.py).
    return PageTarget(article.id, link, source.url, obey_robots=source.obey_robots,
                      store_text=source.store_text)


def drop_texts(monitor: Monitor, source_names: list[str]) -> None:
    """The text of these sources' matched articles is dropped where the source says
    `store_text: false` (also one left over by a run that stopped before this step)."""
    names = [s.name for s in monitor.config.sources if not s.store_text and s.name in source_names]
    if names:
        monitor.store.drop_texts(names)


class RecentStories:
    """The story index over the last `window` of articles, rebuilt from the store at start."""

    def __init__(self, store: Store, window: timedelta = STORY_WINDOW) -> None:
        self.window = window
        self.index = StoryIndex()
        since = (datetime.now(UTC) - window).isoformat(timespec="seconds")
        rows = store.signatures_since(since)
        current = [row for row in rows if is_current_signature(row[1])]
        if len(current) < len(rows):
            # Written by an older version of the shingling: those articles can no longer be
            # joined by later copies (their own alerts were sent long ago).
            logger.warning("%d stored story signatures are of an older format and are not indexed",
                           len(rows) - len(current))
        self.index.add_stored((article_id, blob) for article_id, blob, _ in current)
        rows = current
        self.added: deque[tuple[str, int]] = deque((seen, article_id) for article_id, _, seen in rows)

    def find_or_add(self, article_id: int, first_seen: str, text: str) -> tuple[list[int], bytes]:
        """The ids of every recent article this text is a copy of, most similar first;
        indexes this one."""
        self.expire()
        sig = signature(text)
        copies = self.index.find_all(sig)
        self.index.add(article_id, sig)
        self.added.append((first_seen, article_id))
        return copies, sig.to_bytes()

    def since(self) -> str:
        """The first_seen from which an article is still recent."""
        return (datetime.now(UTC) - self.window).isoformat(timespec="seconds")

    def expire(self) -> None:
        oldest = self.since()
        while self.added and self.added[0][0] < oldest:
            self.index.remove(self.added.popleft()[1])


def assign_stories(monitor: Monitor, articles: Sequence[StoredArticle]) -> None:
    """Each of these articles (ready for matching) joins a story: the story of a recent
    near-duplicate (a syndicated copy), else a new one. Done for a whole batch before it is
    matched, so an alert names the copies that came with it; a copy that comes in a later
    batch joins the story, which does not alert again."""
    store = monitor.store
    for article in articles:
        if article.story_id is not None:
            continue  # a revision keeps its story
        body = article.text or article.summary
        if not comparable(body):
            # Too short to compare (a headline, a TT notice): only an exact copy of its words
            # joins a story, else a story of its own -- never a wrong join.
            digest = body_hash(body)
            story = store.story_with_body_hash(digest, monitor.stories.since()) if digest else None
            store.assign_story(article.id, story, None, digest)
            continue
        copies, blob = monitor.stories.find_or_add(article.id, article.first_seen, body)
        store.assign_story(article.id, _joined_story(store, copies), blob)


def _joined_story(store: Store, copies: list[int]) -> int | None:
    """The story a new article with these near-duplicates (most similar first) joins.

    Edited wire copies are not all close to each other: the two that arrive first may fall
    below the threshold, the third is close to both. It then joins the stories of both, so
    that the grouping does not depend on the order of arrival: the stories without an alert
    yet (all of this cycle's) merge into the one that has one, else into the best match's.
    Stories that already alerted stay apart -- a sent alert cannot be taken back."""
    stories: list[int] = []
    for copy in copies:
        story = store.story_of(copy)
        if story is not None and story[0] not in stories:
            stories.append(story[0])
    if not stories:
        return None
    alerted = [story for story in stories if store.alerted_watchlists(story)]
    into = alerted[0] if alerted else stories[0]
    store.merge_stories(into, [story for story in stories if story not in alerted])
    return into


# The worker thread hands back what it has matched after about this many seconds, so the
# loop is free to run between articles' matching and a stop is not held up by a long queue.
MATCH_SLICE = 0.2


@dataclass(frozen=True)
class _Matched:
    """One article's matching, worked out in the worker thread."""

    records: list[MatchRecord]  # the hits, with their words and snippets
    stopped: str | None = None  # why matching stopped short, if it did


async def match_articles(monitor: Monitor, source_names: list[str], report: CycleReport) -> None:
    """Match every article of these sources that waits for it (stories assigned or not)."""
    with monitor.store.transaction():
        waiting = wanted_articles(monitor, monitor.store.articles_in_state(MATCH, source_names))
    await match_waiting(monitor, waiting, report)


def wanted_articles(monitor: Monitor, articles: Sequence[StoredArticle]) -> list[StoredArticle]:
    """The articles in a language their source wants; the others are skipped, with the reason."""
    sources = {s.name: s for s in monitor.config.sources}
    wanted = []
    for article in articles:
        source = sources.get(article.source)
        if source and not wanted_language(article.lang, source.languages):
            monitor.store.skip(article.id, f"language {article.lang} not in {list(source.languages)}")
        else:
            wanted.append(article)
    return wanted


async def match_waiting(monitor: Monitor, waiting: list[StoredArticle], report: CycleReport) -> int:
    """Matches the articles in a worker thread, so that a slow query never stalls the loop
    (polling, delivery, signals); their matches and alerts are written here, on the loop, in
    one transaction per slice. Returns the alerts written."""
    watchlists = {w.name: w for w in monitor.config.watchlists}
    created = report.alerts_created
    while waiting:
        done = await asyncio.to_thread(_match_some, monitor.matcher, watchlists, waiting)
        with monitor.store.transaction():
            for article, matched in zip(waiting, done, strict=False):
                _save_matched(monitor, watchlists, article, matched, report)
        waiting = waiting[len(done):]
    return report.alerts_created - created


def _match_some(matcher: Matcher, watchlists: dict[str, Watchlist],
                articles: list[StoredArticle]) -> list[_Matched]:
    """The matching of the first of `articles`, as many as fit in MATCH_SLICE (at least one).
    Runs in a worker thread: pure, no store."""
    done: list[_Matched] = []
    started = time.perf_counter()
    for article in articles:
        done.append(_match_one(matcher, watchlists, article))
        if time.perf_counter() - started > MATCH_SLICE:
            break
    return done


def _match_one(matcher: Matcher, watchlists: dict[str, Watchlist], article: StoredArticle) -> _Matched:
    try:
        matched = matcher.match_within(document(article), MATCH_BUDGET)
        records = [MatchRecord(hit.watchlist, hit.words, hit.snippet) for hit in matched.hits.values()
                   if wanted_language(article.lang, watchlists[hit.watchlist].languages)]
    except Exception as error:  # a fault in the matcher stays with this article
        logger.exception("article %s: matching failed", article.url)
        return _Matched([], f"matching failed: {error!r}"[:300])
    cut = matched.cut
    if cut is None:
        return _Matched(records)
    logger.warning(
        "article %s: matching stopped after %.1f s (budget %.1f s), at watchlist %r; not decided: %s",
        article.url, cut.seconds, MATCH_BUDGET, cut.watchlist, ", ".join(cut.undecided))
    return _Matched(records, f"matching stopped after {cut.seconds:.1f} s at watchlist {cut.watchlist!r}; "
                             f"{len(cut.undecided)} watchlists not decided")


def _save_matched(monitor: Monitor, watchlists: dict[str, Watchlist], article: StoredArticle,
                  matched: _Matched, report: CycleReport) -> None:
    records = matched.records
    logger.debug("article %s (%s): %d chars of text, %s", one_line(article.url, LOGGED_URL_MAX),
                 article.source, len(article.text or ""),
                 f"matched {', '.join(r.watchlist for r in records)}" if records else "no match")
    if not records:
        monitor.store.save_matches(article.id, [], [], skipped=matched.stopped)
    else:
        created = utcnow()
        now = datetime.fromisoformat(created)
        # Story lookups only for the few articles that matched: this loop sees every article.
        story_id, context = _story_context(monitor.store, article)
        already = monitor.store.alerted_watchlists(story_id) if story_id else set()
        alerts = []
        if not sources_storing_text(monitor).get(article.source, True):
            # The alert is kept in the outbox: it quotes the snippet, not the outlet's summary.
            article = replace(article, summary="", text="")
        for record in records:
            if record.watchlist in already:
                continue
            watchlist = watchlists[record.watchlist]
            # One decision per story and watchlist: all its notifiers get it now, or none.
            hold = hold_for(monitor.store, watchlist, now)
            alerts += [_alert(record, notifier, article, created, context, hold)
                       for notifier in watchlist.notify]
        # The hits found still alert when matching stopped short; the reason stays with the article.
        created = monitor.store.save_matches(article.id, records, alerts, story_id,
                                             skipped=matched.stopped)
        report.alerts_created += created
        report.matched_articles += 1
        report.matches_by_watchlist.update(record.watchlist for record in records)
        if created == len(alerts):
            # The store ignores an alert only for a story that already alerted the watchlist,
            # and `already` left those out: normally every alert above was written.
            report.alerts_by_watchlist.update(alert.watchlist for alert in alerts)


def sources_storing_text(monitor: Monitor) -> dict[str, bool]:
    return {s.name: s.store_text for s in monitor.config.sources}


def _story_context(store: Store, article: StoredArticle) -> tuple[int | None, StoryContext]:
    story = store.story_of(article.id)
    if story is None:
        return None, StoryContext(update=article.revision > 1)
    others = tuple(url for url in store.story_urls(story[0]) if url != article.url)
    return story[0], StoryContext(story[1], others, update=article.revision > 1)


def _alert(hit: MatchRecord, notifier: str, article: StoredArticle, created: str,
           story: StoryContext, hold: Hold) -> NewAlert:
    alert_id = new_alert_id()
    body = build_body(alert_id, hit.watchlist, article, hit.words, hit.snippet, created, story,
                      held_back=hold.held_back)
    return NewAlert(alert_id, hit.watchlist, notifier, body, hold=hold.hold,
                    release_at=hold.release_at)


def wanted_language(lang: str | None, languages: tuple[str, ...]) -> bool:
    """An article whose language could not be told is kept: better an alert than a miss."""
    return not languages or lang is None or lang in languages


def document(article: StoredArticle) -> Document:
    return Document(
        title=article.title, summary=article.summary, text=article.text,
        source=article.source, url=article.url, lang=article.lang or "",
    )
