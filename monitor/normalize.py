"""Identity of an article, computed once: canonical URL, cleaned text, content hash."""

from __future__ import annotations

import hashlib
import re
import unicodedata
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

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


def canonical_url(url: str) -> str:
    """Lower-case scheme and host, no default port, no fragment, no tracking parameters,
    remaining query parameters sorted. The path is kept as written (paths are case-sensitive)."""
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    if parts.port and parts.port != DEFAULT_PORTS.get(scheme):
        host = f"{host}:{parts.port}"
    query = urlencode(sorted(
        (k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True)
        if not _is_tracking(k)
    ))
    path = _PATH_SESSION.sub("", parts.path) or "/"
    return urlunsplit((scheme, host, path, query, ""))


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
