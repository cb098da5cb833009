"""Email delivery: one multipart/alternative message per alert (plain text and HTML). Everything
that came from the web is escaped in the HTML part."""

from __future__ import annotations

import asyncio
import html
import re
import smtplib
import ssl
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid

from monitor.alerts.payload import read_body
from monitor.errors import DeliveryError
from monitor.models import EmailNotifier, PendingAlert
from monitor.normalize import one_line

# A Subject is read in a list of messages; a longer title is cut (the body has it whole).
SUBJECT_TITLE_MAX = 150


def build_message(notifier: EmailNotifier, alert: PendingAlert) -> EmailMessage:
    doc = read_body(alert.body)
    article = doc["article"]
    # The stored title is plain text; fold white space so it cannot break the Subject header.
    title = " ".join(article["title"].split()) or article["url"]
    message = EmailMessage()
    message["Subject"] = f"[{doc['watchlist']}] {one_line(title, SUBJECT_TITLE_MAX)}"
    message["From"] = notifier.sender
    message["To"] = ", ".join(notifier.to)
    message["Date"] = format_datetime(datetime.now(UTC))
    message["Message-ID"] = make_msgid(idstring=alert.id, domain="monitor.local")
    message["X-Monitor-Alert-Id"] = alert.id
    message.set_content(_plain(doc, title))
    message.add_alternative(_html(doc, title), subtype="html")
    return message


def _plain(doc: dict, title: str) -> str:
    article = doc["article"]
    lines = [
        title,
        article["url"],
        f"Source: {article['source']}   Published: {article.get('published') or 'unknown'}",
        "",
        doc.get("snippet") or article.get("summary") or "",
        "",
        f"Matched: {', '.join(doc['matches'])}",
        f"Watchlist: {doc['watchlist']}{'  (update of an earlier article)' if doc.get('update') else ''}",
    ]
    if doc.get("also_seen_at"):
        lines += ["", "Also seen at:", *(f"  {url}" for url in doc["also_seen_at"])]
    return "\n".join(lines) + "\n"


def _html(doc: dict, title: str) -> str:
    article = doc["article"]
    e = html.escape
    snippet = _emphasise(doc.get("snippet") or article.get("summary") or "", doc["matches"])
    return (
        "<!DOCTYPE html><html><body>"
        f'<h2><a href="{e(article["url"])}">{e(title)}</a></h2>'
        f"<p><small>{e(article['source'])} · {e(article.get('published') or 'unknown')}</small></p>"
        f"<p>{snippet}</p>"
        f"<p>Matched: {e(', '.join(doc['matches']))}<br>Watchlist: {e(doc['watchlist'])}"
        f"{' (update of an earlier article)' if doc.get('update') else ''}</p>"
        f"{_also_seen(doc.get('also_seen_at') or [])}"
        "</body></html>"
    )


def _also_seen(urls: list[str]) -> str:
    if not urls:
        return ""
    items = "".join(f'<li><a href="{html.escape(u)}">{html.escape(u)}</a></li>' for u in urls)
    return f"<p>Also seen at:</p><ul>{items}</ul>"


def _emphasise(text: str, words: list[str]) -> str:
    """Escape the text and wrap each whole-word occurrence of a matched word in <strong>."""
    if not words:
        return html.escape(text)
    alternatives = "|".join(re.escape(w) for w in sorted(set(words), key=len, reverse=True))
    pattern = re.compile(rf"(?<!\w)(?:{alternatives})(?!\w)")
    parts, last = [], 0
    for found in pattern.finditer(text):
        parts += [html.escape(text[last:found.start()]), f"<strong>{html.escape(found[0])}</strong>"]
        last = found.end()
    parts.append(html.escape(text[last:]))
    return "".join(parts)


def _send_sync(notifier: EmailNotifier, message: EmailMessage) -> None:
    smtp = notifier.smtp
    context = ssl.create_default_context()
    client_class = smtplib.SMTP_SSL if smtp.ssl else smtplib.SMTP
    kwargs = {"context": context} if smtp.ssl else {}
    with client_class(smtp.host, smtp.port, timeout=smtp.timeout, **kwargs) as client:
        if smtp.starttls:
            client.starttls(context=context)
        if smtp.username:
            client.login(smtp.username, smtp.password or "")
        client.send_message(message)


async def send(notifier: EmailNotifier, alert: PendingAlert) -> None:
    message = build_message(notifier, alert)
    try:
        await asyncio.to_thread(_send_sync, notifier, message)
    except (OSError, smtplib.SMTPException) as exc:
        raise DeliveryError(f"SMTP {notifier.smtp.host}:{notifier.smtp.port}: {exc}") from exc
