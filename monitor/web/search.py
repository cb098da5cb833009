"""The live query tester, /search: how many stored articles of the last N days a query matches,
per day (an inline SVG bar chart), the hits in context, the query's error with a caret as the
CLI shows it, and the query as a ready-to-paste `watchlists:` entry.

The page is whole without JavaScript (a GET form); /static/tester.js fetches /search.json
while the user types and redraws the same parts. The answer comes from monitor.search, as
`monitor search` gives it: the full-text index finds candidates, the matcher decides. Days are
whole local days (today and the N-1 before it) in the watchlists' time zone, counted by when
the monitor first saw an article."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import yaml
from aiohttp import web

from monitor.alerts.render import emphasise, local_time
from monitor.errors import QueryError, StoreError
from monitor.http import CONTEXT
from monitor.models import DEFAULT_TIMEZONE, Config, StoredArticle
from monitor.rules import Hit
from monitor.search import search
from monitor.store import Store
from monitor.web.charts import bar_chart
from monitor.web.pages import DEFAULT_DAYS, MAX_DAYS, on_reader, page, render, web_link

SHOWN_HITS = 50  # hits listed; the count and the chart take every match
DEFAULT_NAME = "ny-bevakning"
MAX_QUERY = 2_000  # characters; a watchlist query is a line or two

# The chart's size (monitor.web.charts.bar_chart); static/tester.js draws the same from
# /search.json.
CHART_WIDTH, CHART_HEIGHT = 560, 80


# --- what a query finds ----------------------------------------------------------------------


@dataclass
class Tried:
    """A query tried over the last `days` days."""

    query: str
    days: int
    timezone: str
    count: int = 0
    per_day: list[tuple[str, int]] = field(default_factory=list)  # (YYYY-MM-DD, matches)
    hits: list[dict[str, str]] = field(default_factory=list)  # the newest SHOWN_HITS
    error: QueryError | None = None


def try_query(store: Store, query: str, days: int, timezone: str,
              now: datetime | None = None, shown: int = SHOWN_HITS) -> Tried:
    zone = ZoneInfo(timezone)
    now = (now or datetime.now(UTC)).astimezone(zone)
    first_day = now.date() - timedelta(days=days - 1)
    start = datetime.combine(first_day, time(), zone)
    counts = {(first_day + timedelta(days=i)).isoformat(): 0 for i in range(days)}
    tried = Tried(query, days, timezone)
    if query.strip():
        try:
            for article, hit in search(store, query, now - start):
                day = _local_day(article.first_seen, zone)
                if day in counts:
                    counts[day] += 1
                tried.count += 1
                if len(tried.hits) < shown:
                    tried.hits.append(hit_view(article, hit, timezone))
        except QueryError as error:
            tried.error = error
    tried.per_day = list(counts.items())
    return tried


def _local_day(iso: str, zone: ZoneInfo) -> str:
    when = datetime.fromisoformat(iso.replace("Z", "+00:00"))
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.astimezone(zone).date().isoformat()


def hit_view(article: StoredArticle, hit: Hit, timezone: str) -> dict[str, str]:
    """A hit as the page and /search.json show it; snippet_html is Markup, escaped here."""
    link = article.link or article.url
    return {
        "title": article.title or link,
        # Only web addresses become links: never a javascript: or data: URL from a feed.
        "url": web_link(link) or "",
        "source": article.source,
        "time": local_time(article.published or article.first_seen, timezone),
        "snippet_html": emphasise(hit.snippet, hit.words, tag="mark"),
    }


def caret_line(error: QueryError) -> str:
    return " " * (error.column - 1) + "^"


def query_line(query: str) -> str:
    """The query on one line, one character for each: the caret's column stays right."""
    return "".join(" " if char.isspace() else char for char in query)


def watchlist_yaml(name: str, query: str, notify: list[str]) -> str:
    """A `watchlists:` entry to paste into config.yaml; YAML quotes the query as it needs."""
    entry: dict[str, Any] = {"name": name, "query": query}
    if notify:
        entry["notify"] = notify
    return yaml.safe_dump({"watchlists": [entry]}, allow_unicode=True, sort_keys=False,
                          width=math.inf)


def page_timezone(config: Config) -> str:
    """The watchlists' time zone when they share one (the usual case), else the default."""
    zones = {w.timezone for w in config.watchlists}
    return zones.pop() if len(zones) == 1 else DEFAULT_TIMEZONE


def notifiers_in_use(config: Config) -> list[str]:
    """The notifiers the watchlists already send to, for the copied entry's `notify:`."""
    return list(dict.fromkeys(name for w in config.watchlists for name in w.notify))


# --- handlers -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Asked:
    query: str
    days: int
    name: str


def _asked(request: web.Request) -> Asked:
    query = request.query.get("q", "")
    if len(query) > MAX_QUERY:
        raise web.HTTPBadRequest(text=f"q: at most {MAX_QUERY} characters\n")
    raw_days = request.query.get("days", "").strip() or str(DEFAULT_DAYS)
    try:
        days = int(raw_days)
    except ValueError:
        raise web.HTTPBadRequest(text=f"days: a whole number of days, got {raw_days!r}\n") from None
    if not 1 <= days <= MAX_DAYS:
        raise web.HTTPBadRequest(text=f"days: from 1 to {MAX_DAYS}, got {days}\n")
    name = request.query.get("name", "").strip() or DEFAULT_NAME
    return Asked(query, days, name)


async def _tried(request: web.Request, asked: Asked) -> Tried:
    try:
        return await on_reader(request.app[CONTEXT].config, _try, asked)
    except StoreError as exc:
        raise web.HTTPServiceUnavailable(text=f"{exc}\n") from None


def _try(store: Store, config: Config, asked: Asked) -> Tried:
    return try_query(store, asked.query, asked.days, page_timezone(config))


async def search_page(request: web.Request) -> web.Response:
    asked = _asked(request)
    tried = await _tried(request, asked)
    config = request.app[CONTEXT].config
    body = render(
        "search.html", active="search", asked=asked, tried=tried, max_days=MAX_DAYS,
        chart=bar_chart(tried.per_day, CHART_WIDTH, CHART_HEIGHT),
        default_name=DEFAULT_NAME, shown_max=SHOWN_HITS,
        caret=caret_line(tried.error) if tried.error else "",
        query_line=query_line(asked.query),
        copied=watchlist_yaml(asked.name, asked.query, notifiers_in_use(config)),
    )
    return page(body)


async def search_json(request: web.Request) -> web.Response:
    asked = _asked(request)
    tried = await _tried(request, asked)
    config = request.app[CONTEXT].config
    error = None
    if tried.error is not None:
        error = {"message": tried.error.message, "column": tried.error.column,
                 "caret_line": caret_line(tried.error), "query_line": query_line(asked.query)}
    return web.json_response({
        "query": asked.query,
        "days": asked.days,
        "count": tried.count,
        "per_day": [[day, n] for day, n in tried.per_day],
        "hits": tried.hits,
        "error": error,
        "watchlist_yaml": watchlist_yaml(asked.name, asked.query, notifiers_in_use(config)),
    })
