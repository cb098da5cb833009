"""The pages in a real browser: Debian's headless Chromium, driven by Selenium through Debian's
chromium-driver (nothing downloaded: the driver's path is given, so Selenium Manager stays idle).
The database is filled by a real `monitor once` against the local news site, one story titled
with hostile markup; the daemon's listener serves the pages (tests/webapp.py).

A screenshot of each page goes to test-artifacts/browser/ (not committed). With
MONITOR_SCREENSHOTS=docs/screenshots the stories page and the tester are also saved there, for
the README. Without Chromium these tests fail, saying how to install it; MONITOR_SKIP_BROWSER=1
skips them on purpose."""

from __future__ import annotations

import os
import sqlite3
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest
import yaml
from conftest import REPO
from servers import news_site
from webapp import HOSTILE, fill_database, listening

from monitor.errors import QueryError
from monitor.models import Config
from monitor.rules import parse_query
from monitor.search import search
from monitor.store import Store

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
ARTIFACTS = REPO / "test-artifacts" / "browser"
WAIT = 15  # seconds for the page to settle; a pass takes well under one

pytestmark = pytest.mark.skipif(os.environ.get("MONITOR_SKIP_BROWSER") == "1",
                                reason="MONITOR_SKIP_BROWSER=1: the browser tests were skipped on purpose")


@dataclass
class App:
    base: str
    config: Config

    def url(self, path: str) -> str:
        return self.base + path

    def status(self, path: str) -> int:
        try:
            with urllib.request.urlopen(self.url(path), timeout=30) as response:
                return response.status
        except urllib.error.HTTPError as error:
            return error.code

    def hostile_article_id(self) -> int:
        with sqlite3.connect(f"{self.config.database.as_uri()}?mode=ro", uri=True) as db:
            [(article_id,)] = db.execute("SELECT id FROM articles WHERE title = ?", [HOSTILE])
        return article_id


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[App]:
    directory = tmp_path_factory.mktemp("browser")
    with news_site(directory) as site:
        config = fill_database(directory, site)
        with listening(config) as base:
            yield App(base, config)


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not p.exists()]
    if missing:
        pytest.fail(f"no {' and no '.join(missing)}: the browser tests need Debian's Chromium "
                    "(apt-get install chromium chromium-driver; .ci/run does it), or set "
                    "MONITOR_SKIP_BROWSER=1 to skip them", pytrace=False)
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        pytest.fail("no selenium: pip install -e '.[test]'", pytrace=False)
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--window-size=1200,1000", "--lang=sv-SE", "--no-first-run"):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(str(CHROMEDRIVER)))
    try:
        yield driver
    finally:
        driver.quit()


# --- helpers -------------------------------------------------------------------------------


def wait_until(driver, condition: Callable[[object], object], what: str) -> object:
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.support.ui import WebDriverWait

    try:
        return WebDriverWait(driver, WAIT).until(condition)
    except TimeoutException:
        raise AssertionError(f"timed out waiting for {what}; the page said:\n"
                             f"{driver.find_element('tag name', 'body').text}") from None


def by_id(driver, element_id: str):
    return driver.find_element("id", element_id)


def open_page(driver, app: App, path: str) -> None:
    driver.get_log("browser")  # what earlier pages logged is not this page's
    driver.get(app.url(path))
    wait_until(driver, lambda d: d.execute_script("return document.readyState") == "complete",
               f"{path} to load")


def console_errors(driver) -> list[str]:
    """What the page logged as errors: a script fault, a refused load (the CSP), a 404."""
    return [entry["message"] for entry in driver.get_log("browser")
            if entry["level"] == "SEVERE" and "favicon.ico" not in entry["message"]]


def type_query(driver, text: str) -> None:
    from selenium.webdriver.common.keys import Keys

    field = by_id(driver, "q")
    field.send_keys(Keys.CONTROL, "a")
    field.send_keys(Keys.DELETE)
    field.send_keys(text)


def screenshot(driver, name: str, for_readme: str | None = None) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    driver.save_screenshot(str(ARTIFACTS / f"{name}.png"))
    target = os.environ.get("MONITOR_SCREENSHOTS")
    if target and for_readme:
        folder = REPO / target
        folder.mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(folder / f"{for_readme}.png"))


def expected_count(app: App, query: str) -> int:
    store = Store.open_reader(app.config.database)
    try:
        return sum(1 for _ in search(store, query, timedelta(days=7)))
    finally:
        store.close()


def needs(app: App, path: str) -> None:
    """The stories, article, sources and watchlists pages come from the pages branch: until it
    is merged, their tests have nothing to look at."""
    if app.status(path) == 404:
        pytest.skip(f"{path} is not served by this build (the pages branch adds it)")


def assert_hostile_title_is_text(driver) -> None:
    assert driver.execute_script("return window.pwned") is None
    assert driver.execute_script("return document.images.length") == 0
    assert HOSTILE in driver.execute_script("return document.body.innerText")


# --- the tests -------------------------------------------------------------------------------


def test_the_stories_page_shows_the_alerted_headlines(app: App, browser) -> None:
    needs(app, "/")
    open_page(browser, app, "/")
    text = browser.find_element("tag name", "body").text
    assert "Tokajev ber CSTO om hjälp efter våldsamma protester i Kazakstan" in text
    assert "CSTO-styrkorna på plats i Almaty – flygplatsen åter under kontroll" in text
    assert_hostile_title_is_text(browser)
    assert console_errors(browser) == []
    screenshot(browser, "stories", for_readme="stories")


