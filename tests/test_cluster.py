"""The roles as a cluster of real processes (`monitor run --role …`) on a real redis-server and
PostgreSQL, against local outlets and a real webhook receiver: every relevant story alerts once,
also when one process of each role is SIGKILLed mid-run and started again, and a standby
scheduler takes over from a killed active one."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest
from conftest import REPO, WEBHOOK_SECRET, monitor_config, run_monitor, write_config
from servers import HTML, RSS, QuietHandler, Receiver, Site, serve_handler
from test_cycle import RELEVANT, alerted_paths, publish

LEASE = 3  # seconds: the scheduler's lease and every heartbeat, short for the tests
# Rendezvous hashing gives each of m matchers each shard with chance 1/m, so with few shards one
# may own none ((2/3)^8 ≈ 4 % for one of three matchers over 8 shards); over 32 that is ≈ 2e-6.
SHARDS = 32
WAIT = 120  # seconds a test waits for its alerts at most


@dataclass
class Cluster:
    """Role processes of one config, each with its log; stopped at the end of the test."""

    config: Path
    processes: dict[str, subprocess.Popen[str]] = field(default_factory=dict)
    logs: dict[str, Path] = field(default_factory=dict)

    def start(self, name: str, role: str) -> subprocess.Popen[str]:
        log = self.config.parent / f"{name}.log"
        self.logs[name] = log
        process = subprocess.Popen(
            [sys.executable, "-m", "monitor", "--config", str(self.config), "run", "--role", role],
            stdout=log.with_suffix(".out").open("a"), stderr=log.open("a"), text=True,
            cwd=self.config.parent,
            env={**os.environ, "PYTHONPATH": str(REPO), "WEBHOOK_SECRET": WEBHOOK_SECRET},
        )
        self.processes[name] = process
        return process

    def start_all(self) -> None:
        """scheduler-1 (once it leads), its standby scheduler-2, and two of each other role."""
        self.start("scheduler-1", "scheduler")
        self.wait(lambda: active_scheduler(self, "scheduler-1"), "the first scheduler to lead")
        self.start("scheduler-2", "scheduler")
        for role in ("crawler", "matcher", "deliverer"):
            self.start(f"{role}-1", role)
            self.start(f"{role}-2", role)

    def kill(self, name: str) -> None:
        process = self.processes[name]
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)

    def log(self, name: str) -> str:
        return self.logs[name].read_text(encoding="utf-8", errors="replace")

    def wait(self, condition: Callable[[], bool], what: str, timeout: float = WAIT) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            for name, process in self.processes.items():
                if process.poll() not in (None, -signal.SIGKILL):
                    raise AssertionError(
                        f"{name} ended with rc {process.returncode}:\n{self.log(name)[-3000:]}")
            if time.monotonic() > deadline:
                logs = "\n".join(f"--- {n}\n{self.log(n)[-1500:]}" for n in self.logs)
                raise AssertionError(f"timed out waiting for {what}\n{logs}")
            time.sleep(0.2)

    def stop(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.processes.values():
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()


@pytest.fixture
def cluster_of(tmp_path: Path, redis_url: str, postgres_url: str) -> Iterator[Callable[[dict], Cluster]]:
    made: list[Cluster] = []

    def make(config: dict) -> Cluster:
        config["cluster"] = {"redis": redis_url, "database": postgres_url, "shards": SHARDS,
                             "lease": f"{LEASE}s"}
        made.append(Cluster(write_config(tmp_path, config)))
        return made[-1]

    yield make
    for cluster in made:
        cluster.stop()


def active_scheduler(cluster: Cluster, name: str) -> bool:
    return ": active" in cluster.log(name)


def owned_shards(cluster: Cluster, name: str) -> set[str]:
    """The shards the matcher said last that it owns."""
    lines = [line for line in cluster.log(name).splitlines() if ": owns shards " in line]
    if not lines:
        return set()
    owned = lines[-1].split(": owns shards ", 1)[1].split(" of ")[0]
    return set() if owned == "none" else set(owned.split(","))


def alert_keys(receiver: Receiver) -> list[str]:
    return [headers.get("Idempotency-Key", "") for headers, _ in receiver.received]


def test_a_cluster_alerts_every_relevant_story_once_and_a_standby_takes_over(
    site: Site, receiver: Receiver, cluster_of: Callable[[dict], Cluster]
) -> None:
    config = monitor_config(site, receiver)
    config["watchlists"][0]["notify"] = ["siem"]
    for source in config["sources"]:
        source["interval"] = "5s"
    cluster = cluster_of(config)
    cluster.start_all()

    cluster.wait(lambda: set(alerted_paths(receiver)) == RELEVANT, "an alert for every relevant story")
    assert not active_scheduler(cluster, "scheduler-2"), "the standby waited"
    # The two matchers divided the shards between them, each shard to one, without a restart.
    first, second = owned_shards(cluster, "matcher-1"), owned_shards(cluster, "matcher-2")
    assert first and second and not first & second
    assert first | second == {str(n) for n in range(SHARDS)}

    # A third matcher joins the running cluster: it takes shards of its own from the others.
    cluster.start("matcher-3", "matcher")

    def three_way() -> bool:
        owners = [owned_shards(cluster, f"matcher-{n}") for n in (1, 2, 3)]
        return (all(owners) and sum(map(len, owners)) == SHARDS
                and set().union(*owners) == set(map(str, range(SHARDS))))

    cluster.wait(three_way, "the new matcher to own shards the others gave up, each shard to one")

    cluster.kill("scheduler-1")
    publish(site, "/nyheter/utrikes/csto-ovning.html", "nordposten-4800",
            "CSTO:s övning i Tadzjikistan avslutad",
            "Den ryskledda försvarsalliansen avslutade på onsdagen sin övning nära den afghanska gränsen.",
            ["Övningen samlade trupper från flera medlemsländer och pågick i fem dagar."] * 3)
    cluster.wait(lambda: "/nyheter/utrikes/csto-ovning.html" in alerted_paths(receiver),
                 "the standby scheduler to take over and the new story to alert (three matchers)")
    assert active_scheduler(cluster, "scheduler-2")
    time.sleep(3 * 5)  # three more polls of every source: nothing alerts again
    assert sorted(alerted_paths(receiver)) == sorted([*RELEVANT, "/nyheter/utrikes/csto-ovning.html"])
    assert len(set(alert_keys(receiver))) == len(receiver.received), "no alert was sent twice"
    # The commands that read the store read the cluster's.
    listed = run_monitor(cluster.config, "alerts", "--limit", "50")
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.count("sent") >= len(RELEVANT) + 1


# --- many articles, and a process of each role killed mid-run -------------------------------------

WORDS = ("regeringen riksdagen kommunen skolan vården polisen domstolen banken företaget hamnen "
         "staden landet bönderna forskarna läkarna lärarna studenterna väljarna facket styrelsen "
         "beslutade meddelade kritiserade presenterade utredde granskade föreslog avvisade "
         "budgeten reformen planen avtalet rapporten utredningen skatten räntan priserna lönerna "
         "snabbt tydligt oväntat försiktigt hårt öppet tidigt sent").split()


@dataclass
class BusyOutlet:
    """Three feeds of generated articles, each with a text of its own; every fourth one is
    about Kazakhstan. Each page is answered after PAGE_DELAY, so a run takes some seconds."""

    base: str = ""
    articles: dict[str, list[tuple[str, str, str]]] = field(default_factory=dict)  # feed → items
    delay: float = 0.3

    @classmethod
    def generated(cls, per_feed: int) -> BusyOutlet:
        outlet = cls()
        for feed in ("inrikes", "utrikes", "ekonomi"):
            items = []
            for n in range(per_feed):
                rng = random.Random(f"{feed}-{n}")
                words = [rng.choice(WORDS) for _ in range(120)]
                relevant = n % 4 == 0
                if relevant:
                    words[rng.randrange(20, 100)] = "Kazakstan"
                title = f"{'Kazakstan: ' if relevant else ''}{' '.join(words[:6])}"
                items.append((f"{feed}-{n}", title, " ".join(words)))
            outlet.articles[feed] = items
        return outlet

    def relevant(self) -> set[str]:
        return {f"/{feed}/{slug}.html" for feed, items in self.articles.items()
                for slug, title, _ in items if title.startswith("Kazakstan")}

    def feed(self, name: str) -> bytes:
        items = "".join(
            f"<item><title>{title}</title><link>{self.base}/{name}/{slug}.html</link>"
            f"<guid>{slug}</guid><description>{title}</description></item>"
            for slug, title, _ in self.articles[name])
        return (f'<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>{name}'
                f"</title><link>{self.base}/</link>{items}</channel></rss>").encode()

    def page(self, name: str, slug: str) -> bytes | None:
        for known, title, text in self.articles.get(name, []):
            if known == slug:
                sentences = text.split(" ")
                paragraphs = "".join(f"<p>{' '.join(sentences[i:i + 20]).capitalize()}.</p>"
                                     for i in range(0, len(sentences), 20))
                return (f'<!DOCTYPE html><html lang="sv"><head><meta charset="utf-8"><title>{title}'
                        f"</title></head><body><article><h1>{title}</h1>{paragraphs}</article>"
                        "</body></html>").encode()
        return None


def _outlet_handler(outlet: BusyOutlet) -> type[BaseHTTPRequestHandler]:
    class Handler(QuietHandler):
        def do_GET(self) -> None:
            parts = self.path.strip("/").split("/")
            if len(parts) == 1 and parts[0].endswith(".xml"):
                return self.answer(outlet.feed(parts[0].removesuffix(".xml")), RSS)
            page = outlet.page(parts[0], parts[-1].removesuffix(".html")) if len(parts) == 2 else None
            if page is None:
                return self.answer(b"not found", "text/plain", 404)
            time.sleep(outlet.delay)
            return self.answer(page, HTML)

    return Handler


@pytest.fixture
def busy_outlet() -> Iterator[BusyOutlet]:
    outlet = BusyOutlet.generated(per_feed=40)
    with serve_handler(_outlet_handler(outlet)) as base:
        outlet.base = base
        yield outlet


def test_killing_one_process_of_each_role_mid_run_loses_nothing_and_sends_nothing_twice(
    busy_outlet: BusyOutlet, receiver: Receiver, cluster_of: Callable[[dict], Cluster], postgres_url: str
) -> None:
    config = {
        "crawl": {"delay": 0, "timeout": "10s", "concurrency_per_domain": 4},
        "sources": [{"name": feed, "type": "feed", "url": f"{busy_outlet.base}/{feed}.xml",
                     "interval": "5s", "full_text": True} for feed in busy_outlet.articles],
        "watchlists": [{"name": "kazakstan", "query": "kazak*", "notify": ["siem"]}],
        "notifiers": [{"name": "siem", "type": "webhook", "url": receiver.url, "retry_within": "1s"}],
    }
    relevant = busy_outlet.relevant()
    cluster = cluster_of(config)
    cluster.start_all()
    paths = lambda: set(alerted_paths(receiver))  # noqa: E731

    # A crawler mid-fetch (pages are coming in, each answered after the outlet's delay), the
    # active scheduler, a matcher when the first alerts come, a deliverer while they are being
    # sent; each started again.
    cluster.wait(lambda: _stored_pages(postgres_url) >= 4, "the first pages")
    cluster.kill("crawler-1")
    cluster.kill("scheduler-1")
    cluster.start("crawler-1", "crawler")
    cluster.start("scheduler-1", "scheduler")
    cluster.wait(lambda: len(paths()) >= 1, "the first alert")
    cluster.kill("matcher-1")
    cluster.start("matcher-1", "matcher")
    cluster.wait(lambda: len(paths()) >= len(relevant) // 3, "a third of the alerts")
    cluster.kill("deliverer-1")
    cluster.start("deliverer-1", "deliverer")

    cluster.wait(lambda: paths() == relevant, "an alert for every relevant story", timeout=180)
    time.sleep(2 * 5)  # two more polls of every source: nothing alerts again
    assert paths() == relevant
    keys = alert_keys(receiver)
    assert len(set(keys)) == len(relevant), "one alert per story"
    # A deliverer killed mid-send may leave one alert that went out without its sent mark: it
    # goes out again with the same Idempotency-Key, which the receiver can recognise.
    assert len(keys) - len(set(keys)) <= 1
    # The killed crawler held tasks: they went back to the queue, and were done by another.
    assert any("went back to the queue" in cluster.log(name) for name in cluster.logs)


def _stored_pages(url: str) -> int:
    import psycopg

    with psycopg.connect(url, autocommit=True) as connection:
        return connection.execute("SELECT count(*) FROM articles WHERE state != 'fetch'").fetchone()[0]
