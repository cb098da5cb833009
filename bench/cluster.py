"""Benchmark: the cluster roles (issue 17) on this machine, with 1 and with 2 crawler and
matcher processes, on a real redis-server and PostgreSQL started here (as the tests do).

    python bench/cluster.py [--articles 600] [--hosts 4] [--watchlists 1000] [--deliver 300]

One local outlet (bench/outlet.py: pages of 60–150 KB) and `--watchlists` generated watchlists
(bench/match.py) alerting to a local webhook receiver. For n = 1, then n = 2, on a fresh database
and an emptied Redis, three phases, each timed by polling PostgreSQL every 0.1 s:
- crawl: one scheduler and n crawlers; stored_per_s = articles stored (page fetched and
  extracted, or failed) / the time from the first stored to the last.
- match: n matchers start on the stories stream the crawl filled; matched_per_s = articles
  matched by every shard (read and acknowledged by every shard's consumer group, from XINFO
  GROUPS) / the time from the first to the last (story grouping included: one matcher groups,
  each matches the shards it owns).
- deliver: n deliverers on the outbox the match filled (at most --deliver alerts are left
  pending, the rest are marked sent beforehand); sent_per_s likewise.
Then matching alone, in this process (bench/match.py's Matcher over its generated
articles; the second of two passes, the first builds the forms), at --watchlists and at
100,000 (the fixed-hit-rate mix), for the sizing model.
Rates per process = the n = 1 figures. Process start-up is outside every window. The n
crawlers share this machine's cores: each has cores / n extraction workers. The sizing
model (docs/scaling.md) is evaluated with the measured per-process rates and printed beside
them. The last line is `cluster: stored_per_s_1=… stored_per_s_2=… speedup=…` (speedup =
stored_per_s_2 / stored_per_s_1, same run). Not a test; the machine has 2 cores, so two
crawlers share them with each other's extraction workers.
"""

from __future__ import annotations

import argparse
import math
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT / "tests"))

import match  # noqa: E402  (bench/match.py: the watchlist generator)
import outlet as local_outlet  # noqa: E402
from ingest import outlet_config  # noqa: E402
from localnews import webhook  # noqa: E402
from pg_server import postgres_server  # noqa: E402  (tests/pg_server.py)
from redis_server import redis_server  # noqa: E402  (tests/redis_server.py)

POLL = 0.1
LEASE = 3
CORES = len(os.sched_getaffinity(0))
PHASE_TIMEOUT = 900.0
# The sizing model's example (docs/scaling.md "Sizing").
SOURCES, INTERVAL, NEW_PER_POLL, FULL_TEXT_SHARE, WATCHLISTS = 10_000, 600, 2.0, 0.8, 100_000


@dataclass
class Rates:
    processes: int
    stored_per_s: float
    matched_per_s: float
    sent_per_s: float
    hits_per_article: float  # matches stored per article (the store's share of matching)


@dataclass
class Pure:
    """Matching alone, in this process (bench/match.py's articles): articles/s, hits/article."""

    watchlists: int
    per_s: float
    hits: float