def test_typing_a_query_updates_the_count_without_a_reload(app: App, browser) -> None:
    open_page(browser, app, "/search")
    assert by_id(browser, "results").is_displayed() is False
    browser.execute_script("window.notReloaded = 'still the same page'")
    address = browser.current_url

    for query in ("kazak*", "tokajev* OR csto"):
        expected = expected_count(app, query)
        assert expected > 0
        type_query(browser, query)
        wait_until(browser, lambda d, n=expected: by_id(d, "results").is_displayed()
                   and by_id(d, "count-number").text == str(n), f"the count for {query!r}")
        hits = browser.find_elements("css selector", "#hits li")
        assert len(hits) == expected
        assert len(browser.find_elements("css selector", "#chart-box rect")) == 7
        assert browser.find_elements("css selector", "#hits .hit-snippet mark")

    assert browser.execute_script("return window.notReloaded") == "still the same page"
    assert browser.current_url == address
    assert browser.execute_script("return performance.getEntriesByType('navigation').length") == 1
    entry = by_id(browser, "watchlist-yaml").text
    assert entry.startswith("watchlists:\n- name: ny-bevakning\n  query: tokajev* OR csto")
    assert console_errors(browser) == []
    screenshot(browser, "tester-typed", for_readme="tester")


def test_a_query_error_shows_its_caret(app: App, browser) -> None:
    query = 'kazak* AND ("kollektiv säkerhet" OR ) tokajev'
    with pytest.raises(QueryError) as raised:
        parse_query(query)
    column = raised.value.column
    assert column <= len(query)

    open_page(browser, app, "/search")
    type_query(browser, query)
    wait_until(browser, lambda d: by_id(d, "error").is_displayed(), "the error")
    shown, caret = by_id(browser, "error-query").text.split("\n")
    assert shown == query and caret == " " * (column - 1) + "^"
    assert by_id(browser, "results").is_displayed() is False
    # The caret stands under the column in the rendered monospace text, not only in the string.
    x_of = browser.execute_script("""
        const pre = document.getElementById('error-query');
        const range = document.createRange(), text = pre.firstChild;
        const at = (i) => { range.setStart(text, i); range.setEnd(text, i + 1);
                            return range.getBoundingClientRect().left; };
        return [at(arguments[0]), at(arguments[1])];""", column - 1, len(query) + 1 + column - 1)
    assert abs(x_of[0] - x_of[1]) < 1

    # Without the script: the page as the server renders it says the same.
    open_page(browser, app, "/search?q=" + urllib.request.quote(query))
    assert by_id(browser, "error-query").text == f"{query}\n{' ' * (column - 1)}^"
    screenshot(browser, "tester-error")


def test_the_hostile_title_stays_text_in_the_tester(app: App, browser) -> None:
    open_page(browser, app, "/search?q=kazakstan")  # the hits as the server renders them
    assert_hostile_title_is_text(browser)
    type_query(browser, "kazak*")  # and as the script builds them
    wait_until(browser, lambda d: by_id(d, "count-number").text == str(expected_count(app, "kazak*")),
               "the count for 'kazak*'")
    assert_hostile_title_is_text(browser)


@pytest.mark.parametrize("path", ["/", "/articles/{hostile}"])
def test_the_hostile_title_stays_text_on_the_stories_and_article_pages(app: App, browser,
                                                                      path: str) -> None:
    path = path.format(hostile=app.hostile_article_id())
    needs(app, path)
    open_page(browser, app, path)
    assert_hostile_title_is_text(browser)


def test_the_copy_button_puts_the_watchlist_entry_on_the_clipboard(app: App, browser) -> None:
    query = '"kollektiv säkerhet" OR tokajev*'
    open_page(browser, app, "/search?q=" + urllib.request.quote(query))
    browser.execute_cdp_cmd("Browser.grantPermissions", {
        "origin": app.base, "permissions": ["clipboardReadWrite", "clipboardSanitizedWrite"]})
    entry = by_id(browser, "watchlist-yaml").text
    by_id(browser, "copy").click()
    wait_until(browser, lambda d: by_id(d, "copy-note").text == "Copied.", "the copy")
    pasted = browser.execute_async_script(
        "const done = arguments[0]; navigator.clipboard.readText().then(done, e => done(String(e)))")
    assert pasted == entry + "\n"
    assert yaml.safe_load(pasted)["watchlists"][0]["query"] == query


@pytest.mark.parametrize("name, path", [
    ("stories", "/"),
    ("tester", "/search?q=kazak*+OR+csto"),
    ("article", "/articles/{hostile}"),
    ("sources", "/sources"),
    ("watchlists", "/watchlists"),
])
def test_a_screenshot_of_each_page(app: App, browser, name: str, path: str) -> None:
    path = path.format(hostile=app.hostile_article_id()) if "{" in path else path
    needs(app, path)
    open_page(browser, app, path)
    assert browser.execute_script("return window.pwned") is None
    assert console_errors(browser) == [], "the page broke its own CSP or lost a resource"
    screenshot(browser, name)
    assert (ARTIFACTS / f"{name}.png").stat().st_size > 1000
