"""A local news outlet for bench/ingest.py --outlet: N article pages of realistic weight on a
few host names (pinned to 127.0.0.1 with crawl.hosts), one RSS feed per host listing them.

Each page is 60–150 KB, as a Swedish news page is before its images: header and footer menus,
a cookie banner, inline <script> (analytics, a hydration state blob) and JSON-LD, share
buttons, ads markup, "related" and "most read" lists, reader comments, around an article body
of 300–1,500 words written by bench/match.py's ArticleWriter (Swedish words, names and places;
about one article in twelve is about Kazakhstan or the CSTO). Everything comes from a seeded
RNG, so every run serves the same pages. The server notes when the first and the last article
page was asked for. Not a test."""

from __future__ import annotations

import json
import random
import re
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from functools import cached_property
from html import escape
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import match

# Outlets whose page chrome is imitated (names only; every page is served from 127.0.0.1).
HOSTS = ("svt", "dn", "aftonbladet", "expressen", "svd", "gp", "sydsvenskan", "di")
SECTIONS = ("nyheter", "inrikes", "utrikes", "ekonomi", "sport", "kultur", "debatt", "ledare",
            "vetenskap", "lokalt", "noje", "familj", "motor", "resor", "bostad", "mat")
PAGE_BYTES = (60_000, 150_000)
BODY_WORDS = (300, 1_500)
ASCII = str.maketrans("åäöéü", "aaoeu")  # slugs as Swedish outlets write them


@dataclass(frozen=True)
class Story:
    host: str
    number: int
    section: str
    title: str
    lede: str
    paragraphs: tuple[str, ...]
    published: datetime

    @cached_property
    def path(self) -> str:
        words = (re.sub(r"[^a-z0-9]", "", w.lower().translate(ASCII)) for w in self.title.split()[:5])
        return f"/{self.section}/{'-'.join(w for w in words if w)}-{self.number}"


class LongArticleWriter(match.ArticleWriter):
    """bench/match.py's articles, with bodies of a chosen number of words."""

    def story(self, host: str, number: int, words: int, now: datetime) -> Story:
        rng = self.rng
        topics = rng.sample(sorted(self.vocab.topics), rng.choice([1, 1, 2]))
        focus = self._focus_entities()
        title = self._sentence(topics, focus, rng.randint(6, 10), entity_share=0.35)
        lede = " ".join(self._sentence(topics, focus, rng.randint(12, 20)) for _ in range(2))
        paragraphs: list[str] = []
        written = 0
        while written < words:
            sentences = [self._sentence(topics, focus, rng.randint(8, 22)) for _ in range(rng.randint(2, 5))]
            paragraphs.append(" ".join(sentences))
            written += sum(len(s.split()) for s in sentences)
        return Story(host, number, rng.choice(SECTIONS), title.rstrip(".!?:"), lede, tuple(paragraphs),
                     now - timedelta(seconds=number * 7))


@dataclass
class Outlet:
    """Article pages under http://HOST.bench.test:PORT/…, a feed per host at /rss.xml."""

    port: int = 0
    stories: dict[str, list[Story]] = field(default_factory=dict)  # host → stories
    pages: dict[tuple[str, str], bytes] = field(default_factory=dict)  # (host, path) → page
    feeds: dict[str, bytes] = field(default_factory=dict)  # host → feed
    article_requests: int = 0
    first_article: float | None = None  # time.time() of the first article page asked for
    last_article: float | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    @staticmethod
    def domain(host: str) -> str:
        return f"www.{host}.bench.test"

    def hosts_config(self) -> dict[str, str]:
        return {self.domain(host): "127.0.0.1" for host in self.stories}

    def feed_url(self, host: str) -> str:
        return f"http://{self.domain(host)}:{self.port}/rss.xml"

    def page_urls(self) -> list[tuple[str, str]]:
        """(slot, URL) of every article page, the URL on 127.0.0.1 directly (for the bare spider,
        which has no resolver pins: the slot keeps one download slot per host, as in the daemon)."""
        return [(self.domain(host), f"http://127.0.0.1:{self.port}/{host}{path}")
                for host, path in self.pages]

    def page_bodies(self) -> list[bytes]:
        return list(self.pages.values())

    def reset_counts(self) -> None:
        with self.lock:
            self.article_requests, self.first_article, self.last_article = 0, None, None

    def noted(self) -> None:
        now = time.time()
        with self.lock:
            self.article_requests += 1
            if self.first_article is None:
                self.first_article = now
            self.last_article = now

    def build(self, articles: int, hosts: int, seed: int) -> None:
        """Write `articles` pages spread over the first `hosts` outlets, and their feeds."""
        vocab = match.Vocabulary.build(random.Random(seed))
        writer = LongArticleWriter(vocab, random.Random(seed + 1))
        chrome = random.Random(seed + 2)
        now = datetime.now(UTC).replace(microsecond=0)
        names = HOSTS[:hosts] if hosts <= len(HOSTS) else tuple(f"outlet{n}" for n in range(hosts))
        for number in range(articles):
            host = names[number % len(names)]
            story = writer.story(host, number, chrome.randint(*BODY_WORDS), now)
            self.stories.setdefault(host, []).append(story)
            size = chrome.randint(*PAGE_BYTES)
            self.pages[(host, story.path)] = render_page(story, self, chrome, size).encode()
        for host, stories in self.stories.items():
            self.feeds[host] = render_feed(host, stories, self)


