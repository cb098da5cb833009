"""The analyst's pages, served by the daemon's HTTP listener (and alone by `monitor web`):
/ (the stories that alerted), /articles/ID, /search (the live query tester), /sources,
/watchlists, and their style sheet and script under /static/. Read-only, server-rendered,
every string from the web escaped, no external asset."""

from __future__ import annotations

from aiohttp import web

from monitor.web import pages, search


def add_page_routes(app: web.Application) -> None:
    app.router.add_get("/", pages.stories)
    app.router.add_get("/articles/{id}", pages.article)
    app.router.add_get("/search", search.search_page)
    app.router.add_get("/search.json", search.search_json)
    app.router.add_get("/sources", pages.sources)
    app.router.add_get("/watchlists", pages.watchlists)
    app.router.add_get("/static/{name}", pages.static)
