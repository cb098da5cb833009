"""The analyst's pages (/, /articles/ID, /sources, /watchlists) over a database filled by real
`monitor once` cycles against the local news site, served by the real listener (start_http) and
by `monitor web` in its own process."""

from __future__ import annotations

import asyncio
import html
import os
import re
import signal
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import aiohttp
import pytest
from conftest import REPO, WATCH_QUERY, WEBHOOK_SECRET, monitor_config, run_monitor, write_config
from servers import Receiver, Site, free_port, news_site, webhook_receiver

from monitor.config import load_config
from monitor.http import start_http
from monitor.metrics import Metrics
from monitor.models import Config, Entry, HttpSettings, PollResult
from monitor.store import MatchRecord, NewAlert, Store, web_page_statements
from monitor.web.pages import PAGE_CSP

HOSTILE = '<img src=x onerror="window.pwned=1">'
HOSTILE_ITEM = """<item>
      <title>{title} CSTO samlar trupper</title>
      <link>{{base}}/nyheter/utrikes/csto-analys.html</link>
      <guid isPermaLink="false">nordposten-hostile</guid>
      <pubDate>Wed, 25 Nov 2026 09:00:00 +0100</pubDate>
      <description>CSTO och Kazakstan i en analys.</description>
    </item>
  </channel>"""
RUNNING = {"running": True, "sources": {"utrikes": {"next_due": "2026-11-30T18:00:00+00:00"}}}


@dataclass
class Filled:
    config: Config
    receiver: Receiver
    site: Site


@pytest.fixture(scope="module")
def filled(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Filled]:
    """Two real cycles: the first stores and alerts the site's stories (a hostile headline and a
    copy of one article at another outlet among them), the second sees an edited headline."""
    tmp = tmp_path_factory.mktemp("web")
    with news_site(tmp) as site, webhook_receiver() as receiver:
        feed = (site.root / "rss/utrikes.xml").read_text("utf-8")
        escaped = HOSTILE.replace("&", "&amp;").replace("<", "&amp;lt;").replace(">", "&amp;gt;")
        site.write("rss/utrikes.xml", feed.replace("</channel>", HOSTILE_ITEM.format(title=escaped)))
        # The same article at a second outlet, under its own address: one story, two copies.
        original = (site.root / "nyheter/utrikes/tokajev-nodlage.html").read_text("utf-8")
        site.write("kopia/tokajev.html", original.replace("/nyheter/utrikes/tokajev-nodlage.html",
                                                          "/kopia/tokajev.html"))
        site.write("kopia/kopian.xml", """<?xml version="1.0" encoding="utf-8"?><rss version="2.0">
<channel><title>Kopian</title><link>{base}/</link><item><title>Tokajev utlyser nödläge</title>
<link>{base}/kopia/tokajev.html</link><guid>kopia-1</guid>
<pubDate>Sat, 21 Nov 2026 22:10:00 +0100</pubDate></item></channel></rss>""")
        raw = monitor_config(site, receiver, feeds=("rss/utrikes.xml", "rss/inrikes.latin1.xml",
                                                    "kopia/kopian.xml"))
        raw["sources"].append({"name": "borta", "type": "feed", "url": site.url("rss/borta.xml"),
                               "interval": "10m"})
        path = write_config(tmp, raw)
        first = run_monitor(path, "once")
        assert first.returncode == 0, first.stderr
        site.write("rss/utrikes.xml", (site.root / "rss/utrikes.xml").read_text("utf-8").replace(
            "Uranpriset rusar efter oron i Kazakstan", "Uranpriset rusar vidare efter oron i Kazakstan"))
        second = run_monitor(path, "once")
        assert second.returncode == 0, second.stderr
        yield Filled(load_config(path, {"WEBHOOK_SECRET": WEBHOOK_SECRET}), receiver, site)


@dataclass
class Page:
    status: int
    headers: dict[str, str]
    text: str


def get(config: Config, *paths: str, token: str | None = None, health: dict = RUNNING) -> list[Page]:
    """GET each path from the real listener on a free port of 127.0.0.1."""
    config = replace(config, http=HttpSettings("127.0.0.1", 0, token))
    headers = {"Authorization": f"Bearer {token}"} if token else {}

    async def main() -> list[Page]:
        handle = await start_http(config, lambda: health, Metrics(config))
        try:
            async with aiohttp.ClientSession(f"http://127.0.0.1:{handle.port}") as session:
                pages = []
                for path in paths:
                    async with session.get(path, headers=headers) as response:
                        pages.append(Page(response.status, dict(response.headers),
                                          await response.text()))
                return pages
        finally:
            await handle.close()

    return asyncio.run(main())


