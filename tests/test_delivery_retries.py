"""Prompt retries with an end: within a pass a failed send is tried again with backoff and
jitter (or after what Retry-After asks), across passes the backoff grows, an alert that cannot be
delivered fails for good after give_up_after (kept, and retryable by hand), and a receiver's
4xx refusal fails the alert at once. Real webhook receiver, real CLI, real SQLite."""

from __future__ import annotations

import asyncio
import itertools
import sqlite3
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from conftest import WEBHOOK_SECRET, backoff_over, monitor_config, run_monitor, write_config
from servers import Receiver, Site

from monitor.alerts.outbox import PASS_BACKOFF_MAX, PASS_BACKOFF_MIN, deliver_pending, retry_wait
from monitor.config import load_config
from monitor.store import Store

FEED = ("rss/utrikes.xml",)  # five relevant articles
ALERTS = 5


def webhook_config(tmp_path: Path, site: Site, receiver: Receiver, **policy: object) -> Path:
    raw = monitor_config(site, receiver, feeds=FEED, full_text=False)
    raw["notifiers"] = [n for n in raw["notifiers"] if n["name"] == "siem"]
    raw["notifiers"][0].update(policy)
    raw["watchlists"][0]["notify"] = ["siem"]
    return write_config(tmp_path, raw)


def rows(database: Path, sql: str) -> list[tuple]:
    db = sqlite3.connect(database)
    try:
        return db.execute(sql).fetchall()
    finally:
        db.close()


def keys(receiver: Receiver) -> list[str]:
    return [headers["Idempotency-Key"] for headers, _ in receiver.received]


def test_a_receiver_that_restarts_gets_every_alert_in_one_run_each_once(
    tmp_path: Path, site: Site, receiver: Receiver
) -> None:
    receiver.script = [(503, {})] * 5  # restarting: its first five posts are rejected
    config = webhook_config(tmp_path, site, receiver)

    result = run_monitor(config, "once")

    assert result.returncode == 0, result.stderr
    assert sorted(keys(receiver)) == sorted(set(keys(receiver))), "each alert arrived once"
    assert len(receiver.received) == ALERTS
    assert [status for _, _, status in receiver.attempts] == [503] * 5 + [200] * ALERTS
    first = receiver.attempts[0][1]
    assert {key for _, key, _ in receiver.attempts[:6]} == {first}, \
        "the same alert, with the same Idempotency-Key, until it went through"
    assert rows(tmp_path / "monitor.db", "SELECT DISTINCT status FROM alerts") == [("sent",)]
    ((attempts,),) = rows(tmp_path / "monitor.db", f"SELECT attempts FROM alerts WHERE id = '{first}'")
    assert attempts == 6
    assert "0 pending" in result.stdout
    # The waits doubled: 0.25–0.5 s, then 0.5–1, 1–2, 2–4, 4–8 (half fixed, half random).
    times = [t for t, _, _ in receiver.attempts[:6]]
    gaps = [later - earlier for earlier, later in itertools.pairwise(times)]
    for n, gap in enumerate(gaps):
        assert 0.5 * 2 ** n / 2 - 0.05 <= gap <= 0.5 * 2 ** n + 1.0


def test_retry_after_is_honoured(tmp_path: Path, site: Site, receiver: Receiver) -> None:
    receiver.script = [(429, {"Retry-After": "2"})]
    config = webhook_config(tmp_path, site, receiver)

    assert run_monitor(config, "once").returncode == 0

    (first, _, refused), (second, key, accepted) = receiver.attempts[:2]
    assert (refused, accepted) == (429, 200)
    assert second - first >= 1.9, "asked to wait 2 s, not the 0.5 s of the first backoff step"
    assert receiver.attempts[0][1] == key
    assert len(set(keys(receiver))) == len(receiver.received) == ALERTS


def test_a_retry_after_beyond_the_pass_is_kept_for_a_later_pass(
    tmp_path: Path, site: Site, receiver: Receiver
) -> None:
    receiver.script = [(503, {"Retry-After": "600"})]
    config = webhook_config(tmp_path, site, receiver, retry_within="5s")
    started = datetime.now(UTC)

    result = run_monitor(config, "once")

    assert result.returncode == 0, result.stderr
    assert len(receiver.attempts) == 1, "the receiver asked for ten minutes: no retry in this pass"
    ((retry_at, status),) = rows(tmp_path / "monitor.db",
                                 "SELECT DISTINCT retry_at, status FROM alerts")
    assert status == "pending"
    assert (datetime.fromisoformat(retry_at) - started).total_seconds() >= 595
    assert f"{ALERTS} pending" in result.stdout


