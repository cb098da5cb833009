"""Identity of an article, computed once: canonical URL, cleaned text, content hash."""

from __future__ import annotations

import hashlib
import ipaddress
import re
import unicodedata
from functools import cache
from urllib.parse import parse_qsl, urlencode, urljoin, urlsplit, urlunsplit

from w3lib.html import remove_tags, replace_entities

# Query parameters that identify a campaign or a visitor, never an article.
TRACKING_PARAMS = frozenset(
    {"fbclid", "gclid", "dclid", "msclkid", "yclid", "mc_cid", "mc_eid", "igshid",
     "ref_src", "cmpid", "_ga", "_gl", "ocid", "xtor", "s_cid", "ito",
     # session ids
     "sid", "sessionid", "session_id", "phpsessid", "jsessionid", "aspsessionid", "cfid", "cftoken"}
)
_PATH_SESSION = re.compile(r";(?:jsessionid|sessionid|phpsessid)=[^/?#]*", re.IGNORECASE)
TRACKING_PREFIXES = ("utm_", "at_", "pk_", "mtm_")
DEFAULT_PORTS = {"http": 80, "https": 443}
_SPACE = re.compile(r"\s+")


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
    query = urlencode(sorted(
        (k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True)
        if not _is_tracking(k)
    ))
    path = _PATH_SESSION.sub("", parts.path) or "/"
    return urlunsplit((scheme, host, path, query, ""))


def canonical_url(url: str) -> str:
    """Lower-case scheme and host, no default port, no fragment, no tracking parameters,
    remaining query parameters sorted. The path is kept as written (paths are case-sensitive).
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
