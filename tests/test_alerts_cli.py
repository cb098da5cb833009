"""`monitor alerts` lists the outbox with each alert's delivery state; `monitor alerts retry` puts
failed alerts back. Against a database filled by real `monitor once` runs."""

from __future__ import annotations

import json
import re
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

from conftest import backoff_over, monitor_config, run_monitor, write_config
from servers import Receiver, Site

from monitor.models import PendingAlert
from monitor.store import Store

# created (UTC), id, kind, status, tries, next try (UTC, or blank), watchlist → notifier
ROW = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)  ([0-9a-f]{32})  (\S+)\s+(\S+)\s+(\d+)  "
                 r"(.{19})  (\S+) → (\S+)$")


def rows(output: str) -> list[dict]:
    """The listed alerts, each with the indented lines under it."""
    found: list[dict] = []
    for line in output.splitlines():
        match = ROW.match(line)
        if match:
            created, alert_id, kind, status, tries, retry_at, watchlist, notifier = match.groups()
            found.append({"created": created, "id": alert_id, "kind": kind, "status": status,
                          "tries": int(tries), "retry_at": retry_at.strip(),
                          "watchlist": watchlist, "notifier": notifier, "details": []})
        elif line.startswith("    ") and found:
            found[-1]["details"].append(line.strip())
    return found


def alert_ids(database: Path, notifier: str) -> set[str]:
    with sqlite3.connect(database) as db:
        return {r[0] for r in db.execute("SELECT id FROM alerts WHERE notifier = ?", [notifier])}


def test_pending_then_failed_alerts_are_listed_and_a_retry_sends_them(
    tmp_path: Path, site: Site, receiver: Receiver
) -> None:
    settings = monitor_config(site, receiver, feeds=("rss/utrikes.xml",))
    settings["notifiers"][1] |= {"retry_within": 0, "give_up_after": "1h"}
    settings["watchlists"].append({"name": "bara-csto", "query": "CSTO", "notify": ["logg"]})
    config = write_config(tmp_path, settings)
    database = tmp_path / "monitor.db"
    receiver.answer = 500

    first = run_monitor(config, "once")
    assert first.returncode == 0, first.stderr
    hooks = alert_ids(database, "siem")
    assert hooks, "the feed has matching articles"

    pending = run_monitor(config, "alerts", "--pending")
    assert pending.returncode == 0, pending.stderr
    listed = rows(pending.stdout)
    assert {r["id"] for r in listed} == hooks
    for row in listed:
        assert (row["kind"], row["status"]) == ("alert", "pending")
        assert row["retry_at"], "the next try is shown"
        assert row["details"][0].count(" — http://127.0.0.1:") == 1  # headline — link
    # The first alert was tried and refused; the receiver being down, the rest wait untried.
    (tried,) = [row for row in listed if row["tries"]]
    assert tried["tries"] == 1 and tried["details"][-1] == "last error: receiver answered HTTP 500"
    assert [r["created"] for r in listed] == sorted((r["created"] for r in listed), reverse=True)
    assert pending.stdout.splitlines()[-1] == f"{len(hooks)} alerts: {len(hooks)} pending"

    # As if more than give_up_after had passed since they were queued: only the stored
    # times move (alerts are written, and tried, while the first run still crawls).
    with sqlite3.connect(database) as db:
        db.execute("UPDATE alerts SET queued = ?", [(datetime.now(UTC) - timedelta(hours=2)).isoformat()])
    second = run_monitor(config, "once")
    assert second.returncode == 0, second.stderr
    assert f"{len(hooks)} given up, 0 pending, {len(hooks)} failed (see monitor alerts --failed)" \
        in second.stdout.splitlines()[-1]

    failed = run_monitor(config, "alerts", "--failed")
    listed = rows(failed.stdout)
    assert {r["id"] for r in listed} == hooks
    for row in listed:
        assert row["status"] == "failed" and row["retry_at"] == ""
        assert row["details"][-1].startswith("last error: gave up: not delivered within 1h")
    (tried,) = [row for row in listed if row["tries"]]
    assert tried["details"][-1].endswith("; last error: receiver answered HTTP 500")
    assert failed.stdout.splitlines()[-1].startswith(f"{len(hooks)} alerts: {len(hooks)} failed; ")

    # The receiver is fixed; a normal give-up time again, so the slow start of a run cannot
    # fail the alerts put back before they are tried.
    settings["notifiers"][1]["give_up_after"] = "1h"
    write_config(tmp_path, settings)
    receiver.answer = 200
    retried = run_monitor(config, "alerts", "retry", "--all-failed")
    assert retried.returncode == 0, retried.stderr
    assert retried.stdout.startswith(f"{len(hooks)} failed alerts put back in the outbox")
    assert rows(run_monitor(config, "alerts", "--failed").stdout) == []
    backoff_over(database)

    third = run_monitor(config, "once")
    assert third.returncode == 0, third.stderr
    assert len(receiver.received) == len(hooks)
    assert f"{len(hooks)} sent, 0 pending" in third.stdout.splitlines()[-1]
    every = rows(run_monitor(config, "alerts", "--notifier", "siem").stdout)
    assert {(r["id"], r["status"]) for r in every} == {(i, "sent") for i in hooks}