def test_an_alert_that_cannot_be_delivered_fails_after_give_up_after_and_can_be_retried(
    tmp_path: Path, site: Site, receiver: Receiver
) -> None:
    receiver.answer = 500
    config = webhook_config(tmp_path, site, receiver, retry_within="1s", give_up_after="3s")
    database = tmp_path / "monitor.db"

    down = run_monitor(config, "once")

    assert down.returncode == 0, down.stderr
    assert {status for _, _, status in receiver.attempts} == {500}
    assert len({key for _, key, _ in receiver.attempts}) == 1, "the receiver is down: one alert tried"
    assert len(receiver.attempts) >= 2, "tried again within the pass"
    assert rows(database, "SELECT DISTINCT status FROM alerts") == [("pending",)]
    tried = len(receiver.attempts)
    time.sleep(3.5)

    expired = run_monitor(config, "once")

    assert expired.returncode == 0, expired.stderr
    assert len(receiver.attempts) == tried, "past give_up_after: failed, not tried again"
    failed = rows(database, "SELECT status, last_error FROM alerts")
    assert {status for status, _ in failed} == {"failed"} and len(failed) == ALERTS
    assert all(error.startswith("gave up: not delivered within 3s") for _, error in failed)
    assert "receiver answered HTTP 500" in next(e for _, e in failed if "last error" in e)
    assert f"{ALERTS} failed" in expired.stdout

    retried = run_monitor(config, "alerts", "retry", "--all-failed")
    assert retried.returncode == 0, retried.stderr
    receiver.answer = 200
    # The receiver is mended and the user allows a day again: a slow start of the next run
    # must not fail the alerts once more before they are tried.
    webhook_config(tmp_path, site, receiver, retry_within="1s", give_up_after="1d")
    sent = run_monitor(config, "once")

    assert sent.returncode == 0, sent.stderr
    assert rows(database, "SELECT DISTINCT status FROM alerts") == [("sent",)]
    assert len(receiver.received) == ALERTS
    stored = dict(rows(database, "SELECT id, body FROM alerts"))
    assert {h["Idempotency-Key"]: b.decode() for h, b in receiver.received} == stored


def test_a_4xx_refusal_fails_that_alert_at_once(tmp_path: Path, site: Site, receiver: Receiver) -> None:
    receiver.script = [(422, {})]  # the receiver will never take this one
    config = webhook_config(tmp_path, site, receiver)

    result = run_monitor(config, "once")

    assert result.returncode == 0, result.stderr
    refused_key = receiver.attempts[0][1]
    assert [key for _, key, _ in receiver.attempts].count(refused_key) == 1, "not retried"
    statuses = dict(rows(tmp_path / "monitor.db", "SELECT id, status FROM alerts"))
    assert statuses.pop(refused_key) == "failed"
    assert set(statuses.values()) == {"sent"}, "the others went through"
    ((error,),) = rows(tmp_path / "monitor.db", f"SELECT last_error FROM alerts WHERE id = '{refused_key}'")
    assert error == "receiver answered HTTP 422 (refused for good)"
    assert "1 failed" in result.stdout


@pytest.mark.parametrize("status", [408, 429, 500, 502, 503])
def test_transient_answers_are_retried(tmp_path: Path, site: Site, receiver: Receiver,
                                       status: int) -> None:
    receiver.script = [(status, {})]
    config = webhook_config(tmp_path, site, receiver)
    assert run_monitor(config, "once").returncode == 0
    assert receiver.attempts[0][1] == receiver.attempts[1][1]
    assert rows(tmp_path / "monitor.db", "SELECT DISTINCT status FROM alerts") == [("sent",)]


def test_the_backoff_across_passes_doubles_from_a_minute_to_an_hour(
    tmp_path: Path, site: Site, receiver: Receiver
) -> None:
    config_path = webhook_config(tmp_path, site, receiver, retry_within=0)
    assert run_monitor(config_path, "once").returncode == 0  # stores the alerts; all sent
    config = load_config(config_path, {"WEBHOOK_SECRET": WEBHOOK_SECRET})
    store = Store.open(config.database)
    try:
        with store.db.atomic():
            store.db.execute("UPDATE alerts SET status = 'pending'")  # as if never delivered
        receiver.answer = 500
        backoffs = []
        for _ in range(8):
            asyncio.run(deliver_pending(store, config))
            backoffs.append(sorted({row[0] for row in store.db.execute("SELECT backoff FROM alerts")}))
            backoff_over(config.database)
    finally:
        store.close()
    head = [b[-1] for b in backoffs]
    assert head == [60, 120, 240, 480, 960, 1920, 3600, 3600]
    assert (PASS_BACKOFF_MIN, PASS_BACKOFF_MAX) == (60, 3600)


def test_retry_waits_double_with_jitter() -> None:
    for attempts, low, high in ((1, 0.25, 0.5), (2, 0.5, 1.0), (5, 4.0, 8.0)):
        waits = [retry_wait(attempts, None) for _ in range(200)]
        assert all(low <= w <= high for w in waits)
        assert len(set(waits)) > 1, "jittered"
    assert retry_wait(3, 7.0) == 7.0
