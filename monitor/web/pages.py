"""The read-only pages: what each one shows, gathered from the store on a read-only connection of
its own in a worker thread, and rendered there with the autoescaping templates.

Handlers run on the loop: they read the query string and (for /sources) the scheduler's status,
which lives on the loop, then hand the rest to a worker thread."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, tzinfo
from importlib import resources
from typing import Any
from urllib.parse import urlencode, urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from aiohttp import web
from jinja2 import Environment, PackageLoader
from markupsafe import Markup

from monitor.alerts.payload import read_body
from monitor.alerts.render import emphasise, local_time
from monitor.http import CONTEXT
from monitor.models import DEFAULT_TIMEZONE, Config, blocked_by_robots, source_state
from monitor.normalize import one_line
from monitor.redact import config_secrets, redact
from monitor.store import BUNDLED, FAILED, HELD, PENDING, Store
from monitor.web.charts import bar_chart, sparkline

# Pages load their style sheet and script from here, nothing from elsewhere; charts are SVG in
# the page (allowed by default-src with no inline style or script).
PAGE_CSP = ("default-src 'none'; style-src 'self'; img-src 'self' data:; script-src 'self'; "
            "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'")
PER_PAGE = 50
DEFAULT_DAYS = 7
MAX_DAYS = 366
CHART_DAYS = 14
ERROR_SHOWN = 300  # characters of a last error on a page
STATIC_NAME = re.compile(r"^[a-z0-9_-]+\.(css|js)$")
STATIC_TYPES = {"css": "text/css", "js": "text/javascript"}

ENVIRONMENT = Environment(
    loader=PackageLoader("monitor.web", "templates"),
    autoescape=True,  # every page is HTML: everything from the web comes out as text
    trim_blocks=True,
    lstrip_blocks=True,
)


def web_link(url: str | None) -> str | None:
    """The URL when a browser may follow it as a link (http or https), else None: a
    `javascript:` or `data:` URL from a feed is shown as text, never made a link."""
    if not url:
        return None
    try:
        scheme = urlsplit(url.strip()).scheme.lower()
    except ValueError:
        return None
    return url if scheme in ("http", "https") else None


def mark(text: str | None, words: list[str] | tuple[str, ...]) -> Markup:
    return emphasise(text or "", words, tag="mark")


ENVIRONMENT.filters.update(localtime=local_time, emphasise=emphasise, mark=mark)
ENVIRONMENT.globals.update(web_link=web_link)


def render(template: str, **context: Any) -> str:
    return ENVIRONMENT.get_template(template).render(context)


def page(html: str, status: int = 200) -> web.Response:
    return web.Response(text=html, status=status, content_type="text/html", charset="utf-8",
                        headers={"Content-Security-Policy": PAGE_CSP})


async def on_reader(config: Config, build: Callable[..., str | None], *args: object) -> str | None:
    """`build(store, config, *args)` in a worker thread, on a read-only connection of its own."""
    def run() -> str | None:
        store = Store.open_reader(config.database)
        try:
            return build(store, config, *args)
        finally:
            store.close()
    return await asyncio.to_thread(run)


def _utc_since(days: int) -> str:
    return (datetime.now(UTC) - timedelta(days=days)).isoformat(timespec="seconds")


def _timezone(config: Config, watchlist: str | None) -> str:
    found = config.watchlist(watchlist or "")
    return found.timezone if found else DEFAULT_TIMEZONE


# --- / : the stories that alerted ------------------------------------------------------------


@dataclass(frozen=True)
class StoryFilters:
    watchlist: str | None = None
    source: str | None = None
    days: int = DEFAULT_DAYS
    page: int = 1

    @classmethod
    def of(cls, query: Mapping[str, str]) -> StoryFilters:
        return cls(watchlist=query.get("watchlist") or None, source=query.get("source") or None,
                   days=_number(query, "days", DEFAULT_DAYS, MAX_DAYS),
                   page=_number(query, "page", 1, 1_000_000))

    def link(self, page: int) -> str:
        """The address of another page of the same list."""
        params = {"watchlist": self.watchlist, "source": self.source,
                  "days": self.days if self.days != DEFAULT_DAYS else None,
                  "page": page if page > 1 else None}
        query = urlencode({k: v for k, v in params.items() if v is not None})
        return "/" + (f"?{query}" if query else "")


def _number(query: Mapping[str, str], name: str, default: int, largest: int) -> int:
    value = query.get(name) or ""
    if not value:
        return default
    if not value.isdigit() or not 1 <= int(value) <= largest:
        raise web.HTTPBadRequest(text=f"{name}: expected a whole number from 1 to {largest}\n")
    return int(value)


async def stories(request: web.Request) -> web.Response:
    config = request.app[CONTEXT].config
    filters = StoryFilters.of(request.query)
    return page(await on_reader(config, stories_page, filters))


def stories_page(store: Store, config: Config, filters: StoryFilters) -> str:
    names = [filters.watchlist] if filters.watchlist else [w.name for w in config.watchlists]
    rows = store.alerted_stories(names, _utc_since(filters.days), filters.source,
                                 PER_PAGE + 1, (filters.page - 1) * PER_PAGE)
    more, rows = len(rows) > PER_PAGE, rows[:PER_PAGE]
    alerts = store.story_alerts([r["story_id"] for r in rows if r["story_id"] is not None],
                                [r["article_id"] for r in rows if r["story_id"] is None])
    by_story: dict[str, list[dict]] = {}
    for alert in alerts:
        if alert["watchlist"] in names:
            key = f"s{alert['story_id']}" if alert["story_id"] is not None else f"a{alert['article_id']}"
            by_story.setdefault(key, []).append(alert)
    articles = store.articles_by_id(r["article_id"] for r in rows)
    secrets = list(config_secrets(config))
    entries = [story_entry(store, config, row, articles.get(row["article_id"]),
                           by_story.get(row["story_key"], []), secrets) for row in rows]
    return render(
        "stories.html", active="stories", stories=entries, filters=filters,
        watchlists=[w.name for w in config.watchlists], sources=[s.name for s in config.sources],
        previous=filters.link(filters.page - 1) if filters.page > 1 else None,
        next=filters.link(filters.page + 1) if more else None)


def story_entry(store: Store, config: Config, row: dict, article: dict | None,
                alerts: list[dict], secrets: list[str]) -> dict:
    first = alerts[0] if alerts else {"body": "{}"}
    doc = read_body(first["body"])
    known = doc.get("article") or {}
    article = article or {"id": row["article_id"], "title": known.get("title") or "",
                          "link": known.get("url"), "url": known.get("url"),
                          "source": known.get("source") or "", "published": known.get("published")}
    copies = [url for url in store.story_urls(row["story_id"])
              if url != article["url"]] if row["story_id"] is not None else []
    return {
        "article": article,
        "title": " ".join((article["title"] or "").split()) or article["link"] or "",
        "link": article["link"] or article["url"],
        "watchlists": sorted({a["watchlist"] for a in alerts}) or [row["watchlist"]],
        "time": local_time(row["first_alert"], _timezone(config, row["watchlist"])),
        "published": (local_time(article["published"], _timezone(config, row["watchlist"]))
                      if article.get("published") else None),
        "snippet": doc.get("snippet") or known.get("summary") or "",
        "words": list(doc.get("matches") or []),
        "copies": copies,
        "deliveries": [delivery(alert, secrets) for alert in alerts],
    }


def delivery(alert: dict, secrets: list[str]) -> dict:
    """One alert's delivery state in words: sent, pending (with the last error of a failed
    attempt), failed with the last error, held for a digest, or the digest that carried it."""
    status, detail = alert["status"], ""
    if status in (FAILED, PENDING) and alert["last_error"]:
        detail = redact(one_line(alert["last_error"], ERROR_SHOWN), secrets)
    elif status == BUNDLED:
        detail = f"in a digest: {alert['bundle_status'] or 'gone'}"
    elif status == HELD:
        detail = "held back for a digest or the hour's catch-up"
    return {"watchlist": alert["watchlist"], "notifier": alert["notifier"], "status": status,
            "detail": detail}


# --- /articles/ID ----------------------------------------------------------------------------


async def article(request: web.Request) -> web.Response:
    config = request.app[CONTEXT].config
    text = request.match_info["id"]
    if not text.isdigit() or len(text) > 18:
        raise web.HTTPNotFound(text="no such article\n")
    html = await on_reader(config, article_page, int(text))
    if html is None:
        raise web.HTTPNotFound(text=f"no article {text}\n")
    return page(html)


def article_page(store: Store, config: Config, article_id: int) -> str | None:
    found = store.article_page(article_id)
    if found is None:
        return None
    matches = store.article_matches(article_id)
    words = sorted({w for m in matches for w in m["words"]}, key=str.lower)
    story = store.story_articles(found["story_id"]) if found["story_id"] is not None else []
    timezone = _timezone(config, matches[0]["watchlist"] if matches else None)
    return render(
        "article.html", active="stories", article=found, matches=matches, words=words, timezone=timezone,
        paragraphs=[p for p in (found["text"] or "").split("\n") if p.strip()],
        copies=[a for a in story if a["id"] != article_id],
        revisions=store.article_revisions(article_id))


# --- /sources --------------------------------------------------------------------------------


async def sources(request: web.Request) -> web.Response:
    context = request.app[CONTEXT]
    # The scheduler's state lives on the loop: read here, before the worker thread.
    return page(await on_reader(context.config, sources_page, _schedule(context.health)))


def _schedule(health: Callable[[], object]) -> Mapping[str, Mapping]:
    """Each source's schedule from the daemon's status ({} without a scheduler, or when the
    status cannot be read: the page then shows no next poll rather than failing)."""
    try:
        status = health()
    except Exception:
        return {}
    return (status.get("sources") or {}) if isinstance(status, Mapping) else {}


def sources_page(store: Store, config: Config, schedule: Mapping[str, Mapping]) -> str:
    health = store.source_health()
    days = _days(CHART_DAYS, UTC)
    since = days[0].isoformat() + "T00:00:00+00:00"
    rows = []
    for source in config.sources:
        row = health.get(source.name) or {}
        per_day = store.articles_per_day(source.name, since)
        counts = [(d.isoformat(), per_day.get(d.isoformat(), 0)) for d in days]
        next_due = (schedule.get(source.name) or {}).get("next_due")
        last_error = row.get("last_error")
        rows.append({
            "source": source, "state": source_state(row), "row": row,
            "last_error": redact(one_line(last_error, ERROR_SHOWN), config_secrets(config))
            if last_error else "",
            "chart": sparkline(counts), "total": sum(c for _, c in counts),
            "next_due": local_time(next_due, DEFAULT_TIMEZONE) if next_due else None,
            "robots": ("blocked by robots.txt" if blocked_by_robots(last_error)
                       else "allowed" if row.get("last_success") else "unknown"),
            "last_success": local_time(row["last_success"], DEFAULT_TIMEZONE)
            if row.get("last_success") else "never",
        })
    return render("sources.html", active="sources", sources=rows, days=CHART_DAYS)


def _days(count: int, zone: tzinfo) -> list[date]:
    today = datetime.now(zone).date()
    return [today - timedelta(days=n) for n in range(count - 1, -1, -1)]


# --- /watchlists -----------------------------------------------------------------------------


async def watchlists(request: web.Request) -> web.Response:
    config = request.app[CONTEXT].config
    return page(await on_reader(config, watchlists_page))


def watchlists_page(store: Store, config: Config) -> str:
    rows = []
    for watchlist in config.watchlists:
        try:
            zone = ZoneInfo(watchlist.timezone)
        except ZoneInfoNotFoundError:
            zone = ZoneInfo(DEFAULT_TIMEZONE)
        days = _days(CHART_DAYS, zone)
        since = datetime.combine(days[0], datetime.min.time(), zone).astimezone(UTC)
        per_day: dict[str, int] = {}
        for created, _story in store.watchlist_alert_times(
                watchlist.name, since.isoformat(timespec="seconds")):
            day = _local_day(created, zone)
            per_day[day] = per_day.get(day, 0) + 1
        counts = [(d.isoformat(), per_day.get(d.isoformat(), 0)) for d in days]
        last = store.last_alert(watchlist.name)
        rows.append({
            "watchlist": watchlist, "chart": bar_chart(counts), "total": sum(c for _, c in counts),
            "last": last,
            "last_time": local_time(last["created"], watchlist.timezone) if last else None,
        })
    return render("watchlists.html", active="watchlists", watchlists=rows, days=CHART_DAYS)


def _local_day(value: str, zone: ZoneInfo) -> str:
    when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.astimezone(zone).date().isoformat()


# --- /static/NAME ----------------------------------------------------------------------------


async def static(request: web.Request) -> web.Response:
    """The pages' own style sheet and scripts, from monitor/web/static/."""
    name = request.match_info["name"]
    if not STATIC_NAME.match(name):
        raise web.HTTPNotFound()
    file = resources.files("monitor.web") / "static" / name
    if not file.is_file():
        raise web.HTTPNotFound()
    return web.Response(body=file.read_bytes(), charset="utf-8",
                        content_type=STATIC_TYPES[name.rsplit(".", 1)[1]])
