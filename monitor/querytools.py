"""Tools for trying a query before trusting it: match it against files, URLs or text, and
backtest it over the stored articles. Nothing here sends an alert."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from monitor.errors import MonitorError
from monitor.models import Config, StoredArticle
from monitor.rules import Document, Hit, Matcher, parse_query

if TYPE_CHECKING:  # extraction, the pipeline and the store load on use: `alerts` needs parse_since only
    from monitor.store import Store

QUERY = "query"


@dataclass(frozen=True)
class Outcome:
    name: str
    hit: Hit | None
    error: str | None = None


def query_for(config: Config, name_or_query: str) -> str:
    """A watchlist's query when the argument names one, else the argument itself."""
    watchlist = next((w for w in config.watchlists if w.name == name_or_query), None)
    return watchlist.query if watchlist else name_or_query


def match_inputs(query: str, inputs: list[str], stdin_text: str | None, config: Config) -> list[Outcome]:
    parse_query(query)  # a caret error that names no watchlist
    matcher = Matcher({QUERY: query})
    documents: list[tuple[str, Document | None, str | None]] = []
    urls = [i for i in inputs if i.startswith(("http://", "https://"))]
    fetched = _fetch(urls, config) if urls else {}
    for item in inputs or ["-"]:
        if item == "-":
            documents.append(("<stdin>", _from_text(stdin_text or "", ""), None))
        elif item in fetched:
            documents.append((item, *fetched[item]))
        else:
            documents.append((item, *_from_file(Path(item))))
    return [
        Outcome(name, matcher.match(doc).get(QUERY) if doc else None, error)
        for name, doc, error in documents
    ]


def _from_text(text: str, url: str) -> Document:
    """HTML is read as the daemon reads an article page; anything else as plain text."""
    if text.lstrip()[:1] == "<":
        from monitor.extract import extract_article

        article = extract_article(text, url or "file:///")
        if article is not None:
            return Document(title=article.title, text=article.text, url=url, lang=article.lang or "")
    return Document(text=text, url=url)


def _from_file(path: Path) -> tuple[Document | None, str | None]:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        return None, f"cannot read: {exc.strerror or exc}"
    return _from_text(raw.decode("utf-8", errors="replace"), path.resolve().as_uri()), None


def _fetch(urls: list[str], config: Config) -> dict[str, tuple[Document | None, str | None]]:
    """Fetch with the daemon's spider and settings, so the text is what the daemon would see."""
    import asyncio

    from monitor.crawl import Crawler
    from spiders.article import PageTarget

    async def run() -> list:
        crawler = Crawler(config.crawl, config.sources)
        try:
            return await crawler.fetch_pages([PageTarget(i, u) for i, u in enumerate(urls)])
        finally:
            await crawler.close()

    out: dict[str, tuple[Document | None, str | None]] = {u: (None, "no response") for u in urls}
    for page in asyncio.run(run()):
        url = urls[page.article_id]
        if page.error:
            out[url] = (None, page.error)
        else:
            out[url] = (Document(title=page.title or "", text=page.text or "", url=url,
                                 lang=page.lang or ""), None)
    return out


def parse_since(value: str) -> timedelta:
    from monitor.config import parse_duration

    try:
        return timedelta(seconds=parse_duration(value))
    except ValueError as exc:
        raise MonitorError(f"--since: {exc}") from None


def backtest(store: Store, query: str, start: datetime) -> Iterator[tuple[StoredArticle, Hit]]:
    """The stored articles first seen from `start` on that `query` matches. The caller computes
    `start` once, so that what it prints is the window searched."""
    from monitor.pipeline import document

    matcher = Matcher({QUERY: query})
    for article in store.articles_since(start.astimezone(UTC).isoformat(timespec="seconds")):
        hit = matcher.match(document(article)).get(QUERY)
        if hit is not None:
            yield article, hit
