"""monitor.extract against the fixture site in tests/fixtures/site.

Pages are decoded by Scrapy's own HtmlResponse with the Content-Type the
fixture server sends, so the legacy-charset pages reach the extractor exactly
as they will in a crawl.
"""

from __future__ import annotations

import re
from pathlib import Path

import py3langid
import pytest
from scrapy.http import HtmlResponse

from monitor.extract import ExtractedArticle, detect_language, extract_article
from monitor.language import LANGUAGE_SAMPLE_CHARS

FIXTURES = Path(__file__).parent / "fixtures"
SITE = FIXTURES / "site"
GOLD = FIXTURES / "gold"
BASE = "http://127.0.0.1:8000"

# Every way the topic is named in the fixtures: the alliance, the country and
# its adjective in any inflection, the president, the two cities.
TOPIC = re.compile(r"csto|kazak|tokajev|almaty|astana", re.IGNORECASE)

RELEVANT = [
    "nyheter/utrikes/kazakstan-protester.html",
    "nyheter/utrikes/csto-styrkor-almaty.html",
    "nyheter/utrikes/tokajev-nodlage.html",
    "nyheter/utrikes/csto-analys.html",
    "nyheter/utrikes/svenskar-kazakstan.html",
    "ekonomi/kazakstan-uran.html",
]
UNRELATED = [
    "nyheter/inrikes/riksdagen-budget.html",
    "nyheter/inrikes/snostorm-norrland.html",
    "nyheter/inrikes/signalfel-stockholm.html",
    "nyheter/inrikes/kommunal-skatt.latin1.html",
    "sport/stafett-gallivare.html",
    "ekonomi/riksbanken-ranta.html",
]


def fetch(path: str, query: str = "") -> tuple[str, str]:
    """(decoded html, url) as the crawler would see them."""
    url = f"{BASE}/{path}{query}"
    content_type = "text/html"
    if path.endswith(".latin1.html"):
        content_type = "text/html; charset=iso-8859-1"
    body = (SITE / path).read_bytes()
    response = HtmlResponse(url, body=body, headers={"Content-Type": content_type})
    return response.text, url


def extract(path: str, query: str = "") -> ExtractedArticle:
    html, url = fetch(path, query)
    article = extract_article(html, url)
    assert article is not None, f"no article extracted from {path}"
    return article


def gold_paragraphs(path: str) -> list[str]:
    gold = GOLD / f"{Path(path).stem}.txt"
    return [line for line in gold.read_text(encoding="utf-8").splitlines() if line]


@pytest.mark.parametrize("path", UNRELATED)
def test_most_read_box_stays_out_of_unrelated_articles(path: str) -> None:
    html, _url = fetch(path)
    # the trap is there: the page itself names the topic in its boxes
    assert "Mest läst" in html
    assert re.search(r"Kazakstan", html) and re.search(r"CSTO", html)

    article = extract(path)

    assert not TOPIC.search(article.text), TOPIC.findall(article.text)
    assert "Mest läst" not in article.text
    assert "Relaterat" not in article.text


@pytest.mark.parametrize("path", RELEVANT)
def test_relevant_articles_keep_their_subject(path: str) -> None:
    article = extract(path)

    assert TOPIC.search(article.text)
    assert "Mest läst" not in article.text


@pytest.mark.parametrize("path", RELEVANT + UNRELATED)
def test_every_gold_paragraph_is_extracted(path: str) -> None:
    text = extract(path).text

    for paragraph in gold_paragraphs(path):
        assert paragraph in text


def test_boilerplate_is_left_out() -> None:
    texts = [extract(path).text for path in RELEVANT + UNRELATED]

    for text in texts:
        assert "kakor" not in text  # cookie banners
        assert "Foto:" not in text  # image captions
        assert "Annons" not in text
        assert "Ansvarig utgivare" not in text  # footers
        assert "Prenumerera" not in text  # newsletter boxes


def test_latin1_page_keeps_swedish_letters() -> None:
    article = extract("nyheter/inrikes/kommunal-skatt.latin1.html")

    assert "Härnösand" in article.text
    assert "Österåker" in article.text
    assert "Ånge, Älvdalen, Överkalix" in article.text
    assert "Ã" not in article.text  # no UTF-8 mojibake
    assert article.title == "Kommunalskatten höjs i 14 kommuner nästa år"
    assert article.author == "Göran Sjöberg"


def test_windows_1252_page_keeps_typographic_punctuation() -> None:
    """Bytes 0x92 and 0x96 are ’ and – in cp1252, control codes in strict latin-1."""
    article = extract("ekonomi/kazakstan-uran.html")

    assert "’mellersta korridoren’" in article.text
    assert "tryggad – i alla fall" in article.text
    assert "\x92" not in article.text and "\x96" not in article.text
    assert "Strålsäkerhetsmyndigheten" in article.text


