"""`monitor discover`: feeds and sitemaps found on the fixture site, printed as config entries.

Discovery runs through `python -m monitor.discover` in a subprocess: each run gets a fresh Twisted
reactor, as the real command does."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import yaml
from conftest import REPO, write_config
from servers import Site

from monitor.config import load_config
from monitor.discover import Discovered, format_sources, source_names

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")

ATOM = """<?xml version="1.0" encoding="utf-8"?>
<feed xmlns="http://www.w3.org/2005/Atom">
  <title>Nordposten – Kultur</title>
  <id>{base}/feed.xml</id>
  <updated>2026-11-25T08:00:00+01:00</updated>
</feed>
"""
NOT_FOUND_PAGE = ("<!DOCTYPE html><html><head><title>Sidan finns inte</title></head>"
                  "<body><p>Hoppsan</p></body></html>")


def discover_output(url: str) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "monitor.discover", url],
        capture_output=True, text=True, timeout=120, cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def entries(output: str) -> dict[str, dict]:
    """url → source entry, with the entry's trailing comment under "comment"."""
    comments = dict(re.findall(r"- name: (\S+)\s+# (.*)", output))
    sources = yaml.safe_load(output)["sources"]
    return {s["url"]: {**s, "comment": comments[s["name"]]} for s in sources}


def test_finds_link_alternates_and_robots_sitemap(site: Site) -> None:
    found = entries(discover_output(site.url("/")))

    feeds = {url: e for url, e in found.items() if e["type"] == "feed"}
    assert set(feeds) == {site.url("rss/utrikes.xml"), site.url("rss/inrikes.latin1.xml"),
                          site.url("atom/senaste.xml")}
    assert all("via <link rel=alternate>" in e["comment"] for e in feeds.values())
    assert '"Nordposten – Utrikes"' in feeds[site.url("rss/utrikes.xml")]["comment"]

    index = found[site.url("sitemap-index.xml")]
    assert (index["type"], index["comment"]) == ("sitemap", "sitemap (via robots.txt)")
    # Not advertised, but it sits at a common path and carries <news:news> entries.
    news = found[site.url("sitemap-news.xml")]
    assert (news["type"], news["comment"]) == ("sitemap", "news sitemap (at a common path)")
    assert len(found) == 5


def test_probing_reports_only_real_feeds_and_sitemaps(site: Site) -> None:
    site.write("rss.xml", NOT_FOUND_PAGE)  # a soft 404: 200, served as XML
    site.write("feed/index.html", NOT_FOUND_PAGE)  # /feed answers 200 with an HTML page
    site.write("atom.xml", "")
    site.write("sitemap.xml", "<?xml version='1.0'?><html><body>nej</body></html>")
    site.write("feed.xml", ATOM)
    site.write("robots.txt", "User-agent: *\nDisallow:\n\nSitemap: /borttagen.xml\n")

    found = entries(discover_output(site.url("/")))

    assert found[site.url("feed.xml")]["comment"] == '"Nordposten – Kultur" (at a common path)'
    assert set(found) == {site.url(p) for p in ("rss/utrikes.xml", "rss/inrikes.latin1.xml",
                                                "atom/senaste.xml", "feed.xml", "sitemap-news.xml")}
    probed = {path for _, path, _ in site.requests}
    assert {"/rss", "/rss.xml", "/feed", "/atom.xml", "/sitemap.xml", "/borttagen.xml"} <= probed


def test_output_is_a_valid_sources_section(site: Site, tmp_path: Path) -> None:
    output = discover_output(site.url("/"))
    assert output.startswith(f"# found 3 feeds and 2 sitemaps on {site.url('/')}\n")

    config = load_config(write_config(tmp_path, yaml.safe_load(output)))

    names = [s.name for s in config.sources]
    assert len(set(names)) == len(names) == 5
    assert all(NAME.match(name) for name in names)
    assert {s.type for s in config.sources} == {"feed", "sitemap"}


def test_names_come_from_the_host_and_the_path_or_title() -> None:
    found = [
        Discovered("feed", "https://www.svt.se/nyheter/utrikes/rss.xml", "Utrikes | SVT", "link"),
        Discovered("feed", "https://www.svt.se/rss.xml", "SVT – Göteborg & Väst", "link"),
        Discovered("feed", "https://www.svt.se/feed/", "", "probe"),
        Discovered("feed", "https://rss.svt.se/Nyheter/Utrikes/rss.xml?a=1", "", "robots"),
        Discovered("sitemap", "https://www.svt.se/sitemap-news.xml", "", "robots", news=True),
        Discovered("sitemap", "https://www.svt.se/sitemaps/nyheter.xml.gz", "", "robots"),
    ]

    assert source_names(found, "https://www.svt.se/") == [
        "svt-nyheter-utrikes", "svt-goteborg-vast", "svt-feed", "svt-nyheter-utrikes-2",
        "svt-sitemap-news", "svt-sitemaps-nyheter",
    ]
    assert source_names(found[:1], "https://www.bbc.co.uk/") == ["bbc-nyheter-utrikes"]


def test_awkward_titles_and_urls_stay_valid_yaml(tmp_path: Path) -> None:
    found = [
        Discovered("feed", "https://www.dn.se/rss/#senaste", 'Världen: "DN" # 1\nny rad', "link"),
        Discovered("feed", "https://www.dn.se/a: b/rss", "", "link"),
    ]

    output = format_sources(found, "https://www.dn.se/")

    sources = yaml.safe_load(output)["sources"]
    assert [s["url"] for s in sources] == [d.url for d in found]
    assert '# "Världen: "DN" # 1 ny rad" (via <link rel=alternate>)' in output
    config = load_config(write_config(tmp_path, {"sources": sources}))
    assert [s.name for s in config.sources] == ["dn-varlden-dn-1-ny-rad", "dn-a-b"]


def test_nothing_found_is_still_a_sources_section() -> None:
    output = format_sources([], "https://example.se/")

    assert output.startswith("# found no feeds or sitemaps on https://example.se/\n")
    assert yaml.safe_load(output) == {"sources": []}
