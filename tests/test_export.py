"""`monitor export`: stored articles and a watchlist's matched stories as CSV, JSON lines and
Atom; each format is read back with the library that reads it (csv, json, feedparser)."""

from __future__ import annotations

import csv
import io
import json
from datetime import timedelta
from pathlib import Path

import feedparser
import pytest
from conftest import monitor_config, run_monitor, write_config
from servers import Site

from monitor.config import load_config
from monitor.errors import MonitorError
from monitor.export import atom_feed, export
from monitor.models import Config, Entry, PageResult, PollResult
from monitor.store import MatchRecord, Store

WEEK = timedelta(days=7)


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store.open(tmp_path / "monitor.db")


@pytest.fixture
def config(tmp_path: Path, site: Site) -> Config:
    return load_config(write_config(tmp_path, monitor_config(site)))


def add(store: Store, n: int, title: str, source: str = "svt", story: int | None = None,
        watchlist: str | None = None) -> tuple[int, int]:
    entry = Entry(url=f"https://{source}.example/{n}?a=1&b=<2>", guid=f"g{n}", title=title,
                  summary=f"Ingress {n}", published=f"2026-01-0{n % 9 + 1}T10:00:00+00:00")
    [article] = store.save_poll_result(PollResult(source, 200, entries=(entry,)), "u", True).new
    store.save_page(PageResult(article_id=article, url=entry.url, text=f"Text {n} om CSTO."))
    story_id = store.assign_story(article, story, None)
    matches = [MatchRecord(watchlist, ("CSTO", "Tokajev"), f"… [CSTO] & <{n}> …")] if watchlist else []
    store.save_matches(article, matches, [], story_id)
    return article, story_id


def text(chunks: object) -> str:
    return "".join(chunks)  # type: ignore[arg-type]


def test_articles_round_trip_through_csv_and_jsonl(store: Store, config: Config) -> None:
    add(store, 1, "Första, med \"citat\"\noch radbrytning")
    add(store, 2, "Andra: åäö")

    rows = list(csv.DictReader(io.StringIO(text(export(store, config, "csv", WEEK)))))
    lines = [json.loads(line) for line in text(export(store, config, "jsonl", WEEK)).splitlines()]

    assert [r["title"] for r in rows] == ["Andra: åäö", "Första, med \"citat\"\noch radbrytning"]
    assert [r["title"] for r in lines] == [r["title"] for r in rows]
    assert lines[1]["link"] == "https://svt.example/1?a=1&b=<2>"
    assert lines[1]["text"] == "Text 1 om CSTO." and rows[1]["summary"] == "Ingress 1"
    assert lines[0]["story_uid"] and lines[0]["story_uid"] == rows[0]["story_uid"]


def test_a_watchlist_exports_one_row_per_story_with_words_and_snippet(
    store: Store, config: Config
) -> None:
    _, story = add(store, 1, "CSTO i Almaty", watchlist="kazakstan-csto")
    add(store, 2, "CSTO i Almaty (kopia)", source="dn", story=story, watchlist="kazakstan-csto")
    add(store, 3, "Tokajev och CSTO", watchlist="kazakstan-csto")
    add(store, 4, "Väder")

    lines = [json.loads(line) for line in
             text(export(store, config, "jsonl", WEEK, "kazakstan-csto")).splitlines()]
    rows = list(csv.DictReader(io.StringIO(text(export(store, config, "csv", WEEK, "kazakstan-csto")))))

    assert [r["title"] for r in lines] == ["Tokajev och CSTO", "CSTO i Almaty"]
    assert lines[0]["words"] == ["CSTO", "Tokajev"] and rows[0]["words"] == "CSTO Tokajev"
    assert lines[1]["snippet"] == "… [CSTO] & <1> …" and lines[1]["watchlist"] == "kazakstan-csto"
    assert [r["story_uid"] for r in rows] == [r["story_uid"] for r in lines]


def test_atom_feed_parses_with_one_entry_per_story_newest_first(store: Store, config: Config) -> None:
    _, story = add(store, 1, "CSTO i Almaty & <Bishkek>", watchlist="kazakstan-csto")
    add(store, 2, "CSTO i Almaty (kopia)", source="dn", story=story, watchlist="kazakstan-csto")
    add(store, 3, "Tokajev och CSTO\x0b", watchlist="kazakstan-csto")

    feed = feedparser.parse(atom_feed(store, config, "kazakstan-csto", WEEK))

    assert not feed.bozo, feed.bozo_exception
    assert feed.version == "atom10"
    assert feed.feed.title == "monitor: kazakstan-csto"
    assert [e.title for e in feed.entries] == ["Tokajev och CSTO", "CSTO i Almaty & <Bishkek>"]
    assert feed.entries[1].link == "https://svt.example/1?a=1&b=<2>"
    assert feed.entries[1].summary == "… [CSTO] & <1> …"
    assert all(e.id.startswith("urn:uuid:") for e in feed.entries)
    assert len({e.id for e in feed.entries}) == 2
    assert [t.term for t in feed.entries[0].tags] == ["CSTO", "Tokajev"]
    assert feed.entries[0].published_parsed and feed.entries[0].updated_parsed


def test_bad_export_options_are_named(store: Store, config: Config) -> None:
    with pytest.raises(MonitorError, match="--watchlist: no watchlist 'nope'"):
        text(export(store, config, "jsonl", WEEK, "nope"))
    with pytest.raises(MonitorError, match="--format atom needs --watchlist"):
        text(export(store, config, "atom", WEEK))


def test_export_command_writes_an_atom_feed_of_a_real_cycle(tmp_path: Path, site: Site) -> None:
    config = write_config(tmp_path, monitor_config(site))
    assert run_monitor(config, "once").returncode == 0

    result = run_monitor(config, "export", "--format", "atom", "--watchlist", "kazakstan-csto",
                         "--output", str(tmp_path / "feed.atom"))
    articles = run_monitor(config, "export", "--format", "csv")

    assert result.returncode == 0, result.stderr
    feed = feedparser.parse((tmp_path / "feed.atom").read_bytes())
    assert not feed.bozo and len(feed.entries) == 5
    assert all(e.link.startswith(site.url("/")) for e in feed.entries)
    stored = list(csv.DictReader(io.StringIO(articles.stdout)))
    assert {e.link for e in feed.entries} <= {row["link"] for row in stored}
