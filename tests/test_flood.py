"""Flood control (issue 13, item 3): `max_per_hour` immediate alerts per clock hour; the rest are
held back, for one catch-up message when the hour ends or, with a `schedule`, for the digest.
Nothing is dropped and no story comes twice."""

from __future__ import annotations

import json
import sqlite3
import time
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from html import escape
from pathlib import Path

import pytest
from conftest import run_monitor, write_config
from servers import Receiver, Site

from monitor.alerts.digest import SEND_NOW, hold_for
from monitor.models import PendingAlert, Watchlist
from monitor.store import BUNDLED, HELD, HOLD_CATCHUP, HOLD_DIGEST, PENDING, MatchRecord, NewAlert, Store

ARTICLES = 50
LIMIT = 5
FEED = ('<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>Flod</title>'
        "<link>{{base}}/</link>{items}</channel></rss>")
ITEM = ("<item><title>{title}</title><link>{{base}}/flod/{n}.html</link><guid>flod-{n}</guid>"
        "<pubDate>{published}</pubDate><description>{summary}</description></item>")


def flood_feed(site: Site, count: int = ARTICLES) -> None:
    """`count` distinct matching stories (short distinct summaries: each a story of its own)."""
    start = datetime.now(UTC) - timedelta(minutes=count)
    items = "".join(ITEM.format(
        n=n, title=escape(f"Tokajev: nyhet nummer {n}"),
        summary=escape(f"Kort notis nummer {n} om läget i Almaty, del {n * 7919 % 1000}."),
        published=format_datetime(start + timedelta(minutes=n), usegmt=True))
        for n in range(count))
    site.write("flod.xml", FEED.format(items=items))


def flood_config(site: Site, receiver: Receiver, **watchlist: object) -> dict:
    return {
        "database": "monitor.db",
        "crawl": {"delay": 0, "timeout": "10s"},
        "sources": [{"name": "flod", "type": "feed", "url": site.url("flod.xml"), "interval": "10m",
                     "full_text": False}],
        "watchlists": [{"name": "tokajev", "query": "tokajev", "notify": ["siem"],
                        "max_per_hour": LIMIT, **watchlist}],
        "notifiers": [{"name": "siem", "type": "webhook", "url": receiver.url}],
    }


def clear_of_the_hour_end(margin: float = 30) -> None:
    """The counting is per clock hour: a test must not straddle an hour's end."""
    now = datetime.now(UTC)
    left = 3600 - (now.minute * 60 + now.second + now.microsecond / 1e6)
    if left < margin:
        time.sleep(left + 1)


def outbox(database: Path) -> list[sqlite3.Row]:
    db = sqlite3.connect(database)
    db.row_factory = sqlite3.Row
    try:
        return db.execute("SELECT * FROM alerts ORDER BY created, rowid").fetchall()
    finally:
        db.close()


def story_url(document: dict) -> str:
    return document["article"]["url"]


