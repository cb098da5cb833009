"""Hostile links (issue 11, "every item on its own" and "where links may lead"): bad ports, IPv6
literals, file: and javascript: addresses, canonical links to other outlets, and links to
private addresses. Each reproduced on local servers, the way it was found."""

from __future__ import annotations

import json
import random
import socket
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from conftest import monitor_config, run_monitor, write_config
from servers import Receiver, Site

from monitor.config import load_config
from monitor.errors import ConfigError
from monitor.extract import extract_article
from monitor.normalize import BadURL, article_url, canonical_url, same_site, usable_url
from spiders.guard import ip_literal, is_private_address, is_private_host

QUERY = "kazak* OR hemlig*"

PAGE = """<!DOCTYPE html><html lang="sv"><head><meta charset="utf-8"><title>{title}</title>
{head}</head><body><nav><a href="/">Start</a></nav><article><h1>{title}</h1>
<p>{lede}</p>{body}</article><footer>Nordposten AB</footer></body></html>"""
WORDS = ("regeringen landet protesterna helgen undantagstillstånd regioner internet städerna "
         "nyhetsbyråer utrikesdepartementet resor svenskar myndigheternas anvisningar inomhus "
         "flygplatsen demonstranter polisen presidenten parlamentet valet ekonomin priset "
         "gränsen tullen hamnen vägen tåget bussen skolan sjukhuset kvällen morgonen").split()

ITEM = """<item><title>{title}</title><link>{link}</link><guid isPermaLink="false">{guid}</guid>
<pubDate>Wed, 25 Nov 2026 08:00:00 +0100</pubDate><description>{lede}</description></item>"""


def page(title: str, lede: str, head: str = "") -> str:
    """An article page whose text is its own: pages alike would be grouped as one story."""
    words = random.Random(title).choices(WORDS, k=240)
    body = "".join(f"<p>{' '.join(words[i:i + 40]).capitalize()}.</p>" for i in range(0, 240, 40))
    return PAGE.format(title=title, lede=lede, head=head, body=body)


def feed(items: list[tuple[str, str, str]]) -> str:
    """(link, title, lede) → an RSS document."""
    body = "".join(ITEM.format(link=link, title=title, guid=f"g{i}", lede=lede)
                   for i, (link, title, lede) in enumerate(items))
    return (f'<?xml version="1.0" encoding="UTF-8"?><rss version="2.0"><channel><title>Test</title>'
            f"<link>http://example.se/</link><description>d</description>{body}</channel></rss>")


def config_for(site: Site, receiver: Receiver, sources: list[dict], **crawl: object) -> dict:
    config = monitor_config(site, receiver, query=QUERY)
    config["sources"] = sources
    # A request the guard fails to refuse must fail fast, not hang the test.
    config["crawl"] = {"delay": 0, "timeout": "5s", "obey_robots": False, **crawl}
    return config


def articles(directory: Path) -> list[dict]:
    with sqlite3.connect(directory / "monitor.db") as db:
        db.row_factory = sqlite3.Row
        return [dict(row) for row in db.execute("SELECT * FROM articles ORDER BY id")]


def alerted(receiver: Receiver) -> list[dict]:
    return [json.loads(body) for body in receiver.bodies()]


def port_of(site: Site) -> int:
    return int(site.base.rsplit(":", 1)[1])


# --- one bad link drops one entry --------------------------------------------------------------


def test_canonical_url_keeps_ipv6_brackets_and_refuses_bad_ports() -> None:
    assert canonical_url("http://[::1]:9/x") == "http://[::1]:9/x"
    assert canonical_url("HTTP://[::1]:80/x?utm_source=a#frag") == "http://[::1]/x"
    assert canonical_url("http://[2001:DB8::1]/a") == "http://[2001:db8::1]/a"
    for bad in ("http://127.0.0.1:99999/x", "http://[::1/x", "http:///x", "http://a b/x",
                "file:///etc/passwd", "javascript:alert(1)", "ftp://example.se/x", "/relative"):
        with pytest.raises(BadURL):
            article_url(bad)
        assert usable_url(bad) is None
    assert usable_url("/a/b", "https://www.svt.se/x/y") == "https://www.svt.se/a/b"