def query(database: Path, sql: str, *params: object) -> list[tuple]:
    db = sqlite3.connect(database)
    try:
        return db.execute(sql, params).fetchall()
    finally:
        db.close()


def story_headlines(html: str) -> list[str]:
    return re.findall(r'<div class="headline">(?:<a [^>]*>|<span class="unlinked">)([^<]*)<', html)


def test_stories_page_shows_each_alerted_story_once_with_links_copies_and_delivery(
        filled: Filled) -> None:
    (page, css) = get(filled.config, "/", "/static/monitor.css")

    assert page.status == 200 and page.headers["Content-Type"].startswith("text/html")
    assert page.headers["Content-Security-Policy"] == PAGE_CSP
    assert css.status == 200 and css.headers["Content-Type"].startswith("text/css")
    alerted = query(filled.config.database, "SELECT r.title FROM alerts a JOIN articles r"
                    " ON r.id = a.article_id WHERE a.kind = 'alert' AND a.notifier = 'logg'")
    headlines = [html.unescape(h) for h in story_headlines(page.text)]
    assert sorted(headlines) == sorted(title for (title,) in alerted), "one entry per story"
    assert len(headlines) >= 6
    assert "Riksdagen" not in page.text, "an article that matched nothing is no story"
    # The outlet link, the local time of the watchlist (Europe/Stockholm), the hit words.
    assert re.search(r'<a href="http://127\.0\.0\.1:\d+/nyheter/utrikes/csto-styrkor-almaty\.html"',
                     page.text)
    assert re.search(r"alerted 2\d{3}-\d\d-\d\d \d\d:\d\d CET", page.text)
    assert "<strong>Kazakstan</strong>" in page.text or "<strong>CSTO</strong>" in page.text
    # The copy at the second outlet, and each notifier's delivery state.
    copies = re.search(r'<ul class="copies">\s*<li><a href="([^"]+)"', page.text)
    assert "Also seen at:" in page.text and copies
    assert copies[1].endswith(("/kopia/tokajev.html", "/nyheter/utrikes/tokajev-nodlage.html"))
    assert re.search(r'kazakstan-csto → siem: <span class="status status-sent">sent</span>', page.text)
    assert re.search(r'kazakstan-csto → logg: <span class="status status-sent">sent</span>', page.text)


def test_stories_filter_by_watchlist_source_and_period(filled: Filled) -> None:
    every, by_source, other_source, unknown, period, bad = get(
        filled.config, "/", "/?source=utrikes", "/?source=inrikes", "/?watchlist=ingen",
        "/?watchlist=kazakstan-csto&days=1", "/?days=tre")

    assert "csto-styrkor-almaty" in by_source.text
    assert not re.search(r'class="headline"><a href="[^"]*/kopia/', by_source.text)
    assert story_headlines(other_source.text) == []
    assert "No story alerted in this period." in other_source.text
    assert story_headlines(unknown.text) == []
    # Every story alerted on an article of utrikes (the copy at kopian joined its story).
    assert story_headlines(by_source.text) == story_headlines(every.text) != []
    assert story_headlines(period.text) == story_headlines(every.text), "all alerted minutes ago"
    assert '<option value="kazakstan-csto" selected>' in period.text
    assert bad.status == 400


def test_stories_page_through_the_list_fifty_at_a_time(filled: Filled, tmp_path: Path) -> None:
    database = tmp_path / "monitor.db"
    with sqlite3.connect(filled.config.database) as source, sqlite3.connect(database) as copy:
        source.backup(copy)
    store = Store.open(database)
    try:
        entries = tuple(Entry(url=f"https://extra.example/{n}", guid=f"x{n}", title=f"Extra CSTO {n}",
                              summary="CSTO", published=None) for n in range(60))
        for article in store.save_poll_result(PollResult("utrikes", 200, entries), "u", False).new:
            story = store.assign_story(article, None, None)
            store.save_matches(article, [MatchRecord("kazakstan-csto", ("CSTO",), "CSTO")],
                               [NewAlert(f"extra{article}", "kazakstan-csto", "logg", "{}")], story)
    finally:
        store.close()
    config = replace(filled.config, database=database)

    first, second = get(config, "/", "/?page=2")

    assert len(story_headlines(first.text)) == 50
    assert '<a href="/?page=2" rel="next">' in first.text and 'rel="prev"' not in first.text
    assert '<a href="/" rel="prev">' in second.text and 'rel="next"' not in second.text
    before = len(story_headlines(get(filled.config, "/")[0].text))
    assert len(story_headlines(second.text)) == before + 60 - 50


