"""Article extraction: main text and metadata from one decoded HTML page.

A pure function of (html, url). Decoding bytes is the caller's job (Scrapy's
``response.text`` honours the HTTP header, ``<meta charset>`` and BOM), so
nothing here guesses encodings.

trafilatura does the extraction. Around it sit three small tree edits that
its English-centred vocabulary misses on Swedish news pages, each one there
because a watchlist match on boilerplate is a false alert:

* boxes headed "Mest läst", "Relaterat", "Läs också" …, fact boxes and
  "Läs också: <link>" lines are pruned, because their headlines name other
  stories (an unrelated article must not match "Kazakstan" because the
  most-read list does);
* page chrome (consent, newsletter, paywall offers, captions) is removed by
  whole class-name tokens, never by substring: "paywalled" marks the body on
  some sites, "hasCaption" a header that holds the lede;
* legacy layout tables are turned into divs, so trafilatura's boilerplate
  tests see navigation columns instead of one big data table;
* the lede, which Swedish sites print between the headline and the body
  container (one <p> a sentence, or <span>s run together), is put back whole
  at the start.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from lxml.html import HtmlElement
from trafilatura import bare_extraction
from trafilatura.utils import load_html

from monitor.language import detect_language
from monitor.normalize import (
    TEXT_MAX,
    TITLE_MAX,
    clean_markup,
    clean_string,
    plausible_date,
    same_site,
    usable_url,
)

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

# Visible labels of fact boxes: "Fakta", "Faktaruta: Övningen", "FAKTA OM CSTO"; not a
# sentence that begins with the word ("Fakta är att …").
_FACT_LABEL = re.compile(r"(fakta|faktaruta|faktabox)(\s*:.*|\s+om\s.*)?", re.IGNORECASE)
# "Läs också: <link to another story>" lines inside the body (Swedish,
# Norwegian, Danish spellings).
_LINK_LINE_LABEL = re.compile(
    r"(läs|les|læs|se) (också|även|mer|mere|også|ogå)\b\s*:?", re.IGNORECASE
)
# A label is a heading, not a sentence that happens to start with "Fakta".
_MAX_LABEL_CHARS = 80
# A fact box is a side note; a "box" longer than this is the article itself.
_MAX_FACT_BOX_CHARS = 2000
_PAGE_CONTAINERS = frozenset({"body", "html", "article", "main"})

# Page chrome, as whole parts of class and id names (see _name_parts):
# trafilatura matches its own list case-sensitively, so camelCase names
# ("abNewsletterBox", "ConsentDialog") slip through; captions are not body
# text, a paywall box is a sales pitch and a fact box a side note.
_CHROME_TOKENS: tuple[tuple[str, ...], ...] = (
    ("consent",),
    ("newsletter",),
    ("paywall",),
    ("caption",),
    ("sp", "message"),
    ("factbox",),
    ("fact", "box"),
    ("facts", "box"),
    ("faktaruta",),
    ("faktabox",),
    ("fakta",),
)
# Names of the block that holds the lede on news templates.
_LEDE_TOKENS: tuple[tuple[str, ...], ...] = (
    ("lead",),
    ("lede",),
    ("leadin",),
    ("lead", "in"),
    ("preamble",),
    ("ingress",),
    ("intro",),
    ("standfirst",),
)
# "hasCaption", "is-paywalled", "article--with-intro": what follows these
# says what the element has or shows, not what it is.
_STATE_PREFIXES = frozenset({"has", "is", "with", "without", "no", "show", "hide"})
# camelCase humps, runs of capitals, lower-case words and numbers.
_NAME_PART = re.compile(r"[A-Z]?[a-z]+|[A-Z]+(?![a-z])|[0-9]+")
# A lede is a few sentences; a "lede" block longer than this is a layout wrapper.
_MIN_LEDE_CHARS = 20
_MAX_LEDE_CHARS = 1200
# Sentences in adjacent elements printed without a space between them
# ("Första meningen.</span><span>Andra meningen.").
_SENTENCE_END = re.compile(r"[.!?…:;\"”’)]$")
_WORD_START = re.compile(r"^[\"”“'’(\w]")

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
    _prune_fact_boxes(tree)
    _prune_link_lines(tree)
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
    text = _without_headline(document.text, title)
    text = _with_lede(text, _lede(tree, text, document.description))
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


def _prune_fact_boxes(tree: HtmlElement) -> None:
    """Remove fact boxes found by their visible label ("Fakta", "Faktaruta: …")."""
    labels = [
        element
        for element in tree.iter(_LABEL_TAGS)
        if _FACT_LABEL.fullmatch(label := _normalized(element.text_content()))
        and len(label) <= _MAX_LABEL_CHARS
    ]
    for label in labels:
        box = _fact_box(label)
        if box is not None and box.getparent() is not None:
            box.drop_tree()


def _fact_box(label: HtmlElement) -> HtmlElement | None:
    """The largest container that starts with the label: the box, not only its heading row."""
    heading = _normalized(label.text_content())
    box = None
    for ancestor in label.iterancestors():
        if ancestor.tag in _PAGE_CONTAINERS:
            break
        text = _normalized(ancestor.text_content())
        if not text.startswith(heading) or len(text) > _MAX_FACT_BOX_CHARS:
            break
        if ancestor.tag in _BOX_TAGS or ancestor.tag == "figure":
            box = ancestor
    return box


def _prune_link_lines(tree: HtmlElement) -> None:
    """Remove "Läs också: <link>" lines: a label and a link to another story."""
    for line in list(tree.iter("p", "li")):
        text = _normalized(line.text_content())
        label = _LINK_LINE_LABEL.match(text)
        if label is None or line.getparent() is None:
            continue
        rest = len(text) - label.end()
        linked = sum(len(_normalized(a.text_content())) for a in line.iter("a"))
        if rest > 0 and linked >= rest * _MIN_BOX_LINK_SHARE:
            line.drop_tree()


def _prune_chrome(tree: HtmlElement) -> None:
    chrome = [
        element
        for element in tree.iter()
        if element.tag == "figcaption"
        or _names_match(element.get("class"), _CHROME_TOKENS)
        or _names_match(element.get("id"), _CHROME_TOKENS)
    ]
    for element in chrome:
        if element.tag not in ("body", "html") and element.getparent() is not None:
            element.drop_tree()


def _names_match(names: str | None, tokens: tuple[tuple[str, ...], ...]) -> bool:
    """Whether a class or id attribute names one of the tokens as whole name parts."""
    return bool(names) and any(_parts_match(name, tokens) for name in names.split())


@lru_cache(maxsize=4096)
def _parts_match(name: str, tokens: tuple[tuple[str, ...], ...]) -> bool:
    parts = _name_parts(name)
    return any(
        parts[start : start + len(token)] == token
        for token in tokens
        for start in range(len(parts) - len(token) + 1)
    )


def _name_parts(name: str) -> tuple[str, ...]:
    """Lower-cased parts of one class name, up to a state prefix.

    "abNewsletterBox" -> (ab, newsletter, box); "article__body" -> (article,
    body); "paywalled" -> (paywalled); "hasCaption" -> (); "c-header--has-image" ->
    (c, header).
    """
    parts: list[str] = []
    for part in _NAME_PART.findall(name):
        lowered = part.lower()
        if lowered in _STATE_PREFIXES:
            break
        parts.append(lowered)
    return tuple(parts)


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


def _lede(tree: HtmlElement, text: str, description: str | None) -> str | None:
    """The lede as printed: the first lede-named block after the headline and
    before the body; failing that, a visible block repeating <meta description>.
    """
    first_line = _normalized(text.partition("\n")[0])
    seen_headline = not tree.xpath("//h1")
    for element in tree.iter():
        if element.tag == "h1":
            seen_headline = True
        elif not seen_headline or not isinstance(element.tag, str):
            continue
        elif _names_match(element.get("class"), _LEDE_TOKENS) or _names_match(
            element.get("id"), _LEDE_TOKENS
        ):
            lede = _block_text(element)
            if _MIN_LEDE_CHARS <= len(lede) <= _MAX_LEDE_CHARS:
                return lede
        elif element.tag == "p" and _normalized(element.text_content()) == first_line:
            break  # the body has begun: a "lead" block further down is a teaser's
    return _visible_description(tree, description)


def _visible_description(tree: HtmlElement, description: str | None) -> str | None:
    """Swedish sites repeat the lede in <meta name="description">; a description
    that is also a visible block of the page is that lede."""
    lede = _normalized(description or "")
    if not lede:
        return None
    visible = any(_normalized(element.text_content()) == lede for element in tree.iter("p", "div"))
    return lede if visible else None


def _block_text(element: HtmlElement) -> str:
    """The text of a block, with a space where two sentences in adjacent elements
    were printed without one."""
    pieces: list[str] = []
    for piece in element.itertext():
        if (
            pieces
            and _SENTENCE_END.search(pieces[-1])
            and _WORD_START.match(piece)
        ):
            pieces.append(" ")
        pieces.append(piece)
    return _normalized("".join(pieces))


def _squashed(text: str) -> str:
    return _SPACES.sub("", text).casefold()


def _with_lede(text: str, lede: str | None) -> str:
    """Start the text with the whole lede.

    trafilatura keeps none, some (one <p> of three) or all of a lede printed
    outside the body container, and keeps run-together sentences run together;
    leading lines that are pieces of the lede are replaced by the lede itself.
    """
    if not lede:
        return text
    whole = _squashed(lede)
    lines = text.split("\n")
    start = 0
    while start < len(lines) and (piece := _squashed(lines[start])) and piece in whole:
        start += 1
    rest = lines[start:]
    if whole in _squashed("".join(rest)):
        return text  # the lede is already in the text, further down
    return "\n".join([lede, *rest]).strip()


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


def _declared_language(tree: HtmlElement) -> str | None:
    """Primary subtag of ``<html lang>``: "sv-SE" -> "sv"."""
    lang = tree.getroottree().getroot().get("lang") or ""
    primary = lang.strip().replace("_", "-").split("-")[0].lower()
    # A language subtag is a few letters; anything else is no language the filters know.
    return primary if _LANGUAGE_SUBTAG.fullmatch(primary) else None
