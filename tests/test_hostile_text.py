"""Hostile text, dates and sizes from the web (issue 11): a gzip bomb, lone surrogates, control
characters, one invalid UTF-8 byte, dates in year 1 and 9999, a 5 MB title. Each one is served
from the local site to the real CLI the way it was found, and the other sources and entries must
still be stored and alerted; the rules themselves are checked as pure functions."""

from __future__ import annotations

import gzip
import json
import os
import re
import sqlite3
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from conftest import REPO, WEBHOOK_SECRET, monitor_config, run_monitor, write_config
from scrapy.http import Response
from servers import Mailbox, Receiver, Site

from monitor.errors import FetchError
from monitor.extract import extract_article
from monitor.feeds import parse_feed
from monitor.normalize import (
    CUT_MARK,
    SUMMARY_MAX,
    TEXT_MAX,
    TITLE_MAX,
    clean_string,
    cut,
    plausible_date,
)
from spiders.discover import classify
from spiders.sitemap import unzipped

# The five articles of the fixture's utrikes feed; each names Kazakstan, CSTO or Tokajev.
UTRIKES_ALERTS = {
    "/nyheter/utrikes/kazakstan-protester.html",
    "/nyheter/utrikes/csto-styrkor-almaty.html",
    "/nyheter/utrikes/tokajev-nodlage.html",
    "/nyheter/utrikes/svenskar-kazakstan.html",
    "/ekonomi/kazakstan-uran.html",
}
UTRIKES = {"name": "utrikes", "type": "feed", "url": "rss/utrikes.xml"}
MEMORY_LIMIT_KB = 512 * 1024
# Anything a stored or sent string must never hold (tab and newline are allowed).
UNSAFE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff]")

RSS_HEAD = ('<?xml version="1.0" encoding="UTF-8"?>\n<rss version="2.0"><channel>'
            "<title>Fientlig</title><link>{base}/</link><description>Test</description>\n")
RSS_TAIL = "</channel></rss>\n"


def rss_item(title: str, path: str, summary: str = "Sammanfattning.",
             date: str = "Wed, 25 Nov 2026 08:00:00 +0100") -> str:
    return (f"<item><title>{title}</title><link>{{base}}/{path}</link>"
            f'<guid isPermaLink="false">{path}</guid><pubDate>{date}</pubDate>'
            f"<description>{summary}</description></item>\n")


def config_with(tmp_path: Path, site: Site, sources: list[dict], receiver: Receiver | None = None,
                mailbox: Mailbox | None = None) -> Path:
    """Only the named sources; feeds are matched on their titles and summaries (no page fetches)."""
    raw = monitor_config(site, receiver, mailbox)
    raw["sources"] = [{"full_text": s["type"] != "feed", **s, "url": site.url(s["url"])}
                      for s in sources]
    return write_config(tmp_path, raw)


def articles(tmp_path: Path) -> dict[str, dict]:
    with sqlite3.connect(tmp_path / "monitor.db") as db:
        db.row_factory = sqlite3.Row
        return {row["url"].split("/", 3)[3].join(["/", ""]): dict(row)
                for row in db.execute("SELECT * FROM articles")}


def source_errors(tmp_path: Path) -> dict[str, str | None]:
    with sqlite3.connect(tmp_path / "monitor.db") as db:
        return dict(db.execute("SELECT name, last_error FROM sources"))


def alerted_paths(receiver: Receiver) -> set[str]:
    urls = [json.loads(body)["article"]["url"] for body in receiver.bodies()]
    return {url.split("/", 3)[3].join(["/", ""]) for url in urls}


# --- decompression ------------------------------------------------------------------------

def gzip_bomb(inflated_mb: int = 1024) -> bytes:
    """A sitemap of about `inflated_mb` MB that gzips to about 1 MB: gzip members of 1 MB of
    spaces (white space inside <urlset> is valid XML), compressed once and repeated."""
    head = gzip.compress(
        b'<?xml version="1.0" encoding="UTF-8"?>\n'
        b'<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">'
        b"<url><loc>http://127.0.0.1/nyheter/bomb.html</loc></url>")
    padding = gzip.compress(b" " * (1 << 20), compresslevel=9)
    return head + padding * inflated_mb + gzip.compress(b"</urlset>")


