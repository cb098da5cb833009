"""Feed parsing over the shared corpora of real well- and ill-formed feeds, read in place."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from monitor.errors import FetchError
from monitor.feeds import parse_feed


def _corpus() -> Path:
    """The shared feed corpora sit beside the checkout (../shared/corpus), as in CI;
    MONITOR_FEED_CORPUS points elsewhere."""
    if "MONITOR_FEED_CORPUS" in os.environ:
        return Path(os.environ["MONITOR_FEED_CORPUS"])
    repo = Path(__file__).resolve().parent.parent
    return repo.parent / "shared" / "corpus"


CORPUS = _corpus()
needs_corpus = pytest.mark.skipif(not CORPUS.is_dir(), reason=f"feed corpora not found at {CORPUS}")
SITE = Path(__file__).parent / "fixtures" / "site"
FEED_FILES = sorted(
    p
    for p in CORPUS.rglob("*")
    if p.suffix in {".xml", ".rss", ".atom"} and p.is_file() and "sitemap" not in p.name
)


@needs_corpus
def test_corpus_is_present() -> None:
    assert len(FEED_FILES) > 1000, f"expected the shared feed corpora at {CORPUS}"


@needs_corpus
def test_every_corpus_document_parses_or_is_refused_cleanly() -> None:
    """Thousands of real documents, many broken on purpose: each yields entries or a FetchError,
    never another exception, and every entry has an http(s) URL."""
    parsed = refused = 0
    for path in FEED_FILES:
        try:
            entries = parse_feed(path.read_bytes(), "http://example.se/feed.xml")
        except FetchError:
            refused += 1
            continue
        parsed += 1
        for entry in entries:
            assert entry.url.startswith(("http://", "https://")), (path, entry.url)
    assert parsed > refused


@needs_corpus
@pytest.mark.parametrize(
    "name",
    [
        "rss-parser-inputs/guardian.rss",
        "rss-parser-inputs/heise.atom",
        "feedjira-sample-feeds/TechCrunch.xml",
    ],
)
def test_real_feeds_give_titles_links_and_dates(name: str) -> None:
    entries = parse_feed((CORPUS / name).read_bytes(), "http://example.se/feed.xml")
    assert len(entries) >= 5
    assert all(e.title and e.url.startswith("http") for e in entries)
    assert sum(e.published is not None for e in entries) >= len(entries) - 1


def test_latin1_feed_with_declared_encoding() -> None:
    body = (SITE / "rss" / "inrikes.latin1.xml").read_bytes()
    assert "å".encode("latin-1") in body or "ä".encode("latin-1") in body
    entries = parse_feed(body, "http://127.0.0.1/rss/inrikes.latin1.xml")
    titles = " ".join(e.title for e in entries)
    assert any(ch in titles for ch in "åäö")
    assert "Ã" not in titles


def test_dates_are_utc_iso() -> None:
    body = (SITE / "rss" / "utrikes.xml").read_bytes().replace(b"{base}", b"http://127.0.0.1")
    entries = parse_feed(body, "http://127.0.0.1/rss/utrikes.xml")
    protester = next(e for e in entries if "kazakstan-protester" in e.url)
    assert protester.published == "2026-11-23T06:40:00+00:00"  # 07:40 +0100
    assert protester.guid == "nordposten-4711"


def test_relative_links_resolve_against_the_feed_url() -> None:
    body = b"""<?xml version="1.0"?><rss version="2.0"><channel><title>t</title>
    <item><title>Rubrik</title><link>/nyheter/a.html</link></item></channel></rss>"""
    (entry,) = parse_feed(body, "https://www.example.se/rss.xml")
    assert entry.url == "https://www.example.se/nyheter/a.html"


def test_html_page_is_not_a_feed() -> None:
    with pytest.raises(FetchError, match="not a feed"):
        parse_feed(b"<html><body><p>Ingen feed h\xc3\xa4r</body>", "http://example.se/")


def test_summary_html_becomes_plain_text() -> None:
    body = """<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>t</title>
    <item><title>A &amp; B</title><link>http://x.se/a</link>
    <description>&lt;p&gt;Första&lt;/p&gt;&lt;p&gt;andra &amp;amp; sista
    &lt;script&gt;x()&lt;/script&gt;&lt;/p&gt;</description>
    </item></channel></rss>""".encode()
    (entry,) = parse_feed(body, "http://x.se/rss")
    assert entry.title == "A & B"
    assert entry.summary == "Första andra & sista"
