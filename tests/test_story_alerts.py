"""One story, one alert: syndicated copies, URL variants and edits, end to end."""

from __future__ import annotations

import html
import json
import re
import sqlite3
from pathlib import Path

from conftest import monitor_config, run_monitor, write_config
from servers import Receiver, Site

LABELLED = json.loads((Path(__file__).parent / "fixtures/stories/labelled.json").read_text("utf-8"))
EVENT = "kazakstan-regeringen-avgar-2022-01-05"
OUTLETS = ["aftonbladet", "svd", "gp", "sydsvenskan"]

PAGE = """<!DOCTYPE html><html lang="sv"><head><meta charset="utf-8"><title>{title}</title>
<link rel="canonical" href="{canonical}"></head><body><nav><a href="/">Start</a></nav>
<article><h1>{title}</h1>{paragraphs}</article><footer>Tidningen AB</footer></body></html>"""

FEED = """<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>{name}</title>
<link>{{base}}/</link>{items}</channel></rss>"""

ITEM = """<item><title>{title}</title><link>{{base}}{path}</link><guid>{guid}</guid>
<pubDate>Wed, 25 Nov 2026 08:00:00 +0100</pubDate></item>"""


def articles(story: str) -> list[dict]:
    return [a for a in LABELLED if a["event"] == EVENT and a["story"] == story]


def page(site: Site, path: str, article: dict, canonical: str | None = None) -> None:
    paragraphs = "".join(f"<p>{html.escape(p)}</p>" for p in article["text"].split("\n") if p.strip())
    site.write(
        path,
        PAGE.format(title=html.escape(article["title"]), paragraphs=paragraphs, canonical=canonical or path),
    )


def feed(site: Site, name: str, items: list[tuple[str, str, str]]) -> None:
    body = "".join(ITEM.format(title=html.escape(t), path=p, guid=g) for t, p, g in items)
    site.write(f"feeds/{name}.xml", FEED.format(name=name, items=body))


def publish_event(site: Site, gp_title: str | None = None) -> None:
    wire = articles("tt-kazakstan-regeringen-avgar")
    assert len(wire) == 4
    for outlet, copy in zip(OUTLETS, wire, strict=True):
        path = f"/{outlet}/kazakstan-regeringen.html"
        page(site, path, copy)
        items = [(copy["title"], path + "?utm_source=rss&utm_medium=feed", f"{outlet}-1")]
        if outlet == "gp":
            # The same article once more, as an AMP page naming the original as canonical.
            page(site, "/gp/amp/kazakstan-regeringen.html", copy, canonical=path)
            items = [
                (gp_title or copy["title"], path, "gp-1"),
                (copy["title"], "/gp/amp/kazakstan-regeringen.html", "gp-amp-1"),
            ]
        feed(site, outlet, items)
    for own in ("expressen-kazakstan-regeringen-avgar", "ekot-kazakstan-regeringen-avgar"):
        (article,) = articles(own)
        outlet = own.split("-")[0]
        page(site, f"/{outlet}/regeringen.html", article)
        feed(site, outlet, [(article["title"], f"/{outlet}/regeringen.html", f"{outlet}-1")])