def run_measured(config: Path, *args: str) -> tuple[subprocess.CompletedProcess[str], int]:
    """run_monitor, also returning the peak resident memory (KB) of that one child process:
    os.wait4 reports on the process it reaps, so earlier children do not count."""
    environment = {**os.environ, "WEBHOOK_SECRET": WEBHOOK_SECRET, "PYTHONPATH": str(REPO)}
    out, err = config.parent / "stdout.txt", config.parent / "stderr.txt"
    with out.open("w") as stdout, err.open("w") as stderr:
        process = subprocess.Popen([sys.executable, "-m", "monitor", "--config", str(config), *args],
                                   stdout=stdout, stderr=stderr, env=environment, cwd=config.parent)
        try:
            _, status, usage = os.wait4(process.pid, 0)
        except BaseException:
            process.kill()
            raise
        process.returncode = os.waitstatus_to_exitcode(status)
    result = subprocess.CompletedProcess(process.args, process.returncode, out.read_text(),
                                         err.read_text())
    return result, usage.ru_maxrss


def test_gzip_bomb_sitemap_is_dropped_within_memory_and_other_sources_alert(
    tmp_path: Path, site: Site, receiver: Receiver
) -> None:
    bomb = gzip_bomb()
    assert len(bomb) < 2 * 1024 * 1024, "small on the wire"
    site.write("sitemap-bomb.xml.gz", bomb)
    config = config_with(tmp_path, site, [
        UTRIKES, {"name": "bomb", "type": "sitemap", "url": "sitemap-bomb.xml.gz", "max_age": "3650d"},
    ], receiver)

    result, peak_kb = run_measured(config, "once")

    assert result.returncode == 0, result.stderr
    assert peak_kb < MEMORY_LIMIT_KB, f"peak memory {peak_kb // 1024} MB"
    errors = source_errors(tmp_path)
    assert "decompressed size exceeds max_size" in (errors["bomb"] or ""), errors
    assert errors["utrikes"] is None
    assert alerted_paths(receiver) == UTRIKES_ALERTS


def test_decompression_counts_against_max_size() -> None:
    small = gzip.compress(b"<urlset/>")
    assert unzipped(small, 100) == b"<urlset/>"
    assert unzipped(b"<urlset/>", 1) == b"<urlset/>", "a plain body is not inflated"
    with pytest.raises(FetchError, match=r"decompressed size exceeds max_size \(1048576 bytes\)"):
        unzipped(gzip_bomb(inflated_mb=4), 1 << 20)
    response = Response("http://127.0.0.1/sitemap.xml.gz", body=gzip_bomb(inflated_mb=4))
    with pytest.raises(FetchError, match="decompressed size exceeds max_size"):
        classify(response, max_size=1 << 20)


# --- characters ---------------------------------------------------------------------------

def test_lone_surrogate_in_a_feed_costs_only_that_character(
    tmp_path: Path, site: Site, receiver: Receiver
) -> None:
    site.write("rss/fientlig.xml", RSS_HEAD
               + rss_item("Kazakstan &#xD800;stänger gränsen", "nyheter/a.html",
                          "Tokajev &#xDFFF;talar&#x1; &#x7; i &#1114112;Almaty.")
               + rss_item("Tokajev i Almaty", "nyheter/b.html")
               + rss_item("Väder: snö i norr", "nyheter/c.html") + RSS_TAIL)
    config = config_with(tmp_path, site, [
        UTRIKES, {"name": "fientlig", "type": "feed", "url": "rss/fientlig.xml"}], receiver)

    result = run_monitor(config, "once")

    assert result.returncode == 0, result.stderr
    assert source_errors(tmp_path) == {"utrikes": None, "fientlig": None}
    stored = articles(tmp_path)
    assert {"/nyheter/a.html", "/nyheter/b.html", "/nyheter/c.html"} <= set(stored)
    assert stored["/nyheter/a.html"]["title"] == "Kazakstan stänger gränsen"
    assert stored["/nyheter/a.html"]["summary"] == "Tokajev talar i Almaty."
    assert alerted_paths(receiver) == UTRIKES_ALERTS | {"/nyheter/a.html", "/nyheter/b.html"}
    for body in receiver.bodies():
        assert not UNSAFE.search(body.decode("utf-8"))


def test_control_characters_and_surrogates_are_removed_from_every_string() -> None:
    assert clean_string("a\ud800b\udfffc") == "abc"
    assert clean_string("a\x00b\x07c\x1bd\x7fe\x85f") == "abcdef"
    assert clean_string("rad ett\trad\ntvå\r\ntre\rfyra") == "rad ett\trad\ntvå\ntre\nfyra"
    assert clean_string(None) == ""
    body = (RSS_HEAD + rss_item("Kazakstan\x07 &#x1b;[31mröd&#0;", "a.html", "Tokajev\x01 &amp;#xD800;")
            + RSS_TAIL).replace("{base}", "http://127.0.0.1").encode()
    (entry,) = parse_feed(body, "http://127.0.0.1/rss.xml", "application/rss+xml")
    assert entry.title == "Kazakstan [31mröd"
    assert entry.summary in ("Tokajev", "Tokajev \ufffd")  # an escaped reference: w3lib's U+FFFD


