"""The apprise channel against a local ntfy-compatible server that Apprise posts to."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from conftest import backoff_over, monitor_config, run_monitor, write_config
from servers import Site, serve

from monitor.alerts import chat
from monitor.alerts.render import CHAT_BODY_MAX
from monitor.errors import DeliveryError
from monitor.models import AppriseNotifier, PendingAlert

PROTEST_URL_PART = "/nyheter/utrikes/kazakstan-protester.html"


@dataclass
class Ntfy:
    """What ntfy does with a publish: JSON {"topic", "title", "message"} posted to the root
    (Apprise's form) or the message posted to /TOPIC with an X-Title header."""

    port: int = 0
    answer: int = 200
    delay: float = 0.0
    messages: list[dict] = field(default_factory=list)

    def url(self, topic: str = "nyheter") -> str:
        return f"ntfy://127.0.0.1:{self.port}/{topic}"


def _ntfy_handler(ntfy: Ntfy) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def do_POST(self) -> None:
            raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            time.sleep(ntfy.delay)
            if self.headers.get("Content-Type") == "application/json":
                message = json.loads(raw)
            else:
                message = {"topic": self.path.strip("/"), "title": self.headers.get("X-Title", ""),
                           "message": raw.decode()}
            if ntfy.answer == 200:
                ntfy.messages.append(message)
                answer = {"id": f"m{len(ntfy.messages)}", "event": "message", **message}
            else:
                answer = {"code": ntfy.answer, "http": ntfy.answer, "error": "service unavailable"}
            body = json.dumps(answer).encode()
            self.send_response(ntfy.answer)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    return Handler


@contextmanager
def ntfy_server() -> Iterator[Ntfy]:
    ntfy = Ntfy()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _ntfy_handler(ntfy))
    with serve(server):
        ntfy.port = server.server_address[1]
        yield ntfy


@pytest.fixture
def ntfy() -> Iterator[Ntfy]:
    with ntfy_server() as n:
        yield n


def alert_rows(database: Path) -> list[tuple[str, int, str | None]]:
    with sqlite3.connect(database) as db:
        return list(db.execute("SELECT status, attempts, last_error FROM alerts WHERE notifier = 'chatt'"))


def test_apprise_alerts_reach_ntfy_after_it_was_down(tmp_path: Path, site: Site, ntfy: Ntfy) -> None:
    settings = monitor_config(site, feeds=("rss/utrikes.xml",))
    settings["notifiers"] = [{"name": "chatt", "type": "apprise", "urls": [ntfy.url()],
                              "timeout": 10, "retry_within": "0s"}]
    settings["watchlists"][0]["notify"] = ["chatt"]
    config = write_config(tmp_path, settings)
    ntfy.answer = 503

    assert run_monitor(config, "once").returncode == 0

    rows = alert_rows(tmp_path / "monitor.db")
    assert rows and all(status == "pending" for status, _, _ in rows)
    tried = [error for _, attempts, error in rows if attempts]
    assert len(tried) == 1, "a service that is down is left alone for the rest of the pass"
    assert "ntfy" in tried[0] and "503" in tried[0]
    assert ntfy.messages == []

    ntfy.answer = 200
    backoff_over(tmp_path / "monitor.db")
    assert run_monitor(config, "once").returncode == 0

    assert {status for status, _, _ in alert_rows(tmp_path / "monitor.db")} == {"sent"}
    assert len(ntfy.messages) == len(rows)
    protest = next(m for m in ntfy.messages if PROTEST_URL_PART in m["message"])
    assert protest["topic"] == "nyheter"
    assert protest["title"].startswith("[kazakstan-csto] Tokajev ber CSTO om hjälp")
    assert "2026-11-23 07:40 CET" in protest["message"]
    assert "utm_source" not in protest["message"]


def digest_alert(count: int) -> PendingAlert:
    stories = [{"id": f"a{i}", "kind": "alert", "watchlist": "kazakstan",
                "created": "2026-11-30T06:00:00+00:00",
                "article": {"url": f"https://example.se/nyhet/{i}", "title": f"Rubrik nummer {i}",
                            "summary": "", "published": None, "source": "svt"},
                "matches": ["Kazakstan"], "snippet": "", "also_seen_at": []} for i in range(count)]
    doc = {"id": "d1", "kind": "digest", "created": "2026-11-30T06:00:00+00:00", "timezone": "UTC",
           "watchlists": ["kazakstan"], "stories": stories, "note": None}
    return PendingAlert("d1", "chatt", "kazakstan", None, json.dumps(doc), 0, kind="digest")


def test_a_digest_in_chat_is_a_short_list_of_headlines_with_links(ntfy: Ntfy) -> None:
    notifier = AppriseNotifier(name="chatt", type="apprise", urls=(ntfy.url(),), timeout=10)

    receipt = asyncio.run(chat.send(notifier, digest_alert(40)))

    [message] = ntfy.messages
    assert message["title"] == "[kazakstan] Digest: 40 stories"
    assert "Rubrik nummer 0\n  https://example.se/nyhet/0" in message["message"]
    assert "Rubrik nummer 14" in message["message"] and "Rubrik nummer 15" not in message["message"]
    assert "… and 25 more" in message["message"]
    assert len(message["message"]) <= CHAT_BODY_MAX
    assert receipt.startswith("apprise: ntfy ") and ": ok" in receipt


def test_a_service_slower_than_the_timeout_is_a_transient_failure(ntfy: Ntfy) -> None:
    ntfy.delay = 3
    notifier = AppriseNotifier(name="chatt", type="apprise", urls=(ntfy.url(),), timeout=1)

    with pytest.raises(DeliveryError) as failure:
        asyncio.run(chat.send(notifier, digest_alert(1)))

    assert not failure.value.permanent and failure.value.owed is None
    assert "timeout" in str(failure.value) or "within" in str(failure.value)


def test_the_token_in_an_apprise_url_stays_out_of_errors() -> None:
    token = "tk_hemligtoken123456789abcdefghij"  # ntfy access tokens look like this
    notifier = AppriseNotifier(name="chatt", type="apprise",
                               urls=(f"ntfys://{token}@127.0.0.1:1/nyheter",), timeout=5)
    # Port 1 refuses the connection at once.
    with pytest.raises(DeliveryError) as failure:
        asyncio.run(chat.send(notifier, digest_alert(1)))
    assert token not in str(failure.value)
    assert "ntfy" in str(failure.value), "the error still names the service"
