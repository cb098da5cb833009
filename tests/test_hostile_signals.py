"""Issue 11, item 6: SIGTERM or SIGINT at any moment ends the monitor within 10 s with rc 0,
and what was not fetched or not delivered waits for the next run instead of being marked failed.

Everything runs for real: the CLI in a subprocess, a local site whose article pages hold their
answer, a webhook receiver that holds its answer, and the SQLite file the run leaves behind."""

from __future__ import annotations

import random
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml
from conftest import REPO, write_config
from servers import QuietHandler, serve, serve_handler

ITEMS = 40
FAST_ITEMS = 3  # pages answered at once, so there is something fetched before the signal
HOLD = 30.0  # longer than the test may take: only the monitor's own stop can end the run
STOP_WITHIN = 10.0
WORDS = ("regeringen", "protester", "flygplatsen", "säkerhet", "presidenten", "landet", "styrkor",
         "ambassaden", "medborgare", "huvudstaden", "militären", "uttalande", "förhandlingar",
         "gränsen", "ekonomin", "oljepriset", "valet", "oppositionen", "polisen", "domstolen",
         "demonstranter", "minister", "utrikes", "bistånd", "hamnen", "tåget", "skolan", "vården")


@dataclass
class SlowSite:
    """A feed of ITEMS articles whose pages (all but the first FAST_ITEMS) hold their answer
    until `release` is set; `asked` lists every article page requested."""

    base: str = ""
    release: threading.Event = field(default_factory=threading.Event)
    asked: list[int] = field(default_factory=list)

    def feed(self) -> bytes:
        now = formatdate(time.time(), usegmt=True)
        items = "".join(
            f"<item><title>Tokajev nyhet nummer {i}</title><link>{self.base}/artikel/{i}.html</link>"
            f"<guid isPermaLink=\"false\">slow-{i}</guid><pubDate>{now}</pubDate>"
            f"<description>Kort ingress {i}.</description></item>"
            for i in range(ITEMS)
        )
        return (f'<?xml version="1.0" encoding="UTF-8"?><rss version="2.0"><channel>'
                f"<title>Långsam</title><link>{self.base}/</link>{items}</channel></rss>").encode()


def article_page(i: int) -> bytes:
    # Distinct text per article, so no two pages join one story and each alerts on its own.
    rng = random.Random(i)
    paragraphs = "".join(
        "<p>" + " ".join(rng.choice(WORDS) for _ in range(40)).capitalize() + ".</p>"
        for _ in range(6)
    )
    return (f"<!doctype html><html lang=\"sv\"><head><meta charset=\"utf-8\">"
            f"<title>Tokajev nyhet nummer {i}</title></head><body><article>"
            f"<h1>Tokajev nyhet nummer {i}</h1>{paragraphs}</article></body></html>").encode()


def _slow_handler(site: SlowSite) -> type[BaseHTTPRequestHandler]:
    class Handler(QuietHandler):
        def do_GET(self) -> None:
            if self.path == "/feed.xml":
                return self.answer(site.feed(), "application/rss+xml")
            if self.path.startswith("/artikel/"):
                i = int(self.path.removeprefix("/artikel/").removesuffix(".html"))
                site.asked.append(i)
                if i >= FAST_ITEMS:
                    site.release.wait(HOLD)
                return self.answer(article_page(i), "text/html; charset=utf-8")
            return self.answer(b"not found", "text/plain", 404)

    return Handler


@contextmanager
def slow_site() -> Iterator[SlowSite]:
    site = SlowSite()
    with serve_handler(_slow_handler(site)) as base:
        site.base = base
        try:
            yield site
        finally:
            site.release.set()


@dataclass
class HoldingReceiver:
    """A webhook receiver that takes each POST in and holds its answer until `release` is set."""

    url: str = ""
    release: threading.Event = field(default_factory=threading.Event)
    arrived: list[bytes] = field(default_factory=list)


