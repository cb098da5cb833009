"""Identity of an article, computed once: canonical URL, cleaned text, content hash."""

from __future__ import annotations

import hashlib
import ipaddress
import re
import sys
import unicodedata
from datetime import UTC, datetime, timedelta
from functools import cache
from urllib.parse import unquote_plus, urljoin, urlsplit

from w3lib.html import remove_tags, replace_entities
from w3lib.url import canonicalize_url

# Query parameters that identify a campaign or a visitor, never an article. Only names that no
# site uses for its content belong here: when in doubt a parameter is kept, since a kept one at
# worst splits an article in two (the content hash still joins the copies) while a dropped one
# merges distinct articles. So generic names such as `id`, `p`, `sid` ("sida", a section id),
# `session` or `article` stay; the session cookies of web platforms (PHP, Java, ASP, ColdFusion)
# never name a page and go.
TRACKING_PARAMS = frozenset(
    {"fbclid", "gclid", "dclid", "msclkid", "yclid", "mc_cid", "mc_eid", "igshid",
     "ref_src", "cmpid", "_ga", "_gl", "ocid", "xtor", "s_cid", "ito",
     # platform session ids
     "phpsessid", "jsessionid", "aspsessionid", "cfid", "cftoken"}
)
_PATH_SESSION = re.compile(r";(?:jsessionid|sessionid|phpsessid)=[^/?#]*", re.IGNORECASE)
TRACKING_PREFIXES = ("utm_", "at_", "pk_", "mtm_")
DEFAULT_PORTS = {"http": 80, "https": 443}
_SPACE = re.compile(r"\s+")

# Longest stored field, in characters; longer ones are cut and end in CUT_MARK, so a reader (and a
# test) can tell a cut field from a short one. A title is a line, a summary a few paragraphs, a
# text a long article: anything above is an attack or a broken page, not news.
TITLE_MAX = 1_000
SUMMARY_MAX = 10_000
TEXT_MAX = 1_000_000
CUT_MARK = " […]"
# Lone surrogates (from "&#xD800;") cannot be encoded as UTF-8, so SQLite and JSON refuse them;
# C0/C1 control characters other than tab and newline are invisible garbage that breaks log lines
# and mail headers. Carriage returns are line breaks and become newlines instead.
_UNSAFE_CHARS = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff]")
_CARRIAGE_RETURN = re.compile("\r\n?")
_CHAR_REF = re.compile(r"&#(?:[xX]([0-9a-fA-F]+)|([0-9]+));")
# Publication dates outside this window are typing errors, placeholders (0001-01-01, 9999-12-31)
# or attacks; they are treated as unknown. A little future is allowed for clock skew and time zones.
EARLIEST_DATE = datetime(1990, 1, 1, tzinfo=UTC)
FUTURE_SLACK = timedelta(days=2)


WEB_SCHEMES = frozenset({"http", "https"})


class BadURL(ValueError):
    """A link that cannot be an article's address; the message says why."""


def article_url(url: str, base: str | None = None) -> str:
    """The one decision on what a usable article address is: http(s), a host, a valid port.
    Returns the canonical form (resolved against `base` first); raises BadURL with the reason.
    Feed links, sitemap <loc>s, listing links and canonical URLs all pass through here."""
    try:
        absolute = urljoin(base, url.strip()) if base else url.strip()
        parts = urlsplit(absolute)
        port = parts.port  # raises ValueError for a port outside 0-65535
    except ValueError as exc:
        raise BadURL(f"not a valid URL: {exc}") from None
    scheme = parts.scheme.lower()
    if scheme not in WEB_SCHEMES:
        raise BadURL(f"scheme {scheme + ':' if scheme else '(none)'} is not http or https")
    host = (parts.hostname or "").lower()
    if not host or any(c.isspace() or c in "<>\\\"^`{|}" for c in host):
        raise BadURL("no usable host")
    if ":" in host:  # an IPv6 literal keeps its brackets
        host = f"[{host}]"
    if port is not None and port != DEFAULT_PORTS[scheme]:
        if port == 0:
            raise BadURL("port 0")
        host = f"{host}:{port}"
    # Tracking parameters are dropped from the query as written, so that the others reach
    # w3lib untouched; user info is never part of an article's address.
    query = "&".join(pair for pair in parts.query.split("&") if pair and not _is_tracking(_name(pair)))
    path = _PATH_SESSION.sub("", parts.path)
    # w3lib decides the rest: percent-encoding (raw Unicode and %c3%a4 alike become %C3%A4),
    # query parameters sorted, dot segments resolved, IDNA hosts, no fragment.
    try:
        return canonicalize_url(f"{scheme}://{host}{path}" + (f"?{query}" if query else ""))
    except ValueError as exc:  # UnicodeError too: a host IDNA cannot encode
        raise BadURL(f"not a valid URL: {exc}") from None


