"""Sitemap and section-page sources beside feeds, source health and back-off."""

from __future__ import annotations

import json
import re
import sqlite3
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from conftest import monitor_config, run_monitor, write_config
from servers import Receiver, Site

ALL_ARTICLES = 12
RELEVANT = 6  # the five in the utrikes feed, and csto-analys, found only in the sitemaps
EVERYTHING = [
    {"name": "utrikes", "type": "feed", "url": "rss/utrikes.xml"},
    {"name": "inrikes", "type": "feed", "url": "rss/inrikes.latin1.xml"},
    {"name": "senaste", "type": "feed", "url": "atom/senaste.xml"},
    {"name": "sitemap", "type": "sitemap", "url": "sitemap-index.xml", "max_age": "3650d"},
    {"name": "utrikes-sida", "type": "page", "url": "nyheter/utrikes/"},
    {"name": "inrikes-sida", "type": "page", "url": "nyheter/inrikes/", "follow": "a.teaser__link"},
]


def config_with(tmp_path: Path, site: Site, sources: list[dict], receiver: Receiver | None = None) -> Path:
    raw = monitor_config(site, receiver)
    raw["sources"] = [{**s, "url": site.url(s["url"])} for s in sources]
    return write_config(tmp_path, raw)


def stored(tmp_path: Path) -> list[tuple[str, str, str | None]]:
    with sqlite3.connect(tmp_path / "monitor.db") as db:
        return list(db.execute("SELECT url, text, duplicate_of FROM articles ORDER BY url"))


def test_feeds_sitemaps_and_section_pages_find_every_article_once(
    tmp_path: Path, site: Site, receiver: Receiver
) -> None:
    config = config_with(tmp_path, site, EVERYTHING, receiver)

    result = run_monitor(config, "once")

    assert result.returncode == 0, result.stderr
    rows = stored(tmp_path)
    urls = [url for url, _, _ in rows]
    assert len(urls) == len(set(urls)) == ALL_ARTICLES, urls
    assert all(text for _, text, _ in rows), "each article's own text was extracted"
    assert any(u.endswith("/nyheter/utrikes/csto-analys.html") for u in urls), "sitemap only"
    assert any(u.endswith("/nyheter/inrikes/signalfel-stockholm.html") for u in urls), "section only"
    assert not any(u.endswith(("/index.html", "/nyheter/utrikes/")) for u in urls)
    # Fetched at the links as given: a feed's link keeps its tracking parameters.
    requested = [path.split("?", 1)[0] for _, path, _ in site.requests]
    pages = [path for path in requested if path.endswith(".html") and "index" not in path]
    assert len(pages) == len(set(pages)) == ALL_ARTICLES, "each article page fetched once"
    alerted = [json.loads(b)["article"]["url"] for b in receiver.bodies()]
    assert len(alerted) == len(set(alerted)) == RELEVANT

    again = run_monitor(config, "once")
    assert "0 new articles" in again.stdout
    assert len(receiver.received) == RELEVANT


def test_section_page_polls_only_fetch_new_links(tmp_path: Path, site: Site) -> None:
    config = config_with(tmp_path, site, [EVERYTHING[5]])
    assert run_monitor(config, "once").returncode == 0
    assert len(stored(tmp_path)) == 4
    site.write("nyheter/inrikes/ny-artikel.html", (site.root / "nyheter/inrikes/riksdagen-budget.html")
               .read_text(encoding="utf-8").replace("riksdagen-budget", "ny-artikel"))
    index = site.root / "nyheter/inrikes/index.html"
    index.write_text(index.read_text(encoding="utf-8").replace(
        '<a class="teaser__link" href="/nyheter/inrikes/snostorm-norrland.html">',
        '<a class="teaser__link" href="/nyheter/inrikes/ny-artikel.html">Ny</a>'
        '<a class="teaser__link" href="/nyheter/inrikes/snostorm-norrland.html">', 1), encoding="utf-8")
    site.requests.clear()

    result = run_monitor(config, "once")

    assert "5 entries, 1 new" in result.stdout
    fetched = [p for _, p, _ in site.requests if p.endswith(".html") and "index" not in p]
    assert fetched == ["/nyheter/inrikes/ny-artikel.html"]