def test_fifty_matches_five_alerts_then_one_catch_up_with_the_other_45(
    tmp_path: Path, site: Site, receiver: Receiver
) -> None:
    clear_of_the_hour_end()
    flood_feed(site)
    config = write_config(tmp_path, flood_config(site, receiver))

    first = run_monitor(config, "once")

    assert first.returncode == 0, first.stderr
    alerts = [json.loads(body) for body in receiver.bodies()]
    assert len(alerts) == LIMIT
    assert [("held_back" in a) for a in alerts] == [False] * (LIMIT - 1) + [True]
    assert "catch-up message at" in alerts[-1]["held_back"]
    held = [row for row in outbox(tmp_path / "monitor.db") if row["status"] == HELD]
    assert len(held) == ARTICLES - LIMIT
    assert {row["hold"] for row in held} == {HOLD_CATCHUP}
    hour_end = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
    assert {row["release_at"] for row in held} == {hour_end.isoformat(timespec="seconds")}

    # Only the clock is moved: the hour has ended for the held alerts. Nothing else changes.
    with sqlite3.connect(tmp_path / "monitor.db") as db:
        db.execute("UPDATE alerts SET release_at = '2000-01-01T00:00:00+00:00' WHERE status = ?",
                   [HELD])
    second = run_monitor(config, "once")
    third = run_monitor(config, "once")

    assert second.returncode == third.returncode == 0, second.stderr + third.stderr
    bodies = [json.loads(body) for body in receiver.bodies()]
    assert len(bodies) == LIMIT + 1, "one catch-up message, once"
    catchup = bodies[-1]
    assert catchup["kind"] == "catchup" and catchup["watchlists"] == ["tokajev"]
    assert len(catchup["stories"]) == ARTICLES - LIMIT
    assert f"{ARTICLES - LIMIT} more stories for watchlist tokajev" in catchup["note"]
    sent = [story_url(a) for a in alerts] + [story_url(s) for s in catchup["stories"]]
    assert len(sent) == len(set(sent)) == ARTICLES, "every story once, none twice"
    rows = outbox(tmp_path / "monitor.db")
    assert {row["status"] for row in rows if row["kind"] == "alert"} <= {"sent", BUNDLED}
    assert {row["bundle"] for row in rows if row["status"] == BUNDLED} == {catchup["id"]}


def test_with_a_schedule_the_overflow_goes_into_the_digest(
    tmp_path: Path, site: Site, receiver: Receiver
) -> None:
    clear_of_the_hour_end()
    flood_feed(site)
    config = write_config(tmp_path, flood_config(site, receiver, schedule="0 7 * * *",
                                                 timezone="America/New_York"))

    assert run_monitor(config, "once").returncode == 0
    alerts = [json.loads(body) for body in receiver.bodies()]
    assert len(alerts) == LIMIT
    assert "in the next digest" in alerts[-1]["held_back"]
    assert "07:00" in alerts[-1]["held_back"]
    held = [row for row in outbox(tmp_path / "monitor.db") if row["status"] == HELD]
    assert {row["hold"] for row in held} == {HOLD_DIGEST} and len(held) == ARTICLES - LIMIT

    digest = run_monitor(config, "digest")

    assert digest.returncode == 0, digest.stderr
    assert f"digest: {ARTICLES - LIMIT} stories for tokajev → siem" in digest.stdout
    (message,) = [json.loads(body) for body in receiver.bodies()[LIMIT:]]
    assert message["kind"] == "digest" and message["timezone"] == "America/New_York"
    sent = [story_url(a) for a in alerts] + [story_url(s) for s in message["stories"]]
    assert len(sent) == len(set(sent)) == ARTICLES


def test_alerts_held_for_a_digest_the_watchlist_no_longer_has_go_out_as_a_catch_up(
    tmp_path: Path, site: Site, receiver: Receiver
) -> None:
    clear_of_the_hour_end()
    flood_feed(site, 8)
    config = write_config(tmp_path, flood_config(site, receiver, schedule="0 7 * * *"))
    assert run_monitor(config, "once").returncode == 0
    assert len(receiver.bodies()) == LIMIT

    # The user drops the schedule: no digest will ever carry the three held alerts.
    write_config(tmp_path, flood_config(site, receiver))
    assert run_monitor(config, "once").returncode == 0

    (catchup,) = [json.loads(body) for body in receiver.bodies()[LIMIT:]]
    assert catchup["kind"] == "catchup" and len(catchup["stories"]) == 8 - LIMIT
    assert {row["status"] for row in outbox(tmp_path / "monitor.db")} == {"sent", BUNDLED}


# --- the store: counting an hour, bundling -------------------------------------------------


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store.open(tmp_path / "monitor.db")


