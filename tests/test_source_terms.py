"""Sources with terms of their own: robots.txt that says no, and outlets whose text may be
matched but not kept (store_text: false)."""

from __future__ import annotations

import json
import re
import sqlite3
from pathlib import Path

from conftest import monitor_config, run_monitor, write_config
from servers import Receiver, Site

# robots.txt of the local site: one feed, the sitemaps an index names, and one article page
# (linked only from the Atom feed) are disallowed.
ROBOTS = ("User-agent: *\nDisallow: /rss/inrikes\nDisallow: /sitemap-news\n"
          "Disallow: /sitemap-articles\nDisallow: /sport/\n")
UTRIKES_ALERTS = 5


def sources(site: Site, obey_robots: bool = True) -> list[dict]:
    allowed = {} if obey_robots else {"obey_robots": False}
    return [
        {"name": "utrikes", "type": "feed", "url": site.url("rss/utrikes.xml")},
        {"name": "inrikes", "type": "feed", "url": site.url("rss/inrikes.latin1.xml"), **allowed},
        {"name": "karta", "type": "sitemap", "url": site.url("sitemap-index.xml"),
         "max_age": "3650d", **allowed},
        {"name": "senaste", "type": "feed", "url": site.url("atom/senaste.xml"), **allowed},
    ]


def source_lines(output: str) -> dict[str, str]:
    """`monitor once` / `monitor sources` lines by their first word, the source's name."""
    lines = (re.sub(r"^\d{4}-\d\d-\d\d \S+ ", "", line) for line in output.splitlines())
    return {line.split()[0]: line for line in lines if line.strip()}


def test_robots_txt_that_disallows_a_source_is_shown_as_blocked(
    tmp_path: Path, site: Site, receiver: Receiver
) -> None:
    site.write("robots.txt", ROBOTS)
    raw = monitor_config(site, receiver)
    raw["sources"] = sources(site)
    config = write_config(tmp_path, raw)

    once = run_monitor(config, "once")

    assert once.returncode == 0, once.stderr
    cycle = source_lines(once.stdout)
    assert "blocked by robots.txt" in cycle["inrikes"], once.stdout
    # Before: "200 0 entries, 0 new", as if the sitemaps had nothing recent.
    assert "blocked by robots.txt" in cycle["karta"], once.stdout
    assert "1 article page blocked by robots.txt" in cycle["senaste"], once.stdout
    assert "5 entries, 5 new" in cycle["utrikes"] and "blocked" not in cycle["utrikes"]
    assert "/rss/inrikes.latin1.xml" not in [p for _, p, _ in site.requests]
    assert "/sport/stafett-gallivare.html" not in [p for _, p, _ in site.requests]
    # The other sources are unaffected: every relevant article of the allowed feed alerts.
    assert len(receiver.received) == UTRIKES_ALERTS

    listed = source_lines(run_monitor(config, "sources").stdout)
    for name in ("inrikes", "karta"):
        assert listed[name].split()[2] == "blocked", listed[name]
        assert listed[name].rstrip().endswith(("blocked by robots.txt",
                                               "blocked by robots.txt (its linked sitemaps)"))
    assert listed["utrikes"].split()[2] == listed["senaste"].split()[2] == "ok"


def test_obey_robots_false_polls_the_source_robots_txt_disallows(
    tmp_path: Path, site: Site, receiver: Receiver
) -> None:
    site.write("robots.txt", ROBOTS)
    raw = monitor_config(site, receiver)
    raw["sources"] = sources(site, obey_robots=False)
    config = write_config(tmp_path, raw)

    once = run_monitor(config, "once")

    assert once.returncode == 0, once.stderr
    assert "blocked" not in once.stdout, once.stdout
    cycle = source_lines(once.stdout)
    assert "200" in cycle["inrikes"].split() and "200" in cycle["karta"].split(), once.stdout
    assert "0 entries" not in cycle["karta"]
    fetched = {p: status for _, p, status in site.requests}
    assert fetched["/rss/inrikes.latin1.xml"] == 200
    assert fetched["/sitemap-news.xml"] == fetched["/sitemap-articles.xml"] == 200
    assert fetched["/sport/stafett-gallivare.html"] == 200
    listed = source_lines(run_monitor(config, "sources").stdout)
    assert all(listed[s["name"]].split()[2] == "ok" for s in raw["sources"]), listed


