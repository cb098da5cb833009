"""Source trouble is news too: one notice when a source has failed for longer than alert_after or
gone silent while it normally has news, one when it recovers, nothing in between."""

from __future__ import annotations

import json
import sqlite3
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from conftest import monitor_config, run_monitor, write_config
from servers import Receiver, Site

from monitor.alerts.trouble import report_source_trouble
from monitor.models import (
    Config,
    CrawlSettings,
    OperationsSettings,
    Source,
    WebhookNotifier,
)
from monitor.store import Store

FEED = "/rss/utrikes.xml"
NOW = datetime(2026, 3, 20, 12, 0, tzinfo=UTC)


def notices(receiver: Receiver) -> list[dict]:
    documents = [json.loads(body) for body in receiver.bodies()]
    return [doc for doc in documents if doc["kind"] == "source"]


def fetching_resumes(database: Path) -> None:
    """As if the failing source's backoff (one polling interval, doubling) had run out: the next
    run polls it at once. Only the clock is skipped."""
    db = sqlite3.connect(database)
    try:
        with db:
            db.execute("UPDATE sources SET last_fetch = '2000-01-01T00:00:00+00:00'")
    finally:
        db.close()


def test_a_failing_source_is_reported_once_after_alert_after_and_once_when_it_recovers(
    tmp_path: Path, site: Site, receiver: Receiver
) -> None:
    settings = monitor_config(site, receiver, feeds=(FEED.lstrip("/"),))
    settings["operations"] = {"notify": ["siem"], "alert_after": "3s"}
    config = write_config(tmp_path, settings)
    site.failures[FEED] = 500

    first = run_monitor(config, "once")
    assert first.returncode == 0, first.stderr
    assert notices(receiver) == [], "failing for less than alert_after is not news yet"

    time.sleep(3.5)
    second = run_monitor(config, "once")
    third = run_monitor(config, "once")

    assert second.returncode == third.returncode == 0, second.stderr + third.stderr
    (failing,) = notices(receiver)
    assert failing["state"] == "failing"
    assert failing["source"] == "utrikes" and failing["url"] == site.url(FEED)
    assert failing["consecutive_failures"] >= 1 and "500" in failing["last_error"]
    assert "utrikes has failed every fetch for" in failing["problem"]
    assert failing["last_new"] is None

    del site.failures[FEED]
    fetching_resumes(tmp_path / "monitor.db")
    fourth = run_monitor(config, "once")
    fifth = run_monitor(config, "once")

    assert fourth.returncode == fifth.returncode == 0, fourth.stderr + fifth.stderr
    assert [n["state"] for n in notices(receiver)] == ["failing", "recovered"]
    recovered = notices(receiver)[1]
    assert recovered["consecutive_failures"] == 0 and recovered["last_error"] is None
    assert recovered["last_new"] is not None
    assert recovered["problem"].startswith("utrikes is fetched again after failing for")


# --- silence, at the store level: articles first seen at chosen times ------------------------


def trouble_config(tmp_path: Path, names: tuple[str, ...], notify: tuple[str, ...] = ("siem",),
                   alert_after: int = 6 * 3600) -> Config:
    return Config(
        path=tmp_path / "config.yaml", database=tmp_path / "monitor.db",
        sources=tuple(Source(name, "feed", f"https://{name}.example/rss", 600) for name in names),
        watchlists=(),
        notifiers=(WebhookNotifier(name="siem", type="webhook", url="http://127.0.0.1:9/hook"),),
        crawl=CrawlSettings(user_agent="test"),
        operations=OperationsSettings(notify=notify, alert_after=alert_after,
                                      silent_after=48 * 3600),
    )


def add_source(store: Store, name: str, seen: list[datetime]) -> None:
    with store.db.atomic():
        store.db.execute("INSERT INTO sources (name, url) VALUES (?, ?)", [name, f"https://{name}.example/rss"])
        for i, when in enumerate(seen):
            store.db.execute(
                "INSERT INTO articles (source, url, link, first_seen, content_hash, state)"
                " VALUES (?, ?, ?, ?, '', 'done')",
                [name, f"https://{name}.example/{i}", f"https://{name}.example/{i}",
                 when.isoformat(timespec="seconds")])


def every(interval: timedelta, until: datetime, days: int = 14) -> list[datetime]:
    start = until - timedelta(days=days)
    count = int((until - start) / interval)
    return [until - k * interval for k in range(count + 1)]


