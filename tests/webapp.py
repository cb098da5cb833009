"""For the tests of the web pages: a database filled by a real `monitor once` against the local
news site, with one story whose title is hostile markup, and the daemon's HTTP listener
(monitor.http.start_http) serving it from a thread's own event loop."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

from conftest import WEBHOOK_SECRET, monitor_config, run_monitor, write_config
from servers import Site

from monitor.config import load_config
from monitor.http import start_http
from monitor.metrics import Metrics
from monitor.models import Config, HttpSettings

HOSTILE = '<img src=x onerror="window.pwned=1">'
HOSTILE_PAGE = "nyheter/utrikes/fientlig-rubrik.html"
# Escaped twice: the feed's XML gives "&lt;img …&gt;", which the monitor stores as the text
# "<img …>", a title that must never become an element.
HOSTILE_ITEM = """<item>
      <title>&amp;lt;img src=x onerror="window.pwned=1"&amp;gt;</title>
      <link>{base}/nyheter/utrikes/fientlig-rubrik.html</link>
      <guid isPermaLink="false">nordposten-6666</guid>
      <pubDate>Tue, 24 Nov 2026 08:15:00 +0100</pubDate>
      <description>Rubriken är markup; texten handlar om oroligheterna i Kazakstan.</description>
    </item>
  </channel>"""
HOSTILE_HTML = """<!doctype html><html lang="sv"><head><meta charset="utf-8">
<title>&lt;img src=x onerror="window.pwned=1"&gt;</title></head><body><article>
<h1>&lt;img src=x onerror="window.pwned=1"&gt;</h1>
<p>Oroligheterna i Kazakstan fortsätter. Demonstranter samlades på nytt i Almaty under
tisdagen, och regeringen har bett om hjälp från CSTO, den ryskledda försvarsalliansen.</p>
<p>Flera svenska företag med verksamhet i landet har tagit hem sin personal.</p>
</article></body></html>"""
RUNNING = {"running": True, "sources": {}}


def fill_database(directory: Path, site: Site) -> Config:
    """One real cycle over two feeds of the local site, one of its items titled HOSTILE."""
    feed = (site.root / "rss/utrikes.xml").read_text(encoding="utf-8")
    site.write("rss/utrikes.xml", feed.replace("</channel>", HOSTILE_ITEM, 1))
    site.write(HOSTILE_PAGE, HOSTILE_HTML)
    raw = monitor_config(site, feeds=("rss/utrikes.xml", "rss/inrikes.latin1.xml"))
    path = write_config(directory, raw)
    result = run_monitor(path, "once")
    assert result.returncode == 0, result.stderr
    config = load_config(path, {"WEBHOOK_SECRET": WEBHOOK_SECRET})
    return replace(config, http=HttpSettings("127.0.0.1", 0))


@contextmanager
def listening(config: Config) -> Iterator[str]:
    """The daemon's listener on a free port of 127.0.0.1, on an event loop in a thread of its
    own (as in the daemon, where it shares the scheduler's loop); yields its base URL."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="http", daemon=True)
    thread.start()
    try:
        handle = asyncio.run_coroutine_threadsafe(
            start_http(config, lambda: RUNNING, Metrics(config)), loop).result(30)
        try:
            yield f"http://127.0.0.1:{handle.port}"
        finally:
            asyncio.run_coroutine_threadsafe(handle.close(), loop).result(30)
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()