def stored_articles(tmp_path: Path) -> list[tuple[str, str, str, str, str]]:
    with sqlite3.connect(tmp_path / "monitor.db") as db:
        return list(db.execute("SELECT source, url, title, summary, text FROM articles"))


def test_store_text_false_matches_the_text_then_drops_it(
    tmp_path: Path, site: Site, receiver: Receiver
) -> None:
    raw = monitor_config(site, receiver, feeds=("rss/utrikes.xml", "rss/inrikes.latin1.xml"))
    raw["sources"][0]["store_text"] = False
    config = write_config(tmp_path, raw)

    once = run_monitor(config, "once")

    assert once.returncode == 0, once.stderr
    alerts = [json.loads(body) for body in receiver.bodies()]
    assert len(alerts) == UTRIKES_ALERTS
    # Matched on the page text: "Tokajev" is in the body of this article, not in its feed item.
    almaty = next(a for a in alerts if a["article"]["url"].endswith("csto-styrkor-almaty.html"))
    assert "Tokajev" in almaty["matches"] and almaty["snippet"]
    assert all(a["snippet"] and a["article"]["title"] and not a["article"]["summary"] for a in alerts)
    rows = stored_articles(tmp_path)
    utrikes = [r for r in rows if r[0] == "utrikes"]
    assert len(utrikes) == UTRIKES_ALERTS
    assert all(title and not summary and not text for _, _, title, summary, text in utrikes), utrikes
    # Another source keeps its text.
    assert all(text for source, _, _, _, text in rows if source == "inrikes")
    with sqlite3.connect(tmp_path / "monitor.db") as db:
        words = [json.loads(w) for (w,) in db.execute(
            "SELECT words FROM matches JOIN articles ON articles.id = article_id"
            " WHERE articles.source = 'utrikes'")]
    assert len(words) == UTRIKES_ALERTS and all(words)
    # No copy in the HTTP page cache either; the other source's pages are cached.
    cached = [meta.read_text(encoding="utf-8", errors="replace")
              for meta in tmp_path.rglob("meta") if meta.is_file()]
    assert cached and not [m for m in cached if "/nyheter/utrikes/" in m or "kazakstan-uran" in m]
    assert any("/nyheter/inrikes/" in m for m in cached)


def test_sources_test_fetches_each_source_once_and_stores_nothing(
    tmp_path: Path, site: Site, receiver: Receiver
) -> None:
    site.write("robots.txt", "User-agent: *\nDisallow: /rss/inrikes\n")
    config = write_config(tmp_path, monitor_config(site, receiver))

    tested = run_monitor(config, "sources", "--test")

    assert tested.returncode == 1, tested.stderr  # one source is blocked
    blocks = tested.stdout.split("\n" + "inrikes")
    utrikes, rest = blocks[0], "inrikes" + blocks[1]
    inrikes, senaste = rest.split("\nsenaste")
    assert "robots.txt: allowed" in utrikes and "200: 5 entries" in utrikes
    assert "- CSTO-styrkorna på plats i Almaty" in utrikes
    assert "first article: " in utrikes and "characters of text, language sv" in utrikes
    assert "robots.txt: blocked by robots.txt" in inrikes and "entries" not in inrikes
    assert "7 entries" in senaste
    assert "nothing was stored or sent" in tested.stdout
    assert receiver.received == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.yaml", "site"]
    pages = [p for _, p, _ in site.requests if p.endswith(".html")]
    assert len(pages) == 2, pages  # the first article of each source that answered

    only = run_monitor(config, "sources", "--test", "senaste")
    assert only.returncode == 0 and "utrikes" not in only.stdout and "7 entries" in only.stdout
    wrong = run_monitor(config, "sources", "--test", "utrike")
    assert wrong.returncode == 2 and "no source named 'utrike'" in wrong.stderr