def canonical_url(url: str) -> str:
    """Lower-case scheme and host, no default port, no fragment, no tracking parameters,
    remaining query parameters sorted, path and query percent-encoded one way (w3lib's
    canonicalize_url). The path keeps its case (paths are case-sensitive).
    Raises BadURL for anything article_url refuses."""
    return article_url(url)


def usable_url(url: str, base: str | None = None) -> str | None:
    """article_url, or None when the link is not usable."""
    try:
        return article_url(url, base)
    except BadURL:
        return None


def same_site(url: str, other: str) -> bool:
    """Both on the same registered domain (svt.se), or for IP literals and single-label hosts
    (localhost, an intranet name), on the same host."""
    first, second = urlsplit(url).hostname or "", urlsplit(other).hostname or ""
    return bool(first) and _site(first.lower()) == _site(second.lower())


def _site(host: str) -> str:
    try:
        ipaddress.ip_address(host)
        return host
    except ValueError:
        pass
    return _registered_domain(host) or host


@cache
def _registered_domain(host: str) -> str:
    return _suffixes()(host).top_domain_under_public_suffix


@cache
def _suffixes():
    import tldextract

    # The bundled public-suffix snapshot only: no download, no cache file. Private suffixes
    # count: two blogs on github.io or blogspot.com are two sites.
    return tldextract.TLDExtract(cache_dir=None, suffix_list_urls=(), include_psl_private_domains=True)


def _name(pair: str) -> str:
    return unquote_plus(pair.split("=", 1)[0])


def _is_tracking(param: str) -> bool:
    name = param.lower()
    return name in TRACKING_PARAMS or name.startswith(TRACKING_PREFIXES)


def clean_text(text: str | None) -> str:
    """Plain text from a feed field: tags dropped, entities decoded, white space folded."""
    if not text:
        return ""
    # A space for each tag keeps "<p>a</p><p>b</p>" from gluing words together.
    plain = replace_entities(remove_tags(text.replace("<", " <")))
    return _SPACE.sub(" ", unicodedata.normalize("NFC", plain)).strip()


def content_hash(title: str, text: str) -> str:
    body = _SPACE.sub(" ", f"{title}\n{text}".casefold()).strip()
    return hashlib.sha256(body.encode("utf-8")).hexdigest()


def clean_string(value: str | None, limit: int | None = None) -> str:
    """Every string taken from a web document passes here once, where it enters (feed and sitemap
    entries, listing links, extracted pages): lone surrogates and control characters (except tab
    and newline) removed, and, given a limit, cut to at most `limit` characters ending in
    CUT_MARK."""
    if not value:
        return ""
    safe = _UNSAFE_CHARS.sub("", _CARRIAGE_RETURN.sub("\n", value))
    return cut(safe, limit) if limit is not None else safe


def clean_markup(document: str) -> str:
    """A decoded XML or HTML document before it is parsed: clean_string's characters removed, and
    so are the character references that name them ("&#xD800;", "&#1;"). Parsers fail on those
    for the whole document (feedparser) or drop the rest of the page (lxml)."""
    return _CHAR_REF.sub(_storable_reference, clean_string(document))


def _storable_reference(ref: re.Match[str]) -> str:
    hex_digits, digits = ref.groups()
    code = int(hex_digits, 16) if hex_digits else int(digits)
    if 0x80 <= code <= 0x9F:
        # "&#150;" is how Windows-1252 text writes "–" (browsers read it so, as HTML5 says):
        # dropping it would glue "Kazakstan&#150;Ryssland" into one word.
        return bytes([code]).decode("cp1252", "ignore")
    if code > sys.maxunicode or not clean_string(chr(code)):
        return ""
    return ref[0]


def cut(value: str, limit: int) -> str:
    """`value` if it fits in `limit` characters, else its start followed by CUT_MARK (the whole
    result still within `limit`)."""
    if len(value) <= limit:
        return value
    return value[: max(limit - len(CUT_MARK), 0)].rstrip() + CUT_MARK


def one_line(value: str | None, limit: int) -> str:
    """A web string for a log line or a mail header: white space folded (no line breaks to forge
    extra lines with) and cut to `limit` characters."""
    return cut(" ".join((value or "").split()), limit)


def plausible_date(value: str | datetime | None, now: datetime | None = None) -> datetime | None:
    """A publication date as an aware datetime (naive ones are UTC), or None when it is missing,
    unreadable or outside EARLIEST_DATE … now + FUTURE_SLACK. Never raises: one bad date must not
    cost the entry, let alone the document. Strings are ISO 8601 (a trailing "Z" allowed)."""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            return None
    if not isinstance(value, datetime):
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    try:
        latest = (now or datetime.now(UTC)) + FUTURE_SLACK
        # Compared in UTC: the offset of year 1 or 9999 may not fit into a datetime at all.
        return value if EARLIEST_DATE <= value <= latest else None
    except (OverflowError, ValueError):
        return None