def test_an_out_of_range_port_or_an_ipv6_link_costs_only_its_own_entry(
    tmp_path: Path, site: Site, receiver: Receiver
) -> None:
    """Found as: one item linking to port 99999 made `monitor once` exit 1 and store nothing for
    any source; an IPv6 literal lost its brackets and was fetched as nothing."""
    port = port_of(site)
    site.write("bra.html", page("Kazakstan stänger gränsen", "Kazakstan stängde på tisdagen gränsen."))
    with ipv6_site() as v6:
        items = [
            ("http://127.0.0.1:99999/trasig", "Kazakstan trasig länk", "Kazakstan trasig."),
            (f"{site.base}/bra.html", "Kazakstan stänger gränsen", "Kazakstan stängde gränsen."),
        ]
        if v6:
            items.insert(1, (f"{v6}/v6.html", "Kazakstan över IPv6", "Kazakstan nås över IPv6."))
        site.write("rss/trasig.xml", feed(items))
        other = {"name": "utrikes", "type": "feed", "url": site.url("rss/utrikes.xml"), "interval": "10m"}
        mine = {"name": "trasig", "type": "feed", "url": site.url("rss/trasig.xml"), "interval": "10m"}
        config = write_config(tmp_path, config_for(site, receiver, [mine, other]))
        result = run_monitor(config, "once")

    assert result.returncode == 0, result.stderr
    assert "source trasig: dropped entry 'http://127.0.0.1:99999/trasig'" in result.stderr
    stored = {a["url"]: a for a in articles(tmp_path)}
    assert f"http://127.0.0.1:{port}/bra.html" in stored
    assert not any("99999" in url for url in stored)
    assert sum(a["source"] == "utrikes" for a in stored.values()) >= 5, "the other source is stored"
    urls = {body["article"]["url"] for body in alerted(receiver)}
    assert f"http://127.0.0.1:{port}/bra.html" in urls
    assert f"http://127.0.0.1:{port}/nyheter/utrikes/kazakstan-protester.html" in urls
    assert all(a["fetch_error"] != "no response" for a in stored.values())
    if v6:
        v6_article = stored[f"{v6}/v6.html"]
        assert v6_article["fetch_error"] is None and "IPv6-servern" in v6_article["text"]
        assert f"{v6}/v6.html" in urls


def test_a_scrapy_refused_address_fails_its_article_only(tmp_path: Path) -> None:
    """Old rows (or any caller) handing the article spider an unusable URL: scrapy.Request
    raised inside start() and every later article of the cycle became "no response"."""
    from spiders.article import ArticleSpider, PageTarget

    async def collect() -> list:
        spider = ArticleSpider(targets=[PageTarget(1, "javascript:alert(1)"),
                                        PageTarget(2, "http://127.0.0.1:99999/x")])
        return [item async for item in spider.start()]

    import asyncio

    results = asyncio.run(collect())
    assert [(r.article_id, r.error.startswith("bad URL")) for r in results] == [(1, True), (2, True)]


# --- only http(s) ------------------------------------------------------------------------------


def test_sitemap_file_locs_are_never_read_from_disk(tmp_path: Path, site: Site, receiver: Receiver) -> None:
    """Found as: a sitemap <loc>file:///…</loc> was read from local disk, stored and alerted."""
    secret = tmp_path / "hemlig.html"
    secret.write_text(page("Hemliga Kazakstan-planer", "Hemlig text från disken."), encoding="utf-8")
    child = tmp_path / "child.xml"
    child.write_text(urlset([secret.as_uri()]), encoding="utf-8")
    site.write("bra.html", page("Kazakstan stänger gränsen", "Kazakstan stängde på tisdagen gränsen."))
    site.write("sitemap-hostile.xml", urlset([secret.as_uri(), "{base}/bra.html", "javascript:alert(1)"]))
    site.write("sitemap-index-hostile.xml", sitemap_index([child.as_uri(), "{base}/sitemap-hostile.xml"]))
    site.write("robots.txt", f"User-agent: *\nSitemap: {child.as_uri()}\n"
               f"Sitemap: {site.base}/sitemap-hostile.xml\n")
    sources = [
        {"name": "karta", "type": "sitemap", "url": site.url("sitemap-index-hostile.xml"), "interval": "10m"},
        {"name": "rot", "type": "sitemap", "url": site.base + "/", "interval": "10m"},
    ]
    config = write_config(tmp_path, config_for(site, receiver, sources))
    result = run_monitor(config, "once")

    assert result.returncode == 0, result.stderr
    stored = articles(tmp_path)
    assert [a["url"] for a in stored] == [f"{site.base}/bra.html"]
    assert "Hemlig" not in json.dumps(alerted(receiver), ensure_ascii=False)
    assert [b["article"]["url"] for b in alerted(receiver)] == [f"{site.base}/bra.html"]
    assert "source karta: skipped linked document 'file://" in result.stderr
    assert "source rot: skipped linked document 'file://" in result.stderr


