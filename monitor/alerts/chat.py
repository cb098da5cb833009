"""Chat delivery through Apprise (`type: apprise`): Slack, Microsoft Teams, Telegram, Matrix,
ntfy, Discord and the rest, each named by an Apprise URL. A message goes as a short title (the
mail subject) and a plain-text body with the link(s) (the `{kind}.chat.txt` templates).

Apprise is synchronous (requests), so a send runs in a worker thread; the notifier's `timeout`
bounds the whole call, through Apprise's own call deadline and, should a service ignore it, by
no longer waiting for the thread. Apprise URLs carry their service's token: errors and receipts
name a service by Apprise's privacy form of its URL, and pass through monitor.redact.
"""

from __future__ import annotations

import asyncio
import logging

import apprise

from monitor.alerts.render import Renderer
from monitor.errors import DeliveryError
from monitor.models import AppriseNotifier, PendingAlert
from monitor.redact import redact

# What a receipt or an error quotes of what Apprise logged for one service.
LOG_SHOWN = 300
# Extra seconds to wait for the worker thread after Apprise's own deadline has passed.
DEADLINE_GRACE = 1.0


async def send(notifier: AppriseNotifier, alert: PendingAlert, renderer: Renderer | None = None) -> str:
    """Post the message to every URL of the notifier; returns what each service answered, raises
    DeliveryError (transient: the outbox tries again) unless all of them took it."""
    rendered = (renderer or Renderer()).render(alert)
    try:
        result = await asyncio.wait_for(
            asyncio.to_thread(_notify, notifier, rendered.subject, rendered.chat),
            notifier.timeout + DEADLINE_GRACE,
        )
    except TimeoutError:
        raise DeliveryError(f"apprise: no complete answer within {notifier.timeout:g} s") from None
    answers = redact("; ".join(_service_answer(r) for r in result.results), notifier.urls)
    if not result:
        raise DeliveryError(f"apprise: {answers or result.status.name.lower()}")
    return f"apprise: {answers}"


def _notify(notifier: AppriseNotifier, title: str, body: str) -> apprise.AppriseResult:
    # A fresh Apprise per message: a plugin keeps state between calls (its throttle, the
    # targets it already delivered to) that belongs to one message, not to the next.
    client = apprise.Apprise()
    for url in notifier.urls:
        client.add(url)
    return client.notify(
        body=body, title=title, body_format=apprise.NotifyFormat.TEXT,
        timeout=notifier.timeout, log_level=logging.INFO,
    )


def _service_answer(result: apprise.NotifyResult) -> str:
    """'ntfy ntfy://host/topic: ok (Sent ntfy notification …)': the service, its URL in
    Apprise's privacy form without the options, the outcome and what the plugin logged."""
    where = result.url.split("?", 1)[0]
    logged = " ".join(" ".join(entry.message.split()) for entry in result.logs())
    outcome = "ok" if result else result.status.name.lower()
    return f"{result.name} {where}: {outcome}" + (f" ({logged[:LOG_SHOWN]})" if logged else "")
