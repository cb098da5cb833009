"""The daemon's own HTTP listener (`http: {listen: ...}`), on the daemon's asyncio loop:
/healthz, /metrics, the analyst's pages (monitor/web: /, /articles/ID, /search and /search.json, /sources,
/watchlists, /static/NAME) and, when monitor/export.py provides it, /feeds/WATCHLIST.atom. `monitor web`
serves the same app without the daemon.

Read-only: only GET (and HEAD) routes, nothing changes state over HTTP. With http.auth.token
set, every request needs `Authorization: Bearer TOKEN`. Blocking work (SQLite) runs in worker
threads on connections of its own; the daemon's store connection stays on the loop's thread.

Adding pages: write `def add_routes(app: web.Application) -> None` in your module (handlers
reach the shared state through `request.app[CONTEXT]`) and list it in `route_modules()`.
Every response gets the security headers below; a page that needs a looser
Content-Security-Policy (HTML with styles) sets its own header, which is kept."""

from __future__ import annotations

import asyncio
import base64
import hmac
import importlib.util
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

from aiohttp import web

from monitor.metrics import CONTENT_TYPE, Health, Metrics, SchedulerStatus
from monitor.models import Config
from monitor.store import Store, write_test

logger = logging.getLogger(__name__)
# /healthz's write test is cached this long: a probe every second costs one test per interval.
WRITE_TEST_TTL = 2.0
# How long the write test waits for the write lock held by someone else. The daemon's own
# transactions are short; one held for longer than this is worth a 503.
WRITE_TEST_TIMEOUT = 1.0
SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "default-src 'none'; frame-ancestors 'none'",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
}

RouteModule = Callable[[web.Application], None]


class WriteCheck:
    """The database's write test, run in a worker thread and cached for WRITE_TEST_TTL seconds;
    concurrent probes share one test."""

    def __init__(self, path: Path, ttl: float = WRITE_TEST_TTL,
                 timeout: float = WRITE_TEST_TIMEOUT) -> None:
        self.path, self.ttl, self.timeout = path, ttl, timeout
        self._lock = asyncio.Lock()
        self._checked_at = float("-inf")
        self._problem: str | None = None

    async def problem(self) -> str | None:
        async with self._lock:
            if time.monotonic() - self._checked_at >= self.ttl:
                self._problem = await asyncio.to_thread(write_test, self.path, self.timeout)
                self._checked_at = time.monotonic()
            return self._problem


@dataclass
class HttpContext:
    """What the handlers share; `config` follows reloads (HttpHandle.configure)."""

    config: Config
    health: Health
    metrics: Metrics
    write_check: WriteCheck
    scrape_lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    def status(self) -> SchedulerStatus:
        """The scheduler's status, taken on the loop (the daemon's state lives there)."""
        try:
            return SchedulerStatus.of(self.health())
        except Exception as exc:  # a fault in the status must show as unhealthy, not as a 500
            logger.exception("the scheduler's status could not be read")
            return SchedulerStatus(running=False, reason=f"status unavailable: {exc!r}")


CONTEXT = web.AppKey("context", HttpContext)


@dataclass
class HttpHandle:
    runner: web.AppRunner
    context: HttpContext
    host: str
    port: int  # the bound port (also when the config asked for port 0)

    def configure(self, config: Config) -> None:
        """A reloaded configuration: its token and watchlists apply to the next request. The
        listening address keeps until a restart."""
        self.context.config = config

    async def close(self) -> None:
        await self.runner.cleanup()


async def start_http(config: Config, health: Health, metrics: Metrics) -> HttpHandle:
    """Serve config.http on the running loop until `await handle.close()`."""
    settings = config.http
    if settings is None:
        raise ValueError("start_http needs config.http")
    context = HttpContext(config, health, metrics, WriteCheck(config.database))
    # No access log: a health probe every few seconds would drown the daemon's own lines.
    runner = web.AppRunner(build_app(context), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, settings.host, settings.port)
    try:
        await site.start()
    except OSError:
        await runner.cleanup()
        raise
    port = runner.addresses[0][1]
    logger.info("http: listening on %s:%d (/healthz, /metrics)", settings.host, port)
    return HttpHandle(runner, context, settings.host, port)


