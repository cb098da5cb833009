"""Email delivery: one multipart/alternative message per alert (plain text and HTML). Everything
that came from the web is escaped in the HTML part."""

from __future__ import annotations

import asyncio
import contextlib
import html
import re
import smtplib
import socket
import ssl
import threading
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid

from monitor.alerts.payload import read_body
from monitor.errors import DeliveryError
from monitor.models import EmailNotifier, PendingAlert, SmtpSettings
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


class _Session:
    """One SMTP conversation in a worker thread that the event loop can cut short: smtplib's
    timeout is per socket operation, so a server trickling its replies is stopped by shutting
    the socket down, which wakes the thread's blocked read."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._client: smtplib.SMTP | None = None
        self._aborted = False

    def client(self, smtp_settings: SmtpSettings) -> smtplib.SMTP:
        session = self

        class Client(smtplib.SMTP_SSL if smtp_settings.ssl else smtplib.SMTP):
            def _get_socket(self, host: str, port: int, timeout: float) -> socket.socket:
                sock = super()._get_socket(host, port, timeout)
                session._connected(self, sock)
                return sock

        kwargs = {"context": ssl.create_default_context()} if smtp_settings.ssl else {}
        return Client(timeout=smtp_settings.timeout, **kwargs)

    def _connected(self, client: smtplib.SMTP, sock: socket.socket) -> None:
        with self._lock:
            self._client = client
            aborted = self._aborted
        if aborted:
            _shut(sock)

    def abort(self) -> None:
        with self._lock:
            self._aborted = True
            sock = getattr(self._client, "sock", None)
        if sock is not None:
            _shut(sock)


def _shut(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)


def _send_sync(notifier: EmailNotifier, message: EmailMessage, recipients: tuple[str, ...],
               session: _Session) -> dict[str, tuple[int, bytes]]:
    """Send to `recipients`; returns the ones the server refused (smtplib raises only when it
    refused all of them)."""
    smtp = notifier.smtp
    client = session.client(smtp)
    try:
        client.connect(smtp.host, smtp.port)
        if smtp.starttls:
            client.starttls(context=ssl.create_default_context())
        if smtp.username:
            client.login(smtp.username, smtp.password or "")
        refused = client.send_message(message, to_addrs=list(recipients))
        # The server has the message: say goodbye without waiting for its answer, which
        # would otherwise count against the deadline of a send that already succeeded.
        with contextlib.suppress(OSError, smtplib.SMTPException):
            client.putcmd("quit")
        return refused
    finally:
        client.close()


async def send(notifier: EmailNotifier, alert: PendingAlert) -> str:
    """Mail the alert to the recipients still owed it. `smtp.timeout` bounds the whole send;
    when it runs out the outcome is unknown, and the alert counts as not sent."""
    message = build_message(notifier, alert)
    recipients = alert.owed if alert.owed is not None else notifier.to
    where = f"SMTP {notifier.smtp.host}:{notifier.smtp.port}"
    session = _Session()
    try:
        refused = await asyncio.wait_for(
            asyncio.to_thread(_send_sync, notifier, message, recipients, session),
            notifier.smtp.timeout,
        )
    except TimeoutError:
        session.abort()
        raise DeliveryError(f"{where}: no complete answer within {notifier.smtp.timeout:g} s") from None
    except (OSError, smtplib.SMTPException) as exc:
        raise DeliveryError(f"{where}: {exc}") from exc
    if refused:
        owed = tuple(r for r in recipients if r in refused)
        reasons = "; ".join(f"{r}: {code} {text.decode('utf-8', 'replace')}"
                            for r, (code, text) in refused.items())
        raise DeliveryError(f"{where} refused {reasons}", owed=owed)
    return f"{where} accepted the message for {', '.join(recipients)}"
