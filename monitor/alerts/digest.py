"""Held-back alerts: digests and flood control.

A digest watchlist holds every alert for its next digest; an immediate watchlist with
`max_per_hour` sends that many stories per clock hour (UTC hour boundaries) and holds the rest,
for its digest when it has a `schedule`, else for one catch-up message when the hour ends.
Watchlists with the same schedule and time zone share one digest (per notifier).

A digest or catch-up is an outbox row of its own, sent by the normal delivery; it is written in
the same transaction that marks the held alerts it carries as bundled into it, so a story is in
exactly one message, however the monitor stops.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from apscheduler.triggers.cron import CronTrigger

from monitor.alerts.outbox import DeliveryReport, deliver_pending
from monitor.alerts.payload import new_alert_id, read_body
from monitor.models import CATCHUP, DEFAULT_TIMEZONE, DIGEST, DIGEST_MESSAGE, Config, PendingAlert, Watchlist
from monitor.store import HOLD_CATCHUP, HOLD_DIGEST, SENT, HeldAlert, Store

logger = logging.getLogger(__name__)

GroupKey = tuple[str, str]  # (cron expression, time zone) of a digest


@dataclass(frozen=True)
class Hold:
    """What happens to a new alert of a watchlist: sent now (hold None) or held back."""

    hold: str | None = None  # HOLD_DIGEST or HOLD_CATCHUP
    release_at: str | None = None  # a catch-up's: the end of the hour (UTC ISO)
    held_back: str | None = None  # the sentence the alert that reached the limit carries


SEND_NOW = Hold()


@dataclass(frozen=True)
class Bundle:
    """A digest or catch-up message written to the outbox."""

    id: str
    kind: str
    notifier: str
    watchlists: tuple[str, ...]
    stories: int


def hold_for(store: Store, watchlist: Watchlist, now: datetime) -> Hold:
    """Whether the watchlist's alert made `now` goes out now or is held back.

    Counted are the watchlist's stories alerted immediately in the current clock hour (a story
    alerts every notifier of the watchlist, so the count is of stories, not of outbox rows)."""
    if watchlist.delivery == DIGEST:
        return Hold(HOLD_DIGEST)
    limit = watchlist.max_per_hour
    if limit is None:
        return SEND_NOW
    hour = now.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    sent = store.immediate_stories_since(watchlist.name, _iso(hour))
    if sent < limit - 1:
        return SEND_NOW
    hour_end = hour + timedelta(hours=1)
    if sent == limit - 1:
        return Hold(held_back=held_back_note(watchlist, hour_end))
    if watchlist.schedule:
        return Hold(HOLD_DIGEST)
    return Hold(HOLD_CATCHUP, release_at=_iso(hour_end))


def held_back_note(watchlist: Watchlist, hour_end: datetime) -> str:
    zone = ZoneInfo(watchlist.timezone)
    limit = watchlist.max_per_hour
    first = (f"This is alert {limit} of {limit} this hour for watchlist {watchlist.name} "
             f"(max_per_hour: {limit}).")
    if watchlist.schedule:
        when = next_digest(watchlist.schedule, watchlist.timezone, hour_end)
        return (f"{first} Further matches until {hour_end.astimezone(zone):%H:%M} "
                f"({watchlist.timezone}) are held back and come in the next digest, "
                f"at {when:%H:%M} on {when:%Y-%m-%d}.")
    return (f"{first} Further matches this hour are held back and come in one catch-up message "
            f"at {hour_end.astimezone(zone):%H:%M} ({watchlist.timezone}).")


def next_digest(schedule: str, timezone: str, after: datetime) -> datetime:
    """The first time at or after `after` the cron expression fires, in its time zone."""
    trigger = CronTrigger.from_crontab(schedule, timezone=timezone)
    return trigger.get_next_fire_time(None, after.astimezone(ZoneInfo(timezone)))


# --- digests -----------------------------------------------------------------------------


def digest_groups(watchlists: Iterable[Watchlist]) -> dict[GroupKey, list[Watchlist]]:
    """The watchlists with a digest, by (schedule, time zone), each group in config order:
    one digest per group and notifier."""
    groups: dict[GroupKey, list[Watchlist]] = {}
    for watchlist in watchlists:
        if watchlist.digest_schedule is not None:
            groups.setdefault((watchlist.digest_schedule, watchlist.timezone), []).append(watchlist)
    return groups


def run_digest(store: Store, config: Config, watchlist_names: Sequence[str],
               now: datetime | None = None) -> list[Bundle]:
    """Bundle the held digest alerts of these watchlists into one digest per digest group and
    notifier, written to the outbox as pending (the caller delivers them)."""
    now = now or datetime.now(UTC)
    chosen = [w for w in config.watchlists if w.name in set(watchlist_names)]
    bundles: list[Bundle] = []
    for (_, timezone), group in digest_groups(chosen).items():
        bundles += _digest_group(store, config, group, timezone, now)
    return bundles


def _digest_group(store: Store, config: Config, group: list[Watchlist], timezone: str,
                  now: datetime) -> list[Bundle]:
    names = [w.name for w in group]
    held = store.held_alerts(HOLD_DIGEST, names)
    by_notifier: dict[str, list[HeldAlert]] = {}
    for alert in held:
        by_notifier.setdefault(alert.notifier, []).append(alert)
    # A digest with no stories goes only where a watchlist that asked for empty digests sends.
    for watchlist in group:
        for notifier in watchlist.notify if watchlist.send_empty else ():
            by_notifier.setdefault(notifier, [])
    bundles = []
    known = {n.name for n in config.notifiers}
    for notifier, alerts in by_notifier.items():
        if notifier not in known:
            continue  # removed from the config: its alerts stay held until it is back
        watchlists = tuple(w.name for w in group if notifier in w.notify
                           or any(a.watchlist == w.name for a in alerts))
        since = store.last_message_created(DIGEST_MESSAGE, ",".join(watchlists), notifier)
        note = None if alerts else "No new stories since the last digest."
        bundle = _bundle(store, DIGEST_MESSAGE, notifier, watchlists, alerts, timezone, now,
                         {"from": since, "to": _iso(now)}, note)
        if bundle:
            bundles.append(bundle)
    return bundles


async def bundle_and_deliver(store: Store, config: Config, watchlist_names: Sequence[str]
                             ) -> tuple[list[Bundle], DeliveryReport]:
    """Bundle these watchlists' digests (and any due catch-ups), then deliver the outbox. The
    caller makes sure no other delivery runs meanwhile (the delivery lock, the writer lock)."""
    bundles = run_digest(store, config, watchlist_names)
    release_catchups(store, config)
    return bundles, await deliver_pending(store, config)


# --- catch-ups ---------------------------------------------------------------------------


def release_catchups(store: Store, config: Config, now: datetime | None = None) -> list[Bundle]:
    """The alerts held back in an hour that has ended go out as one catch-up message per
    watchlist and notifier (written to the outbox as pending; delivery sends it)."""
    now = now or datetime.now(UTC)
    due: dict[tuple[str, str], list[HeldAlert]] = {}
    for alert in [*store.held_alerts(HOLD_CATCHUP, due=_iso(now)), *_orphaned(store, config)]:
        due.setdefault((alert.watchlist, alert.notifier), []).append(alert)
    bundles = []
    for (name, notifier), alerts in due.items():
        watchlist = config.watchlist(name)
        timezone = watchlist.timezone if watchlist else DEFAULT_TIMEZONE
        ends = [datetime.fromisoformat(a.release_at) for a in alerts if a.release_at]
        since = _iso(min(ends) - timedelta(hours=1)) if ends else None
        to = max(ends) if ends else now
        bundle = _bundle(store, CATCHUP, notifier, (name,), alerts, timezone, now,
                         {"from": since, "to": _iso(to)},
                         catchup_note(watchlist, name, len(alerts), since, to, timezone))
        if bundle:
            bundles.append(bundle)
            logger.info("catch-up: %d stories for %s → %s", bundle.stories, name, notifier)
    return bundles


def _orphaned(store: Store, config: Config) -> list[HeldAlert]:
    """Alerts held for a digest their watchlist no longer has (its delivery or schedule was
    changed, or it was removed): no digest would ever carry them, so a catch-up does."""
    with_digest = {w.name for w in config.watchlists if w.digest_schedule is not None}
    return [a for a in store.held_alerts(HOLD_DIGEST) if a.watchlist not in with_digest]


def catchup_note(watchlist: Watchlist | None, name: str, count: int, since: str | None,
                 to: datetime, timezone: str) -> str:
    zone = ZoneInfo(timezone)
    start = f"{datetime.fromisoformat(since).astimezone(zone):%H:%M}" if since else "?"
    limit = f" after {watchlist.max_per_hour} alerts" if watchlist and watchlist.max_per_hour else ""
    return (f"{count} more {'story' if count == 1 else 'stories'} for watchlist {name} "
            f"between {start} and {to.astimezone(zone):%H:%M} ({timezone}), held back{limit} "
            f"in the hour.")


# --- the message -------------------------------------------------------------------------


def _bundle(store: Store, kind: str, notifier: str, watchlists: tuple[str, ...],
            alerts: list[HeldAlert], timezone: str, now: datetime, period: dict[str, str | None],
            note: str | None) -> Bundle | None:
    message_id = new_alert_id()
    stories = story_documents(store, alerts, watchlists)
    document = {
        "id": message_id,
        "kind": kind,
        "created": _iso(now),
        "timezone": timezone,
        "watchlists": list(watchlists),
        "period": period,
        "stories": stories,
        "note": note,
    }
    message = PendingAlert(
        id=message_id, notifier=notifier, watchlist=",".join(watchlists), article_id=None,
        body=json.dumps(document, ensure_ascii=False, separators=(",", ":")), attempts=0,
        kind=kind, created=_iso(now))
    if not store.bundle_held(message, [a.id for a in alerts]):
        logger.warning("%s for %s → %s not written: its alerts were bundled meanwhile",
                       kind, ", ".join(watchlists), notifier)
        return None
    return Bundle(message_id, kind, notifier, watchlists, len(stories))


def story_documents(store: Store, alerts: list[HeldAlert], watchlists: Sequence[str]) -> list[dict]:
    """The held alerts' documents, their copies named as known now, grouped by watchlist (in
    the order given; any other after them) and newest first within one."""
    order = {name: i for i, name in enumerate(watchlists)}
    documents = []
    for alert in alerts:
        document = read_body(alert.body)
        if alert.story_id is not None:
            url = document["article"]["url"]
            document["also_seen_at"] = [u for u in store.story_urls(alert.story_id) if u != url]
        documents.append(document)
    documents.sort(key=_newest_first)
    documents.sort(key=lambda d: order.get(d["watchlist"], len(order)))  # stable: keeps the above
    return documents


def _newest_first(document: dict) -> float:
    when = document["article"].get("published") or document.get("created")
    try:
        moment = datetime.fromisoformat(when)
    except (TypeError, ValueError):
        return 0.0
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return -moment.timestamp()


def _iso(when: datetime) -> str:
    return when.astimezone(UTC).isoformat(timespec="seconds")


def describe_bundles(store: Store, bundles: Iterable[Bundle]) -> list[str]:
    """One line per digest or catch-up (all its notifiers), with where it is not yet sent:
    "digest: 3 stories for W1, W2 → siem, analytiker"."""
    messages: dict[tuple[str, tuple[str, ...]], list[Bundle]] = {}
    for bundle in bundles:
        messages.setdefault((bundle.kind, bundle.watchlists), []).append(bundle)
    lines = []
    for (kind, watchlists), sent in messages.items():
        counts = sorted({b.stories for b in sent})
        stories = "/".join(map(str, counts))
        waiting = [f"{b.notifier}: {status}" for b in sent
                   if (status := store.message_status(b.id)) != SENT]
        lines.append(f"{kind}: {stories} {'story' if counts == [1] else 'stories'} for "
                     f"{', '.join(watchlists)} → {', '.join(b.notifier for b in sent)}"
                     + (f" (not sent yet: {'; '.join(waiting)})" if waiting else ""))
    return lines
