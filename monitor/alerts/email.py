"""Email delivery: one multipart/alternative message per outbox row (plain text and HTML, from
the templates in render.py; everything that came from the web is escaped in the HTML part).

The Message-ID is the alert's id, so a retry is the same message to a mail client, and a later
alert of the same story (another watchlist, a revision) names the story's first alert in
In-Reply-To/References, so it threads under it. List-Id is `<WATCHLIST.monitor>`; a digest of
several watchlists has `<digest.monitor>`, source notices `<operations.monitor>`, test messages
`<test.monitor>`, so a mail rule can file each.
"""

from __future__ import annotations

import asyncio
import contextlib
import smtplib
import socket
import ssl
import threading
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime

from monitor.alerts.payload import read_body
from monitor.alerts.render import Renderer
from monitor.errors import DeliveryError
from monitor.models import (
    ALERT,
    CATCHUP,
    DIGEST_MESSAGE,
    SOURCE_NOTICE,
    TEST,
    EmailNotifier,
    PendingAlert,
    SmtpSettings,
)

MESSAGE_ID_DOMAIN = "monitor"
LIST_ID_DOMAIN = "monitor"


def message_id(alert_id: str) -> str:
    return f"<{alert_id}@{MESSAGE_ID_DOMAIN}>"


def build_message(notifier: EmailNotifier, alert: PendingAlert,
                  renderer: Renderer | None = None) -> EmailMessage:
    rendered = (renderer or Renderer()).render(alert)
    message = EmailMessage()
    message["Subject"] = rendered.subject
    message["From"] = notifier.sender
    message["To"] = ", ".join(notifier.to)
    message["Date"] = format_datetime(datetime.now(UTC))
    message["Message-ID"] = message_id(alert.id)
    if alert.thread:
        message["In-Reply-To"] = message_id(alert.thread)
        message["References"] = message_id(alert.thread)
    message["List-Id"] = list_id(read_body(alert.body))
    message["X-Monitor-Alert-Id"] = alert.id
    message.set_content(rendered.text)
    message.add_alternative(rendered.html, subtype="html")
    return message


def list_id(doc: dict) -> str:
    """RFC 2919 List-Id: one list per watchlist (config names are letters, digits, '-', '_'
    and '.', all allowed in it); a digest of several watchlists is the digest list."""
    kind = doc.get("kind", ALERT)
    if kind == ALERT:
        label = doc["watchlist"]
    elif kind in (DIGEST_MESSAGE, CATCHUP):
        names = doc.get("watchlists") or []
        label = names[0] if len(names) == 1 else "digest"
    elif kind == SOURCE_NOTICE:
        label = "operations"
    else:
        label = TEST
    return f"{label} <{label}.{LIST_ID_DOMAIN}>"


class _Session:
    """One SMTP conversation in a worker thread that the event loop can cut short: smtplib's
    timeout is per socket operation, so a server trickling its replies is stopped by shutting
    the socket down, which wakes the thread's blocked read."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._client: smtplib.SMTP | None = None
        self._aborted = False
        # The server's answer to the message (after DATA): what the receipt quotes.
        self.answer: tuple[int, bytes] | None = None

    def client(self, smtp_settings: SmtpSettings) -> smtplib.SMTP:
        session = self

        class Client(smtplib.SMTP_SSL if smtp_settings.ssl else smtplib.SMTP):
            def _get_socket(self, host: str, port: int, timeout: float) -> socket.socket:
                sock = super()._get_socket(host, port, timeout)
                session._connected(self, sock)
                return sock

            def data(self, msg: bytes | str) -> tuple[int, bytes]:
                # send_message does not hand back the reply to DATA; keep it for the receipt.
                session.answer = super().data(msg)
                return session.answer

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


async def send(notifier: EmailNotifier, alert: PendingAlert, renderer: Renderer | None = None) -> str:
    """Mail the alert to the recipients still owed it; returns what the server answered.
    `smtp.timeout` bounds the whole send; when it runs out the outcome is unknown, and the alert
    counts as not sent."""
    message = build_message(notifier, alert, renderer)
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
    answer = ""
    if session.answer is not None:
        code, text = session.answer
        answer = f": {code} {' '.join(text.decode('utf-8', 'replace').split())}"
    return f"{where} accepted the message for {', '.join(recipients)}{answer}"
