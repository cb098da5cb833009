"""Retention: old article text is emptied, old article rows are deleted, and the space goes
back to the file system (`retention: {text: 90d, articles: 365d}`). Never lost: an alert still
to be sent keeps its article, and a deleted article's identity (canonical URL, GUID) stays in
the store, so a feed that lists it again does not alert on it again."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from monitor.models import RetentionSettings
from monitor.store import Store

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class PruneReport:
    texts_emptied: int = 0
    articles_deleted: int = 0
    kept_for_alerts: int = 0  # old enough to go, but an alert to be sent refers to them
    pages_freed: int = 0
    size_before: int = 0  # bytes: database file and write-ahead log
    size_after: int = 0

    def __str__(self) -> str:
        return (f"pruned: {self.texts_emptied} texts emptied, {self.articles_deleted} articles "
                f"deleted ({self.kept_for_alerts} kept for alerts not yet sent), "
                f"{self.pages_freed} pages freed; database {format_size(self.size_before)} -> "
                f"{format_size(self.size_after)}")


def prune(store: Store, retention: RetentionSettings, now: datetime | None = None) -> PruneReport:
    """Apply the retention settings as of `now` (default: the present). Does nothing (but
    report the size) when neither limit is set."""
    now = now or datetime.now(UTC)
    size_before = store.database_size()
    emptied = deleted = kept = freed = 0
    if retention.text is not None:
        emptied = store.empty_texts_before(_before(now, retention.text))
    if retention.articles is not None:
        deleted, kept = store.prune_articles(_before(now, retention.articles))
    if emptied or deleted:
        freed = store.reclaim_space()
    return PruneReport(emptied, deleted, kept, freed, size_before, store.database_size())


def prune_daily(store: Store, retention: RetentionSettings) -> PruneReport | None:
    """The daemon's daily job: prune and log what it did; a failure is logged, never raised
    (retention can wait a day, the daemon's work cannot)."""
    if retention.text is None and retention.articles is None:
        return None
    try:
        report = prune(store, retention)
    except Exception:
        logger.exception("retention: pruning failed; trying again tomorrow")
        return None
    logger.info("%s", report)
    return report


def _before(now: datetime, seconds: int) -> str:
    return (now - timedelta(seconds=seconds)).isoformat(timespec="seconds")


def format_size(size: int) -> str:
    """Bytes in the largest unit that keeps the number at or above 1: '3.2 MB'."""
    value = float(size)
    for unit in ("B", "kB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    raise AssertionError("unreachable")
