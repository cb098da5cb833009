"""Article identity by URL (issue 12, item 5): one canonical form from w3lib, only tracking
parameters dropped, and pages fetched at the link the outlet gave."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from conftest import monitor_config, run_monitor, write_config
from servers import FIXTURE_SITE, Site, serve

from monitor.normalize import canonical_url

# Without its canonical link, so that the article keeps the address it was found under.
ARTICLE_PAGE = b"\n".join(
    line for line in (FIXTURE_SITE / "ekonomi" / "riksbanken-ranta.html").read_bytes().splitlines()
    if b'rel="canonical"' not in line and b'property="og:url"' not in line
)


@pytest.mark.parametrize(
    "spelling",
    [
        "https://www.svt.se/nyheter/räntan-höjs",
        "https://www.svt.se/nyheter/r%C3%A4ntan-h%C3%B6js",
        "https://www.svt.se/nyheter/r%c3%a4ntan-h%c3%b6js",
        "HTTPS://WWW.SVT.SE/nyheter/r%c3%a4ntan-höjs#kommentarer",
    ],
)
def test_percent_encoded_and_unicode_paths_are_one_article(spelling: str) -> None:
    """Found as: one article linked from the feed as /räntan-höjs and from the page's canonical
    link as /r%C3%A4ntan-h%C3%B6js was stored twice."""
    assert canonical_url(spelling) == "https://www.svt.se/nyheter/r%C3%A4ntan-h%C3%B6js"


def test_unicode_query_values_are_one_article() -> None:
    assert canonical_url("https://www.dn.se/sok?q=räntan") == canonical_url("https://www.dn.se/sok?q=r%C3%A4ntan")


@pytest.mark.parametrize(
    "tracking",
    ["utm_source=rss", "utm_medium=feed&utm_campaign=morgon", "UTM_Content=x", "utm%5Fterm=y",
     "fbclid=IwAR0abc", "gclid=Cj0K", "msclkid=9", "PHPSESSID=abc", "jsessionid=F00"],
)
def test_tracking_parameters_are_removed(tracking: str) -> None:
    assert canonical_url(f"https://www.gp.se/artikel?id=4&{tracking}") == "https://www.gp.se/artikel?id=4"


@pytest.mark.parametrize("name", ["id", "sid", "p", "article", "artikel", "sida", "session", "sessionid"])
def test_parameters_that_can_name_the_content_are_kept(name: str) -> None:
    """Found as: `?sid=` was dropped as a session id, so every page of a site that names its
    articles by `sid` became one article."""
    first = canonical_url(f"https://www.example.se/visa.php?{name}=101")
    second = canonical_url(f"https://www.example.se/visa.php?{name}=102")
    assert first == f"https://www.example.se/visa.php?{name}=101"
    assert first != second


def test_canonical_form_keeps_what_article_url_guarantees() -> None:
    assert canonical_url("http://[::1]:8080/a/./b/../c?b=2&a=1") == "http://[::1]:8080/a/c?a=1&b=2"
    assert canonical_url("https://www.gp.se/a;jsessionid=ABC123?id=4") == "https://www.gp.se/a?id=4"
    assert canonical_url("https://user:pw@Gp.se:443/Nyheter/A") == "https://gp.se/Nyheter/A"


# The outlet's link: lower-case escapes, parameters in its own order and a tracking parameter.
# The canonical form differs in all three, and the server answers only at the link as given.
GIVEN = "/nyheter/r%c3%a4ntan-h%c3%b6js?sida=2&id=7&utm_source=rss"
FEED = """<?xml version="1.0" encoding="UTF-8"?>
<rss version="2.0"><channel><title>Identitet</title><link>{base}/</link><description>d</description>
<item><title>Riksbanken höjer räntan</title><link>{base}{given}</link><guid>r1</guid>
<description>Riksbanken höjer styrräntan.</description></item>
</channel></rss>"""


@pytest.fixture
def strict_site() -> Iterator[Site]:
    """A site that answers only at the exact paths it published."""
    site = Site(Path("."))

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            feed = FEED.format(base=site.base, given=GIVEN).encode()
            pages = {"/rss/identitet.xml": (feed, "application/rss+xml"),
                     GIVEN: (ARTICLE_PAGE, "text/html; charset=utf-8")}
            body, kind = pages.get(self.path, (b"not found", "text/plain"))
            status = 200 if self.path in pages else 404
            site.requests.append(("GET", self.path, status))
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    with serve(ThreadingHTTPServer(("127.0.0.1", 0), Handler)) as base:
        site.base = base
        yield site


def test_page_is_fetched_at_the_link_the_outlet_gave(tmp_path: Path, strict_site: Site) -> None:
    """Found as: the page was fetched at our canonical form of the link, which the outlet's server
    does not know (404), so the article was matched on its feed summary only."""
    config = write_config(tmp_path, monitor_config(strict_site, feeds=("rss/identitet.xml",)))
    result = run_monitor(config, "once", timeout=60)
    assert result.returncode == 0, result.stderr

    with sqlite3.connect(tmp_path / "monitor.db") as db:
        rows = db.execute("SELECT url, link, text, fetch_error FROM articles").fetchall()
    assert rows, result.stderr
    [(url, link, text, error)] = rows
    assert url == f"{strict_site.base}/nyheter/r%C3%A4ntan-h%C3%B6js?id=7&sida=2"
    assert link == strict_site.base + GIVEN
    assert error is None
    assert "1,75 procent" in text  # the page's words, not the feed's summary
    assert strict_site.statuses(GIVEN) == [200]