def test_windows_1252_references_become_their_characters_not_glued_words() -> None:
    """"&#150;" is how Windows tools write "–"; browsers read 0x80–0x9F references as Windows-1252.
    Dropping it as a control character would glue two words into one that no query finds."""
    body = (RSS_HEAD + rss_item("Kazakstan&#150;Ryssland &#147;nära&#148;", "a.html", "Tokajev&#x85;")
            + RSS_TAIL).replace("{base}", "http://127.0.0.1").encode()
    (entry,) = parse_feed(body, "http://127.0.0.1/rss.xml", "application/rss+xml")
    assert entry.title == "Kazakstan–Ryssland “nära”"
    assert entry.summary == "Tokajev…"


def test_discovery_reads_a_feed_with_a_lone_surrogate() -> None:
    body = (RSS_HEAD.replace("Fientlig", "Nyheter &#xD800;från\x01 oss") + rss_item("a", "a.html")
            + RSS_TAIL).replace("{base}", "http://x.se").encode()
    response = Response("http://x.se/rss.xml", body=body,
                        headers={"Content-Type": "application/rss+xml"})
    assert classify(response, max_size=1 << 20) == ("feed", "Nyheter från oss", False)


def test_page_strings_are_cleaned_where_they_enter() -> None:
    html = ("<html lang='sv\x01'><head><title>Kazakstan&#x1; &#xD800;idag</title></head><body><article>"
            "<h1>Kazakstan&#x1; idag</h1>"
            + "".join(f"<p>Tokajev talade\x07 i Almaty om läget i landet, dag {i}.</p>" for i in range(30))
            + "</article></body></html>")
    article = extract_article(html, "http://127.0.0.1/a.html")
    assert article is not None
    for value in (article.title, article.text, article.author or "", article.lang or ""):
        assert not UNSAFE.search(value), value
    assert "Tokajev talade i Almaty" in article.text


# --- encodings ----------------------------------------------------------------------------

def test_one_invalid_utf8_byte_is_replaced_alone(tmp_path: Path, site: Site, receiver: Receiver) -> None:
    # The typographic dash and quotes are what feedparser's own per-string repair cannot undo.
    feed = (RSS_HEAD + rss_item("Kazakstan – Malmöbor evakuerade: ”Vi är trygga”", "nyheter/malmo.html",
                                "Göteborg och Malmö skickar hjälp.")
            + rss_item("Tokajev möter press", "nyheter/trasig.html", "Ett trasigt tecken: @.")
            + RSS_TAIL).encode("utf-8").replace(b"@", b"\xff")
    site.write("rss/trasig.xml", feed)
    config = config_with(tmp_path, site, [{"name": "trasig", "type": "feed", "url": "rss/trasig.xml"}],
                         receiver)

    result = run_monitor(config, "once")

    assert result.returncode == 0, result.stderr
    stored = articles(tmp_path)
    assert stored["/nyheter/malmo.html"]["title"] == "Kazakstan – Malmöbor evakuerade: ”Vi är trygga”"
    assert stored["/nyheter/malmo.html"]["summary"] == "Göteborg och Malmö skickar hjälp."
    assert stored["/nyheter/trasig.html"]["summary"] == "Ett trasigt tecken: \ufffd."
    assert not any("Ã" in a["title"] + a["summary"] for a in stored.values())
    assert alerted_paths(receiver) == {"/nyheter/malmo.html", "/nyheter/trasig.html"}


@pytest.mark.parametrize("content_type", [
    None, "application/rss+xml", "application/xml; charset=utf-8", "text/xml", "text/html",
])
def test_invalid_utf8_keeps_the_declared_encoding_whatever_the_header(content_type: str | None) -> None:
    body = (RSS_HEAD + rss_item("Malmö \xa4", "a.html") + RSS_TAIL).replace(
        "{base}", "http://x.se").encode("utf-8").replace("\xa4".encode(), b"\xff")
    (entry,) = parse_feed(body, "http://x.se/rss.xml", content_type)
    assert entry.title == "Malmö \ufffd"


