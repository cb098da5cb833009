"""Delivery of the outbox: every pending alert goes to its channel; the row is marked sent only
after the channel said yes. A failure stays pending and is retried on the next pass, with the
same id and body; an alert handed over whose answer never came (a timeout) is the only kind a
receiver may see twice."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from monitor.alerts import email, log, webhook
from monitor.errors import DeliveryError
from monitor.models import Config, Notifier, PendingAlert
from monitor.store import Store

logger = logging.getLogger(__name__)

Channel = Callable[[Notifier, PendingAlert], Awaitable[None]]
CHANNELS: dict[str, Channel] = {"email": email.send, "webhook": webhook.send, "log": log.send}


@dataclass
class DeliveryReport:
    sent: int = 0
    failed: int = 0
    pending: int = 0


async def deliver_pending(store: Store, config: Config) -> DeliveryReport:
    report = DeliveryReport()
    unreachable: set[str] = set()
    notifiers = {n.name: n for n in config.notifiers}
    for alert in store.pending_alerts():
        notifier = notifiers.get(alert.notifier)
        if notifier is None or alert.notifier in unreachable:
            # Removed from the config, or already failing in this pass: keep it for later.
            continue
        try:
            await CHANNELS[notifier.type](notifier, alert)
        except DeliveryError as exc:
            if exc.owed is None:
                # One failure per notifier per pass: do not hammer a receiver that is down.
                unreachable.add(alert.notifier)
            # else the server took the alert for some recipients: only the refused ones are
            # owed it, and are tried again on a later pass.
            store.mark_failed(alert.id, str(exc), exc.owed)
            report.failed += 1
            logger.warning("alert %s to %s failed (attempt %d): %s",
                           alert.id, alert.notifier, alert.attempts + 1, exc)
            continue
        store.mark_sent(alert.id)
        report.sent += 1
    report.pending = store.count_pending_alerts()
    return report
