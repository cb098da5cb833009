"""Issue 14, item 1: the daemon keeps one Scrapy crawl for its life. A second poll of an
unchanged feed is one conditional request, robots.txt is fetched once per host, and a feed, a
sitemap and a section page on one host share that host's concurrency."""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from conftest import monitor_config, start_daemon, stop_daemon, wait_for, write_config
from servers import FIXTURE_SITE, Site, _site_handler, serve

from monitor.config import load_config
from monitor.scheduler import Daemon

FEEDS = ("/rss/utrikes.xml", "/rss/inrikes.latin1.xml")






def printed(log: Path) -> str:
    return log.with_suffix(".out").read_text()




def test_second_poll_is_one_conditional_request_and_robots_txt_is_fetched_once(
        tmp_path: Path, site: Site) -> None:
    raw = monitor_config(site, feeds=tuple(f.lstrip("/") for f in FEEDS))
    for source in raw["sources"]:
        source["interval"] = "5s"
    log = tmp_path / "stderr.log"
    daemon = start_daemon(write_config(tmp_path, raw), log)
    try:
        wait_for(lambda: all(len(site.statuses(feed)) >= 3 for feed in FEEDS), daemon, timeout=90)
    finally:
        assert stop_daemon(daemon) == 0
    out = printed(log)

    for feed in FEEDS:
        assert site.statuses(feed)[:3] == [200, 304, 304], feed
    assert site.statuses("/robots.txt") == [200], "robots.txt once for the daemon's life"
    pages = [path for _, path, _ in site.requests if path.endswith(".html")]
    assert len(pages) == len(set(pages)), "each article page fetched once"
    # One cycle per tick: both sources were due at start and are reported together.
    first_cycle = out.split("cycle:")[0]
    assert "utrikes" in first_cycle and "inrikes" in first_cycle, out


class Overlap:
    """Counts the requests a server is answering at once, and the most ever seen."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.now = 0
        self.most = 0
        self.answered = 0

    def __enter__(self) -> None:
        with self.lock:
            self.now += 1
            self.most = max(self.most, self.now)

    def __exit__(self, *exc: object) -> None:
        with self.lock:
            self.now -= 1
            self.answered += 1


@contextmanager
def slow_site(tmp: Path, overlap: Overlap, delay: float) -> Iterator[Site]:
    """The fixture site, each answer taking `delay` seconds, so overlapping requests show."""
    root = tmp / "site"
    shutil.copytree(FIXTURE_SITE, root)
    site = Site(root)

    class Slow(_site_handler(site)):
        def do_GET(self) -> None:
            with overlap:
                time.sleep(delay)
                super().do_GET()

    from http.server import ThreadingHTTPServer

    server = ThreadingHTTPServer(("127.0.0.1", 0), Slow)
    server.daemon_threads = True
    with serve(server) as base:
        site.base = base
        yield site


def test_feed_sitemap_and_page_sources_on_one_host_share_its_concurrency(tmp_path: Path) -> None:
    overlap = Overlap()
    with slow_site(tmp_path, overlap, delay=0.15) as site:
        raw = monitor_config(site, feeds=("rss/utrikes.xml",))
        raw["crawl"]["concurrency_per_domain"] = 1
        raw["sources"] += [
            {"name": "karta", "type": "sitemap", "url": site.url("sitemap-index.xml"),
             "max_age": "3650d", "interval": "10m"},
            {"name": "utrikes-sida", "type": "page", "url": site.url("nyheter/utrikes/"),
             "interval": "10m"},
        ]
        daemon = start_daemon(write_config(tmp_path, raw), tmp_path / "stderr.log")
        try:
            for path in ("/rss/utrikes.xml", "/sitemap-index.xml", "/nyheter/utrikes/"):
                wait_for(lambda p=path: site.statuses(p), daemon, timeout=90)
            # The article pages the three sources found are fetched in the same crawl.
            wait_for(lambda: sum(p.endswith(".html") for _, p, _ in site.requests) >= 5, daemon,
                     timeout=90)
        finally:
            assert stop_daemon(daemon) == 0

    assert overlap.answered >= 10
    assert overlap.most == 1, f"{overlap.most} requests to one host at once"


def test_a_source_late_by_more_than_its_interval_is_reported(tmp_path: Path, site: Site,
                                                             caplog) -> None:
    raw = monitor_config(site)
    raw["sources"][0]["interval"] = "5s"
    daemon = Daemon(load_config(write_config(tmp_path, raw)), on_cycle=lambda report: None)
    now = time.time()
    for source in daemon.config.sources:
        daemon.last_poll[source.name] = now - 1  # just polled
    daemon.last_poll["utrikes"] = now - 30  # due 25 s ago, five intervals
    daemon.polling.add("utrikes")  # its poll hangs: not started again

    assert daemon.due(now) == []
    daemon._report_lag(now)
    status = daemon.status()

    assert "falling behind: 1 source late, the worst by 25s (utrikes)" in caplog.text
    assert status["sources"]["utrikes"]["behind"] is True
    assert status["sources"]["utrikes"]["late"] >= 25
    assert status["sources"]["inrikes"]["late"] == 0
    assert status["running"] is False


def test_robots_txt_is_kept_for_a_day_then_fetched_again() -> None:
    from scrapy.utils.test import get_crawler

    from monitor.crawl import ROBOTS_MAX_AGE
    from spiders.robots import RobotsTxt

    robots = RobotsTxt(get_crawler(settings_dict={
        "ROBOTSTXT_OBEY": True, "MONITOR_ROBOTS_MAX_AGE": ROBOTS_MAX_AGE}))
    robots._expire("nyheter.example")  # first request: the parent class fetches it now
    robots._parsers["nyheter.example"] = parsed = object()

    robots._expire("nyheter.example")
    assert robots._parsers["nyheter.example"] is parsed, "kept within the day"

    robots.fetched["nyheter.example"] -= ROBOTS_MAX_AGE + 1
    robots._expire("nyheter.example")
    assert "nyheter.example" not in robots._parsers, "older than a day: fetched again"
