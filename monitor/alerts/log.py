"""The log notifier: one readable line per alert on standard output. Needs no server, so the
shipped configuration works on a fresh machine."""

from __future__ import annotations

import sys

from monitor.alerts.payload import read_body
from monitor.models import LogNotifier, PendingAlert
from monitor.normalize import one_line

# The line is read by people and log shippers: a title gets a line's worth, a URL its usual
# maximum length.
TITLE_IN_LOG = 300
URL_IN_LOG = 2_000


def format_line(alert: PendingAlert) -> str:
    doc = read_body(alert.body)
    article = doc["article"]
    words = ", ".join(doc["matches"])
    copies = len(doc.get("also_seen_at") or [])
    extra = (f"; +{copies} copies" if copies else "") + ("; update" if doc.get("update") else "")
    title, url = one_line(article["title"], TITLE_IN_LOG), one_line(article["url"], URL_IN_LOG)
    return (f"ALERT [{doc['watchlist']}] {title} — {url} "
            f"({article['source']}; matched: {words}{extra})")


async def send(notifier: LogNotifier, alert: PendingAlert) -> str:
    print(format_line(alert), file=sys.stdout, flush=True)
    return "printed on standard output"
