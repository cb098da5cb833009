"""Feed documents to Entry objects. feedparser does the parsing (formats, dates, relative links);
this module decodes the bytes (see `decode_feed`) and chooses which of its fields we keep."""

from __future__ import annotations

import calendar
import logging
import re
import time
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urljoin

import feedparser
from w3lib.encoding import html_body_declared_encoding, http_content_type_encoding, read_bom

from monitor.errors import FetchError
from monitor.models import Entry
from monitor.normalize import (
    SUMMARY_MAX,
    TITLE_MAX,
    clean_markup,
    clean_string,
    clean_text,
    plausible_date,
)

logger = logging.getLogger(__name__)

# The XML declaration, which names the encoding we decoded from; it is replaced by one naming
# UTF-8, the encoding feedparser is then given.
_XML_DECLARATION = re.compile(r"^<\?xml[^>]*?>")
_UTF8_DECLARATION = '<?xml version="1.0" encoding="utf-8"?>'
_MEDIA_TYPE = re.compile(r"^[^;]*")
_NON_ASCII = re.compile("[^\x00-\x7f\ufffd]")
# XML 1.0 appendix F: a document without a BOM in an encoding that is not ASCII-compatible still
# starts with "<?" (or "<"), which tells the family; an EBCDIC declaration then names the variant.
_XML_STARTS = (
    (b"\x00\x00\x00\x3c", "utf-32-be"), (b"\x3c\x00\x00\x00", "utf-32-le"),
    (b"\x00\x3c\x00\x3f", "utf-16-be"), (b"\x3c\x00\x3f\x00", "utf-16-le"),
    (b"\x4c\x6f\xa7\x94", "cp037"),
)


def parse_feed(body: bytes, url: str, content_type: str | None = None) -> tuple[Entry, ...]:
    """Entries of an RSS 0.9x/1.0/2.0 or Atom document. Raises FetchError when the document is
    not a feed at all; a feed with recoverable faults (feedparser's 'bozo') still yields entries,
    and an entry feedparser read but we cannot use is dropped on its own."""
    text = decode_feed(body, content_type)
    headers = {"content-location": url}
    if content_type:
        # The media type still tells feedparser whether the document claims to be XML.
        headers["content-type"] = _MEDIA_TYPE.match(content_type)[0] + "; charset=utf-8"
    parsed = feedparser.parse(text.encode("utf-8"), response_headers=headers, sanitize_html=True)
    if parsed.bozo and not parsed.entries and not parsed.get("version"):
        reason = parsed.get("bozo_exception") or "unrecognised document"
        raise FetchError(f"not a feed: {reason}")
    entries = (_guarded_entry(e, url) for e in parsed.entries)
    return tuple(e for e in entries if e is not None)


def decode_feed(body: bytes, content_type: str | None = None) -> str:
    """The document as text, with an XML declaration naming UTF-8.

    Decoded with the encoding the document declares (BOM, then the HTTP charset, then the XML
    declaration), or, when it declares none, UTF-8 if most of its non-ASCII bytes are UTF-8, else
    Windows-1252 (the usual undeclared legacy encoding here). Bytes that are invalid in that
    encoding become U+FFFD one by one: feedparser, given bytes, would instead decode the whole
    document as Windows-1252 after one bad byte ("MalmÃ¶" everywhere). Character references that
    name no storable character (a lone surrogate "&#xD800;", a control character) are removed,
    since feedparser fails on the whole document for them."""
    if not body:
        return ""  # feedparser reads an empty body as an empty feed, not as broken XML
    encoding, body = _declared_encoding(body, content_type)
    try:
        text = body.decode(encoding or _undeclared_encoding(body), "replace")
    except (LookupError, UnicodeError):  # a declared codec that is no text encoding ("base64")
        text = body.decode(_undeclared_encoding(body), "replace")
    text = clean_markup(text)
    if _XML_DECLARATION.match(text):
        return _XML_DECLARATION.sub(_UTF8_DECLARATION, text, count=1)
    return f"{_UTF8_DECLARATION}\n{text}"


def _declared_encoding(body: bytes, content_type: str | None) -> tuple[str | None, bytes]:
    """The encoding named by the BOM, the HTTP charset or the XML declaration (in that order),
    and the body without its BOM."""
    encoding, bom = read_bom(body)
    if encoding and bom:
        return encoding, body[len(bom):]
    declared = http_content_type_encoding(content_type)
    if declared:
        return declared, body
    family = next((name for start, name in _XML_STARTS if body.startswith(start)), None)
    if family and family.startswith("utf"):
        return family, body
    head = body[:4096].decode(family, "replace") if family else body
    return html_body_declared_encoding(head) or family, body


def _undeclared_encoding(body: bytes) -> str:
    text = body.decode("utf-8", "replace")
    bad = text.count("\ufffd") - body.count("\ufffd".encode())
    good = len(_NON_ASCII.findall(text))
    return "utf-8" if good >= bad else "cp1252"


def _guarded_entry(raw: Any, feed_url: str) -> Entry | None:
    try:
        return _entry(raw, feed_url)
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        logger.warning("feed %s: entry dropped: %s", clean_string(feed_url, 300),
                       clean_string(repr(exc), 300))
        return None


def _entry(raw: Any, feed_url: str) -> Entry | None:
    guid = clean_string(raw.get("id")) or None
    link = clean_string(raw.get("link")) or (guid if _is_http(guid) else None)
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
        title=clean_string(clean_text(raw.get("title")), TITLE_MAX),
        summary=clean_string(clean_text(summary), SUMMARY_MAX),
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
        moment = datetime.fromtimestamp(calendar.timegm(parsed), UTC)
    except (OverflowError, ValueError, OSError):
        return None
    moment = plausible_date(moment)
    return moment.isoformat(timespec="seconds") if moment else None