def test_wire_copies_alert_once_naming_all_copies_independent_articles_alert_each(
    tmp_path: Path, site: Site, receiver: Receiver
) -> None:
    publish_event(site)
    outlets = [*OUTLETS, "expressen", "ekot"]
    config = write_config(
        tmp_path,
        monitor_config(site, receiver, feeds=tuple(f"feeds/{o}.xml" for o in outlets), query="kazak*"),
    )

    first = run_monitor(config, "once")

    assert first.returncode == 0, first.stderr
    bodies = [json.loads(b) for b in receiver.bodies()]
    assert len(bodies) == 3, [b["article"]["url"] for b in bodies]
    copies = {f"{o}/kazakstan-regeringen.html" for o in OUTLETS}
    wire = [b for b in bodies if b["article"]["url"].split("/", 3)[3] in copies]
    assert len(wire) == 1, "one alert for the four copies"
    # Articles are matched as their pages come in: the alert names the copies stored by then,
    # and the story holds all four.
    named = {wire[0]["article"]["url"], *wire[0]["also_seen_at"]}
    assert {url.split("/", 3)[3] for url in named} <= copies
    with sqlite3.connect(tmp_path / "monitor.db") as db:
        stories = dict(db.execute("SELECT url, story_id FROM articles"))
    assert len({stories[f"{site.base}/{copy}"] for copy in copies}) == 1, stories
    assert len({b["story"] for b in bodies}) == 3, "the two own articles are stories of their own"
    assert not any(b["update"] for b in bodies)

    publish_event(site, gp_title="Kazakstans regering avgår efter protesterna – presidenten tar över")
    second = run_monitor(config, "once")

    assert second.returncode == 0, second.stderr
    assert re.search(r"  gp +200    2 entries, 0 new", second.stdout), second.stdout
    assert len(receiver.received) == 3, "an edited copy is a revision, not a new alert"


def test_revision_that_newly_matches_a_watchlist_alerts_once_as_an_update(
    tmp_path: Path, site: Site, receiver: Receiver
) -> None:
    (article,) = articles("expressen-kazakstan-regeringen-avgar")
    page(site, "/expressen/regeringen.html", article)
    feed(site, "expressen", [("Regeringen avgår", "/expressen/regeringen.html", "e-1")])
    raw = monitor_config(site, receiver, feeds=("feeds/expressen.xml",), query="title:protester*")
    config = write_config(tmp_path, raw)
    assert run_monitor(config, "once").returncode == 0
    assert receiver.received == []

    feed(site, "expressen", [("Regeringen avgår efter protesterna", "/expressen/regeringen.html", "e-1")])
    second = run_monitor(config, "once")
    feed(
        site,
        "expressen",
        [("Regeringen avgår efter protesterna i landet", "/expressen/regeringen.html", "e-1")],
    )
    third = run_monitor(config, "once")

    assert second.returncode == third.returncode == 0
    (body,) = [json.loads(b) for b in receiver.bodies()]
    assert body["update"] is True
    assert body["article"]["title"] == "Regeringen avgår efter protesterna"


def test_backtest_counts_stories_not_copies(tmp_path: Path, site: Site) -> None:
    publish_event(site)
    outlets = [*OUTLETS, "expressen", "ekot"]
    config = write_config(tmp_path, monitor_config(site, feeds=tuple(f"feeds/{o}.xml" for o in outlets)))
    assert run_monitor(config, "once").returncode == 0
    result = run_monitor(config, "backtest", "kazak*")
    assert re.fullmatch(r"3 stories \(6 articles\) would have alerted \(since \d{4}-\d\d-\d\d "
                        r"\d\d:\d\d \(30d\); nothing was sent\)", result.stdout.splitlines()[-1])


def test_story_index_survives_a_restart(tmp_path: Path, site: Site, receiver: Receiver) -> None:
    """A copy arriving after a restart still joins the story alerted before it."""
    wire = articles("tt-kazakstan-regeringen-avgar")
    page(site, "/svd/a.html", wire[0])
    feed(site, "svd", [(wire[0]["title"], "/svd/a.html", "svd-1")])
    page(site, "/gp/b.html", wire[1])
    feed(site, "gp", [])
    config = write_config(
        tmp_path, monitor_config(site, receiver, feeds=("feeds/svd.xml", "feeds/gp.xml"), query="kazak*")
    )
    assert run_monitor(config, "once").returncode == 0
    assert len(receiver.received) == 1

    feed(site, "gp", [(wire[1]["title"], "/gp/b.html", "gp-1")])
    assert run_monitor(config, "once").returncode == 0

    assert len(receiver.received) == 1, "the copy joined the stored story: no second alert"
