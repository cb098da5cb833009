"""Delivery of the outbox: every pending row goes to its channel; the row is marked sent only
after the channel said yes.

Within a pass a failed send is tried again with exponential backoff and jitter (RETRY_BASE
doubling, or what Retry-After asks), for up to the notifier's `retry_within`; then the notifier
is left alone until the alert's backoff across passes is over (1 min, 2, 4 … at most 1 h).
A receiver that refuses an alert for good (a 4xx other than 408/429) fails it at once; an alert
still not delivered `give_up_after` after it was queued fails too. Failed alerts are kept and
can be put back by hand (`monitor alerts retry`). Every attempt carries the same id and body; an
alert handed over whose answer never came (a timeout) is the only kind a receiver may see twice.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from monitor.alerts import email, log, webhook
from monitor.alerts.render import Renderer
from monitor.errors import DeliveryError
from monitor.models import Config, Notifier, PendingAlert
from monitor.store import FAILED, HELD, PENDING, Store

logger = logging.getLogger(__name__)

# Returns what the receiver answered; raises DeliveryError when it did not take the message.
Channel = Callable[[Notifier, PendingAlert, Renderer], Awaitable[str]]
CHANNELS: dict[str, Channel] = {"email": email.send, "webhook": webhook.send, "log": log.send}
RETRY_BASE = 0.5  # seconds before the first retry within a pass; doubles with each
PASS_BACKOFF_MIN, PASS_BACKOFF_MAX = 60, 3600  # the backoff across passes


def channel(notifier: Notifier) -> Channel:
    if notifier.type == "apprise":
        from monitor.alerts import chat  # Apprise is loaded only when a config uses it

        return chat.send
    return CHANNELS[notifier.type]


@dataclass
class DeliveryReport:
    sent: int = 0
    failed: int = 0  # attempts that failed in this pass
    gave_up: int = 0  # alerts that became failed in this pass
    pending: int = 0  # in the outbox after the pass
    failed_total: int = 0  # failed for good, waiting for `monitor alerts retry`
    held: int = 0  # held back for a digest or an hour's catch-up
    # For /metrics: (notifier, "sent" | "failed" | "gave_up") → alerts with that outcome in this
    # pass ("failed": not taken this time, tried again later; "gave_up": failed for good).
    outcomes: Counter[tuple[str, str]] = field(default_factory=Counter)


@dataclass(frozen=True)
class Claim:
    """A deliverer among several (a cluster): a pass sends only the alerts it claimed with
    Store.claim_alerts (FOR UPDATE SKIP LOCKED on PostgreSQL), so two deliverers never send one
    alert. A claim holds `seconds`; a send is started only while it has the longest a send can
    take (send_max) left, so no other deliverer can take an alert while it is on its way. A
    deliverer killed mid-send leaves its claim to run out: the next deliverer sends the alert
    again, with the same id (the idempotency key)."""

    owner: str
    seconds: float
    limit: int = 50

    def until(self, now: datetime) -> datetime:
        return now + timedelta(seconds=self.seconds)


# Beyond the retries and the last attempt's timeout, what a send may take (rendering, the loop).
SEND_SLACK = 5.0


def send_max(notifier: Notifier) -> float:
    """The longest one alert's send to this notifier may take: its retries within a pass and
    the last attempt's timeout."""
    smtp = getattr(notifier, "smtp", None)
    timeout = getattr(smtp, "timeout", None) or getattr(notifier, "timeout", None) or 0.0
    return notifier.retry_within + float(timeout) + SEND_SLACK


@dataclass
class _Outcome:
    receipt: str | None = None
    error: DeliveryError | None = None
    attempts: int = 0


async def deliver_pending(store: Store, config: Config, claim: Claim | None = None) -> DeliveryReport:
    """Send what is due in the outbox: everything pending, or with `claim` what this deliverer
    could claim."""
    report = DeliveryReport()
    notifiers = {n.name: n for n in config.notifiers}
    now = datetime.now(UTC)
    for notifier in notifiers.values():
        expired = _give_up_expired(store, notifier, now)
        report.gave_up += expired
        if expired:
            report.outcomes[notifier.name, "gave_up"] += expired
    queues: dict[str, list[PendingAlert]] = {}
    ends = None if claim is None else time.monotonic() + claim.seconds
    due = (store.pending_alerts(_iso(now)) if claim is None else
           store.claim_alerts(claim.owner, _iso(now), _iso(claim.until(now)), claim.limit))
    for alert in due:
        if alert.notifier in notifiers:  # else removed from the config: kept for later
            queues.setdefault(alert.notifier, []).append(alert)
    # One queue per notifier, side by side: a receiver that is down and being retried does not
    # hold back the others.
    renderer = Renderer.for_config(config)
    await asyncio.gather(*(_deliver_queue(store, notifiers[name], alerts, report, renderer, ends)
                           for name, alerts in queues.items()))
    if claim is not None and not (report.sent or report.failed or report.gave_up):
        return report  # a deliverer's idle pass, every second: no count of the whole outbox
    counts = store.outbox_counts()
    report.pending = counts.get(PENDING, 0)
    report.failed_total = counts.get(FAILED, 0)
    report.held = counts.get(HELD, 0)
    return report


