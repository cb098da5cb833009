"""Article extraction: main text and metadata from one decoded HTML page.

A pure function of (html, url). Decoding bytes is the caller's job (Scrapy's
``response.text`` honours the HTTP header, ``<meta charset>`` and BOM), so
nothing here guesses encodings.

trafilatura does the extraction. Around it sit three small tree edits that
its English-centred vocabulary misses on Swedish news pages, each one there
because a watchlist match on boilerplate is a false alert:

* boxes headed "Mest läst", "Relaterat", "Läs också" … are pruned, because
  their headlines name other stories (an unrelated article must not match
  "Kazakstan" because the most-read list does);
* legacy layout tables are turned into divs, so trafilatura's boilerplate
  tests see navigation columns instead of one big data table;
* a lede printed outside the article-body container is put back.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import py3langid
from lxml.html import HtmlElement
from trafilatura import bare_extraction
from trafilatura.utils import load_html

from monitor.normalize import (
    TEXT_MAX,
    TITLE_MAX,
    clean_markup,
    clean_string,
    plausible_date,
    same_site,
    usable_url,
)

# Below this many characters of main text a statistical language guess is
# unreliable (a paywalled lede, a short notice), so the page's own
# <html lang> is trusted instead.
MIN_CHARS_FOR_DETECTION = 200

# htmldate defaults to a bare date; we want the time and offset too, because
# a story published at 23:50 UTC is "tomorrow" in Stockholm.
_DATE_FORMAT = "%Y-%m-%dT%H:%M:%S%z"

# Visible labels of link boxes on Swedish news sites. Headings are more stable
# than class names, which are often generated ("css-1x2y3z").
_BOX_LABELS = frozenset(
    {
        "mest läst",
        "mest lästa",
        "mest läst just nu",
        "mest delat",
        "relaterat",
        "relaterade artiklar",
        "läs också",
        "läs mer",
        "läs även",
        "mer om ämnet",
        "just nu",
        "senaste nytt",
        "senaste nyheterna",
    }
)
_LABEL_TAGS = ("h1", "h2", "h3", "h4", "h5", "h6", "header", "b", "strong", "span", "p", "th")
_BOX_TAGS = frozenset({"div", "section", "aside", "nav", "table", "ul", "ol", "li", "footer"})
# A box is mostly links; an article section that happens to carry such a
# heading is mostly prose and is left alone.
_MIN_BOX_LINK_SHARE = 0.5

_LOWER = "translate({attr}, 'ABCDEFGHIJKLMNOPQRSTUVWXYZ', 'abcdefghijklmnopqrstuvwxyz')"
# trafilatura matches these tokens case-sensitively, so camelCase class names
# ("abNewsletterBox", "ConsentDialog") slip through; captions are not body
# text, and a paywall box is a sales pitch.
_CHROME_TOKENS = ("consent", "newsletter", "paywall", "caption", "sp_message")
_CHROME_XPATH = (
    "//figcaption | //*["
    + " or ".join(
        f"contains({_LOWER.format(attr=attr)}, '{token}')"
        for token in _CHROME_TOKENS
        for attr in ("@class", "@id")
    )
    + "]"
)

# A table is a layout table when its cells hold blocks rather than data.
_LAYOUT_TABLE_XPATH = "//table[.//td//p or .//td//h1 or .//td//h2 or .//td//table]"
_TABLE_PARTS = ("table", "thead", "tbody", "tfoot", "tr", "td", "th")

_SPACES = re.compile(r"\s+")
_LANGUAGE_SUBTAG = re.compile(r"[a-z]{2,8}")


@dataclass(frozen=True)
class ExtractedArticle:
    title: str
    text: str
    author: str | None
    published: str | None  # ISO 8601 with offset when the page gives one
    lang: str | None  # ISO 639-1 code, e.g. "sv"
    canonical_url: str | None  # absolute


def extract_article(html: str, url: str) -> ExtractedArticle | None:
    """Extract the main text and metadata of a news article.

    Returns None when the page has no recognisable main text (an empty or
    script-only document). Section pages do yield text, their teasers; telling
    articles from listings is the crawler's job.
    """
    tree = load_html(clean_markup(html))
    if tree is None:
        return None
    canonical_url = _canonical_url(tree, url)
    declared_lang = _declared_language(tree)
    _prune_boxes(tree)
    _prune_chrome(tree)
    _unwrap_layout_tables(tree)
    document = bare_extraction(
        tree,
        url=url,
        with_metadata=True,
        include_comments=False,
        include_tables=True,
        include_images=False,
        favor_precision=True,
        date_extraction_params={
            "extensive_search": True,
            "original_date": True,
            "outputformat": _DATE_FORMAT,
        },
    )
    if document is None or not (document.text or "").strip():
        return None
    title = (document.title or "").strip()
    text = _with_lede(_without_headline(document.text, title), document.description, tree)
    if not text:
        return None
    # Every string leaves here cleaned and capped (see monitor.normalize.clean_string).
    return ExtractedArticle(
        title=clean_string(title, TITLE_MAX),
        text=clean_string(text, TEXT_MAX),
        author=clean_string(document.author, TITLE_MAX) or None,
        published=_iso_datetime(document.date),
        lang=detect_language(text, declared_lang),
        canonical_url=clean_string(canonical_url) or None,
    )


def _normalized(text: str) -> str:
    return _SPACES.sub(" ", text).strip()


def _prune_boxes(tree: HtmlElement) -> None:
    """Remove link boxes found by their visible label ("Mest läst", "Relaterat" …)."""
    labels = [
        element
        for element in tree.iter(_LABEL_TAGS)
        if _normalized(element.text_content()).rstrip(":").casefold() in _BOX_LABELS
    ]
    for label in labels:
        box = _enclosing_box(label)
        if box is not None and box.getparent() is not None:
            box.drop_tree()


def _enclosing_box(label: HtmlElement) -> HtmlElement | None:
    """The nearest container of the label, if it is mostly links."""
    for ancestor in label.iterancestors():
        if ancestor.tag in ("body", "html"):
            return None
        if ancestor.tag in _BOX_TAGS:
            return ancestor if _link_share(ancestor, label) >= _MIN_BOX_LINK_SHARE else None
    return None


def _link_share(container: HtmlElement, label: HtmlElement) -> float:
    label_chars = len(_normalized(label.text_content()))
    total = len(_normalized(container.text_content())) - label_chars
    if total <= 0:
        return 0.0
    linked = sum(len(_normalized(a.text_content())) for a in container.iter("a"))
    return linked / total


def _prune_chrome(tree: HtmlElement) -> None:
    for element in tree.xpath(_CHROME_XPATH):
        if element.tag not in ("body", "html") and element.getparent() is not None:
            element.drop_tree()


def _unwrap_layout_tables(tree: HtmlElement) -> None:
    """Turn layout tables into divs; data tables (cells of plain text) stay tables.

    Old archive templates put the whole page in one table; trafilatura then
    keeps navigation, article and footer as cells of a single "data" table.
    """
    for table in tree.xpath(_LAYOUT_TABLE_XPATH):
        for element in table.iter(_TABLE_PARTS):
            element.tag = "div"
            # width/valign/colspan mean nothing on a div
            element.attrib.pop("colspan", None)


def _without_headline(text: str, title: str) -> str:
    """Drop a leading line that repeats the headline: it is carried in ``title``.

    trafilatura's fallback keeps the <h1> when the body is thin (paywalls).
    """
    first, _newline, rest = text.strip().partition("\n")
    if title and _normalized(first) == _normalized(title):
        return rest.strip()
    return text.strip()


def _with_lede(text: str, description: str | None, tree: HtmlElement) -> str:
    """Put back a lede that sits outside the article-body container.

    Swedish sites print the lede above the body and repeat it in
    <meta name="description">. A description that is also a visible block of
    the page, but missing from the extracted text, is that lede.
    """
    if not description:
        return text
    lede = _normalized(description)
    if not lede or lede in _normalized(text):
        return text
    visible = any(_normalized(element.text_content()) == lede for element in tree.iter("p", "div"))
    return f"{lede}\n{text}" if visible else text


def _iso_datetime(value: str | None) -> str | None:
    """Normalise htmldate's ``+0100`` offsets to the ISO 8601 ``+01:00`` form; a date that
    cannot be read or is not plausible (see monitor.normalize.plausible_date) is unknown."""
    parsed = plausible_date(value)
    return parsed.isoformat() if parsed else None


def _canonical_url(tree: HtmlElement, page_url: str) -> str | None:
    """The page's own idea of its address, resolved against where we fetched it.

    Sites often write canonical links as paths; trafilatura only resolves
    those when og:url is absolute, so the join is done here. A page may only
    rename itself within its own site and to an http(s) address: a canonical
    link to another outlet, ``file:`` or ``javascript:`` is ignored, so the
    link we were given stays the article's identity.
    """
    for xpath in ('//link[@rel="canonical"]/@href', '//meta[@property="og:url"]/@content'):
        values = [value.strip() for value in tree.xpath(xpath) if value.strip()]
        if values:
            url = usable_url(values[0], page_url)
            return url if url and same_site(url, page_url) else None
    return None


def detect_language(text: str, declared: str | None = None) -> str | None:
    """The language of a text; for a short text the declared one, or None when there is none
    (a headline alone is too short to tell Swedish from Norwegian reliably)."""
    if len(text) < MIN_CHARS_FOR_DETECTION:
        return declared
    detected, _score = py3langid.classify(text)
    return detected


def _declared_language(tree: HtmlElement) -> str | None:
    """Primary subtag of ``<html lang>``: "sv-SE" -> "sv"."""
    lang = tree.getroottree().getroot().get("lang") or ""
    primary = lang.strip().replace("_", "-").split("-")[0].lower()
    # A language subtag is a few letters; anything else is no language the filters know.
    return primary if _LANGUAGE_SUBTAG.fullmatch(primary) else None