# --- Pages --------------------------------------------------------------------------------

SHARE = ("facebook", "x", "linkedin", "mail", "kopiera")
COOKIE_BANNER = (
    '<div id="cookie-banner" class="consent" role="dialog"><h2>Vi använder kakor</h2><p>Vi och '
    "våra partner använder kakor för att anpassa innehåll och annonser, erbjuda sociala funktioner "
    "och analysera trafiken. Du kan när som helst ändra dina val under Inställningar.</p>"
    '<button class="consent__accept">Godkänn alla</button><button class="consent__reject">Endast '
    'nödvändiga</button><a href="/cookies">Hantera inställningar</a></div>'
)
ANALYTICS = (
    "<script>window.dataLayer=window.dataLayer||[];function gtag(){dataLayer.push(arguments)}"
    'gtag("js",new Date());gtag("config","G-%d",{"anonymize_ip":true});'
    "(function(w,d,s){var f=d.getElementsByTagName(s)[0],j=d.createElement(s);j.async=true;"
    'j.src="/static/consent.js";f.parentNode.insertBefore(j,f)})(window,document,"script");</script>'
)
# Shares of the weight left after the page's fixed parts, and the size of one of each item.
RELATED, LATEST, COMMENTS = 0.30, 0.10, 0.20
TEASER_CHARS, COMMENT_CHARS = 700, 420


def _menu(rng: random.Random, host: str, count: int, css: str) -> str:
    items = "".join(
        f'<li class="{css}__item"><a class="{css}__link" href="/{rng.choice(SECTIONS)}/{rng.randint(1, 99)}"'
        f' data-track="menu-{host}-{n}">{escape(rng.choice(SECTIONS).title())}</a></li>'
        for n in range(count))
    return f'<nav class="{css}" aria-label="Huvudmeny"><ul class="{css}__list">{items}</ul></nav>'


def _teaser(rng: random.Random, other: Story, css: str) -> str:
    image = f"/bilder/{other.number}"
    return (f'<li class="{css}"><a href="{escape(other.path)}" class="{css}__link" '
            f'data-article-id="{other.number}"><figure class="{css}__figure"><img src="{image}.jpg" '
            f'srcset="{image}-320.jpg 320w, {image}-640.jpg 640w" loading="lazy" alt=""></figure>'
            f'<span class="{css}__section">{escape(other.section.title())}</span>'
            f'<h3 class="{css}__title">{escape(other.title)}</h3>'
            f'<time datetime="{other.published.isoformat()}">{rng.randint(1, 59)} min sedan</time></a></li>')


def _comment(rng: random.Random, words: list[str], n: int) -> str:
    text = " ".join(rng.choice(words) for _ in range(rng.randint(12, 60)))
    return (f'<li class="comment" id="kommentar-{n}"><div class="comment__author">'
            f'Läsare{rng.randint(100, 99999)}</div><time class="comment__time">{rng.randint(1, 23)} tim'
            f'</time><p class="comment__text">{escape(text.capitalize())}.</p><button class="comment__like">'
            f'Gilla ({rng.randint(0, 300)})</button><button class="comment__reply">Svara</button></li>')