def _give_up_expired(store: Store, notifier: Notifier, now: datetime) -> int:
    cutoff = now - timedelta(seconds=notifier.give_up_after)
    count = store.give_up_expired(notifier.name, _iso(cutoff),
                                  f"gave up: not delivered within {_duration(notifier.give_up_after)}")
    if count:
        logger.warning("%d alerts to %s failed: not delivered within %s (monitor alerts --failed; "
                       "monitor alerts retry)", count, notifier.name, _duration(notifier.give_up_after))
    return count


async def _deliver_queue(store: Store, notifier: Notifier, alerts: list[PendingAlert],
                         report: DeliveryReport, renderer: Renderer, ends: float | None) -> None:
    async with webhook.connections():
        await _deliver_each(store, notifier, alerts, report, renderer, ends)


async def _deliver_each(store: Store, notifier: Notifier, alerts: list[PendingAlert],
                        report: DeliveryReport, renderer: Renderer, ends: float | None = None) -> None:
    for alert in alerts:
        if ends is not None and time.monotonic() + send_max(notifier) > ends:
            return  # the claim could run out mid-send: the rest goes back when it ends
        outcome = await send_with_retries(store, notifier, alert, renderer)
        if outcome.error is None:
            store.mark_sent(alert.id)
            report.sent += 1
            report.outcomes[notifier.name, "sent"] += 1
            continue
        report.failed += 1
        error = outcome.error
        if error.permanent:
            store.give_up(alert.id, str(error))
            report.gave_up += 1
            report.outcomes[notifier.name, "gave_up"] += 1
            logger.warning("alert %s to %s refused for good: %s", alert.id, notifier.name, error)
            continue
        report.outcomes[notifier.name, "failed"] += 1
        retry_at = _defer(store, alert, error)
        logger.warning("alert %s to %s failed (%d attempts in this pass); next try after %s: %s",
                       alert.id, notifier.name, outcome.attempts, retry_at, error)
        if error.receiver_down:
            # The rest of the notifier's queue waits as long as this alert does.
            store.defer_notifier(notifier.name, retry_at)
            return


async def send_with_retries(store: Store, notifier: Notifier, alert: PendingAlert,
                            renderer: Renderer | None = None) -> _Outcome:
    """Send, and on a transient failure try again within the notifier's `retry_within`. Every
    attempt is recorded on the alert (count and last error) as it happens."""
    send = channel(notifier)
    deadline = time.monotonic() + notifier.retry_within
    outcome = _Outcome()
    while True:
        outcome.attempts += 1
        try:
            outcome.receipt = await send(notifier, alert, renderer or Renderer())
            outcome.error = None
            return outcome
        except DeliveryError as error:
            outcome.error = exc = error
            store.mark_failed(alert.id, str(exc), exc.owed)
        except Exception as error:
            # A fault of ours (a template, a malformed stored body) stays with this message and
            # is retried like a refusal: the pass and the other alerts go on.
            logger.exception("alert %s to %s: sending failed", alert.id, notifier.name)
            outcome.error = exc = DeliveryError(f"internal error: {error!r}"[:500], local=True)
            store.mark_failed(alert.id, str(exc))
            return outcome
        if not exc.receiver_down:
            # Refused for good, a mail server that took it for some recipients and refused the
            # others (those are tried again on their own in a later pass, not seconds later), or
            # a fault of ours with this message that a retry would repeat.
            return outcome
        wait = retry_wait(outcome.attempts, exc.retry_after)
        if time.monotonic() + wait > deadline:
            return outcome
        await asyncio.sleep(wait)


def retry_wait(attempts: int, retry_after: float | None) -> float:
    """Seconds before the next try within a pass: what the receiver asked for, else RETRY_BASE
    doubling with each attempt, with jitter (half fixed, half random), so that many monitors
    behind one receiver do not come back in step."""
    if retry_after is not None:
        return retry_after
    step = RETRY_BASE * 2 ** (attempts - 1)
    return step / 2 + random.uniform(0, step / 2)


def _defer(store: Store, alert: PendingAlert, error: DeliveryError) -> str:
    backoff = min(max(PASS_BACKOFF_MIN, store.backoff_of(alert.id) * 2), PASS_BACKOFF_MAX)
    wait = max(backoff, error.retry_after or 0)
    retry_at = _iso(datetime.now(UTC) + timedelta(seconds=wait))
    store.defer(alert.id, retry_at, backoff)
    return retry_at


def _iso(when: datetime) -> str:
    return when.isoformat(timespec="seconds")


def _duration(seconds: int) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds % size == 0 and seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"