def urlset(locs: list[str]) -> str:
    body = "".join(f"<url><loc>{loc}</loc></url>" for loc in locs)
    return f'<?xml version="1.0"?><urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">{body}</urlset>'


def sitemap_index(locs: list[str]) -> str:
    body = "".join(f"<sitemap><loc>{loc}</loc></sitemap>" for loc in locs)
    return (f'<?xml version="1.0"?><sitemapindex xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">'
            f"{body}</sitemapindex>")


# --- canonical links ---------------------------------------------------------------------------


@pytest.mark.parametrize(("href", "expected"), [
    ("file:///etc/passwd", None),
    ("javascript:alert(document.cookie)", None),
    ("https://www.annan-tidning.se/utrikes/kazakstan", None),
    ("https://nyheter.example.se:8443/x", None),
    ("/nyheter/kazakstan-1?utm_source=x", "https://www.nordposten.se/nyheter/kazakstan-1"),
    ("https://m.nordposten.se/nyheter/kazakstan-1", "https://m.nordposten.se/nyheter/kazakstan-1"),
])
def test_a_canonical_link_may_only_rename_a_page_within_its_own_site(href: str, expected: str | None) -> None:
    html = page("Kazakstan", "Kazakstan i kris.", head=f'<link rel="canonical" href="{href}">')
    article = extract_article(html, "https://www.nordposten.se/nyheter/kazakstan-1")
    assert article is not None
    assert article.canonical_url == expected


def test_same_site_is_the_registered_domain_or_the_exact_host() -> None:
    assert same_site("https://www.svt.se/a", "http://nyheter.svt.se/b")
    assert same_site("https://a.bbc.co.uk/", "https://b.bbc.co.uk/")
    assert not same_site("https://svt.se/", "https://dn.se/")
    assert not same_site("https://a.github.io/", "https://b.github.io/")  # a public suffix
    assert same_site("http://127.0.0.1:8000/a", "http://127.0.0.1:9000/b")
    assert not same_site("http://127.0.0.1/a", "http://127.0.0.2/a")
    assert not same_site("http://localhost/a", "http://intranet/a")
    assert same_site("http://[::1]:9/a", "http://[::1]/b")


def test_a_hostile_canonical_link_does_not_rewrite_the_stored_url(
    tmp_path: Path, site: Site, receiver: Receiver
) -> None:
    """Found as: a page's canonical link to another outlet's article took that article's URL
    (the real one never alerted), and one to javascript: ended up as the link in the alert."""
    # Two sites on one server: 127.0.0.1 and localhost are different hosts, so different sites.
    ours, theirs = site.base, site.base.replace("127.0.0.1", "localhost")
    stolen = f"{theirs}/annan/kazakstan-original.html"
    site.write("annan/kazakstan-original.html", page("Kazakstan: originalet", "Kazakstan originaltext."))
    site.write("annan/rss.xml", feed([(stolen, "Kazakstan: originalet", "Kazakstan originaltext.")]))
    hostile = {"stold": stolen, "js": "javascript:alert(document.cookie)", "fil": "file:///etc/passwd"}
    items = []
    for name, href in hostile.items():
        site.write(f"vara/{name}.html", page(f"Kazakstan {name}", f"Kazakstan och {name}.",
                                             head=f'<link rel="canonical" href="{href}">'))
        items.append((f"{ours}/vara/{name}.html", f"Kazakstan {name}", f"Kazakstan och {name}."))
    site.write("vara/rss.xml", feed(items))
    sources = [  # ours first: its pages are fetched before the other outlet's feed is stored
        {"name": "vara", "type": "feed", "url": f"{ours}/vara/rss.xml", "interval": "10m"},
        {"name": "annan", "type": "feed", "url": f"{theirs}/annan/rss.xml", "interval": "10m"},
    ]
    config = write_config(tmp_path, config_for(site, receiver, sources))
    result = run_monitor(config, "once")

    assert result.returncode == 0, result.stderr
    stored = {a["url"]: a["source"] for a in articles(tmp_path)}
    assert stored == {**{f"{ours}/vara/{name}.html": "vara" for name in hostile}, stolen: "annan"}
    bodies = alerted(receiver)
    assert sorted(b["article"]["url"] for b in bodies) == sorted(stored)
    assert "javascript:" not in json.dumps(bodies) and "file:" not in json.dumps(bodies)


# --- private addresses -------------------------------------------------------------------------


