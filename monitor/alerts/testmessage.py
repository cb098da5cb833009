"""`monitor test-notify NAME`: one clearly marked test message through one notifier, sent at
once, with no outbox row and no retries, so the answer printed is the receiver's own."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from monitor.alerts.outbox import channel
from monitor.alerts.payload import new_alert_id
from monitor.alerts.render import Renderer
from monitor.errors import MonitorError
from monitor.models import TEST, Config, Notifier, PendingAlert

TEST_TEXT = ("If you can read this, monitor's alerts reach you through this notifier. "
             "Nothing needs to be done.")


def build_test_message(notifier: Notifier, text: str = TEST_TEXT) -> PendingAlert:
    alert_id = new_alert_id()
    created = datetime.now(UTC).isoformat(timespec="seconds")
    document = {"id": alert_id, "kind": TEST, "created": created, "notifier": notifier.name,
                "message": text}
    body = json.dumps(document, ensure_ascii=False, separators=(",", ":"))
    return PendingAlert(alert_id, notifier.name, "", None, body, 0, kind=TEST, created=created)


def find_notifier(config: Config, name: str) -> Notifier:
    for notifier in config.notifiers:
        if notifier.name == name:
            return notifier
    known = ", ".join(n.name for n in config.notifiers) or "none configured"
    raise MonitorError(f"no notifier named {name!r} (notifiers: {known})")


async def send_test_message(config: Config, notifier: Notifier) -> str:
    """Send once; returns the receiver's answer, raises DeliveryError when it refused or did not
    answer."""
    send = channel(notifier)
    return await send(notifier, build_test_message(notifier), Renderer.for_config(config))