class Roles:
    """Role processes of one config, stopped (SIGTERM, then SIGKILL) at the end."""

    def __init__(self, config: Path) -> None:
        self.config = config
        self.processes: list[subprocess.Popen] = []

    def start(self, role: str) -> None:
        log = self.config.with_name(f"{role}-{len(self.processes)}.log").open("w")
        self.processes.append(subprocess.Popen(
            [sys.executable, "-m", "monitor", "--config", str(self.config), "run", "--role", role],
            stdout=log, stderr=subprocess.STDOUT, cwd=self.config.parent,
            env={**os.environ, "PYTHONPATH": str(ROOT)}))

    def stop(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()


def window(count: Callable[[], int], finished: Callable[[int], bool], what: str) -> float:
    """Items per second from the first item counted to the last (polled every POLL s), until
    `finished` says the count is complete."""
    started = time.monotonic()
    first: tuple[float, int] | None = None
    while True:
        if time.monotonic() - started > PHASE_TIMEOUT:
            sys.exit(f"{what}: not done after {PHASE_TIMEOUT:.0f} s")
        seen = count()
        now = time.monotonic()
        if seen and first is None:
            first = (now, seen)
        if first is not None and finished(seen):
            break
        time.sleep(POLL)
    if now - first[0] < POLL:
        return float("inf")
    return (seen - first[1]) / (now - first[0])


class Streams:
    """The matchers' progress, read from the streams' consumer groups (Redis 7's XINFO)."""

    def __init__(self, redis_url: str, prefix: str = "monitor:") -> None:
        import redis

        self.redis = redis.Redis.from_url(redis_url, decode_responses=True)
        self.prefix = prefix

    def groups(self, stream: str) -> list[dict]:
        try:
            return self.redis.xinfo_groups(self.prefix + stream)
        except Exception:  # no such stream yet
            return []

    def matched(self) -> int:
        """Articles every shard's group has read and acknowledged."""
        shards = [g for g in self.groups("articles") if g["name"].startswith("shard-")]
        return min((g["entries-read"] or 0) - g["pending"] for g in shards) if shards else 0

    def settled(self) -> bool:
        """Every group of both streams has read everything and acknowledged it."""
        groups = self.groups("stories") + self.groups("articles")
        return bool(groups) and all(g["lag"] == 0 and g["pending"] == 0 for g in groups)


def scalar(url: str, sql: str, params: tuple = ()) -> int:
    """One number; 0 before the roles have made the tables."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as connection:
        try:
            return connection.execute(sql, params).fetchone()[0]
        except psycopg.errors.UndefinedTable:
            return 0


def execute(url: str, sql: str, params: tuple = ()) -> None:
    import psycopg

    with psycopg.connect(url, autocommit=True) as connection:
        connection.execute(sql, params)


@contextmanager
def fresh_database(server: str, name: str) -> Iterator[str]:
    import psycopg

    with psycopg.connect(server, autocommit=True) as connection:
        connection.execute(f"DROP DATABASE IF EXISTS {name}")
        connection.execute(f"CREATE DATABASE {name}")
    yield server.rsplit("/", 1)[0] + "/" + name


def run(n: int, site: local_outlet.Outlet, hook_url: str, queries: dict[str, str], servers: tuple[str, str],
        folder: Path, deliver: int) -> Rates:
    import redis

    redis_url, postgres_url = servers
    redis.Redis.from_url(redis_url).flushall()
    total = sum(len(stories) for stories in site.stories.values())
    with fresh_database(postgres_url, f"bench_{n}") as database:
        config = outlet_config(site, hook_url, queries)
        del config["database"]
        # n crawlers on one machine share its cores: each extracts with cores / n workers, as
        # docs/scaling.md advises (with "auto" each would start a worker per core).
        config["crawl"]["extract_workers"] = max(1, CORES // n)
        config["cluster"] = {"redis": redis_url, "database": database, "lease": f"{LEASE}s"}
        path = folder / f"cluster-{n}.yaml"
        path.write_text(yaml.safe_dump(config, allow_unicode=True), encoding="utf-8")
        roles = Roles(path)
        try:
            roles.start("scheduler")
            for _ in range(n):
                roles.start("crawler")
            stored = window(lambda: scalar(database, "SELECT count(*) FROM articles WHERE state != 'fetch'"),
                            lambda seen: seen >= total, "crawl")
            for _ in range(n):
                roles.start("matcher")
            streams = Streams(redis_url)
            matched = window(streams.matched, lambda _: streams.settled(), "match")
            hits = scalar(database, "SELECT count(*) FROM matches") / total
            alerts = scalar(database, "SELECT count(*) FROM alerts WHERE status = 'pending'")
            keep = min(alerts, deliver)
            # Only `keep` alerts are left to send: the receiver's pace is not what is measured.
            execute(database, "UPDATE alerts SET status = 'sent' WHERE id IN (SELECT id FROM alerts"
                              " WHERE status = 'pending' ORDER BY id OFFSET %s)", (keep,))
            for _ in range(n):
                roles.start("deliverer")
            sent = window(lambda: scalar(database, "SELECT count(*) FROM alerts WHERE status = 'sent'")
                          - (alerts - keep), lambda seen: seen >= keep, "deliver") if keep else 0.0
        finally:
            roles.stop()
    rates = Rates(n, stored, matched, sent, hits)
    print(f"  {n} of each: stored {stored:7.1f}/s  matched {matched:8.1f}/s  sent {sent:7.1f}/s "
          f"({total} articles, {hits:.1f} matches each, {keep} alerts delivered)", flush=True)
    return rates


def pure_matching(queries: dict[str, str], vocab: match.Vocabulary, seed: int, articles: int) -> Pure:
    from monitor.rules import Matcher

    writer = match.ArticleWriter(vocab, random.Random(seed + 1))
    docs = [writer.article(n) for n in range(articles)]
    matcher = Matcher(queries)
    match.rate(matcher.match, docs)  # the first pass builds the forms the articles need
    per_s, results = match.rate(matcher.match, docs)
    return Pure(len(queries), per_s, sum(len(found) for found in results) / len(docs))


def sizing(one: Rates, small: Pure, large: Pure) -> list[str]:
    """docs/scaling.md's model with this machine's per-process rates.

    A matcher's time per article is its matching (pure, measured at both sizes) and the
    store's work for the article (the rest of the measured time), which grows with its matches:
    scaled by the ratio of matches per article, an upper bound (an article without matches
    still costs its reads and its done mark)."""
    polls = SOURCES / INTERVAL
    articles = polls * NEW_PER_POLL
    tasks = polls * (1 + NEW_PER_POLL * FULL_TEXT_SHARE)
    crawlers = math.ceil(tasks / one.stored_per_s)
    store = max(1 / one.matched_per_s - 1 / small.per_s, 0.0)
    per_article = 1 / large.per_s + store * max(large.hits / max(one.hits_per_article, 0.1), 1.0)
    matchers = math.ceil(articles * per_article)
    return [
        f"sizing model: {SOURCES:,} sources every {INTERVAL // 60} min = {polls:.1f} polls/s; "
        f"{NEW_PER_POLL:g} new articles a poll = {articles:.1f} articles/s; "
        f"{FULL_TEXT_SHARE:.0%} full text = {tasks:.1f} frontier tasks/s (a poll, a page per article)",
        f"  crawlers  = ceil({tasks:.1f} / {one.stored_per_s:.1f}) = {crawlers}  (+1 spare; a crawler's "
        "rate here is pages, the heavier task)",
        f"  matcher at {large.watchlists:,} watchlists: {1000 / large.per_s:.2f} ms matching "
        f"+ {1000 * store:.2f} ms store × {large.hits:.1f}/{one.hits_per_article:.1f} matches "
        f"= {1000 * per_article:.1f} ms an article",
        f"  matchers  = ceil({articles:.1f} × {per_article:.4f}) = {matchers}  (+1 spare)",
        f"  deliverers: 1 sends {one.sent_per_s:.1f} alerts/s to a local webhook; 2 for availability",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--articles", type=int, default=600)
    parser.add_argument("--hosts", type=int, default=4)
    parser.add_argument("--watchlists", type=int, default=1000)
    parser.add_argument("--deliver", type=int, default=300)
    parser.add_argument("--seed", type=int, default=17)
    parser.add_argument("--pure-articles", type=int, default=300,
                        help="articles for the matching-alone figures of the sizing model")
    args = parser.parse_args()
    vocab = match.Vocabulary.build(random.Random(args.seed))
    queries = match.watchlists(args.watchlists, vocab, args.seed + args.watchlists)
    with ExitStack() as stack:
        folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="cluster-bench-")))
        redis_url = stack.enter_context(redis_server(folder / "redis"))
        # Beside it, not in it: the postgres user must reach its folder (mkdtemp's are root's).
        server_folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="monitor-pg-")))
        server_folder.chmod(0o755)
        postgres_url = stack.enter_context(postgres_server(server_folder / "server"))
        site = stack.enter_context(local_outlet.serve(args.articles, args.hosts, args.seed))
        hook = stack.enter_context(webhook())
        print(f"{args.articles} article pages on {args.hosts} hosts, {args.watchlists} watchlists → webhook; "
              f"redis-server and PostgreSQL on 127.0.0.1; {os.cpu_count()} cores", flush=True)
        one = run(1, site, hook.url, queries, (redis_url, postgres_url), folder, args.deliver)
        two = run(2, site, hook.url, queries, (redis_url, postgres_url), folder, args.deliver)
    small = pure_matching(queries, vocab, args.seed, args.pure_articles)
    large = pure_matching(match.watchlists(WATCHLISTS, vocab, args.seed + WATCHLISTS, mix="fixed"),
                          vocab, args.seed, args.pure_articles)
    print()
    print(f"per process (n=1): crawler {one.stored_per_s:.1f} articles/s, matcher {one.matched_per_s:.1f} "
          f"articles/s at {args.watchlists:,} watchlists, deliverer {one.sent_per_s:.1f} alerts/s")
    print(f"2 of each against 1: stored ×{two.stored_per_s / one.stored_per_s:.2f}, "
          f"matched ×{two.matched_per_s / one.matched_per_s:.2f}, "
          f"sent ×{two.sent_per_s / max(one.sent_per_s, 1e-9):.2f}")
    print(f"matching alone (this process): {small.per_s:.0f} articles/s at {small.watchlists:,} watchlists "
          f"({small.hits:.1f} hits each), {large.per_s:.0f} at {large.watchlists:,} ({large.hits:.1f})")
    for line in sizing(one, small, large):
        print(line)
    print(f"cluster: stored_per_s_1={one.stored_per_s:.1f} stored_per_s_2={two.stored_per_s:.1f} "
          f"speedup={two.stored_per_s / one.stored_per_s:.2f}")


if __name__ == "__main__":
    main()