def test_alerts_filters_by_watchlist_and_retry_names_ids_it_cannot_retry(
    tmp_path: Path, site: Site
) -> None:
    settings = monitor_config(site, feeds=("rss/utrikes.xml",))
    settings["watchlists"].append({"name": "bara-csto", "query": "CSTO", "notify": ["logg"]})
    config = write_config(tmp_path, settings)
    assert run_monitor(config, "once").returncode == 0
    with sqlite3.connect(tmp_path / "monitor.db") as db:
        per_watchlist = dict(db.execute("SELECT watchlist, count(*) FROM alerts GROUP BY watchlist"))
        sent_id = db.execute("SELECT id FROM alerts LIMIT 1").fetchone()[0]
    assert per_watchlist["bara-csto"] < per_watchlist["kazakstan-csto"]

    narrow = run_monitor(config, "alerts", "--watchlist", "bara-csto")
    everything = run_monitor(config, "alerts", "--since", "1h")

    assert {r["watchlist"] for r in rows(narrow.stdout)} == {"bara-csto"}
    assert len(rows(narrow.stdout)) == per_watchlist["bara-csto"]
    assert len(rows(everything.stdout)) == sum(per_watchlist.values())
    assert everything.stdout.splitlines()[-1] == (
        f"{sum(per_watchlist.values())} alerts in the last 1h: {sum(per_watchlist.values())} sent")
    assert run_monitor(config, "alerts", "--watchlist", "okänd").stdout == "no alerts in the last 7d\n"

    unknown = run_monitor(config, "alerts", "retry", "f" * 32, sent_id)
    assert unknown.returncode == 1
    assert unknown.stderr.splitlines() == [
        f"{'f' * 32}: no such alert (see monitor alerts)",
        f"{sent_id}: not failed but sent; nothing to retry",
        "no failed alerts were put back",
    ]
    neither = run_monitor(config, "alerts", "retry")
    assert neither.returncode == 2
    assert "give alert ids or --all-failed" in neither.stderr


def test_digests_bundled_alerts_and_source_notices_are_listed_by_what_they_carry(
    tmp_path: Path
) -> None:
    config = write_config(tmp_path, {
        "database": "monitor.db",
        "sources": [{"name": "utrikes", "type": "feed", "url": "https://example.se/rss"}],
        "watchlists": [{"name": "morgon", "query": "CSTO", "notify": ["logg"]},
                       {"name": "kvall", "query": "Tokajev", "notify": ["logg"]}],
        "notifiers": [{"name": "logg", "type": "log"}],
    })
    store = Store.open(tmp_path / "monitor.db")
    story = {"kind": "alert", "article": {"title": "CSTO i Almaty", "url": "https://example.se/a"}}
    digest = {"id": "d" * 32, "kind": "digest", "stories": [story, story]}
    notice = {"id": "c" * 32, "kind": "source", "source": "utrikes", "state": "failing",
              "problem": "utrikes has failed every fetch for 7h (9 in a row)"}
    store.add_message(PendingAlert("d" * 32, "logg", "morgon,kvall", None, json.dumps(digest), 0,
                                   kind="digest", created="2026-03-20T07:00:00+00:00"))
    store.mark_sent("d" * 32)
    store.add_message(PendingAlert("c" * 32, "logg", "", None, json.dumps(notice), 0,
                                   kind="source", created="2026-03-20T08:00:00+00:00"))
    with store.db.atomic():  # an alert held back for that digest, which carried it
        store.db.execute(
            "INSERT INTO alerts (id, watchlist, notifier, body, status, created, queued, hold,"
            " bundle) VALUES (?, 'morgon', 'logg', ?, 'bundled', ?, ?, 'digest', ?)",
            ["a" * 32, json.dumps(story), "2026-03-20T06:00:00+00:00",
             "2026-03-20T06:00:00+00:00", "d" * 32])
    store.close()

    listed = rows(run_monitor(config, "alerts", "--since", "3650d").stdout)
    morning = rows(run_monitor(config, "alerts", "--since", "3650d", "--watchlist", "morgon").stdout)
    evening = rows(run_monitor(config, "alerts", "--since", "3650d", "--watchlist", "kvall").stdout)

    assert [(r["kind"], r["status"], r["details"]) for r in listed] == [
        ("source", "pending", ["utrikes failing: utrikes has failed every fetch for 7h (9 in a row)"]),
        ("digest", "sent", ["2 stories"]),
        ("alert", "bundled", ["CSTO i Almaty — https://example.se/a",
                              f"went out in {'d' * 32} (sent)"]),
    ]
    assert listed[0]["watchlist"] == "-" and listed[1]["watchlist"] == "morgon,kvall"
    assert [r["kind"] for r in morning] == ["digest", "alert"]
    assert [r["kind"] for r in evening] == ["digest"]
