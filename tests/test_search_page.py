"""The live query tester, /search and /search.json, over HTTP: served by the daemon's listener on
a database filled by a real `monitor once` against the local news site (tests/webapp.py). The
browser side (typing, the script) is in test_browser.py."""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
import pytest
import yaml
from conftest import WEBHOOK_SECRET
from servers import news_site
from webapp import HOSTILE, fill_database, listening

from monitor.config import load_config
from monitor.errors import QueryError
from monitor.models import Config
from monitor.rules import parse_query
from monitor.search import search
from monitor.store import Store


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[httpx.Client, Config]]:
    directory = tmp_path_factory.mktemp("search-page")
    with news_site(directory) as site:
        config = fill_database(directory, site)
        with listening(config) as base, httpx.Client(base_url=base, timeout=30) as client:
            yield client, config


def expected_titles(config: Config, query: str, days: int = 7) -> list[str]:
    """What `monitor search` finds (the one definition the page must agree with)."""
    store = Store.open_reader(config.database)
    try:
        return [a.title for a, _ in search(store, query, timedelta(days=days))]
    finally:
        store.close()


def text_of(element_id: str, page: str) -> str:
    found = re.search(rf'id="{element_id}"[^>]*>(.*?)</', page, re.S)
    assert found, f"no #{element_id} in the page"
    return html.unescape(found[1])


def test_the_count_per_day_and_the_hits_agree_with_monitor_search(app) -> None:
    client, config = app
    titles = expected_titles(config, "tokajev*")
    assert titles, "the fixture site has Tokajev stories"

    answer = client.get("/search.json", params={"q": "tokajev*"}).json()
    assert answer["error"] is None
    assert answer["count"] == len(titles)
    assert [hit["title"] for hit in answer["hits"]] == titles
    # Seven whole days in the watchlists' zone, ending today; everything was first seen today.
    today = datetime.now(UTC).astimezone(ZoneInfo("Europe/Stockholm")).date()
    assert [day for day, _ in answer["per_day"]] == [
        (today - timedelta(days=6 - i)).isoformat() for i in range(7)]
    assert answer["per_day"][-1][1] == len(titles) and sum(n for _, n in answer["per_day"]) == len(titles)
    hit = answer["hits"][0]
    assert hit["url"].startswith("http://127.0.0.1:") and hit["source"] == "utrikes"
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d CES?T", hit["time"])
    assert "<mark>Tokajev</mark>" in "".join(h["snippet_html"] for h in answer["hits"])

    page = client.get("/search", params={"q": "tokajev*"})
    assert page.status_code == 200 and page.headers["Content-Type"].startswith("text/html")
    assert text_of("count-number", page.text) == str(len(titles))
    for title in titles:
        assert html.escape(title, quote=False) in page.text
    assert page.text.count("<rect ") == 7  # one bar a day
    assert "<mark>Tokajev</mark>" in page.text


def test_a_hostile_title_is_text_in_the_page_and_in_the_json(app) -> None:
    client, config = app
    assert HOSTILE in expected_titles(config, "kazakstan"), "the cycle stored the hostile title"

    page = client.get("/search", params={"q": "kazakstan"}).text
    assert "<img" not in page and "onerror=\"" not in page
    assert "&lt;img src=x onerror=&#34;window.pwned=1&#34;&gt;" in page
    hits = client.get("/search.json", params={"q": "kazakstan"}).json()["hits"]
    assert HOSTILE in [hit["title"] for hit in hits]
    assert all("<img" not in hit["snippet_html"] for hit in hits)


def test_a_query_error_shows_the_caret_under_its_column(app) -> None:
    client, _ = app
    query = 'kazak* AND ("kollektiv säkerhet" OR'
    with pytest.raises(QueryError) as raised:
        parse_query(query)
    column = raised.value.column

    page = client.get("/search", params={"q": query}).text
    shown = text_of("error-query", page)
    assert shown == f"{query}\n{' ' * (column - 1)}^"
    assert text_of("error-message", page) == f"{raised.value.message} at column {column}"
    assert re.search(r'<section id="results"[^>]* hidden', page)

    error = client.get("/search.json", params={"q": query}).json()["error"]
    assert error == {"message": raised.value.message, "column": column,
                     "caret_line": " " * (column - 1) + "^", "query_line": query}


def test_a_line_break_in_the_query_keeps_the_caret_in_its_column(app) -> None:
    client, _ = app
    error = client.get("/search.json", params={"q": "kazak*\nAND"}).json()["error"]
    assert error["query_line"] == "kazak* AND"
    assert error["query_line"][len(error["caret_line"]) - 1:] == error["query_line"][error["column"] - 1:]


def test_the_copied_watchlist_entry_pastes_into_a_config(app, tmp_path: Path) -> None:
    client, config = app
    query = '{CSTO} OR "kollektiv säkerhet" OR kazak*'
    answer = client.get("/search.json", params={"q": query, "name": "csto-test"}).json()
    entry = answer["watchlist_yaml"]
    page = client.get("/search", params={"q": query, "name": "csto-test"}).text
    assert text_of("watchlist-yaml", page) == entry

    # Pasted as is at the end of a config that has no watchlists of its own yet.
    raw = yaml.safe_load((config.database.parent / "config.yaml").read_text(encoding="utf-8"))
    del raw["watchlists"]
    pasted = tmp_path / "config.yaml"
    pasted.write_text(yaml.safe_dump(raw, allow_unicode=True, sort_keys=False) + entry, encoding="utf-8")
    [watchlist] = load_config(pasted, {"WEBHOOK_SECRET": WEBHOOK_SECRET}).watchlists
    assert (watchlist.name, watchlist.query, watchlist.notify) == ("csto-test", query, ("logg",))

    default = client.get("/search.json", params={"q": "csto"}).json()["watchlist_yaml"]
    assert default.startswith("watchlists:\n- name: ny-bevakning\n")


def test_an_empty_query_shows_the_form_and_a_hint(app) -> None:
    client, _ = app
    page = client.get("/search").text
    assert re.search(r'<p id="hint">', page)
    assert re.search(r'<section id="results"[^>]* hidden', page)
    assert re.search(r'<section id="error"[^>]* hidden', page)
    answer = client.get("/search.json", params={"q": "  "}).json()
    assert (answer["count"], answer["hits"], answer["error"]) == (0, [], None)


def test_days_are_checked(app) -> None:
    client, _ = app
    assert len(client.get("/search.json", params={"q": "csto", "days": "30"}).json()["per_day"]) == 30
    for days in ("0", "367", "sju", "1.5"):
        response = client.get("/search.json", params={"q": "csto", "days": days})
        assert response.status_code == 400 and response.text.startswith("days:"), days


def test_the_page_allows_only_its_own_script_and_serves_it(app) -> None:
    client, _ = app
    page = client.get("/search", params={"q": "csto"})
    policy = page.headers["Content-Security-Policy"]
    assert "script-src 'self'" in policy and "default-src 'none'" in policy
    assert "unsafe-inline" not in policy
    assert '<script src="/static/tester.js" defer></script>' in page.text
    assert "<script>" not in page.text and " style=" not in page.text
    script = client.get("/static/tester.js")
    assert script.status_code == 200
    assert script.headers["Content-Type"].startswith("text/javascript")
    assert "innerHTML" not in script.text
    assert client.post("/search", data={"q": "csto"}).status_code == 405
