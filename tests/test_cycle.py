"""`monitor once` end to end: a local Swedish news site, a real SMTP server, a real webhook
receiver and a real SQLite file."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from conftest import backoff_over, monitor_config, run_monitor, write_config
from servers import Mailbox, Receiver, Site

RELEVANT = {
    "/nyheter/utrikes/kazakstan-protester.html",
    "/nyheter/utrikes/csto-styrkor-almaty.html",
    "/nyheter/utrikes/tokajev-nodlage.html",
    "/nyheter/utrikes/svenskar-kazakstan.html",
    "/ekonomi/kazakstan-uran.html",
}

NEW_PAGE = """<!DOCTYPE html><html lang="sv"><head><meta charset="utf-8">
<title>{title}</title></head><body>
<nav><a href="/">Start</a> <a href="/nyheter/utrikes/">Utrikes</a></nav>
<article><h1>{title}</h1>{paragraphs}</article>
<aside><h2>Mest läst</h2><ul><li><a href="/a">Väder: snö i norr</a></li></ul></aside>
<footer>Nordposten AB</footer></body></html>"""

NEW_ITEM = """<item><title>{title}</title><link>{{base}}{path}</link>
<guid isPermaLink="false">{guid}</guid><pubDate>Wed, 25 Nov 2026 08:00:00 +0100</pubDate>
<description>{lede}</description></item>
"""


def publish(site: Site, path: str, guid: str, title: str, lede: str, body: list[str]) -> None:
    """Put a new article on the site and at the top of the utrikes feed."""
    paragraphs = "".join(f"<p>{p}</p>" for p in [lede, *body])
    site.write(path, NEW_PAGE.format(title=title, paragraphs=paragraphs))
    feed = (site.root / "rss/utrikes.xml").read_text(encoding="utf-8")
    item = NEW_ITEM.format(title=title, path=path, guid=guid, lede=lede)
    site.write("rss/utrikes.xml", feed.replace("<item>", item + "<item>", 1))


def alerted_paths(receiver: Receiver) -> list[str]:
    urls = [json.loads(body)["article"]["url"] for body in receiver.bodies()]
    return sorted(url.split("/", 3)[3].join(["/", ""]) for url in urls)


def test_two_cycles_alert_every_match_once_then_only_new(
    tmp_path: Path, site: Site, receiver: Receiver, mailbox: Mailbox
) -> None:
    config = write_config(tmp_path, monitor_config(site, receiver, mailbox))

    first = run_monitor(config, "once")
    assert first.returncode == 0, first.stderr
    assert set(alerted_paths(receiver)) == RELEVANT
    assert len(receiver.received) == len(RELEVANT), "one webhook per matching article"
    assert len(mailbox.messages) == len(RELEVANT), "one email per matching article"
    assert "10 new articles, 5 matched" in first.stdout

    publish(
        site,
        "/nyheter/utrikes/csto-ovning.html",
        "nordposten-4800",
        "CSTO:s övning i Tadzjikistan avslutad",
        "Den ryskledda försvarsalliansen avslutade på onsdagen sin övning nära den afghanska gränsen.",
        ["Övningen samlade trupper från flera medlemsländer och pågick i fem dagar."] * 3,
    )
    second = run_monitor(config, "once")
    assert second.returncode == 0, second.stderr
    assert len(receiver.received) == len(RELEVANT) + 1
    assert json.loads(receiver.bodies()[-1])["article"]["title"].startswith("CSTO:s övning")
    assert len(mailbox.messages) == len(RELEVANT) + 1
    assert "  utrikes 200    6 entries, 1 new" in second.stdout
    assert site.statuses("/rss/inrikes.latin1.xml") == [200, 304]
    assert site.statuses("/atom/senaste.xml") == [200, 304]


def test_unchanged_feeds_cost_one_304_each_and_send_nothing(
    tmp_path: Path, site: Site, receiver: Receiver
) -> None:
    config = write_config(tmp_path, monitor_config(site, receiver))
    assert run_monitor(config, "once").returncode == 0
    sent = len(receiver.received)
    site.requests.clear()

    again = run_monitor(config, "once")

    assert again.returncode == 0, again.stderr
    feeds = [(path, status) for _, path, status in site.requests if path != "/robots.txt"]
    assert feeds == [("/rss/utrikes.xml", 304), ("/rss/inrikes.latin1.xml", 304), ("/atom/senaste.xml", 304)]
    assert len(receiver.received) == sent
    assert again.stdout.count("304    not modified") == 3


def test_restart_with_lost_fetch_state_does_not_alert_again(
    tmp_path: Path, site: Site, receiver: Receiver
) -> None:
    """Even if the server ignores conditional GET, stored articles are known by URL and GUID."""
    site.conditional = False
    config = write_config(tmp_path, monitor_config(site, receiver))
    assert run_monitor(config, "once").returncode == 0
    sent = len(receiver.received)

    again = run_monitor(config, "once")

    assert again.returncode == 0
    assert len(receiver.received) == sent == len(RELEVANT)
    assert "0 new articles" in again.stdout


def test_latin1_feed_keeps_swedish_letters(tmp_path: Path, site: Site) -> None:
    config = write_config(tmp_path, monitor_config(site, feeds=("rss/inrikes.latin1.xml",)))
    assert run_monitor(config, "once").returncode == 0
    with sqlite3.connect(tmp_path / "monitor.db") as db:
        titles = [row[0] for row in db.execute("SELECT title FROM articles")]
        texts = [row[0] for row in db.execute("SELECT text FROM articles WHERE url LIKE '%latin1%'")]
    assert any("å" in t or "ä" in t or "ö" in t for t in titles), titles
    assert not any("Ã" in t or "\ufffd" in t for t in titles)
    assert texts and "ä" in texts[0] and "Ã" not in texts[0]


def test_most_read_box_naming_a_watched_word_does_not_alert(
    tmp_path: Path, site: Site, receiver: Receiver
) -> None:
    """Every page has a "Mest läst" box naming Kazakstan and CSTO; only the articles themselves
    may count."""
    config = write_config(tmp_path, monitor_config(site, receiver, feeds=("rss/inrikes.latin1.xml",)))
    result = run_monitor(config, "once")
    assert result.returncode == 0, result.stderr
    assert "4 entries, 4 new" in result.stdout
    assert receiver.received == []
    with sqlite3.connect(tmp_path / "monitor.db") as db:
        texts = [row[0] for row in db.execute("SELECT text FROM articles")]
    assert all(texts), "each article's text was extracted"
    assert not any("Kazakstan" in t or "CSTO" in t for t in texts)


def test_receiver_down_for_a_cycle_gets_the_alerts_on_the_next(
    tmp_path: Path, site: Site, receiver: Receiver
) -> None:
    settings = monitor_config(site, receiver)
    settings["notifiers"][1]["retry_within"] = 0  # down for the whole pass
    config = write_config(tmp_path, settings)
    receiver.answer = 503

    down = run_monitor(config, "once")

    assert down.returncode == 0
    assert receiver.received == []
    assert f"{len(RELEVANT)} pending" in down.stdout
    receiver.answer = 200
    backoff_over(tmp_path / "monitor.db")

    up = run_monitor(config, "once")

    assert up.returncode == 0
    assert set(alerted_paths(receiver)) == RELEVANT
    assert len(receiver.received) == len(RELEVANT)
    assert "0 pending" in up.stdout


def test_malformed_and_failing_feeds_do_not_stop_the_cycle(
    tmp_path: Path, site: Site, receiver: Receiver
) -> None:
    site.write("rss/trasig.xml", b"<html><body><h1>Ingen feed h\xc3\xa4r <p>oj</body")
    site.failures["/rss/nere.xml"] = 503
    config = write_config(
        tmp_path, monitor_config(site, receiver, feeds=("rss/trasig.xml", "rss/nere.xml", "rss/utrikes.xml"))
    )

    result = run_monitor(config, "once")

    assert result.returncode == 0, result.stderr
    assert "trasig" in result.stdout and "not a feed" in result.stdout
    assert "  nere    error  HTTP 503" in result.stdout
    assert "3 sources: 1 ok, 2 failed" in result.stdout
    assert len(receiver.received) == len(RELEVANT)
    with sqlite3.connect(tmp_path / "monitor.db") as db:
        failures = dict(db.execute("SELECT name, consecutive_failures FROM sources"))
    assert failures == {"trasig": 1, "nere": 1, "utrikes": 0}


def test_hostile_or_missing_pages_still_alert_on_the_feed_headline(
    tmp_path: Path, site: Site, receiver: Receiver
) -> None:
    items = [("/borta.html", "saknas"), ("/bild.bin", "binär"), ("/jatte.html", "jättesida")]
    site.write("bild.bin", bytes(range(256)) * 40)
    site.write("jatte.html", "<html><body><p>" + "Kazakstan " * 20000 + "</p></body></html>")
    feed = "".join(
        f"<item><title>Kazakstan: {word}</title><link>{{base}}{path}</link><guid>{word}</guid></item>"
        for path, word in items
    )
    site.write(
        "rss/fientlig.xml",
        f'<?xml version="1.0"?><rss version="2.0"><channel><title>x</title>{feed}</channel></rss>',
    )
    raw = monitor_config(site, receiver, feeds=("rss/fientlig.xml",))
    raw["crawl"]["max_size"] = 50_000
    config = write_config(tmp_path, raw)

    result = run_monitor(config, "once")

    assert result.returncode == 0, result.stderr
    titles = sorted(json.loads(b)["article"]["title"] for b in receiver.bodies())
    assert titles == ["Kazakstan: binär", "Kazakstan: jättesida", "Kazakstan: saknas"]
    with sqlite3.connect(tmp_path / "monitor.db") as db:
        errors = dict(db.execute("SELECT guid, fetch_error FROM articles"))
    errors = {guid.rsplit("/", 1)[-1]: error for guid, error in errors.items()}
    assert errors["saknas"] == "HTTP 404", errors
    assert errors["binär"] == "not a text page"
    assert errors["jättesida"] and "size" in errors["jättesida"].lower()
