"""Email done well: a stable Message-ID, later alerts of a story threaded under the first,
List-Id per watchlist, times in the watchlist's zone, templates a user may override, and
everything from the web escaped."""

from __future__ import annotations

import email
import email.policy
import json
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from conftest import monitor_config, run_monitor, write_config
from servers import Mailbox, Site, free_port

from monitor.alerts.email import build_message, list_id
from monitor.alerts.render import Renderer
from monitor.errors import DeliveryError
from monitor.models import EmailNotifier, PendingAlert, SmtpSettings

PROTEST_TITLE = "Tokajev ber CSTO om hjälp efter våldsamma protester i Kazakstan"
NOTIFIER = EmailNotifier(name="analytiker", type="email", to=("a@example.se",),
                         sender="m@example.se", smtp=SmtpSettings(host="127.0.0.1"))


@dataclass
class RefusingMailbox:
    """Answers 451 (try again later) to the first `refuse` messages, then accepts; keeps every
    message it was handed, refused or not."""

    refuse: int = 1
    port: int = 0
    handed: list[EmailMessage] = field(default_factory=list)
    accepted: list[EmailMessage] = field(default_factory=list)

    async def handle_DATA(self, server: object, session: object, envelope: object) -> str:
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        self.handed.append(message)
        if len(self.handed) <= self.refuse:
            return "451 4.3.0 Try again later"
        self.accepted.append(message)
        return "250 Message accepted for delivery"


@contextmanager
def refusing_smtp_server(refuse: int) -> Iterator[RefusingMailbox]:
    mailbox = RefusingMailbox(refuse=refuse, port=free_port())
    controller = Controller(mailbox, hostname="127.0.0.1", port=mailbox.port)
    controller.start()
    try:
        yield mailbox
    finally:
        controller.stop()


def alert_ids(database: Path) -> dict[str, str]:
    with sqlite3.connect(database) as db:
        return dict(db.execute("SELECT id, status FROM alerts"))


def test_a_retried_email_keeps_its_message_id_and_user_templates_are_used(
    tmp_path: Path, site: Site
) -> None:
    templates = tmp_path / "mine"
    templates.mkdir()
    (templates / "alert.subject.txt").write_text("NYTT i {{ doc.watchlist }}: {{ story.title }}\n")
    with refusing_smtp_server(refuse=1) as server:
        settings = monitor_config(site, mailbox=Mailbox(port=server.port), feeds=("rss/utrikes.xml",),
                                  query="CSTO")
        settings["watchlists"][0]["notify"] = ["analytiker"]
        settings["templates"] = "mine"
        config = write_config(tmp_path, settings)

        result = run_monitor(config, "once")

    assert result.returncode == 0, result.stderr
    ids = alert_ids(tmp_path / "monitor.db")
    assert set(ids.values()) == {"sent"}
    first, retry = server.handed[0], server.handed[1]
    assert first["Message-ID"] == retry["Message-ID"], "a retry is the same message"
    assert {m["Message-ID"] for m in server.accepted} == {f"<{i}@monitor>" for i in ids}
    assert len(server.accepted) == len(ids), "each alert mailed once"
    # The user's subject template replaced the shipped one; the other parts are the shipped ones.
    subjects = {m["Subject"] for m in server.accepted}
    assert f"NYTT i kazakstan-csto: {PROTEST_TITLE}" in subjects
    body = next(m for m in server.accepted if PROTEST_TITLE in m["Subject"])
    assert "Matched: CSTO" in body.get_body(("plain",)).get_content()


def test_a_second_watchlist_on_the_same_story_threads_under_the_first(
    tmp_path: Path, site: Site, mailbox: Mailbox
) -> None:
    settings = monitor_config(site, mailbox=mailbox, feeds=("rss/utrikes.xml",), query="CSTO")
    settings["watchlists"] = [
        {"name": "csto", "query": "CSTO", "notify": ["analytiker"]},
        {"name": "protester", "query": "protester*", "notify": ["analytiker"],
         "timezone": "America/New_York"},
    ]
    config = write_config(tmp_path, settings)

    assert run_monitor(config, "once").returncode == 0

    protest = [m for m in mailbox.messages if PROTEST_TITLE in m["Subject"]]
    assert [m["List-Id"] for m in protest] == ["csto <csto.monitor>", "protester <protester.monitor>"]
    first, second = protest
    assert first["In-Reply-To"] is None and first["References"] is None
    assert second["In-Reply-To"] == first["Message-ID"]
    assert second["References"] == first["Message-ID"]
    assert second["Message-ID"] != first["Message-ID"]
    # Published 2026-11-23 06:40 UTC: each watchlist shows it on its own clock.
    assert "2026-11-23 07:40 CET" in first.get_body(("html",)).get_content()
    assert "2026-11-23 01:40 EST" in second.get_body(("plain",)).get_content()
    # A story that only one watchlist matched starts no thread.
    lone = next(m for m in mailbox.messages if "Almaty" in m["Subject"])
    assert lone["In-Reply-To"] is None