def _ad(rng: random.Random, n: int) -> str:
    kind = rng.choice(["panorama", "mobil", "insider", "outsider"])
    return (f'<div class="ad ad--{kind}" id="ad-{n}" data-ad-unit="/2345/nyheter/artikel/{n}" '
            f'data-sizes="[[980,240],[980,300],[320,320]]"><span class="ad__label">Annons</span>'
            f'<div class="ad__slot"></div></div>')


def _state_blob(rng: random.Random, story: Story, others: list[Story], size: int) -> str:
    """A hydration state such as Next.js pages carry: teasers, ids, flags, tracking."""
    entries: list[str] = []
    written = 0
    while written < size:
        other = rng.choice(others)
        entry = json.dumps({"id": f"{other.host}-{other.number}", "title": other.title, "url": other.path,
                            "section": other.section, "published": other.published.isoformat(),
                            "image": {"src": f"/bilder/{other.number}.jpg", "w": 1200, "h": 675},
                            "flags": {"premium": rng.random() < 0.3, "live": False},
                            "tracking": {"cat": other.section, "pos": len(entries), "ab": rng.randint(0, 9)}},
                           ensure_ascii=False)
        entries.append(entry)
        written += len(entry) + 1
    state = {"props": {"pageProps": {"article": {"id": story.number}, "feed": ["FEED"]}}}
    return _script_safe(json.dumps(state).replace('"FEED"', ",".join(entries)))


def _script_safe(text: str) -> str:
    return text.replace("</", "<\\/")


def _head(story: Story, rng: random.Random) -> str:
    json_ld = json.dumps({"@context": "https://schema.org", "@type": "NewsArticle", "headline": story.title,
                          "description": story.lede, "datePublished": story.published.isoformat(),
                          "author": [{"@type": "Person", "name": "Redaktionen"}],
                          "publisher": {"@type": "Organization", "name": story.host.upper()},
                          "mainEntityOfPage": story.path}, ensure_ascii=False)
    title = escape(story.title)
    return (f'<!DOCTYPE html><html lang="sv"><head><meta charset="utf-8"><title>{title} | '
            f'{story.host.upper()}</title><meta name="viewport" content="width=device-width,initial-scale=1">'
            f'<meta property="og:title" content="{title}"><meta property="og:type" content="article">'
            f'<meta name="description" content="{escape(story.lede[:150])}">'
            f'<link rel="canonical" href="{escape(story.path)}">'
            f'<link rel="stylesheet" href="/static/app.{story.number % 97}.css">'
            f'<script type="application/ld+json">{_script_safe(json_ld)}</script>'
            f"{ANALYTICS % rng.randint(10**6, 10**7)}</head>")


def _header(story: Story, rng: random.Random) -> str:
    return (f'<header class="site-header"><a class="logo" href="/">{story.host.upper()}</a>'
            f'{_menu(rng, story.host, 40, "main-menu")}<form class="search" action="/sok">'
            f'<input name="q" placeholder="Sök"></form><a class="login" href="/konto">Logga in</a>'
            f'<a class="subscribe" href="/prenumerera">Prenumerera</a></header>')


def _article(story: Story, rng: random.Random) -> str:
    share = "".join(f'<a class="share__{s}" href="https://{s}.example/share?u={escape(story.path)}">'
                    f"Dela på {s}</a>" for s in SHARE)
    body = "".join(f"<p>{escape(p)}</p>" + (_ad(rng, i) if i % 4 == 3 else "")
                   for i, p in enumerate(story.paragraphs))
    return (f'<main id="main"><article class="article" data-id="{story.number}"><div class="breadcrumbs">'
            f'<a href="/">Start</a> › <a href="/{story.section}">{story.section.title()}</a></div>'
            f'<h1 class="article__title">{escape(story.title)}</h1><div class="article__meta">'
            f'<span class="byline">Av Redaktionen</span> <time datetime="{story.published.isoformat()}">'
            f'Publicerad {story.published:%Y-%m-%d %H:%M}</time></div><div class="share">{share}</div>'
            f'<figure class="article__image"><img src="/bilder/{story.number}.jpg" alt=""><figcaption>'
            f'Foto: TT</figcaption></figure><p class="article__lede">{escape(story.lede)}</p>'
            f'<div class="article__body">{body}</div><div class="share share--bottom">{share}</div>'
            f"</article>")