def alert_story(store: Store, n: int, watchlist: str, notifiers: tuple[str, ...],
                hold: str | None = None) -> list[str]:
    """Article n, a story of its own, with an alert to each notifier; returns the alert ids."""
    from monitor.models import Entry, PollResult

    store.save_poll_result(PollResult("svt", 200, (Entry(f"https://svt.se/{n}", f"g{n}", f"Rubrik {n}",
                                                         f"Ingress {n}", None),)), "u", False)
    article = store.articles_in_state("match")[-1]
    story = store.assign_story(article.id, None, None)
    ids = [f"a{n}-{notifier}" for notifier in notifiers]
    store.save_matches(article.id, [MatchRecord(watchlist, ("w",), "s")],
                       [NewAlert(i, watchlist, notifier, "{}", hold=hold)
                        for i, notifier in zip(ids, notifiers, strict=True)], story)
    return ids


def test_the_hour_counts_stories_sent_this_hour_not_rows_nor_held_ones(store: Store) -> None:
    hour = datetime.now(UTC).replace(minute=0, second=0, microsecond=0).isoformat(timespec="seconds")
    alert_story(store, 1, "w", ("siem", "mail"))
    alert_story(store, 2, "w", ("siem", "mail"))
    alert_story(store, 3, "w", ("siem",), hold=HOLD_CATCHUP)
    alert_story(store, 4, "other", ("siem",))
    last_hour = alert_story(store, 5, "w", ("siem",))
    # The clock only: this alert was made in the hour before.
    store.db.execute("UPDATE alerts SET created = '2000-01-01T10:59:59+00:00' WHERE id = ?", last_hour)

    assert store.immediate_stories_since("w", hour) == 2


def test_hold_for_sends_up_to_the_limit_and_the_last_says_what_follows(store: Store) -> None:
    now = datetime(2026, 11, 30, 17, 20, tzinfo=UTC)
    watchlist = Watchlist("w", "q", ("siem",), max_per_hour=3, timezone="Asia/Almaty")
    decisions = []
    for n in range(5):
        decisions.append(hold_for(store, watchlist, now))
        alert_story(store, n, "w", ("siem",), hold=decisions[-1].hold)
        store.db.execute("UPDATE alerts SET created = ?", [now.isoformat()])  # the clock only

    assert decisions[:2] == [SEND_NOW, SEND_NOW]
    assert decisions[2].hold is None
    # 18:00 UTC is 23:00 in Almaty (UTC+5).
    assert "catch-up message at 23:00 (Asia/Almaty)" in decisions[2].held_back
    assert [(d.hold, d.release_at) for d in decisions[3:]] == [
        (HOLD_CATCHUP, "2026-11-30T18:00:00+00:00")] * 2
    scheduled = Watchlist("w", "q", ("siem",), max_per_hour=3, schedule="30 6 * * 1-5")
    assert hold_for(store, scheduled, now).hold == HOLD_DIGEST
    assert hold_for(store, Watchlist("d", "q", (), delivery="digest"), now).hold == HOLD_DIGEST


def test_bundling_is_one_transaction_and_an_alert_is_bundled_once(store: Store) -> None:
    ids = alert_story(store, 1, "w", ("siem",), hold=HOLD_CATCHUP)
    ids += alert_story(store, 2, "w", ("siem",), hold=HOLD_CATCHUP)

    def message(name: str) -> PendingAlert:
        return PendingAlert(name, "siem", "w", None, "{}", 0, kind="catchup")

    assert store.bundle_held(message("m1"), ids)
    # A second message for an alert already carried by the first is not written at all.
    assert not store.bundle_held(message("m2"), [*ids[1:], *alert_story(store, 3, "w", ("siem",),
                                                                         hold=HOLD_CATCHUP)])

    rows = {row["id"]: row for row in store.db.query("SELECT * FROM alerts")}
    assert "m2" not in rows
    assert rows["m1"]["status"] == PENDING and rows["m1"]["kind"] == "catchup"
    assert [(rows[i]["status"], rows[i]["bundle"]) for i in ids] == [(BUNDLED, "m1")] * 2
    assert rows["a3-siem"]["status"] == HELD, "rolled back with the message"