def test_sitemap_max_age_skips_old_entries(tmp_path: Path, site: Site) -> None:
    now = datetime.now(UTC)
    news = (site.root / "sitemap-news.xml").read_text(encoding="utf-8")
    dates = re.findall(r"<news:publication_date>([^<]+)<", news)
    for i, old in enumerate(dates):
        fresh = now - timedelta(hours=1) if i == 0 else now - timedelta(days=5)
        news = news.replace(old, fresh.isoformat(timespec="seconds"), 1)
    site.write("sitemap-news.xml", news)
    config = config_with(tmp_path, site, [{"name": "nyhetskarta", "type": "sitemap",
                                            "url": "sitemap-news.xml"}])

    result = run_monitor(config, "once")

    assert result.returncode == 0, result.stderr
    assert "1 entry, 1 new" in result.stdout
    assert len(stored(tmp_path)) == 1


def test_site_root_sitemaps_come_from_robots_txt(tmp_path: Path, site: Site) -> None:
    config = config_with(tmp_path, site, [{"name": "rot", "type": "sitemap", "url": "/",
                                            "max_age": "3650d"}])
    result = run_monitor(config, "once")
    assert result.returncode == 0, result.stderr
    assert ("GET", "/sitemap-index.xml", 200) in site.requests
    assert len(stored(tmp_path)) == 11, "everything but the section-only article"


def test_canonical_url_joins_a_copy_under_another_url(tmp_path: Path, site: Site) -> None:
    page = (site.root / "nyheter/utrikes/tokajev-nodlage.html").read_text(encoding="utf-8")
    site.write("amp/tokajev-nodlage.html", page)  # same canonical link inside
    feed = (site.root / "rss/utrikes.xml").read_text(encoding="utf-8")
    site.write("rss/amp.xml", feed.replace("{base}/nyheter/utrikes/tokajev-nodlage.html",
                                           "{base}/amp/tokajev-nodlage.html"))
    config = config_with(tmp_path, site, [{"name": "utrikes", "url": "rss/utrikes.xml"},
                                          {"name": "amp", "url": "rss/amp.xml"}])

    assert run_monitor(config, "once").returncode == 0

    copies = [(url, dup) for url, _, dup in stored(tmp_path) if dup is not None]
    assert len(copies) == 1 and copies[0][0].endswith("/amp/tokajev-nodlage.html")


def test_language_filter_on_a_source(tmp_path: Path, site: Site, receiver: Receiver) -> None:
    config = config_with(tmp_path, site, [{"name": "utrikes", "url": "rss/utrikes.xml",
                                           "languages": ["en"]}], receiver)
    result = run_monitor(config, "once")
    assert result.returncode == 0
    assert receiver.received == []
    with sqlite3.connect(tmp_path / "monitor.db") as db:
        skipped = [row[0] for row in db.execute("SELECT skipped FROM articles")]
    assert skipped and all(s == "language sv not in ['en']" for s in skipped)


def test_failing_source_backs_off_and_recovers_with_visible_health(tmp_path: Path, site: Site) -> None:
    site.failures["/rss/utrikes.xml"] = 503
    config = config_with(tmp_path, site, [{"name": "utrikes", "url": "rss/utrikes.xml",
                                           "interval": "20s"}])
    first = run_monitor(config, "once")
    assert "error  HTTP 503" in first.stdout
    second = run_monitor(config, "once")
    assert "wait   backing off after 1 failures" in second.stdout, "within one interval: no request"
    assert site.statuses("/rss/utrikes.xml") == [503] * 3, "one poll (three tries), then none"

    health = run_monitor(config, "sources")
    assert re.search(r"utrikes\s+feed\s+failing\s+1\s+0\s+never\s+(\S+ \S+|due)\s+HTTP 503",
                     health.stdout), health.stdout

    deadline = time.monotonic() + 60
    while "due" not in run_monitor(config, "sources").stdout:
        assert time.monotonic() < deadline, "the back-off never ended"
        time.sleep(2)
    del site.failures["/rss/utrikes.xml"]
    third = run_monitor(config, "once")
    assert "200    5 entries, 5 new" in third.stdout
    recovered = run_monitor(config, "sources")
    assert re.search(r"utrikes\s+feed\s+ok\s+0\s+5\s+20\d\d-", recovered.stdout), recovered.stdout
