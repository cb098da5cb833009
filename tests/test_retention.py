"""Retention: old text emptied, old rows deleted, never an alert still to be sent, never the
identity that keeps an old article from alerting again. Fresh real SQLite files; one test runs
the real CLI against the local news site and a webhook receiver."""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from conftest import monitor_config, run_monitor, write_config
from servers import Receiver, Site

from monitor.models import Entry, PageResult, PollResult, RetentionSettings
from monitor.retention import prune
from monitor.store import MatchRecord, NewAlert, Store

DAY = 86400
RETENTION = RetentionSettings(text=90 * DAY, articles=365 * DAY)


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store.open(tmp_path / "monitor.db")


def entry(n: int, url: str | None = None) -> Entry:
    return Entry(url=url or f"https://svt.example/{n}", guid=f"g{n}", title=f"Rubrik {n}",
                 summary=f"Ingress {n}", published=None)


def add(store: Store, n: int, alert: str | None = None) -> int:
    [article] = store.save_poll_result(PollResult("svt", 200, entries=(entry(n),)), "u", True).new
    store.save_page(PageResult(article_id=article, url=f"https://svt.example/{n}", text=f"Text {n}"))
    story = store.assign_story(article, None, None)
    alerts = [NewAlert(f"alert-{n}", "w", "siem", "{}")] if alert else []
    store.save_matches(article, [MatchRecord("w", ("Rubrik",), "[Rubrik]")], alerts, story)
    if alert == "sent":
        store.mark_sent(f"alert-{n}")
    return article


def later(days: int) -> datetime:
    return datetime.now(UTC) + timedelta(days=days)


def rows(store: Store, sql: str) -> list[tuple]:
    return [tuple(row) for row in store.db.execute(sql)]


def test_old_text_is_emptied_and_the_rest_kept(store: Store) -> None:
    add(store, 1)
    store.save_poll_result(PollResult("svt", 200, entries=(entry(2),)), "u", True)  # not done yet

    report = prune(store, RETENTION, now=later(100))

    assert report.texts_emptied == 1 and report.articles_deleted == 0
    assert rows(store, "SELECT title, summary, text FROM articles ORDER BY id") == [
        ("Rubrik 1", "", ""), ("Rubrik 2", "Ingress 2", "")]
    assert rows(store, "SELECT words, snippet FROM matches") == [('["Rubrik"]', "[Rubrik]")]
    assert [a.id for a in store.search_candidates('"text"*', "2000")] == []


def test_old_rows_go_but_alerts_still_to_send_keep_theirs(store: Store) -> None:
    add(store, 1, alert="sent")
    pending = add(store, 2, alert="pending")
    add(store, 3)
    failed = add(store, 4, alert="failed")
    store.give_up("alert-4", "refused")

    report = prune(store, RETENTION, now=later(400))

    assert (report.articles_deleted, report.kept_for_alerts) == (2, 2)
    assert rows(store, "SELECT id FROM articles ORDER BY id") == [(pending,), (failed,)]
    assert rows(store, "SELECT id, status FROM alerts ORDER BY id") == [
        ("alert-2", "pending"), ("alert-4", "failed")]
    assert rows(store, "SELECT article_id FROM matches ORDER BY article_id") == [(pending,), (failed,)]
    assert rows(store, "SELECT count(*) FROM stories") == [(2,)]
    assert sorted(rows(store, "SELECT url FROM pruned")) == [
        ("https://svt.example/1",), ("https://svt.example/3",)]
    assert [a.id for a in store.search_candidates('"rubrik"*', "2000")] == [failed, pending]


def test_a_pruned_article_seen_again_is_not_new(store: Store) -> None:
    add(store, 1, alert="sent")
    prune(store, RETENTION, now=later(400))

    again = store.save_poll_result(PollResult("svt", 200, entries=(
        entry(1), entry(1, url="https://svt.example/1?utm_source=rss"),
        Entry(url="https://svt.example/moved", guid="g1", title="Rubrik 1", summary="", published=None),
        entry(5))), "u", True)

    assert len(again.new) == 1 and again.revised == []
    assert rows(store, "SELECT url FROM articles") == [("https://svt.example/5",)]


def test_space_goes_back_and_an_old_database_turns_incremental(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as db:  # a database made before incremental vacuum
        db.execute("CREATE TABLE notes (x)")
    store = Store.open(path)
    assert rows(store, "PRAGMA auto_vacuum") == [(0,)]
    for n in range(200):
        add(store, n)
    store.db.execute("UPDATE articles SET text = ?", ["x" * 2000])
    store.db.conn.commit()

    report = prune(store, RETENTION, now=later(400))

    assert report.articles_deleted == 200
    assert rows(store, "PRAGMA auto_vacuum") == [(2,)]
    assert rows(store, "PRAGMA freelist_count") == [(0,)]
    assert report.size_after < report.size_before
    assert rows(Store.open(tmp_path / "new.db"), "PRAGMA auto_vacuum") == [(2,)]


def test_prune_command_then_an_old_article_in_the_feed_sends_no_alert(
    tmp_path: Path, site: Site, receiver: Receiver
) -> None:
    raw = monitor_config(site, receiver, feeds=("rss/utrikes.xml",))
    raw["retention"] = {"text": "90d", "articles": "365d"}
    config = write_config(tmp_path, raw)
    assert run_monitor(config, "once").returncode == 0
    alerted = len(receiver.received)
    assert alerted > 0
    with sqlite3.connect(tmp_path / "monitor.db") as db:
        # Two years on: every article is past retention, and the feed is polled afresh.
        db.execute("UPDATE articles SET first_seen = '2020-01-01T00:00:00+00:00'")
        db.execute("UPDATE alerts SET created = '2020-01-01T00:00:00+00:00'")
        db.execute("UPDATE sources SET etag = NULL, last_modified = NULL")
        stored = db.execute("SELECT count(*) FROM articles").fetchone()[0]

    pruned = run_monitor(config, "prune")
    sources = run_monitor(config, "sources")
    with sqlite3.connect(tmp_path / "monitor.db") as db:
        # One identity forgotten, as if it had never been kept: that one is new again.
        forgotten = db.execute("SELECT url FROM pruned WHERE url LIKE '%kazakstan-protester%'"
                               ).fetchone()[0]
        db.execute("DELETE FROM pruned WHERE url = ?", [forgotten])
    again = run_monitor(config, "once")

    assert pruned.returncode == 0, pruned.stderr
    assert f"{stored} articles deleted (0 kept for alerts not yet sent)" in pruned.stdout
    assert sources.stdout.splitlines()[-1].startswith("database: ")
    assert again.returncode == 0, again.stderr
    with sqlite3.connect(tmp_path / "monitor.db") as db:
        assert db.execute("SELECT url FROM articles").fetchall() == [(forgotten,)]
    later_alerts = [json.loads(body)["article"]["url"] for body in receiver.bodies()[alerted:]]
    assert later_alerts == [forgotten]  # the pruned ones stay quiet; the forgotten one alerts
