"""The roles of a cluster: one program, started as several processes on shared engines
(docs/scaling.md has the picture).

- scheduler: decides which sources are due and puts a poll of each in the shared frontier;
  one is active at a time (a Redis lease), a standby takes over within a lease. It also runs
  what must happen once: digests, catch-ups, source trouble notices, retention.
- crawler: takes polls and article pages from the frontier, fetches, extracts, stores, and
  hands each article that is ready for matching to the `stories` stream.
- matcher: one of them (by rendezvous hash) groups the stream's articles into stories and
  passes them to the `articles` stream; each watchlist shard is a consumer group of that stream,
  and each live matcher reads the shards it owns. A matcher joining or leaving moves only
  the shards it wins or loses; the others read on.
- deliverer: claims due alerts of the outbox and sends them.

Every hand-over is acknowledged only after what it led to is stored, so a process killed at
any moment leaves its work to another: frontier tasks of a dead crawler go back to the queue,
stream entries of a dead matcher are claimed by another, a dead deliverer's claims run out.
Work done twice is harmless: the store's unique keys keep one article per URL, one match per
article and watchlist, and one alert per story, watchlist and notifier."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from redis.exceptions import ResponseError

from monitor.alerts.digest import digest_groups, next_digest, release_catchups, run_digest
from monitor.alerts.outbox import Claim, deliver_pending, send_max
from monitor.alerts.trouble import report_source_trouble
from monitor.cluster.lease import Lease
from monitor.cluster.members import Members, owned, owner, shard_of
from monitor.cluster.streams import StreamGroup
from monitor.cluster.workqueue import Task, WorkQueue
from monitor.models import ClusterSettings, Config, Source
from monitor.pipeline import (
    CycleReport,
    Monitor,
    RecentStories,
    assign_stories,
    backoff_until,
    match_waiting,
    page_target,
    poll_sources,
    unanswered,
    wanted_articles,
)
from monitor.retention import prune_daily
from monitor.rules import Matcher
from monitor.store import FETCH, MATCH, Store
from spiders.article import PageTarget

if TYPE_CHECKING:  # Scrapy is imported only by a process that crawls
    from monitor.crawl import LiveCrawler

logger = logging.getLogger(__name__)

TICK = 1.0  # seconds between a scheduler's looks for due sources
IDLE = 0.2  # seconds a matcher or deliverer waits when it found nothing to do
CRAWL_BATCH = 50  # frontier tasks a crawler takes at once
STREAM_BATCH = 100  # stream entries a matcher takes at once
HOUSEKEEPING = 30.0  # seconds between the scheduler's catch-ups, notices and frontier recovery
# An article handed to the stories stream is remembered this long, so a poll that finds it
# still waiting does not hand it over again (it is handed over again after that: harmless).
HANDED_TTL = 6 * 3600
STORIES = "stories"  # the pseudo-shard whose owner groups articles into stories


@dataclass
class Node:
    """What every role of one process shares: the config, the engines, its name."""

    config: Config
    settings: ClusterSettings
    redis: object
    store: Store
    name: str = field(default_factory=lambda: f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}")
    stopping: asyncio.Event = field(default_factory=asyncio.Event)

    def key(self, *parts: str) -> str:
        return self.settings.prefix + ":".join(parts)

    def frontier(self) -> WorkQueue:
        return WorkQueue(self.redis, "frontier", self.name, ttl=self.settings.lease,
                         prefix=self.settings.prefix)

    def monitor(self, matcher: Matcher | None = None, stories: RecentStories | None = None,
                config: Config | None = None, crawler: LiveCrawler | None = None) -> Monitor:
        """A Monitor for the pipeline's functions a role reuses: only what that role has."""
        return Monitor(config or self.config, self.store, crawler, matcher, stories)  # type: ignore[arg-type]

    def articles_group(self, shard: str) -> str:
        """The consumer group of the `articles` stream that reads for this watchlist shard."""
        return f"shard-{shard}"

    async def sleep(self, seconds: float) -> None:
        """Wait, or less when the process is told to stop."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.stopping.wait(), seconds)


# --- scheduler -------------------------------------------------------------------------------


class Scheduler:
    """Active while it holds the lease. A source is due one interval after its last poll was
    queued (its time kept in Redis, so a standby that takes over keeps the schedule), later
    while it backs off after failures, and never while a poll of it is queued or running (the
    frontier's fingerprint of "poll:NAME" is released only when the poll is done)."""

    def __init__(self, node: Node) -> None:
        self.node = node
        self.lease = Lease(node.redis, node.key("scheduler"), node.name, ttl=node.settings.lease)
        self.frontier = node.frontier()
        self.leading = False
        self._housekept = 0.0

    async def run(self) -> None:
        try:
            while not self.node.stopping.is_set():
                await self._step()
                await self.node.sleep(min(TICK, self.node.settings.lease / 3))
        finally:
            if self.leading:
                await self.lease.release()

    async def _step(self) -> None:
        held = await (self.lease.renew() if self.leading else self.lease.acquire())
        if held != self.leading:
            logger.info("scheduler %s: %s", self.node.name, "active" if held else "standing by")
        self.leading = held
        if not held:
            return
        try:
            await self.schedule()
            if time.monotonic() - self._housekept > HOUSEKEEPING:
                self._housekept = time.monotonic()
                await self.housekeeping()
            await self.digests()
        except Exception:
            logger.exception("scheduler: a step failed; the next tick tries again")

    async def schedule(self) -> None:
        now = time.time()
        polled = self.node.key("polled")
        last = await self.node.redis.hgetall(polled)
        sources = [s for s in self.node.config.sources
                   if now >= float(last.get(s.name, 0)) + s.interval]
        if not sources:
            return
        health = self.node.store.backoff_facts(s.name for s in sources)
        cap = self.node.config.crawl.max_backoff
        due = [s for s in sources if backoff_until(s, health.get(s.name), cap) is None]
        if due:
            await self.frontier.push((f"poll:{s.name}", {"kind": "poll", "source": s.name}) for s in due)
            await self.node.redis.hset(polled, mapping={s.name: now for s in due})

    async def housekeeping(self) -> None:
        """Frontier tasks of dead crawlers back to the queue; catch-ups of ended hours and
        source notices into the outbox (once: only the active scheduler writes them);
        retention once a day."""
        await recover(self.frontier)
        for stream in ("stories", "articles"):
            # Entries every group has read and acknowledged (a shard's group exists from the
            # first matcher's start; before that nothing is trimmed).
            with contextlib.suppress(ResponseError):  # no such stream yet
                await StreamGroup(self.node.redis, self.node.key(stream), "trim", self.node.name).trim()
        store, config = self.node.store, self.node.config
        release_catchups(store, config)
        report_source_trouble(store, config)
        prune_daily(store, config.retention)

    async def digests(self) -> None:
        """Each digest group's next run is kept in Redis: a standby that takes over runs a
        digest whose time came while the schedulers changed hands."""
        now = datetime.now(UTC)
        times = self.node.key("digests")
        planned = await self.node.redis.hgetall(times)
        for (schedule, timezone), group in digest_groups(self.node.config.watchlists).items():
            key = f"{schedule}|{timezone}"
            due = planned.get(key)
            if due is not None and now.timestamp() >= float(due):
                run_digest(self.node.store, self.node.config, [w.name for w in group])
            if due is None or now.timestamp() >= float(due):
                await self.node.redis.hset(times, key, next_digest(schedule, timezone, now).timestamp())


# --- crawler ---------------------------------------------------------------------------------


class CrawlerRole:
    """Takes polls and pages from the frontier. A poll stores the source's new articles and
    queues their pages (or hands them on, for a feed-only source); a page is stored and its
    article handed on. A task is done only after that, so a crawler killed mid-fetch leaves
    its tasks to be taken again."""

    def __init__(self, node: Node) -> None:
        from monitor.crawl import LiveCrawler

        self.node = node
        self.frontier = node.frontier()
        self.crawler = LiveCrawler(node.config.crawl, node.config.sources)
        self.sources = {s.name: s for s in node.config.sources}

    async def run(self) -> None:
        await self.crawler.start()
        beat = asyncio.create_task(_every(self.node, self.node.settings.lease / 3, self.frontier.heartbeat))
        try:
            recovered = time.monotonic()
            while not self.node.stopping.is_set():
                tasks = await self.frontier.take(CRAWL_BATCH, timeout=1.0)
                if tasks:
                    await self.attempt(tasks)
                elif time.monotonic() - recovered > HOUSEKEEPING:
                    # Idle: the tasks of a crawler that died go back to the queue also while no
                    # scheduler is running.
                    recovered = time.monotonic()
                    await recover(self.frontier)
        finally:
            beat.cancel()
            await self.crawler.stop_crawls()
            await self.crawler.close()

    async def attempt(self, tasks: list[Task]) -> None:
        """Work on these tasks; a failure (the store unreachable, a fault of ours) puts them
        back in the queue for any crawler to try again, and this one goes on."""
        try:
            await self.work(tasks)
        except Exception:
            logger.exception("crawler: %d tasks failed; they go back to the queue", len(tasks))
            await self.frontier.done(tasks, forget=True)
            await self.frontier.push((task.key, task.payload) for task in tasks)
            await self.node.sleep(1.0)

    async def work(self, tasks: list[Task]) -> None:
        polls = [t for t in tasks if t.payload.get("kind") == "poll"]
        pages = [t for t in tasks if t.payload.get("kind") == "page"]
        strange = [t for t in tasks if t not in polls and t not in pages]
        if strange:
            logger.error("frontier: %d tasks of an unknown kind dropped", len(strange))
            await self.frontier.done(strange, forget=True)
        await asyncio.gather(self._polls(polls), self._pages(pages))

    async def _polls(self, tasks: list[Task]) -> None:
        names = [t.payload.get("source") for t in tasks]
        sources = [self.sources[name] for name in names if name in self.sources]
        if sources:
            polled = await poll_sources(self.node.monitor(crawler=self.crawler), sources, CycleReport())
            if not self.crawler.stopped:
                await self._hand_on([source for source, _ in polled])
        if not self.crawler.stopped:
            await self.frontier.done(tasks, forget=True)

    async def _hand_on(self, sources: Sequence[Source]) -> None:
        """Every article of these sources waiting for its page is queued (those queued already
        are not, by the frontier's fingerprints); every one waiting for matching is handed
        to the stories stream. Both cover what a killed crawler had stored but not passed on."""
        store = self.node.store
        full_text = [s.name for s in sources if s.full_text]
        if full_text:
            waiting = store.articles_in_state(FETCH, full_text)
            await self.frontier.push(
                (f"page:{a.id}:{a.revision}", {"kind": "page", "source": a.source,
                                                "target": asdict(page_target(a, self.sources.get(a.source)))})
                for a in waiting)
        await hand_over(self.node, store.articles_in_state(MATCH, [s.name for s in sources]))

    async def _pages(self, tasks: list[Task]) -> None:
        if not tasks:
            return
        targets = [PageTarget(**t.payload["target"]) for t in tasks]
        pages = await self.crawler.fetch_pages(targets)
        if self.crawler.stopped:
            return  # not done: taken again by a crawler that runs on
        pages += unanswered(pages, [(t.article_id, t.url) for t in targets])
        store = self.node.store
        store.save_pages(pages)
        await hand_over(self.node, store.articles_with_ids([t.article_id for t in targets], MATCH))
        await self.frontier.done(tasks, forget=True)


async def recover(frontier: WorkQueue) -> int:
    """The tasks of crawlers whose heartbeat ran out back to the queue."""
    moved = await frontier.recover()
    if moved:
        logger.warning("frontier: %d tasks of crawlers that stopped answering went back to the queue", moved)
    return moved


async def hand_over(node: Node, articles: Iterable) -> int:
    """Put these articles (ready for matching) on the stories stream, each revision once
    within HANDED_TTL. Two round trips: which are marked, then every entry added and, after
    all of them, the marks (Redis runs a pipeline in order, so no mark is ever set for an entry
    that was not added; a kill in between hands some over again, which is harmless)."""
    articles = list(articles)
    if not articles:
        return 0
    marks = [node.key("handed", f"{article.id}:{article.revision}") for article in articles]
    async with node.redis.pipeline(transaction=False) as pipe:
        for mark in marks:
            pipe.exists(mark)
        marked = await pipe.execute()
    new = [(article, mark) for article, mark, known in zip(articles, marks, marked, strict=True) if not known]
    if new:
        async with node.redis.pipeline(transaction=False) as pipe:
            for article, _ in new:
                pipe.xadd(node.key("stories"), _entry(article.id))
            for _, mark in new:
                pipe.set(mark, "1", ex=HANDED_TTL)
            await pipe.execute()
    return len(new)


def _entry(article_id: int) -> dict[str, str]:
    """A stream entry: the article, by id (its text is read from the store)."""
    return {"article": str(article_id)}


def _article_ids(entries: Iterable[tuple[str, dict[str, str]]]) -> list[int]:
    """The article ids of these stream entries; an entry without one is skipped."""
    return [int(fields["article"]) for _, fields in entries if fields.get("article", "").isdigit()]


# --- matcher ---------------------------------------------------------------------------------


class MatcherRole:
    """Owns shards of the watchlists by rendezvous hash over the live matchers (Redis
    heartbeats); each shard is a consumer group of the `articles` stream, so each article is
    matched for every shard whichever matcher owns it, and acknowledged in a shard's group once
    that shard's matches are stored. A matcher matches the articles of all the shards it owns
    at once, against their watchlists compiled together. The owner of the STORIES pseudo-shard
    groups new articles into stories first (under a Redis lease, so two never do it at once)."""

    def __init__(self, node: Node) -> None:
        self.node = node
        settings = node.settings
        self.members = Members(node.redis, "matcher", node.name, ttl=settings.lease,
                               prefix=settings.prefix)
        self.shards = [str(n) for n in range(settings.shards)]
        self.watchlists: dict[str, list] = {shard: [] for shard in self.shards}
        for watchlist in node.config.watchlists:
            self.watchlists[str(shard_of(watchlist.name, settings.shards))].append(watchlist)
        # The watchlists of the shards this matcher owns, compiled together: each article it
        # reads is matched once for all of them. Rebuilt when the owned shards change.
        self.compiled: tuple[tuple[str, ...], Monitor] | None = None
        self.groups: dict[str, StreamGroup] = {}
        self.stories_lease = Lease(node.redis, node.key("stories-lock"), node.name, ttl=settings.lease)
        self.stories: RecentStories | None = None
        self.stories_generation: int | None = None
        self.owned: list[str] = []

    async def run(self) -> None:
        # Every shard's group exists from the first matcher's start, whoever owns it later: the
        # scheduler trims the streams to what the existing groups still need.
        await self._group(STORIES, "stories").ensure()
        for shard in self.shards:
            await self._group(self.node.articles_group(shard), "articles").ensure()
        try:
            while not self.node.stopping.is_set():
                try:
                    await self.members.beat()
                    busy = await self.step(await self.members.alive())
                except Exception:
                    # What was read and not acknowledged is read again (by this matcher after
                    # claim_idle, or by another): nothing is lost, and the matcher goes on.
                    logger.exception("matcher: a step failed; its entries are read again")
                    busy = 0
                if not busy:
                    await self.node.sleep(IDLE)
        finally:
            await self.members.leave()

    async def step(self, alive: list[str]) -> int:
        """Group new articles into stories (when this matcher owns that), then match a batch
        of each owned shard; returns the entries handled."""
        busy = 0
        if owner(STORIES, alive) == self.node.name:
            busy += await self.group_stories()
        mine = owned(self.node.name, self.shards, alive)
        if mine != self.owned:
            logger.info("matcher %s: owns shards %s of %d", self.node.name, ",".join(mine) or "none",
                        len(self.shards))
            self.owned = mine
        return busy + await self.match_owned(mine)

    def _group(self, name: str, stream: str) -> StreamGroup:
        if name not in self.groups:
            self.groups[name] = StreamGroup(self.node.redis, self.node.key(stream), name, self.node.name,
                                            claim_idle=2 * self.node.settings.lease)
        return self.groups[name]

    async def group_stories(self) -> int:
        group = self._group(STORIES, "stories")
        if not await self.stories_lease.acquire():
            return 0
        try:
            entries = await group.read(STREAM_BATCH, block=0.05)
            if not entries:
                return 0
            await self._refresh_stories()
            ids = _article_ids(entries)
            monitor = self.node.monitor(stories=self.stories)
            store = self.node.store
            with store.transaction():
                articles = store.articles_with_ids(ids, MATCH)
                assign_stories(monitor, articles)
                wanted = wanted_articles(monitor, articles)
            self.stories_generation = await self.node.redis.incr(self.node.key("stories-generation"))
            async with self.node.redis.pipeline(transaction=False) as pipe:
                for article in wanted:
                    pipe.xadd(self.node.key("articles"), _entry(article.id))
                await pipe.execute()
            await group.ack(entry for entry, _ in entries)
            return len(entries)
        finally:
            await self.stories_lease.release()

    async def _refresh_stories(self) -> None:
        """The story index is this process's; when another matcher grouped articles since this
        one last did, it is read again from the store."""
        generation = await self.node.redis.get(self.node.key("stories-generation"))
        current = int(generation) if generation is not None else 0
        if self.stories is None or current != (self.stories_generation or 0):
            self.stories = await asyncio.to_thread(RecentStories, self.node.store)
            self.stories_generation = current

    async def match_owned(self, shards: list[str]) -> int:
        """A batch from each owned shard's group, matched once against the watchlists of all
        owned shards (the groups move in step, so a batch is mostly the same articles), then
        acknowledged. An article read from one group only is matched for the others too: they
        store nothing twice when their own entry of it comes (the store's unique keys)."""
        groups = {shard: self._group(self.node.articles_group(shard), "articles") for shard in shards}
        batches = {shard: await group.read(STREAM_BATCH, block=0.01) for shard, group in groups.items()}
        if not any(batches.values()):
            return 0
        ids = sorted({article for entries in batches.values() for article in _article_ids(entries)})
        monitor = await self._compiled(tuple(shards))
        if monitor.config.watchlists:
            await match_waiting(monitor, self.node.store.articles_of(ids), CycleReport())
        for shard, entries in batches.items():
            await groups[shard].ack(entry for entry, _ in entries)
        return sum(len(entries) for entries in batches.values())

    async def _compiled(self, shards: tuple[str, ...]) -> Monitor:
        if self.compiled is None or self.compiled[0] != shards:
            self.compiled = None  # the old one's memory goes before the new one is built
            watchlists = tuple(w for shard in shards for w in self.watchlists[shard])
            matcher = await asyncio.to_thread(Matcher, {w.name: w.query for w in watchlists})
            self.compiled = (shards, self.node.monitor(matcher, config=replace(self.node.config,
                                                                               watchlists=watchlists)))
        return self.compiled[1]


# --- deliverer -------------------------------------------------------------------------------


class DelivererRole:
    """Sends the outbox in claims: each pass claims up to Claim.limit due alerts."""

    def __init__(self, node: Node) -> None:
        self.node = node
        longest = max((send_max(n) for n in node.config.notifiers), default=0.0)
        # Long enough for a few sends of the slowest notifier; short enough that the alerts of
        # a deliverer that died go out again soon.
        self.claim = Claim(node.name, max(4 * node.settings.lease, 2 * longest))

    async def run(self) -> None:
        while not self.node.stopping.is_set():
            try:
                report = await deliver_pending(self.node.store, self.node.config, self.claim)
            except Exception:
                logger.exception("deliverer: a pass failed; the next one tries again")
                report = None
            if report is not None and (report.sent or report.failed):
                logger.info("delivery: %d sent, %d failed, %d pending", report.sent, report.failed,
                            report.pending)
            else:
                await self.node.sleep(IDLE * 5)


# --- one process, some roles -----------------------------------------------------------------

ROLE_CLASSES: dict[str, Callable[[Node], object]] = {
    "scheduler": Scheduler, "crawler": CrawlerRole, "matcher": MatcherRole, "deliverer": DelivererRole,
}


async def run_roles(config: Config, roles: Sequence[str]) -> None:
    """Run these roles in this process until SIGTERM/SIGINT."""
    from redis.asyncio import Redis

    settings = config.cluster
    assert settings is not None
    store = await asyncio.to_thread(Store.connect, settings.database)
    redis = Redis.from_url(settings.redis, decode_responses=True)
    node = Node(config, settings, redis, store)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, node.stopping.set)
    loop.add_signal_handler(signal.SIGHUP, lambda: logger.warning(
        "SIGHUP: a role process does not reload its configuration; restart the roles to change it"))
    workers = [ROLE_CLASSES[role](node) for role in roles]
    logger.info("monitor %s: %s", node.name, ", ".join(roles))
    try:
        await _until_one_fails([w.run() for w in workers])  # type: ignore[attr-defined]
    finally:
        await redis.aclose()
        store.close()


async def _until_one_fails(runs: list[Awaitable[None]]) -> None:
    tasks = [asyncio.ensure_future(run) for run in runs]
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
        for task in done:
            task.result()
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def _every(node: Node, seconds: float, beat: Callable[[], Awaitable[None]]) -> None:
    while not node.stopping.is_set():
        try:
            await beat()
        except Exception:
            logger.exception("heartbeat failed")
        await node.sleep(seconds)
