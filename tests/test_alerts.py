"""Webhook and email delivery against real local receivers."""

from __future__ import annotations

import hashlib
import hmac
import json
import sqlite3
from pathlib import Path

from conftest import WEBHOOK_SECRET, backoff_over, monitor_config, run_monitor, write_config
from servers import Mailbox, Receiver, Site

from monitor.alerts.email import build_message
from monitor.models import EmailNotifier, PendingAlert, SmtpSettings


def test_webhook_body_signature_and_idempotency_key(
    tmp_path: Path, site: Site, receiver: Receiver
) -> None:
    config = write_config(tmp_path, monitor_config(site, receiver, feeds=("rss/utrikes.xml",)))
    assert run_monitor(config, "once").returncode == 0
    assert receiver.received

    for headers, body in receiver.received:
        expected = hmac.new(WEBHOOK_SECRET.encode(), body, hashlib.sha256).hexdigest()
        assert headers["X-Monitor-Signature"] == f"sha256={expected}"
        assert headers["Content-Type"] == "application/json"
        document = json.loads(body)
        assert headers["Idempotency-Key"] == document["id"]
        assert document["watchlist"] == "kazakstan-csto"
        assert set(document["article"]) >= {"url", "title", "summary", "published", "source"}
        assert document["article"]["source"] == "utrikes"
        assert "utm_" not in document["article"]["url"]
        assert document["matches"], "the matched words are listed"

    protester = next(json.loads(b) for b in receiver.bodies() if b"kazakstan-protester" in b)
    assert {"Tokajev", "CSTO", "Kazakstans"} <= set(protester["matches"])
    assert protester["article"]["published"] == "2026-11-23T06:40:00+00:00"


def test_webhook_retry_sends_the_same_id_and_bytes(
    tmp_path: Path, site: Site, receiver: Receiver
) -> None:
    settings = monitor_config(site, receiver, feeds=("rss/utrikes.xml",))
    settings["notifiers"][1]["retry_within"] = 0  # no retries within the pass
    config = write_config(tmp_path, settings)
    receiver.answer = 500
    assert run_monitor(config, "once").returncode == 0
    with sqlite3.connect(tmp_path / "monitor.db") as db:
        stored = dict(db.execute("SELECT id, body FROM alerts WHERE notifier = 'siem'"))
        errors = [row[0] for row in db.execute(
            "SELECT last_error FROM alerts WHERE notifier = 'siem' AND attempts > 0")]
    assert errors == ["receiver answered HTTP 500"], "one attempt, then the receiver is left alone"
    receiver.answer = 200
    backoff_over(tmp_path / "monitor.db")

    assert run_monitor(config, "once").returncode == 0

    delivered = {h["Idempotency-Key"]: body.decode() for h, body in receiver.received}
    assert delivered == stored


def test_email_has_plain_and_html_parts(
    tmp_path: Path, site: Site, mailbox: Mailbox
) -> None:
    config = write_config(tmp_path, monitor_config(site, mailbox=mailbox, feeds=("rss/utrikes.xml",)))
    assert run_monitor(config, "once").returncode == 0
    assert len(mailbox.messages) == 5
    assert mailbox.envelopes[0] == ("monitor@example.se", ["analys@example.se"])

    message = next(m for m in mailbox.messages if "Tokajev ber CSTO" in m["Subject"])
    assert message["Subject"].startswith("[kazakstan-csto] ")
    assert message.get_content_type() == "multipart/alternative"
    plain = message.get_body(("plain",)).get_content()
    html = message.get_body(("html",)).get_content()
    assert "kazakstan-protester.html" in plain and "Tokajev" in plain
    assert "<strong>Tokajev</strong>" in html or "<strong>CSTO</strong>" in html


def alert(title: str, snippet: str) -> PendingAlert:
    body = json.dumps({
        "id": "abc123", "watchlist": "kazakstan-csto", "created": "2026-11-25T10:00:00+00:00",
        "article": {"url": "https://example.se/a?x=<b>", "title": title, "summary": "",
                    "published": None, "source": "svt"},
        "matches": ["Kazakstan"], "snippet": snippet,
    })
    return PendingAlert("abc123", "analytiker", "kazakstan-csto", 1, body, 0)


def test_email_escapes_what_came_from_the_web() -> None:
    notifier = EmailNotifier(name="analytiker", type="email", to=("a@example.se",),
                             sender="m@example.se", smtp=SmtpSettings(host="127.0.0.1"))
    hostile = alert("<script>alert('x')</script> Kazakstan", "Om <img src=x onerror=y> Kazakstan")

    message = build_message(notifier, hostile)

    html = message.get_body(("html",)).get_content()
    assert "<script>" not in html and "<img" not in html
    assert "&lt;script&gt;" in html
    assert "<strong>Kazakstan</strong>" in html
    assert 'href="https://example.se/a?x=&lt;b&gt;"' in html
    assert message["Subject"] == "[kazakstan-csto] <script>alert('x')</script> Kazakstan"
    assert "<script>alert('x')</script>" in message.get_body(("plain",)).get_content()


def test_email_subject_cannot_carry_header_injection() -> None:
    notifier = EmailNotifier(name="analytiker", type="email", to=("a@example.se",),
                             sender="m@example.se", smtp=SmtpSettings(host="127.0.0.1"))
    message = build_message(notifier, alert("Rubrik\r\nBcc: evil@example.com", "text"))
    assert message["Bcc"] is None
    assert "\n" not in message["Subject"]
