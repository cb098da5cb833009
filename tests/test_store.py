"""The store decides what is new, keeps fetch state with the articles it produced, and keeps the
outbox; each test starts from a fresh real database: an SQLite file, and (the `store` fixture's
second engine) a new database on a real PostgreSQL server."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from monitor.models import Entry, PageResult, PollResult
from monitor.store import DONE, FETCH, MATCH, MatchRecord, NewAlert, Store


def entry(n: int, url: str | None = None, guid: str | None = None) -> Entry:
    return Entry(
        url=url or f"https://www.svt.se/nyheter/{n}",
        guid=guid or f"g{n}",
        title=f"Rubrik {n}",
        summary=f"Ingress {n}",
        published=None,
    )


def result(*entries: Entry, etag: str = "e1", source: str = "svt") -> PollResult:
    return PollResult(source=source, status=200, entries=entries, etag=etag)


def test_new_articles_are_reported_once_also_across_restarts(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "monitor.db")
    assert len(store.save_poll_result(result(entry(1), entry(2)), "u", True).new) == 2
    store.close()

    reopened = Store.open(tmp_path / "monitor.db")
    assert reopened.save_poll_result(result(entry(1), entry(2), entry(3)), "u", True).new == [3]


def test_same_article_under_tracking_parameters_or_fragment_is_known(store: Store) -> None:
    store.save_poll_result(result(entry(1)), "u", True)
    variants = (
        entry(9, url="https://WWW.svt.se:443/nyheter/1?utm_source=rss&utm_medium=feed", guid="x1"),
        entry(9, url="https://www.svt.se/nyheter/1#kommentarer", guid="x2"),
        entry(9, url="https://www.svt.se/nyheter/1?fbclid=abc", guid="x3"),
    )
    assert store.save_poll_result(result(*variants), "u", True).new == []


def test_same_guid_same_source_is_known_other_source_is_not(store: Store) -> None:
    store.save_poll_result(result(entry(1, guid="shared")), "u", True)
    moved = entry(2, guid="shared")
    assert store.save_poll_result(result(moved), "u", True).new == []
    assert len(store.save_poll_result(result(moved, source="dn"), "u", True).new) == 1


def test_duplicates_within_one_feed_are_stored_once(store: Store) -> None:
    assert len(store.save_poll_result(result(entry(1), entry(1)), "u", True).new) == 1


def test_fetch_state_is_committed_with_the_articles(store: Store) -> None:
    store.save_poll_result(result(entry(1), etag="e1"), "u", True)
    # A poll whose articles cannot be written must not move the ETag forward.
    bad = PollResult(source="svt", status=200, entries=(entry(2), "not an entry"), etag="e2")  # type: ignore[arg-type]
    with pytest.raises(AttributeError):
        store.save_poll_result(bad, "u", True)
    assert store.fetch_state("svt") == ("e1", None)
    assert store.db.execute("SELECT count(*) FROM articles").fetchone()[0] == 1


def test_304_keeps_the_validators_and_errors_count_up(store: Store) -> None:
    store.save_poll_result(PollResult("svt", 200, (), etag="e1", last_modified="lm"), "u", True)
    store.save_poll_result(PollResult("svt", 304), "u", True)
    assert store.fetch_state("svt") == ("e1", "lm")
    store.save_poll_result(PollResult("svt", None, error="DNSLookupError"), "u", True)
    store.save_poll_result(PollResult("svt", 503, error="HTTP 503"), "u", True)
    health = store.source_health()["svt"]
    assert health["consecutive_failures"] == 2 and health["last_error"] == "HTTP 503"
    assert store.fetch_state("svt") == ("e1", "lm"), "a failure keeps the validators"
    store.save_poll_result(PollResult("svt", 304), "u", True)
    assert store.source_health()["svt"]["consecutive_failures"] == 0


def test_article_moves_fetch_match_done_and_alerts_wait_in_the_outbox(store: Store) -> None:
    (article_id,) = store.save_poll_result(result(entry(1)), "u", True).new
    assert [a.id for a in store.articles_in_state(FETCH)] == [article_id]

    store.save_page(PageResult(article_id, "u", title="Sidrubrik", text="Brödtext om CSTO.", lang="sv"))
    (ready,) = store.articles_in_state(MATCH)
    assert ready.text == "Brödtext om CSTO." and ready.title == "Rubrik 1" and ready.lang == "sv"

    alerts = [NewAlert("a1", "kazakstan", "siem", "{}"), NewAlert("a2", "kazakstan", "logg", "{}")]
    created = store.save_matches(article_id, [MatchRecord("kazakstan", ("CSTO",), "…")], alerts)
    assert created == 2
    assert store.articles_in_state(DONE)[0].id == article_id
    assert {a.id for a in store.pending_alerts()} == {"a1", "a2"}

    store.mark_failed("a1", "HTTP 503")
    store.mark_sent("a2")
    (pending,) = store.pending_alerts()
    assert (pending.id, pending.attempts) == ("a1", 1)
    # The same match recorded again (e.g. after a crash) creates no second alert.
    assert store.save_matches(article_id, [], [NewAlert("a3", "kazakstan", "siem", "{}")]) == 0


def test_page_that_failed_still_goes_on_to_matching(store: Store) -> None:
    (article_id,) = store.save_poll_result(result(entry(1)), "u", True).new
    store.save_page(PageResult(article_id, "u", error="HTTP 404"))
    (ready,) = store.articles_in_state(MATCH)
    assert ready.summary == "Ingress 1" and ready.text == ""


def test_feed_only_sources_skip_the_page_fetch(store: Store) -> None:
    store.save_poll_result(result(entry(1)), "u", full_text=False)
    assert store.articles_in_state(FETCH) == [] and len(store.articles_in_state(MATCH)) == 1


def test_database_uses_wal(tmp_path: Path) -> None:
    Store.open(tmp_path / "monitor.db").close()
    with sqlite3.connect(tmp_path / "monitor.db") as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_changed_headline_from_the_same_feed_is_a_revision(store: Store) -> None:
    (article_id,) = store.save_poll_result(result(entry(1)), "u", True, revisions=True).new
    store.save_page(PageResult(article_id, "u", text="Brödtext."))
    edited = Entry(url="https://www.svt.se/nyheter/1", guid="g1", title="Ny rubrik 1",
                   summary="Ingress 1", published=None)

    outcome = store.save_poll_result(result(edited), "u", True, revisions=True)

    assert (outcome.new, outcome.revised) == ([], [article_id])
    (again,) = store.articles_in_state(FETCH)
    assert (again.id, again.title, again.revision) == (article_id, "Ny rubrik 1", 2)
    assert store.save_poll_result(result(edited), "u", True, revisions=True).revised == []
    other_source = store.save_poll_result(result(entry(1), source="dn"), "u", True, revisions=True)
    assert other_source.revised == [], "only the article's own source revises it"