def _holding_handler(receiver: HoldingReceiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def do_POST(self) -> None:
            receiver.arrived.append(self.rfile.read(int(self.headers.get("Content-Length", 0))))
            receiver.release.wait(HOLD)
            try:
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()
            except OSError:
                pass

    return Handler


@contextmanager
def holding_receiver() -> Iterator[HoldingReceiver]:
    receiver = HoldingReceiver()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _holding_handler(receiver))
    server.daemon_threads = True
    with serve(server) as base:
        receiver.url = f"{base}/hook"
        try:
            yield receiver
        finally:
            receiver.release.set()


def config_for(tmp_path: Path, site: SlowSite, webhook: str | None = None) -> Path:
    notifiers = [{"name": "logg", "type": "log"}]
    if webhook:
        notifiers.append({"name": "hook", "type": "webhook", "url": webhook, "timeout": 60})
    return write_config(tmp_path, {
        "database": "monitor.db",
        "crawl": {"delay": 0, "timeout": "60s", "obey_robots": False, "page_cache": False},
        "sources": [{"name": "slow", "type": "feed", "url": f"{site.base}/feed.xml",
                     "interval": "10m"}],
        "watchlists": [{"name": "tokajev", "query": "tokajev",
                        "notify": [n["name"] for n in notifiers]}],
        "notifiers": notifiers,
    })


def start(config: Path, command: str, stderr_path: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "monitor", "--config", str(config), command],
        stdout=subprocess.PIPE, stderr=stderr_path.open("w"), text=True, cwd=config.parent,
        env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"},
    )


def stop_and_wait(process: subprocess.Popen[str], sig: signal.Signals) -> tuple[int | None, float]:
    """Send `sig`; the return code (None if still running after STOP_WITHIN) and seconds taken."""
    sent = time.monotonic()
    process.send_signal(sig)
    try:
        process.wait(timeout=STOP_WITHIN)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        return None, time.monotonic() - sent
    return process.returncode, time.monotonic() - sent