def test_private_addresses_are_told_from_public_ones() -> None:
    for private in ("127.0.0.1", "10.1.2.3", "172.16.0.1", "192.168.1.1", "169.254.169.254",
                    "100.64.0.1", "0.0.0.0", "224.0.0.1", "240.0.0.1", "::1", "::", "fe80::1",
                    "fc00::1", "::ffff:127.0.0.1", "::ffff:169.254.169.254", "ff02::1"):
        assert is_private_address(ip_literal(private)), private
    for public in ("8.8.8.8", "193.10.5.1", "2a00:1450:4001::1", "::ffff:8.8.8.8"):
        assert not is_private_address(ip_literal(public)), public
    assert is_private_host("localhost") and is_private_host("intra.localhost")
    assert is_private_host("[::1]") and not is_private_host("example.se")
    assert ip_literal("example.se") is None


SECRET_PATHS = ("/intern/hemlig.html", "/intern/hemlig2.html", "/intern/hemlig3.html",
                "/intern/hemlig4.html")


def test_links_to_private_addresses_are_refused_for_a_public_source(
    tmp_path: Path, site: Site, receiver: Receiver
) -> None:
    """Found as: feed links to 127.0.0.1 and 169.254.169.254 were fetched and their text sent
    out in alerts. The source has a public-looking name, pinned to 127.0.0.1 by crawl.hosts (the
    test resolves no name through the machine's network); only its own host may be private."""
    port = port_of(site)
    ours = f"http://nyheter.example.se:{port}"
    for path in SECRET_PATHS:
        site.write(path, page("Hemlig Kazakstan-rapport", "Hemlig intern text om Kazakstan."))
    site.write("bra.html", page("Kazakstan stänger gränsen", "Kazakstan stängde på tisdagen gränsen."))
    items = [
        (f"http://127.0.0.1:{port}{SECRET_PATHS[0]}", "Rapport A", "Rapport a."),
        ("http://169.254.169.254/latest/meta-data/", "Rapport B", "Rapport b."),
        (f"http://intern.example.se:{port}{SECRET_PATHS[1]}", "Rapport C", "Rapport c."),
        (f"http://[::ffff:127.0.0.1]:{port}{SECRET_PATHS[2]}", "Rapport D", "Rapport d."),
        (f"http://localhost:{port}{SECRET_PATHS[3]}", "Rapport E", "Rapport e."),
        (f"{ours}/bra.html", "Kazakstan stänger gränsen", "Kazakstan stängde gränsen."),
    ]
    site.write("rss/publik.xml", feed(items))
    sources = [{"name": "publik", "type": "feed", "url": f"{ours}/rss/publik.xml", "interval": "10m"}]
    hosts = {"nyheter.example.se": "127.0.0.1", "intern.example.se": ["127.0.0.1"]}
    config = write_config(tmp_path, config_for(site, receiver, sources, hosts=hosts))
    result = run_monitor(config, "once", timeout=60)

    assert result.returncode == 0, result.stderr
    errors = {a["url"]: a["fetch_error"] for a in articles(tmp_path)}
    assert errors == {
        f"http://127.0.0.1:{port}{SECRET_PATHS[0]}": "refused: 127.0.0.1 is a private address",
        "http://169.254.169.254/latest/meta-data/": "refused: 169.254.169.254 is a private address",
        f"http://intern.example.se:{port}{SECRET_PATHS[1]}":
            "refused: intern.example.se resolves to private address 127.0.0.1",
        # Stored under w3lib's canonical form of the IPv6 literal, fetched (and refused) as given.
        canonical_url(f"http://[::ffff:127.0.0.1]:{port}{SECRET_PATHS[2]}"):
            "refused: ::ffff:127.0.0.1 is a private address",
        f"http://localhost:{port}{SECRET_PATHS[3]}": errors[f"http://localhost:{port}{SECRET_PATHS[3]}"],
        f"{ours}/bra.html": None,
    }
    assert errors[f"http://localhost:{port}{SECRET_PATHS[3]}"] in (
        "refused: localhost resolves to private address 127.0.0.1",
        "refused: localhost resolves to private address ::1")
    requested = {path for _, path, _ in site.requests}
    assert not requested & set(SECRET_PATHS), "refused before connecting"
    bodies = alerted(receiver)
    assert "Hemlig" not in json.dumps(bodies, ensure_ascii=False)
    # Only the secret text would match: the refused links (headlines without a watched word)
    # send nothing; the source's own article alerts.
    assert [b["article"]["url"] for b in bodies] == [f"{ours}/bra.html"]


