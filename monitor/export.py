"""`monitor export` and the Atom feeds: stored articles as CSV or JSON lines, and a
watchlist's matched stories as CSV, JSON lines or an Atom feed a feed reader can subscribe to
(one entry per story, newest first)."""

from __future__ import annotations

import csv
import io
import json
import re
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta
from urllib.parse import quote

from monitor import __version__
from monitor.errors import MonitorError
from monitor.models import Config
from monitor.store import Store

FORMATS = ("csv", "jsonl", "atom")
ATOM_NS = "http://www.w3.org/2005/Atom"
ARTICLE_FIELDS = ("id", "source", "title", "link", "url", "published", "first_seen", "lang",
                  "author", "summary", "text", "story_uid")
MATCH_FIELDS = ("id", "source", "title", "link", "url", "published", "first_seen", "lang",
                "author", "story_uid", "watchlist", "words", "snippet", "matched_at")
# Characters XML 1.0 cannot carry at all (web text has them now and then).
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def export(store: Store, config: Config, fmt: str, since: timedelta,
           watchlist: str | None = None) -> Iterator[str]:
    """The export as text chunks. Without a watchlist: the stored articles (csv, jsonl);
    with one: its matched stories (csv, jsonl, atom)."""
    if fmt not in FORMATS:
        raise MonitorError(f"--format: {fmt!r} is not one of {', '.join(FORMATS)}")
    start = _start(since)
    if watchlist is None:
        if fmt == "atom":
            raise MonitorError("--format atom needs --watchlist: a feed is one watchlist's stories")
        rows: Iterable[dict] = store.articles_for_export(start)
        fields = ARTICLE_FIELDS
    else:
        _check_watchlist(config, watchlist)
        if fmt == "atom":
            yield atom_feed(store, config, watchlist, since).decode("utf-8")
            return
        rows = ({**row, "watchlist": watchlist} for row in store.matched_stories(watchlist, start))
        fields = MATCH_FIELDS
    yield from (_csv(rows, fields) if fmt == "csv" else _jsonl(rows, fields))


def _check_watchlist(config: Config, name: str) -> None:
    names = [w.name for w in config.watchlists]
    if name not in names:
        raise MonitorError(f"--watchlist: no watchlist {name!r} (watchlists: {', '.join(names)})")


def _start(since: timedelta) -> str:
    return (datetime.now(UTC) - since).isoformat(timespec="seconds")


def _csv(rows: Iterable[dict], fields: tuple[str, ...]) -> Iterator[str]:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fields, extrasaction="ignore")
    writer.writeheader()
    for row in rows:
        writer.writerow({**row, "words": " ".join(row.get("words") or ())})
        yield buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
    yield buffer.getvalue()


def _jsonl(rows: Iterable[dict], fields: tuple[str, ...]) -> Iterator[str]:
    for row in rows:
        yield json.dumps({name: row.get(name) for name in fields}, ensure_ascii=False) + "\n"


def atom_feed(store: Store, config: Config, watchlist: str, since: timedelta) -> bytes:
    """The watchlist's stories matched within `since` as an Atom feed (RFC 4287), newest
    first: one entry per story, its id the story's uid, so a reader shows a story once however
    many outlets carried it. For `monitor export` and the HTTP listener's /feeds/NAME.atom."""
    _check_watchlist(config, watchlist)
    stories = store.matched_stories(watchlist, _start(since))
    ET.register_namespace("", ATOM_NS)
    feed = ET.Element(_atom("feed"))
    _text(feed, "id", f"tag:monitor,2024:watchlist/{quote(watchlist, safe='')}")
    _text(feed, "title", f"monitor: {watchlist}")
    _text(feed, "updated", max((s["matched_at"] for s in stories), default=_now()))
    author = ET.SubElement(feed, _atom("author"))
    _text(author, "name", "monitor")
    ET.SubElement(feed, _atom("generator"), version=__version__).text = "monitor"
    for story in stories:
        _entry(feed, story)
    return ET.tostring(feed, encoding="utf-8", xml_declaration=True)


def _entry(feed: ET.Element, story: dict) -> None:
    entry = ET.SubElement(feed, _atom("entry"))
    _text(entry, "id", _entry_id(story))
    _text(entry, "title", story["title"] or story["link"])
    ET.SubElement(entry, _atom("link"), rel="alternate", href=_clean(story["link"]))
    _text(entry, "updated", story["matched_at"])
    published = _rfc3339(story["published"]) or story["first_seen"]
    _text(entry, "published", published)
    source = ET.SubElement(entry, _atom("author"))
    _text(source, "name", story["author"] or story["source"])
    for word in story["words"]:
        ET.SubElement(entry, _atom("category"), term=_clean(word))
    _text(entry, "summary", story["snippet"])


def _entry_id(story: dict) -> str:
    if story["story_uid"]:
        try:
            return uuid.UUID(hex=story["story_uid"]).urn
        except ValueError:
            return f"tag:monitor,2024:story/{quote(story['story_uid'], safe='')}"
    return f"tag:monitor,2024:article/{story['id']}"


def _rfc3339(value: str | None) -> str | None:
    """An article's published time as Atom wants it, or None when the outlet gave none or
    one without a time zone."""
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    return moment.isoformat() if moment.tzinfo else None


def _text(parent: ET.Element, name: str, value: str) -> None:
    ET.SubElement(parent, _atom(name)).text = _clean(value)


def _clean(value: str) -> str:
    return _NOT_XML.sub("", value)


def _atom(name: str) -> str:
    return f"{{{ATOM_NS}}}{name}"


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")