def wait_for(condition: Callable[[], bool], process: subprocess.Popen[str], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if process.poll() is not None:
            raise AssertionError(f"the monitor ended early with rc {process.returncode}")
        if time.monotonic() > deadline:
            process.kill()
            raise AssertionError("timed out waiting for the monitor")
        time.sleep(0.1)


def states(db: Path) -> dict[int, tuple[str, str | None]]:
    """article number → (state, fetch_error)"""
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT url, state, fetch_error FROM articles").fetchall()
    return {int(url.rsplit("/", 1)[1].removesuffix(".html")): (state, error)
            for url, state, error in rows}


def assert_no_traceback(stderr: str) -> None:
    for marker in ("Traceback", "CancelledError", "KeyboardInterrupt", "Set of Tasks/Futures",
                   " ERROR ", "Task was destroyed", "never awaited"):
        assert marker not in stderr, stderr[-3000:]


def assert_fetch_stopped_cleanly(db: Path) -> None:
    found = states(db)
    assert len(found) == ITEMS, "every feed item was stored before the stop"
    for i in range(FAST_ITEMS):
        assert found[i][0] != "fetch" and found[i][1] is None, f"page {i} answered: kept {found[i]}"
    waiting = [i for i, (state, _) in found.items() if state == "fetch"]
    failed = {i: error for i, (_, error) in found.items() if error}
    assert failed == {}, f"unfetched articles marked failed: {failed}"
    assert len(waiting) >= ITEMS - FAST_ITEMS - 2, f"unfetched articles must wait: {found}"


@pytest.mark.parametrize("command, sig", [("once", signal.SIGINT), ("run", signal.SIGTERM)])
def test_a_signal_mid_fetch_ends_at_once_and_leaves_unfetched_articles_waiting(
    tmp_path: Path, command: str, sig: signal.Signals
) -> None:
    with slow_site() as site:
        config = config_for(tmp_path, site)
        process = start(config, command, tmp_path / "stderr.log")
        wait_for(lambda: len(set(site.asked) - set(range(FAST_ITEMS))) >= 2, process)
        time.sleep(1)  # the fast pages' answers are extracted and handed back
        rc, _ = stop_and_wait(process, sig)
        stderr = (tmp_path / "stderr.log").read_text()

        assert rc == 0, f"rc {rc} (None: still running {STOP_WITHIN}s after the signal)\n{stderr[-3000:]}"
        assert_no_traceback(stderr)
        assert_fetch_stopped_cleanly(tmp_path / "monitor.db")

        site.release.set()  # the site is fast again: the next run fetches and alerts the rest
        after = subprocess.run(
            [sys.executable, "-m", "monitor", "--config", str(config), "once"], capture_output=True,
            text=True, cwd=tmp_path, env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"},
            timeout=120,
        )
    assert after.returncode == 0, after.stderr
    found = states(tmp_path / "monitor.db")
    assert all(state == "done" and error is None for state, error in found.values()), found
    with sqlite3.connect(tmp_path / "monitor.db") as conn:
        alerted = conn.execute("SELECT COUNT(DISTINCT article_id) FROM alerts").fetchone()[0]
        unfetched = conn.execute("SELECT COUNT(*) FROM articles WHERE text = ''").fetchone()[0]
    assert alerted == ITEMS, "every article alerted, the waiting ones in the second run"
    assert unfetched == 0, "every article was matched on its page text"


@pytest.mark.parametrize("command, sig", [("once", signal.SIGTERM), ("run", signal.SIGINT)])
def test_a_signal_mid_delivery_leaves_the_alert_pending_not_failed(
    tmp_path: Path, command: str, sig: signal.Signals
) -> None:
    with slow_site() as site, holding_receiver() as receiver:
        site.release.set()  # pages answer at once; the receiver is what holds
        config = config_for(tmp_path, site, webhook=receiver.url)
        process = start(config, command, tmp_path / "stderr.log")
        wait_for(lambda: receiver.arrived != [], process)
        rc, _ = stop_and_wait(process, sig)
        stderr = (tmp_path / "stderr.log").read_text()

    assert rc == 0, f"rc {rc} (None: still running {STOP_WITHIN}s after the signal)\n{stderr[-3000:]}"
    assert_no_traceback(stderr)
    with sqlite3.connect(tmp_path / "monitor.db") as conn:
        hooks = conn.execute(
            "SELECT status, attempts, last_error FROM alerts WHERE notifier = 'hook'").fetchall()
        waiting = conn.execute("SELECT count(*) FROM articles WHERE state != 'done'").fetchone()[0]
    # Alerts are written as articles arrive: the articles not yet matched at the stop wait in
    # their state for the next run; with the alerts written they are every item.
    assert hooks and len(hooks) + waiting == ITEMS
    assert {status for status, _, _ in hooks} == {"pending"}, "the receiver never said yes"
    assert [(a, e) for _, a, e in hooks if a or e] == [], "no alert is marked failed for the stop"


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_while_starting_up_ends_quietly(tmp_path: Path, sig: signal.Signals) -> None:
    """Before the event loop takes over the signals (config loading, compiling watchlists)."""
    with slow_site() as site:
        config = config_for(tmp_path, site)
        many = [{"name": f"lista-{i}", "query": f'"{WORDS[i % len(WORDS)]} {i}" OR tokajev{i}*',
                 "notify": ["logg"]} for i in range(3000)]
        text = config.read_text(encoding="utf-8")
        data = yaml.safe_load(text)
        data["watchlists"] = many
        config = write_config(tmp_path, data)
        process = start(config, "once", tmp_path / "stderr.log")
        time.sleep(1.0)  # started, not yet polling: compiling 3,000 watchlists takes seconds
        assert process.poll() is None, "still starting up when the signal comes"
        rc, _ = stop_and_wait(process, sig)
        stderr = (tmp_path / "stderr.log").read_text()
    assert rc == 0, f"rc {rc}\n{stderr[-3000:]}"
    assert_no_traceback(stderr)
    assert site.asked == [], "nothing was fetched"
