"""Feed documents to Entry objects. feedparser does the parsing (formats, encodings, dates,
relative links); this module only chooses which of its fields we keep."""

from __future__ import annotations

import calendar
import time
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urljoin

import feedparser

from monitor.errors import FetchError
from monitor.models import Entry
from monitor.normalize import clean_text


def parse_feed(body: bytes, url: str, content_type: str | None = None) -> tuple[Entry, ...]:
    """Entries of an RSS 0.9x/1.0/2.0 or Atom document. Raises FetchError when the document is
    not a feed at all; a feed with recoverable faults (feedparser's 'bozo') still yields entries."""
    headers = {"content-location": url}
    if content_type:
        headers["content-type"] = content_type
    parsed = feedparser.parse(body, response_headers=headers, sanitize_html=True)
    if parsed.bozo and not parsed.entries and not parsed.get("version"):
        reason = parsed.get("bozo_exception") or "unrecognised document"
        raise FetchError(f"not a feed: {reason}")
    entries = (_entry(e, url) for e in parsed.entries)
    return tuple(e for e in entries if e is not None)


def _entry(raw: Any, feed_url: str) -> Entry | None:
    guid = raw.get("id") or None
    link = raw.get("link") or (guid if _is_http(guid) else None)
    if not link:
        return None
    link = urljoin(feed_url, link)
    if not _is_http(link):
        return None
    summary = raw.get("summary") or ""
    if not summary and raw.get("content"):
        summary = raw["content"][0].get("value", "")
    return Entry(
        url=link,
        guid=guid,
        title=clean_text(raw.get("title")),
        summary=clean_text(summary),
        # dict.get: FeedParserDict.get would silently (and with a warning) alias the two keys.
        published=_iso(dict.get(raw, "published_parsed") or dict.get(raw, "updated_parsed")),
    )


def _is_http(value: str | None) -> bool:
    return bool(value) and value.startswith(("http://", "https://"))


def _iso(parsed: time.struct_time | None) -> str | None:
    """feedparser normalises every date format it knows to a UTC struct_time."""
    if parsed is None:
        return None
    try:
        return datetime.fromtimestamp(calendar.timegm(parsed), UTC).isoformat(timespec="seconds")
    except (OverflowError, ValueError, OSError):
        return None
