"""Articles are matched and their alerts written as they arrive, not after the crawl ends: a
local outlet holds back some of its pages until the test, reading the database from a
connection of its own, has seen an alert of `monitor once` in the outbox."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest
import yaml
from conftest import REPO, write_config
from servers import HTML, RSS, QuietHandler, Receiver, serve_handler

# The held pages are released after this long at the latest, so a monitor that alerts only
# after its crawl still ends (and the test fails on what it saw, not on a hang).
HOLD_AT_MOST = 60
MATCHING = "Tokajev inför undantagstillstånd i Almaty efter protesterna."
OTHER = "Kommunen bygger en ny skola i centrum, beslutade fullmäktige i går."


@dataclass
class SlowOutlet:
    """Two feeds: `snabb` (its pages answered at once) and `trog` (its pages held back until
    `release` is set)."""

    base: str = ""
    release: threading.Event = field(default_factory=threading.Event)
    served_held: list[str] = field(default_factory=list)  # held pages answered, in order
    items: dict[str, list[tuple[str, str]]] = field(default_factory=dict)  # feed → (slug, text)

    def feed(self, name: str) -> bytes:
        entries = "".join(
            f"<item><title>{text[:40]}</title><link>{self.base}/{name}/{slug}.html</link>"
            f"<guid>{name}-{slug}</guid><description>{text}</description></item>"
            for slug, text in self.items[name])
        return (f'<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel>'
                f"<title>{name}</title><link>{self.base}/</link>{entries}</channel></rss>").encode()

    def page(self, name: str, slug: str) -> bytes:
        text = dict(self.items[name])[slug]
        paragraphs = "".join(f"<p>{text} Stycke {n} av texten i artikeln.</p>" for n in range(6))
        return (f'<!DOCTYPE html><html lang="sv"><head><meta charset="utf-8"><title>{slug}</title>'
                f"</head><body><article><h1>{text[:40]}</h1>{paragraphs}</article></body></html>"
                ).encode()


def _handler(outlet: SlowOutlet) -> type[BaseHTTPRequestHandler]:
    class Handler(QuietHandler):
        def do_GET(self) -> None:
            parts = self.path.strip("/").split("/")
            if len(parts) == 1 and parts[0].endswith(".xml"):
                return self.answer(outlet.feed(parts[0].removesuffix(".xml")), RSS)
            if len(parts) != 2 or parts[0] not in outlet.items:
                return self.answer(b"not found", "text/plain", 404)
            if parts[0] == "trog":
                outlet.release.wait(HOLD_AT_MOST)
                outlet.served_held.append(self.path)
            return self.answer(outlet.page(parts[0], parts[1].removesuffix(".html")), HTML)

    return Handler


@pytest.fixture
def outlet() -> Iterator[SlowOutlet]:
    served = SlowOutlet()
    with serve_handler(_handler(served)) as base:
        served.base = base
        try:
            yield served
        finally:
            served.release.set()  # no handler thread left waiting


def config(tmp_path: Path, outlet: SlowOutlet, fast_full_text: bool) -> Path:
    return write_config(tmp_path, {
        "database": "monitor.db",
        "crawl": {"delay": 0, "timeout": f"{HOLD_AT_MOST + 30}s"},
        "sources": [
            {"name": "snabb", "type": "feed", "url": f"{outlet.base}/snabb.xml", "interval": "10m",
             "full_text": fast_full_text},
            {"name": "trog", "type": "feed", "url": f"{outlet.base}/trog.xml", "interval": "10m"},
        ],
        "watchlists": [{"name": "kazakstan", "query": "tokajev*", "notify": ["logg"]}],
        "notifiers": [{"name": "logg", "type": "log"}],
    })


def outbox(database: Path) -> list[tuple[str, str]]:
    """(article's source, status) of each alert, read on a connection of our own; empty until
    the monitor has made its tables."""
    try:
        with sqlite3.connect(f"{database.as_uri()}?mode=ro", uri=True, timeout=5) as db:
            return list(db.execute(
                "SELECT r.source, a.status FROM alerts a JOIN articles r ON r.id = a.article_id"))
    except sqlite3.OperationalError:
        return []


def watch_for_an_alert(database: Path, outlet: SlowOutlet, process: subprocess.Popen[str],
                       kill: bool = False, status: str | None = None
                       ) -> tuple[list[tuple[str, str]], int]:
    """The outbox as first seen with an alert in it (of `status`, if given; empty if the monitor
    ended first), and how many of `trog`'s held pages had been answered by then; then lets the
    pages go, or with `kill`, SIGKILLs the monitor first and keeps them held."""
    try:
        while process.poll() is None:
            answered = len(outlet.served_held)
            seen = outbox(database)
            if seen and (status is None or (status in {s for _, s in seen})):
                return seen, answered
            time.sleep(0.05)
        return [], len(outlet.served_held)
    finally:
        if kill:
            process.send_signal(signal.SIGKILL)
        else:
            outlet.release.set()


def start(path: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "monitor", "--config", str(path), "once"], cwd=path.parent, text=True,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env={**os.environ, "PYTHONPATH": str(REPO)})


@pytest.mark.parametrize("fast_full_text", [True, False], ids=["fetched page", "feed only"])
def test_an_alert_is_written_while_a_slow_outlet_is_still_being_crawled(
    tmp_path: Path, outlet: SlowOutlet, fast_full_text: bool
) -> None:
    outlet.items = {
        "snabb": [("tokajev", MATCHING), ("skola", OTHER)],
        "trog": [(f"notis-{n}", f"{OTHER} Notis {n}.") for n in range(3)],
    }
    path = config(tmp_path, outlet, fast_full_text)
    process = start(path)

    seen, answered = watch_for_an_alert(tmp_path / "monitor.db", outlet, process)
    out, err = process.communicate(timeout=HOLD_AT_MOST + 120)

    assert process.returncode == 0, err
    assert seen, "no alert in the outbox"
    assert answered == 0, "the alert was written only after the slow outlet's pages came"
    assert {source for source, _ in seen} == {"snabb"}
    assert {status for _, status in seen} <= {"pending", "sent"}
    # Then the held pages came, and were stored and matched in the same run.
    assert len(outlet.served_held) == 3
    with sqlite3.connect(tmp_path / "monitor.db") as db:
        states = dict(db.execute("SELECT state, count(*) FROM articles GROUP BY state"))
        texts = db.execute("SELECT count(*) FROM articles WHERE source = 'trog' AND text != ''"
                           ).fetchone()[0]
    assert states == {"done": 5}, states
    assert texts == 3
    assert "1 new alert" in out, out


def test_a_monitor_killed_mid_crawl_loses_nothing_and_sends_nothing_twice(
    tmp_path: Path, outlet: SlowOutlet, receiver: Receiver
) -> None:
    """SIGKILL once an alert is marked sent and the slow outlet's pages are still on their way
    (one of them matches too); the next run stores and matches what was left, and every alert
    reaches the receiver once: the sent mark was kept, the rest was not lost."""
    outlet.items = {
        "snabb": [("tokajev", MATCHING), ("skola", OTHER)],
        "trog": [("kazakstan", f"{MATCHING} Fler uppgifter i kväll."), *(
            (f"notis-{n}", f"{OTHER} Notis {n}.") for n in range(3))],
    }
    raw = yaml.safe_load(config(tmp_path, outlet, fast_full_text=True).read_text())
    raw["notifiers"] = [{"name": "siem", "type": "webhook", "url": receiver.url}]
    raw["watchlists"][0]["notify"] = ["siem"]
    path = write_config(tmp_path, raw)
    process = start(path)

    seen, answered = watch_for_an_alert(tmp_path / "monitor.db", outlet, process, kill=True,
                                        status="sent")
    process.communicate(timeout=60)
    assert seen and answered == 0, (seen, answered)

    outlet.release.set()
    again = subprocess.run([sys.executable, "-m", "monitor", "--config", str(path), "once"],
                           cwd=tmp_path, capture_output=True, text=True, timeout=300,
                           env={**os.environ, "PYTHONPATH": str(REPO)})

    assert again.returncode == 0, again.stderr
    with sqlite3.connect(tmp_path / "monitor.db") as db:
        states = dict(db.execute("SELECT state, count(*) FROM articles GROUP BY state"))
        texts = db.execute("SELECT count(*) FROM articles WHERE text != ''").fetchone()[0]
        alerts = dict(db.execute("SELECT id, status FROM alerts"))
    assert states == {"done": 6}, states
    assert texts == 6
    received = Counter(json.loads(body)["id"] for body in receiver.bodies())
    assert set(alerts.values()) == {"sent"} and set(received) == set(alerts), (alerts, received)
    assert max(received.values()) == 1, received
