"""Receivers that stall or say no: a webhook that trickles its answer or answers after the
timeout, an SMTP server that trickles, and one that refuses one of two recipients. A send has
a total deadline; what timed out goes again with the same id; refused recipients are owed the
alert on their own."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from conftest import backoff_over, monitor_config, run_monitor, write_config
from servers import Mailbox, Site, free_port, serve, webhook_receiver

from monitor.alerts import email, webhook
from monitor.errors import DeliveryError
from monitor.models import EmailNotifier, PendingAlert, SmtpSettings, WebhookNotifier

ANSWER = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"
TIMEOUT = 2.0
FEED = ("rss/utrikes.xml",)


# --- a webhook receiver that stalls ----------------------------------------------------------


@dataclass
class StallingReceiver:
    """Records every POST before answering; `mode` says how it answers: "trickle" (one byte a
    second), "late" (the whole answer, after 3 × the sender's timeout) or "ok"."""

    url: str = ""
    mode: str = "ok"
    received: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    closing: threading.Event = field(default_factory=threading.Event)


def _stalling_handler(receiver: StallingReceiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            receiver.received.append((dict(self.headers.items()), body))
            try:
                if receiver.mode == "trickle":
                    for byte in ANSWER:
                        if receiver.closing.wait(1):
                            return
                        self.wfile.write(bytes([byte]))
                        self.wfile.flush()
                else:
                    if receiver.mode == "late" and receiver.closing.wait(3 * TIMEOUT):
                        return
                    self.wfile.write(ANSWER)
            except OSError:
                pass  # the sender gave up and closed the connection
            self.close_connection = True

    return Handler


@contextmanager
def stalling_receiver(mode: str) -> Iterator[StallingReceiver]:
    receiver = StallingReceiver(mode=mode)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _stalling_handler(receiver))
    with serve(server) as base:
        receiver.url = f"{base}/hooks/news"
        try:
            yield receiver
        finally:
            receiver.closing.set()


def pending_alert(alert_id: str = "abc123") -> PendingAlert:
    body = json.dumps({
        "id": alert_id, "watchlist": "kazakstan-csto", "created": "2026-11-25T10:00:00+00:00",
        "article": {"url": "https://example.se/a", "title": "Kazakstan", "summary": "",
                    "published": None, "source": "svt"},
        "matches": ["Kazakstan"], "snippet": "Kazakstan",
    })
    return PendingAlert(alert_id, "siem", "kazakstan-csto", 1, body, 0)


@pytest.mark.parametrize("mode", ["trickle", "late"])
def test_a_stalling_webhook_is_cut_at_its_timeout(mode: str) -> None:
    with stalling_receiver(mode) as receiver:
        notifier = WebhookNotifier(name="siem", type="webhook", url=receiver.url, timeout=TIMEOUT)
        started = time.monotonic()
        with pytest.raises(DeliveryError, match=f"no complete answer within {TIMEOUT:g} s"):
            asyncio.run(webhook.send(notifier, pending_alert()))
        # The whole send, not each read: a trickled answer takes 60 s to arrive in full.
        assert time.monotonic() - started < 10
        assert len(receiver.received) == 1


def db_rows(database: Path, sql: str) -> list[tuple]:
    db = sqlite3.connect(database)
    try:
        return db.execute(sql).fetchall()
    finally:
        db.close()


@pytest.mark.parametrize("mode", ["trickle", "late"])
def test_a_webhook_that_timed_out_gets_the_same_alert_again(
    tmp_path: Path, site: Site, mode: str
) -> None:
    with stalling_receiver(mode) as receiver:
        raw = monitor_config(site, feeds=FEED, full_text=False)
        # No retry within the pass: one attempt, then the next run.
        raw["notifiers"].append({"name": "siem", "type": "webhook", "url": receiver.url,
                                 "timeout": TIMEOUT, "retry_within": 0})
        raw["watchlists"][0]["notify"] = ["siem"]
        config = write_config(tmp_path, raw)
        database = tmp_path / "monitor.db"

        stalled = run_monitor(config, "once")

        assert stalled.returncode == 0, stalled.stderr
        # Handed over, answer unknown: the alert stays pending (one try per receiver per pass).
        (first_headers, first_body), = receiver.received
        first_id = first_headers["Idempotency-Key"]
        assert json.loads(first_body)["id"] == first_id
        ((status, error),) = db_rows(
            database, f"SELECT status, last_error FROM alerts WHERE id = '{first_id}'")
        assert status == "pending" and f"no complete answer within {TIMEOUT:g} s" in error

        receiver.mode = "ok"
        backoff_over(database)
        assert run_monitor(config, "once").returncode == 0

        again = [(h, b) for h, b in receiver.received[1:] if h["Idempotency-Key"] == first_id]
        assert [b for _, b in again] == [first_body]  # the same id, the same bytes
        alerts = dict(db_rows(database, "SELECT id, status FROM alerts"))
        assert set(alerts.values()) == {"sent"}
        assert sorted(h["Idempotency-Key"] for h, _ in receiver.received) == sorted(
            [*alerts, first_id])  # only the timed-out alert went twice

        posts = len(receiver.received)
        assert run_monitor(config, "once").returncode == 0
        assert len(receiver.received) == posts  # sent is sent: never again


# --- SMTP --------------------------------------------------------------------------------------


@dataclass
class RefusingMailbox(Mailbox):
    """A mailbox that answers 550 to the recipients in `refuse`."""

    refuse: set[str] = field(default_factory=set)

    async def handle_RCPT(self, server: object, session: object, envelope: object,
                          address: str, rcpt_options: list[str]) -> str:
        if address in self.refuse:
            return "550 5.1.1 no such mailbox here"
        envelope.rcpt_tos.append(address)
        return "250 OK"


@contextmanager
def refusing_smtp_server(refuse: set[str]) -> Iterator[RefusingMailbox]:
    mailbox = RefusingMailbox(port=free_port(), refuse=refuse)
    controller = Controller(mailbox, hostname="127.0.0.1", port=mailbox.port)
    controller.start()
    try:
        yield mailbox
    finally:
        controller.stop()


def test_a_refused_recipient_is_reported_and_retried_on_its_own(tmp_path: Path, site: Site) -> None:
    to = ["analys@example.se", "jour@example.se"]
    with refusing_smtp_server({"jour@example.se"}) as mailbox:
        raw = monitor_config(site, mailbox=mailbox, feeds=FEED, full_text=False)
        raw["notifiers"][-1]["to"] = to
        raw["watchlists"][0]["notify"] = ["analytiker"]
        config = write_config(tmp_path, raw)
        database = tmp_path / "monitor.db"

        refused = run_monitor(config, "once")

        assert refused.returncode == 0, refused.stderr
        assert mailbox.envelopes and all(rcpt == ["analys@example.se"] for _, rcpt in mailbox.envelopes)
        rows = db_rows(database, "SELECT status, owed, last_error FROM alerts")
        assert len(rows) == len(mailbox.envelopes)
        for status, owed, error in rows:
            assert status == "pending" and json.loads(owed) == ["jour@example.se"]
            assert "jour@example.se: 550" in error
        assert "jour@example.se: 550" in refused.stderr  # logged, too

        mailbox.refuse.clear()
        first = len(mailbox.envelopes)
        backoff_over(database)
        assert run_monitor(config, "once").returncode == 0

        # Only the recipient that was refused gets the retry; the other is not mailed twice.
        assert [rcpt for _, rcpt in mailbox.envelopes[first:]] == [["jour@example.se"]] * first
        assert {status for status, *_ in db_rows(database, "SELECT status FROM alerts")} == {"sent"}


@contextmanager
def trickling_smtp_server() -> Iterator[int]:
    """Greets one byte a second with a long multi-line 220 and never gets further."""
    greeting = b"".join(b"220-slow.example.se takes its time\r\n" for _ in range(3)) + b"220 ok\r\n"
    closing = threading.Event()
    listener = socket.create_server(("127.0.0.1", 0))

    def serve_one() -> None:
        connection, _ = listener.accept()
        with connection:
            for byte in greeting:
                if closing.wait(1):
                    return
                try:
                    connection.sendall(bytes([byte]))
                except OSError:
                    return

    thread = threading.Thread(target=serve_one, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        closing.set()
        listener.close()


def test_a_trickling_smtp_server_is_cut_at_its_timeout() -> None:
    with trickling_smtp_server() as port:
        notifier = EmailNotifier(
            name="analytiker", type="email", to=("a@example.se",), sender="m@example.se",
            smtp=SmtpSettings(host="127.0.0.1", port=port, starttls=False, timeout=TIMEOUT))
        started = time.monotonic()
        with pytest.raises(DeliveryError, match=f"no complete answer within {TIMEOUT:g} s"):
            asyncio.run(email.send(notifier, pending_alert()))
        # smtplib's timeout is per socket read: the trickled greeting alone takes two minutes.
        assert time.monotonic() - started < 10


def test_a_pass_reuses_its_connection_to_a_receiver_that_keeps_it_open() -> None:
    """Inside webhook.connections() (a delivery pass wraps each notifier's queue in it) the
    posts to one receiver share one connection; outside, each post opens its own."""
    with webhook_receiver(keep_alive=True) as receiver:
        notifier = WebhookNotifier(name="siem", type="webhook", url=receiver.url, timeout=TIMEOUT)

        async def send_five(shared: bool) -> None:
            async with webhook.connections() if shared else contextlib.nullcontext():
                for number in range(5):
                    await webhook.send(notifier, pending_alert(f"alert{number}"))

        asyncio.run(send_five(shared=True))
        assert (len(receiver.received), receiver.connections) == (5, 1)
        asyncio.run(send_five(shared=False))
        assert (len(receiver.received), receiver.connections) == (10, 6)
