"""The log notifier: one readable line per message on standard output. Needs no server, so the
shipped configuration works on a fresh machine."""

from __future__ import annotations

import logging
from typing import Any

from monitor.alerts.payload import read_body
from monitor.alerts.render import Renderer
from monitor.models import CATCHUP, DIGEST_MESSAGE, SOURCE_NOTICE, TEST, LogNotifier, PendingAlert
from monitor.normalize import one_line

# The line is read by people and log shippers: a title gets a line's worth, a URL its usual
# maximum length.
TITLE_IN_LOG = 300
URL_IN_LOG = 2_000
# A digest line names its first few headlines; the rest are counted.
TITLES_IN_DIGEST_LINE = 5
# The CLI sends this logger's lines to standard output, stamped with the time like every other
# line of the daemon (or as JSON with log_format: json).
output = logging.getLogger("monitor.output")


def format_line(alert: PendingAlert) -> str:
    doc = read_body(alert.body)
    kind = doc.get("kind")
    if kind in (DIGEST_MESSAGE, CATCHUP):
        return _digest_line(doc)
    if kind == SOURCE_NOTICE:
        return (f"SOURCE {doc['source']} {doc['state'].upper()}: {one_line(doc['problem'], TITLE_IN_LOG)}"
                f" — {one_line(doc['url'], URL_IN_LOG)}")
    if kind == TEST:
        return f"TEST message to {doc['notifier']} ({doc['id']}): {one_line(doc['message'], TITLE_IN_LOG)}"
    return _alert_line(doc)


def _alert_line(doc: dict[str, Any]) -> str:
    article = doc["article"]
    words = ", ".join(doc["matches"])
    copies = len(doc.get("also_seen_at") or [])
    extra = (f"; +{copies} copies" if copies else "") + ("; update" if doc.get("update") else "")
    title, url = one_line(article["title"], TITLE_IN_LOG), one_line(article["url"], URL_IN_LOG)
    line = (f"ALERT [{doc['watchlist']}] {title} — {url} "
            f"({article['source']}; matched: {words}{extra})")
    if doc.get("held_back"):
        line += f" — {one_line(doc['held_back'], TITLE_IN_LOG)}"
    return line


def _digest_line(doc: dict[str, Any]) -> str:
    stories = doc.get("stories") or []
    label = "DIGEST" if doc["kind"] == DIGEST_MESSAGE else "CATCH-UP"
    titles = [one_line(s["article"]["title"] or s["article"]["url"], TITLE_IN_LOG // 3)
              for s in stories[:TITLES_IN_DIGEST_LINE]]
    more = len(stories) - len(titles)
    listed = " | ".join(titles) + (f" | … {more} more" if more else "")
    count = f"{len(stories)} {'story' if len(stories) == 1 else 'stories'}"
    return f"{label} [{', '.join(doc['watchlists'])}] {count}" + (f": {listed}" if titles else "")


async def send(notifier: LogNotifier, alert: PendingAlert, renderer: Renderer | None = None) -> str:
    output.info("%s", format_line(alert))
    return "printed on standard output"