def test_well_formed_legacy_encodings_still_decode() -> None:
    latin1 = (RSS_HEAD.replace("UTF-8", "ISO-8859-1") + rss_item("Malmö – “citat”", "a.html")
              + RSS_TAIL).replace("{base}", "http://x.se")
    declared = latin1.encode("cp1252")
    assert parse_feed(declared, "http://x.se/rss.xml")[0].title == "Malmö – “citat”"
    # An undeclared legacy feed (no charset, no encoding="…"): Windows-1252, as before.
    undeclared = latin1.replace(' encoding="ISO-8859-1"', "").encode("cp1252")
    assert parse_feed(undeclared, "http://x.se/rss.xml", "application/rss+xml")[0].title == (
        "Malmö – “citat”")
    # The HTTP charset wins over the document's declaration, as RFC 3023 says.
    assert parse_feed(declared, "http://x.se/rss.xml", "text/xml; charset=windows-1252")[0].title == (
        "Malmö – “citat”")
    utf16 = latin1.replace("ISO-8859-1", "UTF-16").encode("utf-16")
    assert parse_feed(utf16, "http://x.se/rss.xml")[0].title == "Malmö – “citat”"


# --- dates --------------------------------------------------------------------------------

SITEMAP = ('<?xml version="1.0" encoding="UTF-8"?>\n'
           '<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9" '
           'xmlns:news="http://www.google.com/schemas/sitemap-news/0.9">\n{urls}</urlset>\n')
SITEMAP_URL = ("<url><loc>{{base}}/{path}</loc><news:news><news:publication_date>{date}"
               "</news:publication_date><news:title>{title}</news:title></news:news></url>\n")


def test_sitemap_dates_out_of_range_are_unknown_not_fatal(tmp_path: Path, site: Site) -> None:
    dates = {
        "nyheter/ok.html": "2026-11-25T07:05:00+01:00",
        "nyheter/ar9999.html": "9999-12-31T23:59:59-01:00",
        "nyheter/ar1.html": "0001-01-01T00:00:00+01:00",
        "nyheter/ar1-datum.html": "0001-01-01",
        "nyheter/skrap.html": "i går",
    }
    urls = "".join(SITEMAP_URL.format(path=p, date=d, title=f"Rubrik {p}") for p, d in dates.items())
    site.write("sitemap-datum.xml", SITEMAP.format(urls=urls))
    config = config_with(tmp_path, site, [
        {"name": "datum", "type": "sitemap", "url": "sitemap-datum.xml", "max_age": "3650d"}])

    result = run_monitor(config, "once")

    assert result.returncode == 0, result.stderr
    assert source_errors(tmp_path) == {"datum": None}
    published = {path: row["published"] for path, row in articles(tmp_path).items()}
    assert published == {
        "/nyheter/ok.html": "2026-11-25T06:05:00+00:00",
        "/nyheter/ar9999.html": None,
        "/nyheter/ar1.html": None,
        "/nyheter/ar1-datum.html": None,
        "/nyheter/skrap.html": None,
    }


def test_a_bad_sitemap_entry_drops_only_itself(tmp_path: Path, site: Site) -> None:
    site.write("sitemap-trasig.xml",
               '<?xml version="1.0" encoding="UTF-8"?>\n'
               '<sitemapindex xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">'
               "<sitemap><loc></loc></sitemap>"
               "<sitemap><loc>http://[::1</loc></sitemap>"
               "<sitemap><loc>{base}/sitemap-news.xml</loc><lastmod>9999-12-31T23:59:59-01:00</lastmod></sitemap>"
               "</sitemapindex>\n")
    config = config_with(tmp_path, site, [
        {"name": "trasig", "type": "sitemap", "url": "sitemap-trasig.xml", "max_age": "3650d"}])

    result = run_monitor(config, "once")

    assert result.returncode == 0, result.stderr
    assert source_errors(tmp_path) == {"trasig": None}
    assert "/nyheter/utrikes/csto-analys.html" in articles(tmp_path), "the good child was read"


NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(("value", "expected"), [
    ("2026-11-25T07:05:00+01:00", datetime(2026, 11, 25, 6, 5, tzinfo=UTC)),
    ("2026-11-25T06:05:00Z", datetime(2026, 11, 25, 6, 5, tzinfo=UTC)),
    ("2026-11-25", datetime(2026, 11, 25, tzinfo=UTC)),
    ("1990-01-01T00:00:00Z", datetime(1990, 1, 1, tzinfo=UTC)),
    ("1989-12-31T23:59:59Z", None),
    ("2026-12-02T12:00:00Z", NOW + timedelta(days=2)),
    ("2026-12-02T12:00:01Z", None),
    ("9999-12-31T23:59:59-01:00", None),
    ("0001-01-01T00:00:00+01:00", None),
    ("0001-01-01", None),
    ("i går", None),
    ("", None),
    (None, None),
    (datetime(2026, 11, 1), datetime(2026, 11, 1, tzinfo=UTC)),
    (datetime.max, None),
])
def test_plausible_dates(value: str | datetime | None, expected: datetime | None) -> None:
    assert plausible_date(value, now=NOW) == expected