def build_app(context: HttpContext) -> web.Application:
    app = web.Application(middlewares=[bearer_token])
    app[CONTEXT] = context
    app.on_response_prepare.append(_security_headers)
    for add_routes in route_modules():
        add_routes(app)
    return app


def route_modules() -> list[RouteModule]:
    """Every module that adds routes: the one place to register more (issue 15's pages)."""
    from monitor.web import add_page_routes

    modules: list[RouteModule] = [add_health_routes, add_page_routes]
    if _provides("monitor.export", "atom_feed"):
        modules.append(add_feed_routes)
    return modules


def _provides(module: str, name: str) -> bool:
    if importlib.util.find_spec(module) is None:
        return False
    return hasattr(importlib.import_module(module), name)


# --- access -------------------------------------------------------------------------------


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def bearer_token(request: web.Request, handler: Handler) -> web.StreamResponse:
    token = request.app[CONTEXT].config.http.token
    if token is not None and not authorized(request.headers.get("Authorization", ""), token):
        # Basic first: a browser then asks for a user name and password (the token; any name).
        raise web.HTTPUnauthorized(
            text="401: Authorization: Bearer TOKEN (or Basic with the token as password) required\n",
            headers={"WWW-Authenticate": 'Basic realm="monitor", charset="UTF-8"'})
    return await handler(request)


def authorized(header: str, token: str) -> bool:
    """`Bearer TOKEN` for scripts and scrapers, or `Basic` with the token as the password for a
    browser, which cannot send a bearer token. Compared in constant time: the answer must not
    tell how much of a guess was right."""
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "basic":
        try:
            password = base64.b64decode(value.strip(), validate=True).decode("utf-8").partition(":")[2]
        except (ValueError, UnicodeDecodeError):
            return False
        return hmac.compare_digest(password.encode(), token.encode())
    return hmac.compare_digest(header.encode(), f"Bearer {token}".encode())


async def _security_headers(request: web.Request, response: web.StreamResponse) -> None:
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)


# --- /healthz and /metrics ----------------------------------------------------------------


def add_health_routes(app: web.Application) -> None:
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", metrics)


async def healthz(request: web.Request) -> web.Response:
    """200 "ok" when the scheduler runs and the database takes writes; else 503 with one line
    per reason."""
    context = request.app[CONTEXT]
    problems = []
    status = context.status()
    if not status.running:
        problems.append(f"scheduler: {status.reason}")
    database = await context.write_check.problem()
    if database is not None:
        problems.append(f"database not writable: {database}")
    if problems:
        return web.Response(status=503, text="".join(f"{p}\n" for p in problems))
    return web.Response(text="ok\n")


async def metrics(request: web.Request) -> web.Response:
    context = request.app[CONTEXT]
    status = context.status()
    async with context.scrape_lock:
        body = await asyncio.to_thread(context.metrics.render, status)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE})


# --- /feeds/WATCHLIST.atom (monitor/export.py) ---------------------------------------------


def add_feed_routes(app: web.Application) -> None:
    app.router.add_get("/feeds/{watchlist}.atom", atom_feed)


async def atom_feed(request: web.Request) -> web.Response:
    from monitor.export import atom_feed as build_feed

    context = request.app[CONTEXT]
    name = request.match_info["watchlist"]
    if name not in {w.name for w in context.config.watchlists}:
        raise web.HTTPNotFound(text=f"no watchlist {name!r}\n")
    body = await asyncio.to_thread(_feed, build_feed, context.config, name)
    return web.Response(body=body, content_type="application/atom+xml")


# What a feed reader is given: the stories matched in the last FEED_WINDOW.
FEED_WINDOW = timedelta(days=7)


def _feed(build_feed: Callable[..., bytes], config: Config, name: str) -> bytes:
    """In a worker thread, on a read-only connection of its own."""
    store = Store.open_reader(config.database)
    try:
        return build_feed(store, config, name, FEED_WINDOW)
    finally:
        store.close()
