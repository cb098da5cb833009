"""Digests (issue 13, item 2): a digest watchlist's alerts are held and go out on its schedule (the
daemon's cron job, or `monitor digest` for cron users) as one message per digest and notifier,
stories grouped by watchlist and newest first; a story is in exactly one digest, also across
restarts.

Checked through webhooks (the body is the digest document). What an email digest looks like is
the renderer's (monitor/alerts/render.py) and is tested with it."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import UTC, datetime
from html import escape
from pathlib import Path

from conftest import run_monitor, start_daemon, stop_daemon, wait_for, write_config
from servers import Mailbox, Receiver, Site, webhook_receiver

FEED = ('<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>Nyheter</title>'
        "<link>{{base}}/</link>{items}</channel></rss>")
ITEM = ("<item><title>{title}</title><link>{{base}}/a/{key}.html</link><guid>{key}</guid>"
        "<pubDate>{published}</pubDate><description>{summary}</description></item>")
# key → (headline, publication time): distinct stories, published out of order.
STORIES = {
    "t1": ("Tokajev talar till nationen", "Wed, 25 Nov 2026 08:00:00 +0000"),
    "t2": ("Tokajev byter regering", "Wed, 25 Nov 2026 10:00:00 +0000"),
    "t3": ("Tokajev reser till Moskva", "Wed, 25 Nov 2026 09:00:00 +0000"),
    "p1": ("Putin kommenterar läget", "Wed, 25 Nov 2026 07:00:00 +0000"),
    "p2": ("Putin skickar styrkor", "Wed, 25 Nov 2026 11:00:00 +0000"),
}
LATER = {
    "t4": ("Tokajev håller presskonferens", "Thu, 26 Nov 2026 06:00:00 +0000"),
    "p3": ("Putin ringer Erdoğan", "Thu, 26 Nov 2026 05:00:00 +0000"),
}


STORIES_AND_LATER = STORIES | LATER


def publish(site: Site, stories: dict[str, tuple[str, str]]) -> None:
    items = "".join(ITEM.format(key=key, title=escape(title), published=published,
                                summary=escape(f"Notis {key}: {title.lower()}, enligt uppgifter."))
                    for key, (title, published) in stories.items())
    site.write("nyheter.xml", FEED.format(items=items))


def digest_config(site: Site, siem: Receiver, soc: Receiver | None = None, schedule: str | None = None,
                  timezone: str = "Asia/Almaty", send_empty: bool = False,
                  mailbox: Mailbox | None = None) -> dict:
    notifiers = [{"name": "siem", "type": "webhook", "url": siem.url}]
    if soc:
        notifiers.append({"name": "soc", "type": "webhook", "url": soc.url})
    if mailbox:
        notifiers.append({"name": "analytiker", "type": "email", "to": ["analys@example.se"],
                          "from": "monitor@example.se",
                          "smtp": {"host": mailbox.host, "port": mailbox.port, "starttls": False}})
    digest = {"delivery": "digest", "timezone": timezone, **({"schedule": schedule} if schedule else {})}
    return {
        "database": "monitor.db",
        "crawl": {"delay": 0, "timeout": "10s"},
        "sources": [{"name": "nyheter", "type": "feed", "url": site.url("nyheter.xml"),
                     "interval": "10m", "full_text": False}],
        "watchlists": [
            {"name": "tokajev", "query": "title:tokajev", "notify": [n["name"] for n in notifiers],
             **digest, **({"send_empty": True} if send_empty else {})},
            {"name": "putin", "query": "title:putin",
             "notify": ["siem", *(["analytiker"] if mailbox else [])], **digest},
            {"name": "direkt", "query": "title:ingenting-matchar-detta", "notify": ["siem"]},
        ],
        "notifiers": notifiers,
    }


def keys(digest: dict) -> list[tuple[str, str]]:
    """(watchlist, story key) of each story, in the digest's order."""
    return [(s["watchlist"], s["article"]["url"].rsplit("/", 1)[1].removesuffix(".html"))
            for s in digest["stories"]]


def bodies(receiver: Receiver) -> list[dict]:
    return [json.loads(body) for body in receiver.bodies()]


def test_monitor_digest_sends_one_digest_per_notifier_and_each_story_once(
    tmp_path: Path, site: Site, receiver: Receiver
) -> None:
    publish(site, STORIES)
    with webhook_receiver() as soc:
        config = write_config(tmp_path, digest_config(site, receiver, soc))

        once = run_monitor(config, "once")
        assert once.returncode == 0, once.stderr
        assert receiver.received == [] and soc.received == [], "a digest watchlist holds its alerts"

        first = run_monitor(config, "digest")

        assert first.returncode == 0, first.stderr
        assert "digest: 5 stories for tokajev, putin → siem" in first.stdout
        assert "digest: 3 stories for tokajev → soc" in first.stdout
        (siem_digest,) = bodies(receiver)
        (soc_digest,) = bodies(soc)
        assert siem_digest["kind"] == "digest" and siem_digest["timezone"] == "Asia/Almaty"
        assert siem_digest["watchlists"] == ["tokajev", "putin"]
        assert keys(siem_digest) == [("tokajev", "t2"), ("tokajev", "t3"), ("tokajev", "t1"),
                                     ("putin", "p2"), ("putin", "p1")]
        assert soc_digest["watchlists"] == ["tokajev"]
        assert keys(soc_digest) == [("tokajev", "t2"), ("tokajev", "t3"), ("tokajev", "t1")]
        assert siem_digest["period"]["from"] is None and siem_digest["note"] is None

        again = run_monitor(config, "digest")
        assert again.returncode == 0, again.stderr
        assert "nothing held" in again.stdout
        assert len(receiver.received) == len(soc.received) == 1, "an empty digest is not sent"

        publish(site, STORIES | LATER)
        assert run_monitor(config, "once").returncode == 0
        assert run_monitor(config, "digest").returncode == 0

        assert keys(bodies(receiver)[1]) == [("tokajev", "t4"), ("putin", "p3")]
        assert keys(bodies(soc)[1]) == [("tokajev", "t4")]
        assert bodies(receiver)[1]["period"]["from"] == siem_digest["created"]

        write_config(tmp_path, digest_config(site, receiver, soc, send_empty=True))
        empty = run_monitor(config, "digest")

        assert empty.returncode == 0, empty.stderr
        for got in (bodies(receiver), bodies(soc)):
            assert len(got) == 3 and got[2]["stories"] == [] and got[2]["note"]
        every = [key for digest in bodies(receiver) for key in keys(digest)]
        assert len(every) == len(set(every)) == len(STORIES | LATER)