def _footer(story: Story, rng: random.Random) -> str:
    return (f'<footer class="site-footer">{_menu(rng, story.host, 30, "footer-menu")}<p>Ansvarig '
            f"utgivare: Redaktionen. © {story.published:%Y} {story.host.upper()}. Om kakor · "
            f"Personuppgifter · Kontakt · Tipsa oss · Jobba hos oss · Annonsera</p></footer>")


def _aside(story: Story, rng: random.Random, others: list[Story], weight: int) -> str:
    """Related and latest articles, reader comments and ads, about `weight` characters."""
    words = [w for p in story.paragraphs[:2] for w in p.split()]
    related = "".join(_teaser(rng, rng.choice(others), "teaser")
                      for _ in range(max(4, int(weight * RELATED / TEASER_CHARS))))
    latest = "".join(_teaser(rng, rng.choice(others), "latest")
                     for _ in range(max(4, int(weight * LATEST / TEASER_CHARS))))
    comments = "".join(_comment(rng, words, n) for n in range(max(3, int(weight * COMMENTS / COMMENT_CHARS))))
    ads = "".join(_ad(rng, 100 + n) for n in range(6))
    return (f'<section class="related"><h2>Mer om ämnet</h2><ul>{related}</ul></section>'
            f'<section class="comments"><h2>Kommentarer</h2><ol>{comments}</ol></section></main>'
            f'<aside class="sidebar"><h2>Senaste nytt</h2><ul>{latest}</ul>{ads}</aside>')


def render_page(story: Story, outlet: Outlet, rng: random.Random, size: int) -> str:
    """An article page of about `size` characters; the hydration state fills what the rest leaves."""
    others = [s for stories in outlet.stories.values() for s in stories[-60:]] or [story]
    fixed = f"{_head(story, rng)}<body>{COOKIE_BANNER}{_header(story, rng)}{_article(story, rng)}"
    footer = _footer(story, rng)
    page = fixed + _aside(story, rng, others, max(size - len(fixed) - len(footer), 4_000)) + footer
    state = _state_blob(rng, story, others, max(size - len(page) - 200, 2_000))
    return (f'{page}<script id="__NEXT_DATA__" type="application/json">{state}</script>'
            f'<script src="/static/app.{story.number % 97}.js" defer></script></body></html>')


def render_feed(host: str, stories: list[Story], outlet: Outlet) -> bytes:
    base = f"http://{outlet.domain(host)}:{outlet.port}"
    items = "".join(f"<item><title>{escape(s.title)}</title><link>{base}{escape(s.path)}</link>"
                    f"<guid>{host}-{s.number}</guid>"
                    f"<pubDate>{format_datetime(s.published, usegmt=True)}</pubDate>"
                    f"<description>{escape(s.lede)}</description></item>" for s in stories)
    feed = (f'<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>{host.upper()}'
            f"</title><link>{base}/</link><description>Senaste nytt</description>{items}</channel></rss>")
    return feed.encode()


# --- Server -------------------------------------------------------------------------------


def _handler(outlet: Outlet) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            host = (self.headers.get("Host") or "").split(":")[0]
            name = host.removeprefix("www.").split(".")[0]
            path = self.path.split("?")[0]
            if path == "/robots.txt":
                return self._send(200, b"User-agent: *\nAllow: /\n", "text/plain")
            if path == "/rss.xml" and name in outlet.feeds:
                return self._send(200, outlet.feeds[name], "application/rss+xml")
            if host == "127.0.0.1":  # the bare spider: /HOST/section/slug
                name, _, rest = path.lstrip("/").partition("/")
                path = "/" + rest
            page = outlet.pages.get((name, path))
            if page is None:
                return self._send(404, b"not found", "text/plain")
            outlet.noted()
            return self._send(200, page, "text/html; charset=utf-8")

        def _send(self, status: int, body: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    return Handler


@contextmanager
def serve(articles: int, hosts: int, seed: int) -> Iterator[Outlet]:
    outlet = Outlet()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(outlet))
    server.daemon_threads = True
    outlet.port = server.server_address[1]
    outlet.build(articles, hosts, seed)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield outlet
    finally:
        server.shutdown()
        server.server_close()
