"""The log notifier: one readable line per alert on standard output. Needs no server, so the
shipped configuration works on a fresh machine."""

from __future__ import annotations

import sys

from monitor.alerts.payload import read_body
from monitor.models import LogNotifier, PendingAlert


def format_line(alert: PendingAlert) -> str:
    doc = read_body(alert.body)
    article = doc["article"]
    words = ", ".join(doc["matches"])
    copies = len(doc.get("also_seen_at") or [])
    extra = (f"; +{copies} copies" if copies else "") + ("; update" if doc.get("update") else "")
    return (f"ALERT [{doc['watchlist']}] {article['title']} — {article['url']} "
            f"({article['source']}; matched: {words}{extra})")


async def send(notifier: LogNotifier, alert: PendingAlert) -> None:
    print(format_line(alert), file=sys.stdout, flush=True)