def test_monitor_digest_names_the_watchlists_it_knows(tmp_path: Path, site: Site,
                                                     receiver: Receiver) -> None:
    config = write_config(tmp_path, digest_config(site, receiver))

    unknown = run_monitor(config, "digest", "tokajev", "okänd")
    immediate = run_monitor(config, "digest", "direkt")

    assert unknown.returncode == immediate.returncode == 2
    assert "no watchlist named 'okänd' (watchlists: tokajev, putin, direkt)" in unknown.stderr
    assert "'direkt' has no digest" in immediate.stderr
    assert "with a digest: tokajev, putin" in immediate.stderr


# --- the daemon -----------------------------------------------------------------------------








def received_stories(receiver: Receiver) -> list[tuple[str, str]]:
    return [key for body in bodies(receiver) for key in keys(body)]


def run_daemon(config: Path, log: Path, until: Callable[[], bool]) -> bool:
    """Start the daemon, wait for its first cycle and then for `until`, stop it with SIGTERM.
    Whether the cycle ended within the minute it started (before the next cron minute)."""
    daemon = start_daemon(config, log)
    started = datetime.now(UTC)
    try:
        wait_for(lambda: "cycle:" in log.with_suffix(".out").read_text(), daemon, 30)
        same_minute = datetime.now(UTC).minute == started.minute
        wait_for(until, daemon, 75)
        time.sleep(1)  # the log line is written after the receiver answered
    finally:
        assert stop_daemon(daemon) == 0
    return same_minute


def test_daemon_sends_the_digest_on_its_cron_schedule_and_never_a_story_twice(
    tmp_path: Path, site: Site, receiver: Receiver, mailbox: Mailbox
) -> None:
    publish(site, STORIES)
    # First a daemon whose digest is far off: it holds the alerts, and is stopped.
    config = write_config(tmp_path, digest_config(site, receiver, schedule="0 0 1 1 *",
                                                  mailbox=mailbox))
    run_daemon(config, tmp_path / "first.log", lambda: True)
    assert receiver.received == []

    # Restarted with a digest every minute and two more stories. Started early in a minute, its
    # first cycle ends before the minute does, so that all its alerts make one digest.
    publish(site, STORIES | LATER)
    write_config(tmp_path, digest_config(site, receiver, schedule="* * * * *", mailbox=mailbox))
    if datetime.now(UTC).second > 45:
        time.sleep(61 - datetime.now(UTC).second)
    expected = len(STORIES | LATER)
    one_minute = run_daemon(config, tmp_path / "second.log",
                            lambda: len(received_stories(receiver)) >= expected)

    every = received_stories(receiver)
    assert len(every) == len(set(every)) == expected, "every story once, none twice"
    digest = bodies(receiver)[0]
    assert digest["kind"] == "digest" and digest["timezone"] == "Asia/Almaty"
    assert digest["watchlists"] == ["tokajev", "putin"]
    assert len(mailbox.messages) == len(receiver.received), "one email per digest"
    if one_minute:  # else a very slow first cycle ran over the minute: its alerts make two
        assert len(receiver.received) == 1, "one digest for the minute"
        assert keys(digest) == [("tokajev", "t4"), ("tokajev", "t2"), ("tokajev", "t3"),
                                ("tokajev", "t1"), ("putin", "p3"), ("putin", "p2"), ("putin", "p1")]
        assert "digest: 7 stories for tokajev, putin → siem" in (tmp_path / "second.log").read_text()
        # The email notifier of both watchlists: one email for the digest, grouped the same
        # way, its times on the watchlists' clock (Almaty, UTC+5).
        (mail,) = mailbox.messages
        assert mail["Subject"] == "[tokajev, putin] Digest: 7 stories"
        text = mail.get_body(("plain",)).get_content()
        order = [text.index(STORIES_AND_LATER[key][0]) for key in ("t4", "t2", "t3", "t1", "p3", "p2", "p1")]
        assert order == sorted(order) and text.index("== tokajev") < text.index("== putin")
        assert "2026-11-26 11:00 +05" in text  # t4, published 06:00 UTC
        assert "Times are Asia/Almaty." in text

    # After the daemon, nothing is left to send: no story goes out in a second digest.
    after = run_monitor(config, "digest")
    assert after.returncode == 0, after.stderr
    assert "nothing held" in after.stdout
    assert len(received_stories(receiver)) == expected
