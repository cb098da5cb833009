"""Nothing a cycle does costs more as the database grows: each statement of the hot path
(the store's registry of them, the very SQL it runs) is answered from an index, never by a
scan of a table. Checked with EXPLAIN QUERY PLAN on a real store with rows in it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from monitor.models import Entry, PageResult, PollResult
from monitor.store import MatchRecord, NewAlert, Store, hot_path_statements

STATEMENTS = hot_path_statements()
# "SCAN articles", "SCAN a", "SCAN alerts USING INDEX …" (a whole index walked): all grow
# with the table. Temporary b-trees for ORDER BY/DISTINCT sort the few rows found.
FULL_SCAN = re.compile(r"^SCAN (?!CONSTANT ROW)")


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Store:
    store = Store.open(Path(tmp_path_factory.mktemp("plans")) / "monitor.db")
    for source in ("svt", "dn"):
        entries = tuple(Entry(url=f"https://{source}.example/{n}", guid=f"g{n}", title=f"CSTO {n}",
                              summary="", published=None) for n in range(50))
        for article in store.save_poll_result(PollResult(source, 200, entries=entries), "u", True).new:
            store.save_page(PageResult(article_id=article, url="u", text="Text"))
            story = store.assign_story(article, None, None, body_hash=f"h{article}")
            store.save_matches(article, [MatchRecord("w", ("CSTO",), "[CSTO]")],
                               [NewAlert(f"a{article}", "w", "siem", "{}")], story)
    return store


def plan(store: Store, sql: str, params: list) -> list[str]:
    return [row[3] for row in store.db.execute(f"EXPLAIN QUERY PLAN {sql}", params)]


@pytest.mark.parametrize("name", STATEMENTS)
def test_hot_path_statement_uses_an_index(store: Store, name: str) -> None:
    sql, params = STATEMENTS[name]
    steps = plan(store, sql, params)

    assert steps, f"{name}: no plan"
    assert not [step for step in steps if FULL_SCAN.match(step)], f"{name}: {steps}"


def test_the_registry_covers_the_statements_a_cycle_runs() -> None:
    expected = {"insert_entry: known article", "insert_entry: pruned identity", "articles_in_state",
                "fetch_state", "backoff_facts", "story_with_body_hash", "story_of", "story_urls",
                "alerted_watchlists", "pending_alerts", "save_matches: thread",
                "immediate_stories_since", "held_alerts", "trouble_facts"}
    assert expected <= set(STATEMENTS)


def test_a_full_scan_would_be_caught(store: Store) -> None:
    # The check itself: a statement with no usable index shows up as a scan.
    assert any(FULL_SCAN.match(step) for step in plan(
        store, "SELECT id FROM articles WHERE title = ?", ["CSTO 1"]))