def test_metadata_comes_out() -> None:
    article = extract("nyheter/utrikes/kazakstan-protester.html", "?utm_source=rss&utm_medium=feed")

    assert article.title == "Tokajev ber CSTO om hjälp efter våldsamma protester i Kazakstan"
    assert article.author == "Anna Lindqvist"
    assert article.published == "2026-11-23T07:40:00+01:00"
    assert article.lang == "sv"
    # the canonical link drops the tracking parameters of the feed link
    assert article.canonical_url == f"{BASE}/nyheter/utrikes/kazakstan-protester.html"


def test_published_is_the_first_publication_not_the_update() -> None:
    article = extract("nyheter/utrikes/csto-styrkor-almaty.html")

    assert article.published == "2026-11-24T06:30:00+01:00"


def test_canonical_url_falls_back_to_og_url() -> None:
    """The old archive template has og:url but no <link rel=canonical>."""
    html, _url = fetch("ekonomi/kazakstan-uran.html")
    assert 'rel="canonical"' not in html

    article = extract("ekonomi/kazakstan-uran.html", "?utm_source=rss&utm_medium=feed")

    assert article.canonical_url == f"{BASE}/ekonomi/kazakstan-uran.html"


@pytest.mark.parametrize("path", RELEVANT + UNRELATED)
def test_every_article_has_metadata(path: str) -> None:
    article = extract(path)

    assert article.title
    assert article.author
    assert article.published and article.published.startswith("2026-11-")
    assert article.published.endswith("+01:00")
    assert article.lang == "sv"
    assert article.canonical_url == f"{BASE}/{path}"


def test_paywalled_page_gives_the_lede() -> None:
    article = extract("ekonomi/riksbanken-ranta.html")

    assert article.text == "\n".join(gold_paragraphs("ekonomi/riksbanken-ranta.html"))
    assert "Logga in" not in article.text
    assert article.lang == "sv"


def test_short_text_takes_language_from_html_lang() -> None:
    html = """<!DOCTYPE html><html lang="da-DK"><head><title>Kort</title></head>
    <body><article><h1>Kort</h1><p>Mødet blev aflyst i dag.</p></article></body></html>"""

    article = extract_article(html, f"{BASE}/kort.html")

    assert article is not None
    assert article.lang == "da"


def test_long_text_language_is_detected_not_declared() -> None:
    """A template that says lang="sv" around an English wire story."""
    paragraphs = "".join(
        f"<p>{sentence}</p>"
        for sentence in (
            "The central bank left its key interest rate unchanged on Thursday.",
            "Inflation has been falling faster than expected across the economy this autumn.",
            "Most analysts now expect the first cut to come in the spring, after the wage talks.",
            "Households with variable mortgages will have to wait a few more months for relief.",
        )
    )
    html = (
        '<!DOCTYPE html><html lang="sv"><head><title>Rates</title></head><body><article>'
        f"<h1>Rates</h1>{paragraphs}</article></body></html>"
    )

    article = extract_article(html, f"{BASE}/rates.html")

    assert article is not None
    assert article.lang == "en"


SWEDISH = "Regeringen lägger fram förslaget om höjd skatt på bensin i höstbudgeten. "
ENGLISH = "The central bank left its key interest rate unchanged on Thursday morning. "


def test_language_is_judged_on_the_opening_only() -> None:
    """A Swedish article that quotes a long English document: the opening decides, and the
    rest is never read (py3langid's time grows with the text)."""
    opening = SWEDISH * (LANGUAGE_SAMPLE_CHARS // len(SWEDISH) + 1)
    # Judged whole, this much English would outweigh the Swedish opening.
    quoted = ENGLISH * (100 * LANGUAGE_SAMPLE_CHARS // len(ENGLISH))
    assert py3langid.classify(opening + quoted)[0] == "en"
    html = (f'<!DOCTYPE html><html lang="en"><head><title>Skatt</title></head><body><article>'
            f"<h1>Skatt</h1><p>{opening}</p><p>{quoted}</p></article></body></html>")

    article = extract_article(html, f"{BASE}/skatt.html")

    assert article is not None and article.text.startswith(opening.strip())
    assert article.lang == "sv"
    assert detect_language(opening + quoted) == "sv"


def test_prose_under_a_box_like_heading_is_kept() -> None:
    """Only link boxes are pruned by their label, not article sections."""
    prose = (
        "Polisen har spärrat av området runt stationen och uppmanar allmänheten "
        "att undvika platsen. " * 3
    )
    html = f"""<!DOCTYPE html><html lang="sv"><head><title>Larm</title></head><body>
    <article><h1>Larm vid stationen</h1><div class="body">
    <p>{prose}</p>
    <div><h2>Just nu</h2><p>{prose}</p></div>
    </div></article></body></html>"""

    article = extract_article(html, f"{BASE}/larm.html")

    assert article is not None
    assert article.text.count("Polisen har spärrat av") == 6


@pytest.mark.parametrize(
    "html", ["", "<html><body></body></html>", "<html><body><p></p></body></html>"]
)
def test_page_without_main_text_gives_none(html: str) -> None:
    assert extract_article(html, f"{BASE}/tom.html") is None