def test_feed_and_page_dates_use_the_same_range() -> None:
    items = (rss_item("a", "a.html", date="Fri, 31 Dec 9999 23:59:59 -0100")
             + rss_item("b", "b.html", date="Mon, 01 Jan 0001 00:00:00 +0000")
             + rss_item("c", "c.html", date="Wed, 25 Nov 2026 07:05:00 +0100"))
    body = (RSS_HEAD + items + RSS_TAIL).replace("{base}", "http://x.se").encode()
    assert [e.published for e in parse_feed(body, "http://x.se/rss.xml")] == [
        None, None, "2026-11-25T06:05:00+00:00"]
    page = ("<html lang='sv'><head><meta property='article:published_time' content='{date}'>"
            "<title>Kazakstan</title></head><body><article><h1>Kazakstan</h1>"
            + "<p>Tokajev talade i Almaty om läget i landet och om hjälpen.</p>" * 10
            + "</article></body></html>")
    for date in ("9999-12-31T23:59:59+00:00", "0001-01-01T00:00:00+00:00"):
        article = extract_article(page.format(date=date), "http://x.se/a.html")
        assert article is not None
        assert article.published is None or article.published.startswith("20"), article.published


# --- sizes --------------------------------------------------------------------------------

def test_field_caps_are_marked() -> None:
    assert cut("kort", 10) == "kort"
    long = cut("ord " * 1000, TITLE_MAX)
    assert len(long) <= TITLE_MAX and long.endswith(CUT_MARK)
    assert clean_string("x" * (TEXT_MAX + 1), TEXT_MAX).endswith(CUT_MARK)
    body = (RSS_HEAD + rss_item("Kazakstan " * 500, "a.html", "Tokajev " * 5000) + RSS_TAIL).replace(
        "{base}", "http://x.se").encode()
    (entry,) = parse_feed(body, "http://x.se/rss.xml")
    assert len(entry.title) <= TITLE_MAX and entry.title.endswith(CUT_MARK)
    assert len(entry.summary) <= SUMMARY_MAX and entry.summary.endswith(CUT_MARK)
    page = ("<html lang='sv'><head><title>Kazakstan</title></head><body><article><h1>Kazakstan</h1>"
            + "".join(f"<p>Stycke {i}: " + f"Tokajev talade i Almaty om läget {i}. " * 300 + "</p>"
                      for i in range(100))
            + "</article></body></html>")
    article = extract_article(page, "http://x.se/a.html")
    assert article is not None
    assert len(article.text) <= TEXT_MAX and article.text.endswith(CUT_MARK)


def subject_lines(message: bytes) -> int:
    """Physical lines of the Subject header (the first line and its folded continuations)."""
    lines = message.split(b"\n\n", 1)[0].splitlines()
    start = next(i for i, line in enumerate(lines) if line.lower().startswith(b"subject:"))
    count = 1
    while start + count < len(lines) and lines[start + count][:1] in (b" ", b"\t"):
        count += 1
    return count


def test_five_megabyte_title_is_capped_in_store_log_webhook_and_mail(
    tmp_path: Path, site: Site, receiver: Receiver, mailbox: Mailbox
) -> None:
    title = "Kazakstan " + "mycket lång rubrik " * 260_000  # ~5 MB
    site.write("rss/lang.xml", RSS_HEAD + rss_item(title, "nyheter/lang.html", "Tokajev " * 20_000)
               + RSS_TAIL)
    config = config_with(tmp_path, site, [{"name": "lang", "type": "feed", "url": "rss/lang.xml"}],
                         receiver, mailbox)

    result = run_monitor(config, "once")

    assert result.returncode == 0, result.stderr
    stored = articles(tmp_path)["/nyheter/lang.html"]
    assert len(stored["title"]) <= TITLE_MAX and stored["title"].endswith(CUT_MARK)
    assert len(stored["summary"]) <= SUMMARY_MAX and stored["summary"].endswith(CUT_MARK)
    (webhook,) = receiver.bodies()
    assert len(webhook) < 3 * (TITLE_MAX + SUMMARY_MAX)
    (mail,) = mailbox.messages
    assert len(str(mail["Subject"])) <= 200
    assert subject_lines(mail.as_bytes()) <= 4
    alert_lines = [line for line in result.stdout.splitlines() if " ALERT [" in line]
    assert len(alert_lines) == 1 and len(alert_lines[0]) < 1_000
    assert max(len(line) for line in (result.stdout + result.stderr).splitlines()) < 3_000