def pending(document: dict, thread: str | None = None) -> PendingAlert:
    return PendingAlert(document["id"], "analytiker", document.get("watchlist", ""), None,
                        json.dumps(document), 0, kind=document["kind"], thread=thread)


def story_document(alert_id: str, watchlist: str, title: str, snippet: str = "") -> dict:
    return {
        "id": alert_id, "kind": "alert", "watchlist": watchlist, "created": "2026-11-30T07:40:00+00:00",
        "story": "s1", "update": False,
        "article": {"url": f"https://example.se/{alert_id}?q=<x>", "title": title, "summary": "",
                    "published": "2026-11-30T07:40:00+00:00", "source": "svt", "lang": "sv"},
        "matches": ["Kazakstan"], "snippet": snippet, "also_seen_at": ["https://kopia.se/1"],
    }


def digest_document(*stories: dict, watchlists: list[str]) -> dict:
    return {"id": "d1", "kind": "digest", "created": "2026-11-30T06:00:00+00:00",
            "timezone": "Asia/Tokyo", "watchlists": watchlists,
            "period": {"from": None, "to": "2026-11-30T06:00:00+00:00"},
            "stories": list(stories), "note": None}


def test_a_digest_escapes_hostile_titles_and_groups_by_watchlist() -> None:
    hostile = "<img src=x onerror=alert(1)> Kazakstan"
    doc = digest_document(
        story_document("a1", "kazakstan", hostile, "Om <script>x()</script> Kazakstan"),
        story_document("a2", "kazakstan", "Andra"),
        story_document("a3", "csto", "Tredje"),
        watchlists=["kazakstan", "csto"],
    )

    message = build_message(NOTIFIER, pending(doc))

    html = message.get_body(("html",)).get_content()
    assert "<img" not in html and "<script>" not in html
    assert "&lt;img src=x onerror=alert(1)&gt; <strong>Kazakstan</strong>" not in html  # title: no emphasis
    assert "&lt;img src=x onerror=alert(1)&gt; Kazakstan" in html
    assert "Om &lt;script&gt;x()&lt;/script&gt; <strong>Kazakstan</strong>" in html
    assert html.index(">kazakstan <small>(2)") < html.index("Andra") < html.index(">csto <small>(1)")
    assert "Also seen at" in html and 'href="https://kopia.se/1"' in html
    assert "2026-11-30 16:40 JST" in html, "the digest's own time zone"
    assert message["Subject"] == "[kazakstan, csto] Digest: 3 stories"
    assert message["List-Id"] == "digest <digest.monitor>"
    assert message["Message-ID"] == "<d1@monitor>"
    plain = message.get_body(("plain",)).get_content()
    assert hostile in plain, "the plain part shows the title as it is"


def test_list_id_of_each_kind() -> None:
    one = digest_document(story_document("a1", "kazakstan", "x"), watchlists=["kazakstan"])
    assert list_id(one) == "kazakstan <kazakstan.monitor>"
    assert list_id({"kind": "source"}) == "operations <operations.monitor>"
    assert list_id({"kind": "test"}) == "test <test.monitor>"


def test_an_alert_held_back_says_so_and_shows_its_watchlists_zone() -> None:
    doc = story_document("a1", "kazakstan", "Rubrik")
    doc["held_back"] = "Further matches for kazakstan this hour are held back and come at 09:00."
    renderer = Renderer(timezones={"kazakstan": "Europe/Helsinki"})

    message = build_message(NOTIFIER, pending(doc, thread="a0"), renderer)

    for part in ("plain", "html"):
        content = message.get_body((part,)).get_content()
        assert doc["held_back"] in content
        assert "2026-11-30 09:40 EET" in content
    assert message["In-Reply-To"] == "<a0@monitor>"


def test_source_notices_and_test_messages_render() -> None:
    notice = {"id": "s1", "kind": "source", "created": "2026-11-30T06:00:00+00:00", "source": "svt",
              "url": "https://svt.se/rss", "state": "failing", "since": "2026-11-29T23:00:00+00:00",
              "problem": "svt has failed for 7 hours: HTTP 503", "consecutive_failures": 14,
              "last_error": "HTTP 503", "last_new": None}
    test = {"id": "t1", "kind": "test", "created": "2026-11-30T06:00:00+00:00",
            "notifier": "analytiker", "message": "Nothing needs to be done."}

    notice_mail = build_message(NOTIFIER, pending(notice))
    test_mail = build_message(NOTIFIER, pending(test))

    assert notice_mail["Subject"] == "[monitor] Source svt is failing"
    assert "since 2026-11-30 00:00 CET" in notice_mail.get_body(("plain",)).get_content()
    assert "TEST" in test_mail["Subject"]
    assert "THIS IS A TEST MESSAGE" in test_mail.get_body(("html",)).get_content()


def test_a_broken_user_template_fails_the_message_not_the_run(tmp_path: Path) -> None:
    (tmp_path / "alert.html").write_text("<p>{{ story.title </p>\n")
    renderer = Renderer(templates=tmp_path)

    with pytest.raises(DeliveryError, match=r"message template alert\.html, line 1"):
        build_message(NOTIFIER, pending(story_document("a1", "kazakstan", "Rubrik")), renderer)