def test_allow_private_lets_a_public_source_link_to_the_intranet(
    tmp_path: Path, site: Site, receiver: Receiver
) -> None:
    port = port_of(site)
    ours = f"http://nyheter.example.se:{port}"
    site.write(SECRET_PATHS[0], page("Intern Kazakstan-rapport", "Intern text om Kazakstan."))
    site.write("rss/publik.xml", feed([
        (f"http://127.0.0.1:{port}{SECRET_PATHS[0]}", "Rapport A", "Rapport a.")]))
    sources = [{"name": "publik", "type": "feed", "url": f"{ours}/rss/publik.xml", "interval": "10m"}]
    config = write_config(tmp_path, config_for(
        site, receiver, sources, hosts={"nyheter.example.se": "127.0.0.1"}, allow_private=True))
    result = run_monitor(config, "once", timeout=60)

    assert result.returncode == 0, result.stderr
    [article] = articles(tmp_path)
    assert article["fetch_error"] is None and "Intern text" in article["text"]


def test_crawl_hosts_and_allow_private_are_validated(tmp_path: Path) -> None:
    def load(crawl: str) -> object:
        path = tmp_path / "config.yaml"
        path.write_text(
            "sources:\n  - name: a\n    url: http://nyheter.example.se/rss\n"
            f"crawl:\n{crawl}", encoding="utf-8")
        return load_config(path, {})

    settings = load("  hosts:\n    Nyheter.Example.SE: 127.0.0.1\n    b.se: [10.0.0.1, '::1']\n").crawl
    assert settings.hosts == (("nyheter.example.se", ("127.0.0.1",)), ("b.se", ("10.0.0.1", "::1")))
    assert settings.allow_private is False
    assert load("  allow_private: true\n").crawl.allow_private is True
    with pytest.raises(ConfigError,
                       match=r"crawl\.hosts\.a\.se: expected an IP address, got .b\.se. \(line 6\)"):
        load("  hosts:\n    a.se: b.se\n")
    with pytest.raises(ConfigError, match=r"crawl\.hosts\.http://a\.se: expected a host name"):
        load("  hosts:\n    http://a.se: 127.0.0.1\n")
    with pytest.raises(ConfigError, match=r"crawl\.allow_private: expected true or false"):
        load("  allow_private: kanske\n")


# --- an IPv6 server for the end-to-end test ----------------------------------------------------


class _V6Server(ThreadingHTTPServer):
    address_family = socket.AF_INET6


class _V6Handler(BaseHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        body = page("Kazakstan över IPv6", "Kazakstan nås över IPv6-servern.").encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@contextmanager
def ipv6_site() -> Iterator[str | None]:
    """http://[::1]:PORT, or None where the machine has no IPv6 loopback."""
    try:
        server = _V6Server(("::1", 0), _V6Handler)
    except OSError:
        yield None
        return
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://[::1]:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@contextmanager
def redirector(locations: dict[str, str], bodies: dict[str, str]) -> Iterator[int]:
    """A server on 127.0.0.1 answering 302 with the given Location per path, or 200 with one of
    `bodies` (filled in by the caller once the port is known); its port."""

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            body = bodies.get(self.path, "").encode()
            self.send_response(302 if self.path in locations else 200)
            if self.path in locations:
                self.send_header("Location", locations[self.path])
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


def test_redirects_are_checked_like_links(tmp_path: Path, site: Site, receiver: Receiver) -> None:
    """A public page that redirects to the intranet or to file: is refused after the redirect."""
    port = port_of(site)
    site.write(SECRET_PATHS[0], page("Hemlig rapport", "Hemlig intern text om Kazakstan."))
    secret = tmp_path / "hemlig.html"
    secret.write_text(page("Hemlig fil", "Hemlig text om Kazakstan från disken."), encoding="utf-8")
    locations = {"/till-intern": f"http://127.0.0.1:{port}{SECRET_PATHS[0]}",
                 "/till-fil": secret.as_uri()}
    bodies: dict[str, str] = {}
    with redirector(locations, bodies) as rport:
        ours = f"http://omdirigering.example.se:{rport}"
        bodies["/rss.xml"] = feed([(f"{ours}{path}", f"Rapport {path}", "Rapport.") for path in locations])
        sources = [{"name": "publik", "type": "feed", "url": f"{ours}/rss.xml", "interval": "10m"}]
        config = write_config(tmp_path, config_for(
            site, receiver, sources, hosts={"omdirigering.example.se": "127.0.0.1"}))
        result = run_monitor(config, "once", timeout=60)

    assert result.returncode == 0, result.stderr
    errors = {a["url"]: a["fetch_error"] for a in articles(tmp_path)}
    assert errors[f"{ours}/till-intern"] == "refused: 127.0.0.1 is a private address"
    assert errors[f"{ours}/till-fil"] is not None
    assert SECRET_PATHS[0] not in {path for _, path, _ in site.requests}
    assert alerted(receiver) == []