def test_article_page_marks_the_hit_words_and_lists_the_copies_and_revisions(filled: Filled) -> None:
    database = filled.config.database
    ((alerted, story),) = query(database, "SELECT a.article_id, a.story_id FROM alerts a JOIN"
                                " articles r ON r.id = a.article_id WHERE r.url LIKE '%tokajev%'"
                                " AND a.notifier = 'logg'")
    ((copy,),) = query(database, "SELECT id FROM articles WHERE story_id = ? AND id != ?", story, alerted)
    ((revised,),) = query(database, "SELECT article_id FROM revisions")

    page, other, edited = get(filled.config, f"/articles/{alerted}", f"/articles/{copy}",
                              f"/articles/{revised}")

    assert page.status == 200
    assert page.headers["Content-Security-Policy"] == PAGE_CSP
    assert "<mark>Tokajev</mark>" in page.text, "the watchlist's hit word marked in the text"
    assert "skjuta utan förvarning" in page.text, "the stored text, å/ä/ö and all"
    assert f'<a href="/articles/{copy}">' in page.text
    assert f'<a href="/articles/{alerted}">' in other.text
    assert "revision 1: Uranpriset rusar efter oron i Kazakstan" in edited.text
    assert "No earlier revisions seen." in page.text


def test_each_notifier_shows_its_delivery_state(filled: Filled, tmp_path: Path) -> None:
    database = tmp_path / "monitor.db"
    with sqlite3.connect(filled.config.database) as source, sqlite3.connect(database) as db:
        source.backup(db)
        ids = dict(db.execute(
            "SELECT r.guid || '/' || a.notifier, a.id FROM alerts a JOIN articles r"
            " ON r.id = a.article_id WHERE r.guid IN ('nordposten-4730', 'nordposten-4722')"))
        db.execute("UPDATE alerts SET status = 'failed', last_error = 'HTTP 503 from the receiver'"
                   " WHERE id = ?", [ids["nordposten-4730/siem"]])
        db.execute("UPDATE alerts SET status = 'pending', last_error = 'connection refused'"
                   " WHERE id = ?", [ids["nordposten-4730/logg"]])
        db.execute("UPDATE alerts SET status = 'held' WHERE id = ?", [ids["nordposten-4722/logg"]])
        db.execute("INSERT INTO alerts (id, kind, watchlist, notifier, body, status, created, queued)"
                   " VALUES ('digest1', 'digest', 'kazakstan-csto', 'siem', '{}', 'pending',"
                   " '2026-11-30T06:00:00+00:00', '2026-11-30T06:00:00+00:00')")
        db.execute("UPDATE alerts SET status = 'bundled', bundle = 'digest1' WHERE id = ?",
                   [ids["nordposten-4722/siem"]])

    (page,) = get(replace(filled.config, database=database), "/")

    almaty = re.search(r"csto-styrkor-almaty.*?</li>\s*</ul>", page.text, re.S)[0]
    assert ('siem: <span class="status status-failed">failed</span> — HTTP 503 from the receiver'
            in almaty)
    assert 'logg: <span class="status status-pending">pending</span> — connection refused' in almaty
    svenskar = re.search(r"svenskar-kazakstan.*?</li>\s*</ul>", page.text, re.S)[0]
    assert 'logg: <span class="status status-held">held</span>' in svenskar
    assert 'siem: <span class="status status-bundled">bundled</span> — in a digest: pending' in svenskar
    assert "digest1" not in story_headlines(page.text), "a digest is no story of its own"


def test_unknown_article_is_404(filled: Filled) -> None:
    missing, word = get(filled.config, "/articles/999999", "/articles/abc")

    assert missing.status == 404 and word.status == 404


def test_sources_page_shows_state_sparkline_next_poll_and_robots(filled: Filled) -> None:
    (page,) = get(filled.config, "/sources")
    (alone,) = get(filled.config, "/sources", health={"running": True, "sources": {}})

    assert page.status == 200
    rows = re.findall(r"<tr>\s*<td><strong>([^<]+)</strong>.*?</tr>", page.text, re.S)
    assert rows == ["utrikes", "inrikes", "kopian", "borta"]
    for row in re.findall(r"<tr>.*?</tr>", page.text, re.S)[1:]:
        assert '<svg class="sparkline"' in row and "<polyline" in row
    utrikes = re.search(r"<strong>utrikes</strong>.*?</tr>", page.text, re.S)[0]
    assert '<td class="state-ok">ok</td>' in utrikes and "2026-11-30 19:00 CET" in utrikes
    assert "<td>allowed</td>" in utrikes
    borta = re.search(r"<strong>borta</strong>.*?</tr>", page.text, re.S)[0]
    assert '<td class="state-failing">failing</td>' in borta and "404" in borta
    assert "<td>—</td>" in alone.text, "no scheduler, no next poll"


