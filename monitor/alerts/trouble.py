"""Source trouble is news too: a source that has failed for longer than `operations.alert_after`,
or that has had nothing new for `operations.silent_after` although it normally has, is reported
once to the notifiers of `operations.notify`, and once more when it recovers. Nothing in between:
the state reported is stored with the source (sources.trouble), so a restart does not repeat it.

When is a source "normally" busy enough for a silence to mean something? We look at its own
history: the articles first seen in the LOOKBACK (14 days) before its newest one, scaled to a
`silent_after` window, is how many it would normally have had in the silence. Only when that is
at least EXPECTED_IN_SILENCE (5) is the silence reported: if news arrived at random at that
rate, a silence this long would happen by chance less than once in a hundred times (e^-5). A
source that publishes a few times a week, or that is younger than a couple of weeks, is never
called silent.

A source both failing long enough and silent is reported as failing: the failure is the cause.
A change from one kind of trouble to the other (silent → failing, failing → silent) is one
notice for the new state; the recovery notice comes only when neither holds any more.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from monitor.alerts.payload import new_alert_id
from monitor.models import SOURCE_NOTICE, Config, PendingAlert, Source
from monitor.normalize import one_line
from monitor.store import Store

logger = logging.getLogger(__name__)

FAILING, SILENT, RECOVERED = "failing", "silent", "recovered"
LOOKBACK = timedelta(days=14)
EXPECTED_IN_SILENCE = 5
ERROR_IN_NOTICE = 300  # characters of the last fetch error quoted in a notice's problem line


@dataclass(frozen=True)
class Trouble:
    state: str | None  # FAILING, SILENT, or None when the source is fine (RECOVERED: it was not)
    since: str | None = None
    problem: str = ""


def report_source_trouble(store: Store, config: Config, now: datetime | None = None) -> int:
    """Check every configured source and write a notice for each change of its trouble state to
    the outbox (one per notifier of operations.notify). Returns the notices written. Without
    operations.notify nothing is checked or stored, so trouble that is still going on when
    notifiers are configured later is reported then."""
    notify = config.operations.notify
    if not notify:
        return 0
    now = now or datetime.now(UTC)
    written = 0
    for source in config.sources:
        facts = store.trouble_facts(source.name)
        if facts is None:
            continue  # never polled yet: nothing to tell
        trouble = assess(store, config, facts, now)
        if trouble.state == facts["trouble"]:
            continue
        # What is stored is the trouble now (none when fine); what is told is that, or that the
        # source recovered from the trouble stored before.
        told = trouble if trouble.state else Trouble(RECOVERED, _iso(now), _recovery(facts, now))
        notices = [_notice(source, facts, notifier, told, now) for notifier in notify]
        store.set_source_trouble(source.name, trouble.state, trouble.since, notices)
        logger.warning("source %s: %s: %s", source.name, told.state, told.problem)
        written += len(notices)
    return written


def assess(store: Store, config: Config, facts: dict, now: datetime) -> Trouble:
    """The source's trouble now: failing, silent, or none."""
    operations = config.operations
    name = facts["name"]
    failing_since = _time(facts["failing_since"])
    if failing_since is not None and now - failing_since > timedelta(seconds=operations.alert_after):
        error = one_line(facts["last_error"], ERROR_IN_NOTICE) or "no error recorded"
        return Trouble(FAILING, facts["failing_since"], (
            f"{name} has failed every fetch for {_span(now - failing_since)} "
            f"({facts['consecutive_failures']} in a row); last error: {error}"))
    last_new = _time(facts["last_new"])
    silence = timedelta(seconds=operations.silent_after)
    if last_new is None or now - last_new <= silence:
        return Trouble(None)
    # Only now, for a source already quiet for long, is its history counted.
    usual = store.articles_seen_between(name, _iso(last_new - LOOKBACK), facts["last_new"])
    expected = usual * silence / LOOKBACK
    if expected < EXPECTED_IN_SILENCE:
        return Trouble(None)
    return Trouble(SILENT, facts["last_new"], (
        f"{name} has had nothing new for {_span(now - last_new)}; it normally has about "
        f"{expected:.0f} new articles in {_span(silence)} ({usual} in the {LOOKBACK.days} days "
        f"before its last one)"))


def _notice(source: Source, facts: dict, notifier: str, trouble: Trouble,
            now: datetime) -> PendingAlert:
    alert_id = new_alert_id()
    created = _iso(now)
    body = {
        "id": alert_id, "kind": SOURCE_NOTICE, "created": created, "source": source.name,
        "url": source.url, "state": trouble.state, "since": trouble.since,
        "problem": trouble.problem, "consecutive_failures": facts["consecutive_failures"],
        "last_error": facts["last_error"], "last_new": facts["last_new"],
    }
    return PendingAlert(id=alert_id, notifier=notifier, watchlist="", article_id=None,
                        body=json.dumps(body, ensure_ascii=False, separators=(",", ":")),
                        attempts=0, kind=SOURCE_NOTICE, created=created)


def _recovery(facts: dict, now: datetime) -> str:
    began = _time(facts["trouble_since"])
    span = f" for {_span(now - began)}" if began else ""
    if facts["trouble"] == FAILING:
        return f"{facts['name']} is fetched again after failing{span}"
    return f"{facts['name']} has new articles again after none{span}"


def _time(value: str | None) -> datetime | None:
    if not value:
        return None
    when = datetime.fromisoformat(value)
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def _iso(when: datetime) -> str:
    """The store's own form (UTC, seconds), so that times compare as strings in SQL."""
    return when.astimezone(UTC).isoformat(timespec="seconds")


def _span(delta: timedelta) -> str:
    """A duration as people say it: '2d 3h', '5h 20m', '40s'."""
    seconds = max(int(delta.total_seconds()), 0)
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, seconds = divmod(rest, 60)
    parts = [(days, "d"), (hours, "h"), (minutes, "m")] if days or hours or minutes else [(seconds, "s")]
    words = [f"{value}{unit}" for value, unit in parts if value]
    return " ".join(words[:2]) or "0s"