def outbox(store: Store) -> list[dict]:
    rows = store.db.execute("SELECT kind, notifier, watchlist, status, body FROM alerts ORDER BY rowid")
    return [{"kind": r[0], "notifier": r[1], "watchlist": r[2], "status": r[3], **json.loads(r[4])}
            for r in rows]


def test_a_busy_source_that_goes_quiet_is_silent_and_recovers_with_its_next_article(
    tmp_path: Path
) -> None:
    store = Store.open(tmp_path / "monitor.db")
    last = NOW - timedelta(hours=60)
    add_source(store, "busy", every(timedelta(hours=6), last))  # 4 a day, then nothing for 60 h
    config = trouble_config(tmp_path, ("busy",))

    assert report_source_trouble(store, config, NOW) == 1
    assert report_source_trouble(store, config, NOW + timedelta(hours=1)) == 0, "no repeats"

    (notice,) = outbox(store)
    assert (notice["kind"], notice["notifier"], notice["status"]) == ("source", "siem", "pending")
    assert notice["state"] == "silent" and notice["source"] == "busy"
    assert notice["since"] == notice["last_new"] == last.isoformat(timespec="seconds")
    assert notice["problem"] == ("busy has had nothing new for 2d 12h; it normally has about 8 new "
                                 "articles in 2d (57 in the 14 days before its last one)")
    assert store.trouble_facts("busy")["trouble"] == "silent"

    add_source_article(store, "busy", NOW + timedelta(hours=2))
    assert report_source_trouble(store, config, NOW + timedelta(hours=2)) == 1
    assert [n["state"] for n in outbox(store)] == ["silent", "recovered"]
    assert outbox(store)[1]["problem"] == "busy has new articles again after none for 2d 14h"
    assert store.trouble_facts("busy")["trouble"] is None
    store.close()


def add_source_article(store: Store, name: str, when: datetime) -> None:
    with store.db.atomic():
        store.db.execute(
            "INSERT INTO articles (source, url, link, first_seen, content_hash, state)"
            " VALUES (?, ?, ?, ?, '', 'done')",
            [name, f"https://{name}.example/late", f"https://{name}.example/late",
             when.isoformat(timespec="seconds")])


def test_a_source_that_rarely_publishes_is_not_silent_after_the_same_quiet(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "monitor.db")
    last = NOW - timedelta(hours=60)
    # One a day: about 2 expected in 48 h, so 60 quiet hours are no news.
    add_source(store, "daily", every(timedelta(days=1), last))
    # Busy, but only for a week so far: too little history to call a silence unusual.
    add_source(store, "young", every(timedelta(hours=6), last, days=1))
    # Busy and quiet for less than silent_after.
    add_source(store, "recent", every(timedelta(hours=6), NOW - timedelta(hours=40)))
    config = trouble_config(tmp_path, ("daily", "young", "recent"))

    assert report_source_trouble(store, config, NOW) == 0
    assert outbox(store) == []
    store.close()


def test_failing_wins_over_silent_and_a_change_of_trouble_is_one_notice(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "monitor.db")
    add_source(store, "busy", every(timedelta(hours=6), NOW - timedelta(hours=60)))
    config = trouble_config(tmp_path, ("busy",))
    report_source_trouble(store, config, NOW)
    with store.db.atomic():
        store.db.execute("UPDATE sources SET failing_since = ?, consecutive_failures = 9,"
                         " last_error = 'HTTP 503'", [(NOW - timedelta(hours=7)).isoformat()])

    assert report_source_trouble(store, config, NOW + timedelta(minutes=1)) == 1
    assert [n["state"] for n in outbox(store)] == ["silent", "failing"]
    failing = outbox(store)[1]
    assert failing["since"] == (NOW - timedelta(hours=7)).isoformat()
    assert failing["problem"] == "busy has failed every fetch for 7h 1m (9 in a row); last error: HTTP 503"
    store.close()


def test_without_operations_notify_nothing_is_written(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "monitor.db")
    add_source(store, "busy", every(timedelta(hours=6), NOW - timedelta(hours=60)))

    assert report_source_trouble(store, trouble_config(tmp_path, ("busy",), notify=()), NOW) == 0
    assert outbox(store) == []
    assert store.trouble_facts("busy")["trouble"] is None
    store.close()