def test_watchlists_page_shows_query_notifiers_chart_and_last_alert(filled: Filled) -> None:
    (page,) = get(filled.config, "/watchlists")

    assert page.status == 200
    escaped = WATCH_QUERY.replace('"', "&#34;")
    assert f'<pre class="query"><code>{escaped}</code></pre>' in page.text
    assert "Notifiers: logg, siem" in page.text and "delivery: immediate" in page.text
    assert '<svg class="bars"' in page.text and page.text.count('<rect ') == 14
    last = query(filled.config.database, "SELECT r.title FROM alerts a JOIN articles r ON"
                 " r.id = a.article_id ORDER BY a.created DESC LIMIT 1")[0][0]
    assert "Last alert:" in page.text and (last in page.text or "&lt;img" in page.text)


def test_a_hostile_headline_is_shown_as_text_never_as_a_tag(filled: Filled) -> None:
    ((article, title),) = query(filled.config.database,
                                "SELECT id, title FROM articles WHERE guid = 'nordposten-hostile'")
    assert title.startswith(HOSTILE), "the title is stored as the outlet wrote it"

    stories, page, watchlists = get(filled.config, "/", f"/articles/{article}", "/watchlists")

    for text in (stories.text, page.text):
        assert "<img" not in text and "onerror=\"window" not in text
        assert "&lt;img src=x onerror=&#34;window.pwned=1&#34;&gt;" in text
    assert "<img" not in watchlists.text


def test_a_link_that_is_not_http_is_shown_as_text(filled: Filled, tmp_path: Path) -> None:
    database = tmp_path / "monitor.db"
    with sqlite3.connect(filled.config.database) as source, sqlite3.connect(database) as copy:
        source.backup(copy)
        copy.execute("UPDATE articles SET link = 'javascript:alert(1)' WHERE guid = 'nordposten-hostile'")

    (page,) = get(replace(filled.config, database=database), "/")

    assert 'href="javascript' not in page.text
    assert '<span class="unlinked">&lt;img' in page.text


# --- `monitor web` ---------------------------------------------------------------------------


def web(config: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "monitor", "--config", str(config), "web", *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=config.parent,
        env={**os.environ, "PYTHONPATH": str(REPO), "WEBHOOK_SECRET": WEBHOOK_SECRET,
             "MONITOR_WEB_TOKEN": "t0ken-webben"})


def test_monitor_web_refuses_a_listener_off_the_loopback_without_a_token(filled: Filled) -> None:
    result = run_monitor(filled.config.path, "web", "--listen", "0.0.0.0:8080")

    assert result.returncode == 2
    assert "'0.0.0.0:8080' is reachable from other machines: set http.auth.token" in result.stderr


def test_monitor_web_needs_an_existing_database(tmp_path: Path, site: Site) -> None:
    result = run_monitor(write_config(tmp_path, monitor_config(site)), "web")

    assert result.returncode == 3
    assert "no database at" in result.stderr and not (tmp_path / "monitor.db").exists()


def test_monitor_web_serves_the_pages_and_wants_the_token(filled: Filled, tmp_path: Path) -> None:
    raw = monitor_config(filled.site, filled.receiver)
    raw["database"] = str(filled.config.database)
    port = free_port()
    raw["http"] = {"listen": f"127.0.0.1:{port}", "auth": {"token": "${MONITOR_WEB_TOKEN}"}}
    server = web(write_config(tmp_path, raw))
    try:
        line = server.stdout.readline()
        assert line.startswith(f"web: serving http://127.0.0.1:{port}/"), server.stderr.read()

        async def fetch() -> tuple[int, int, str]:
            async with aiohttp.ClientSession(f"http://127.0.0.1:{port}") as session:
                async with session.get("/") as refused:
                    pass
                headers = {"Authorization": "Bearer t0ken-webben"}
                async with session.get("/watchlists", headers=headers) as allowed:
                    return refused.status, allowed.status, await allowed.text()

        refused, allowed, text = asyncio.run(fetch())
        assert refused == 401
        assert allowed == 200 and "kazakstan-csto" in text
    finally:
        server.send_signal(signal.SIGTERM)
        assert server.wait(timeout=30) == 0


@pytest.mark.parametrize("name", web_page_statements())
def test_page_statement_uses_an_index(filled: Filled, name: str) -> None:
    sql, params = web_page_statements()[name]
    steps = [row[3] for row in query(filled.config.database, f"EXPLAIN QUERY PLAN {sql}", *params)]

    assert steps and not [s for s in steps if re.match(r"^SCAN (?!CONSTANT ROW)", s)], steps
