"""The same store on both engines: every test runs on a fresh SQLite file and on a fresh
database of a real PostgreSQL server (the `store` and `store_target` fixtures of conftest.py).
Where PostgreSQL lets several processes write at once, two Store connections on one database
stand for two role processes."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from monitor.errors import StoreError
from monitor.migrations import MIGRATIONS, POSTGRES_MIGRATIONS
from monitor.models import Entry, PageResult, PendingAlert, PollResult, RetentionSettings
from monitor.postgres import health
from monitor.retention import prune
from monitor.search import search
from monitor.store import (
    BUNDLED,
    DONE,
    FAILED,
    HELD,
    HOLD_DIGEST,
    MATCH,
    PENDING,
    SENT,
    MatchRecord,
    NewAlert,
    Store,
    hot_path_statements,
    web_page_statements,
)


def entry(n: int, url: str | None = None, guid: str | None = None, title: str | None = None) -> Entry:
    return Entry(url=url or f"https://www.svt.se/nyheter/{n}", guid=guid or f"g{n}",
                 title=title or f"Rubrik {n}", summary=f"Ingress {n}", published=None)


def poll(store: Store, *entries: Entry, source: str = "svt") -> list[int]:
    return store.save_poll_result(PollResult(source, 200, entries=entries, etag="e"), "u", True).new


def at(minutes: int) -> str:
    """A time `minutes` from now, as the store writes times (it stamps rows with the clock)."""
    return (datetime.now(UTC) + timedelta(minutes=minutes)).isoformat(timespec="seconds")


def matched(store: Store, article: int, alerts: list[NewAlert], story: int | None = None) -> int:
    return store.save_matches(article, [MatchRecord("w", ("CSTO",), "[CSTO]")], alerts, story)


def in_thread(work: Callable[[], object]) -> tuple[threading.Thread, list]:
    """Run `work` in a thread of its own; its result (or exception) lands in the list."""
    out: list = []

    def run() -> None:
        try:
            out.append(work())
        except Exception as exc:
            out.append(exc)
    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, out


def postgres_only(target: Path | str,
                  why: str = "several writers at once: PostgreSQL only (SQLite has one writer)") -> None:
    if isinstance(target, Path):
        pytest.skip(why)


# --- poll results and what is new -----------------------------------------------------------


def test_poll_results_are_new_once_and_known_after(store: Store) -> None:
    first = poll(store, entry(1), entry(2), entry(1))
    assert len(first) == 2
    assert poll(store, entry(1, url="https://www.svt.se/nyheter/1?utm_source=x", guid="other"),
                entry(3)) == [max(first) + 1]
    assert store.fetch_state("svt") == ("e", None)


def test_a_second_connection_sees_an_article_the_first_stored(store: Store,
                                                               store_target: Path | str) -> None:
    other = Store.connect(store_target)
    try:
        assert len(poll(store, entry(1))) == 1
        assert poll(other, entry(1)) == []
        assert poll(other, entry(2, guid="g1")) == [], "same GUID from the same source"
    finally:
        other.close()


def test_the_same_url_inserted_at_once_by_two_processes_is_new_once(
        store: Store, store_target: Path | str) -> None:
    postgres_only(store_target)
    other = Store.connect(store_target)
    try:
        with store.transaction():
            mine = poll(store, entry(1))
            # The other process looks the URL up before this one commits: not there yet, so it
            # inserts too, and waits on the unique index until this transaction ends.
            thread, theirs = in_thread(lambda: poll(other, entry(1), entry(2)))
            time.sleep(0.5)
            assert thread.is_alive(), "the second insert should wait for the first's commit"
        thread.join(10)
        assert len(mine) == 1
        assert len(theirs) == 1 and not isinstance(theirs[0], Exception), theirs
        assert len(theirs[0]) == 1 and theirs[0][0] != mine[0], "only entry 2 is new to it"
        count = store.db.execute("SELECT count(*) FROM articles").fetchone()[0]
        assert count == 2
    finally:
        other.close()


# --- pages and stories ---------------------------------------------------------------------


def test_pages_move_articles_on_and_a_canonical_copy_is_skipped(store: Store) -> None:
    one, two = poll(store, entry(1), entry(2))
    store.save_pages([
        PageResult(one, "u", text="Brödtext om CSTO.", lang="sv", author="A"),
        PageResult(two, "u", text="Kopia.", canonical_url="https://www.svt.se/nyheter/1"),
    ])
    (ready,) = store.articles_in_state(MATCH)
    assert (ready.id, ready.text, ready.lang) == (one, "Brödtext om CSTO.", "sv")
    page = store.article_page(two)
    assert page is not None and page["duplicate_of"] == one
    assert [a.id for a in store.articles_with_ids([one, two], DONE)] == [two]


def test_a_page_fetched_again_changes_nothing_once_its_article_moved_on(store: Store) -> None:
    (one,) = poll(store, entry(1))
    store.save_pages([PageResult(one, "u", text="Brödtext om CSTO.", lang="sv")])
    store.save_matches(one, [], [])
    store.save_pages([PageResult(one, "u", text="En annan text.", lang="sv")])
    assert [a.id for a in store.articles_with_ids([one], DONE)] == [one]
    page = store.article_page(one)
    assert page is not None and page["text"] == "Brödtext om CSTO."


def test_stories_are_assigned_found_and_merged(store: Store) -> None:
    one, two, three = poll(store, entry(1), entry(2), entry(3))
    first = store.assign_story(one, None, b"\x00\xffsig", body_hash="h1")
    second = store.assign_story(two, None, None)
    assert first != second
    assert store.assign_story(three, first, None) == first
    assert store.story_with_body_hash("h1", at(-10**6)) == first
    assert store.signatures_since(at(-10**6)) == [(one, b"\x00\xffsig", store.article_page(one)
                                                   ["first_seen"])]
    store.merge_stories(first, [second])
    assert store.story_of(two) == (first, store.story_of(one)[1])
    assert store.story_urls(first) == [f"https://www.svt.se/nyheter/{n}" for n in (1, 2, 3)]
    assert store.db.execute("SELECT count(*) FROM stories").fetchone()[0] == 1


def test_a_story_alerts_a_watchlist_and_notifier_once(store: Store) -> None:
    one, two = poll(store, entry(1), entry(2))
    story = store.assign_story(one, None, None)
    store.assign_story(two, story, None)
    assert matched(store, one, [NewAlert("a1", "w", "siem", "{}"), NewAlert("a2", "w", "logg", "{}")],
                   story) == 2
    # The copy matches too: recorded as a match, no second alert; another notifier does alert.
    assert matched(store, two, [NewAlert("b1", "w", "siem", "{}"), NewAlert("b2", "w", "mail", "{}")],
                   story) == 1
    assert store.alerted_watchlists(story) == {"w"}
    by_id = {a.id: a for a in store.pending_alerts()}
    assert set(by_id) == {"a1", "a2", "b2"}
    assert by_id["a2"].thread is None and by_id["b2"].thread is None
    assert matched(store, one, [NewAlert("a1", "w", "siem", "{}")], story) == 0, "same id again"
    assert [row["watchlist"] for row in store.article_matches(two)] == ["w"]


def test_the_web_pages_list_each_story_once_with_its_first_alert(store: Store) -> None:
    one, two, three = poll(store, entry(1), entry(2), entry(3))
    story = store.assign_story(one, None, None)
    store.assign_story(two, story, None)
    matched(store, one, [NewAlert("a1", "w", "siem", "{}")], story)
    matched(store, two, [NewAlert("a2", "v", "siem", "{}")], story)
    matched(store, three, [NewAlert("a3", "w", "siem", "{}")])
    rows = store.alerted_stories(["w", "v"], at(-10**6))
    assert [(r["story_id"], r["article_id"], r["watchlist"]) for r in rows] == [
        (None, three, "w"), (story, one, "w")]
    assert [r["story_key"] for r in rows] == [f"a{three}", f"s{story}"]
    assert [r["article_id"] for r in store.alerted_stories(["v"], at(-10**6))] == [two]
    assert [r["article_id"] for r in store.alerted_stories(["w", "v"], at(-10**6), "svt",
                                                           limit=1, offset=1)] == [one]
    assert store.alerted_stories(["w"], at(-10**6), "dn") == []


# --- the outbox ----------------------------------------------------------------------------


def alerts_for(store: Store, count: int, notifier: str = "siem") -> list[str]:
    ids = []
    for n, article in enumerate(poll(store, *(entry(100 + i) for i in range(count))), start=1):
        ids.append(f"{notifier}-{n}")
        matched(store, article, [NewAlert(ids[-1], "w", notifier, "{}")])
    return ids


def test_outbox_sends_defers_gives_up_and_retries(store: Store) -> None:
    sent, failing, later = alerts_for(store, 3)
    store.mark_sent(sent)
    store.mark_failed(failing, "HTTP 503", owed=["a@example.se"])
    assert [(a.id, a.attempts, a.owed) for a in store.pending_alerts()] == [
        (failing, 1, ("a@example.se",)), (later, 0, None)]

    store.defer_notifier("siem", at(10))
    store.defer_notifier("siem", at(5))  # an earlier hold never shortens a longer one
    assert store.pending_alerts(at(9)) == []
    assert [a.id for a in store.pending_alerts(at(10))] == [failing, later]
    # An alert written while its notifier is held waits too.
    (article,) = poll(store, entry(7))
    matched(store, article, [NewAlert("new", "w", "siem", "{}")])
    assert "new" not in {a.id for a in store.pending_alerts(at(9))}

    far_future = at(10**7)
    assert store.give_up_expired("siem", far_future, "gave up") == 3
    assert store.count_alerts() == {SENT: 1, FAILED: 3}
    (row,) = store.list_alerts(statuses=[FAILED], notifier="siem", limit=1)
    assert row["last_error"].startswith("gave up")
    assert store.retry_failed([failing]) == 1
    assert store.alert_statuses([failing, later, "nothing"]) == {failing: PENDING, later: FAILED}
    assert store.retry_failed() == 2 and store.count_pending_alerts() == 3
    store.give_up(later, "no")
    assert store.outbox_counts() == {SENT: 1, PENDING: 2, FAILED: 1}


def test_held_alerts_are_bundled_into_one_message_once(store: Store) -> None:
    (one, two) = poll(store, entry(1), entry(2))
    store.save_matches(one, [], [NewAlert("h1", "w", "mail", "{}", hold=HOLD_DIGEST)])
    store.save_matches(two, [], [NewAlert("h2", "w", "mail", "{}", hold=HOLD_DIGEST)])
    held = store.held_alerts(HOLD_DIGEST, ["w"])
    assert [h.id for h in held] == ["h1", "h2"]
    digest = PendingAlert("d1", "mail", "w", None, "{}", 0, kind="digest")
    assert store.bundle_held(digest, ["h1", "h2"])
    again = PendingAlert("d2", "mail", "w", None, "{}", 0, kind="digest")
    assert not store.bundle_held(again, ["h2"]), "h2 is in d1 already"
    assert store.message_status("d2") is None and store.message_status("d1") == PENDING
    assert store.alert_statuses(["h1", "h2"]) == {"h1": BUNDLED, "h2": BUNDLED}
    assert store.held_alerts(HOLD_DIGEST) == []
    assert store.last_message_created("digest", "w", "mail") is not None
    assert store.immediate_stories_since("w", at(-10**6)) == 0
    assert HELD not in store.outbox_counts()


# --- claims (several deliverers) -------------------------------------------------------------


def test_claims_take_the_oldest_due_alerts_once_until_they_lapse(store: Store) -> None:
    ids = alerts_for(store, 4)
    store.defer(ids[1], at(100), 60)  # not due before minute 100
    claimed = store.claim_alerts("d1", at(1), at(5), 2)
    assert [a.id for a in claimed] == [ids[0], ids[2]]
    assert [a.id for a in store.claim_alerts("d2", at(1), at(5), 10)] == [ids[3]]
    assert store.claim_alerts("d3", at(2), at(5), 10) == []
    # d1 and d2 died: their claims lapse, and another deliverer takes them, the deferred one
    # once it is due.
    assert [a.id for a in store.claim_alerts("d3", at(6), at(10), 10)] == [ids[0], ids[2], ids[3]]
    assert [a.id for a in store.claim_alerts("d4", at(101), at(110), 10)] == ids
    assert store.pending_alerts() and len(store.pending_alerts()) == 4, "claims change no status"


def test_sent_failed_and_deferred_alerts_are_no_longer_claimed(store: Store) -> None:
    first, second, third = alerts_for(store, 3)
    now, until = at(10**6), at(10**6 + 5)
    assert len(store.claim_alerts("d1", now, until, 10)) == 3
    store.mark_sent(first)
    store.mark_failed(second, "HTTP 500")
    store.defer(third, now, 60)
    assert [a.id for a in store.claim_alerts("d2", now, until, 10)] == [second, third]
    claims = dict(store.db.execute("SELECT id, claimed_by FROM alerts").fetchall())
    assert claims == {first: None, second: "d2", third: "d2"}


def test_two_deliverers_claiming_at_once_get_disjoint_alerts(store: Store,
                                                            store_target: Path | str) -> None:
    postgres_only(store_target)
    ids = alerts_for(store, 6)
    other = Store.connect(store_target)
    now, until = at(10**6), at(10**6 + 5)
    try:
        with store.transaction():
            mine = store.claim_alerts("d1", now, until, 3)
            # The other deliverer claims while this claim is not committed: it skips the rows
            # locked here instead of waiting for them.
            thread, theirs = in_thread(lambda: other.claim_alerts("d2", now, until, 10))
            thread.join(10)
            assert not thread.is_alive(), "the second claim waited on the first one's rows"
        assert [a.id for a in mine] == ids[:3]
        assert [a.id for a in theirs[0]] == ids[3:]
    finally:
        other.close()


def test_deliverers_racing_for_one_alert_at_a_time_never_share_one(
        store: Store, store_target: Path | str) -> None:
    postgres_only(store_target)
    ids = alerts_for(store, 40)
    now, until = at(10**6), at(10**6 + 5)
    stores = [Store.connect(store_target) for _ in range(2)]

    def drain(deliverer: Store, owner: str) -> list[str]:
        taken: list[str] = []
        while batch := deliverer.claim_alerts(owner, now, until, 1):
            taken += [a.id for a in batch]
        return taken
    try:
        runs = [in_thread(lambda s=s, n=n: drain(s, f"d{n}")) for n, s in enumerate(stores)]
        for thread, _ in runs:
            thread.join(30)
        first, second = (out[0] for _, out in runs)
        assert not set(first) & set(second)
        assert sorted(first + second) == sorted(ids)
    finally:
        for opened in stores:
            opened.close()


# --- retention, migrations, the rest of the interface ----------------------------------------


def test_pruned_articles_stay_known_and_owed_ones_are_kept(store: Store) -> None:
    one, two, three = poll(store, entry(1), entry(2), entry(3))
    matched(store, one, [NewAlert("sent", "w", "siem", "{}")])
    store.mark_sent("sent")
    matched(store, two, [NewAlert("owed", "w", "siem", "{}")])
    store.save_page(PageResult(three, "u", text="Text"))
    future = at(10**7)
    assert store.empty_texts_before(future) == 2, "the matched ones: done"
    assert store.prune_articles(future, batch=1) == (2, 1)
    assert [a.id for a in store.articles_since(at(-10**6))] == [two]
    assert poll(store, entry(1), entry(3)) == [], "a pruned article is never new again"
    assert store.reclaim_space() >= 0


def test_migrations_run_once_and_again_change_nothing(store_target: Path | str) -> None:
    assert len(POSTGRES_MIGRATIONS) == len(MIGRATIONS) == 10
    Store.connect(store_target).close()
    again = Store.connect(store_target)
    try:
        if again.postgres:
            assert again.db.execute("SELECT version FROM schema_version").fetchall() == [(10,)]
        else:
            assert again.db.execute("PRAGMA user_version").fetchone()[0] == 10
        columns = {row[0] for row in again.db.execute(
            "SELECT * FROM alerts LIMIT 0").description}
        assert {"claimed_by", "claimed_until", "retry_at", "thread"} <= columns
        assert ("rowid" in columns) == again.postgres, "PostgreSQL's alerts carry their own rowid"
    finally:
        again.close()


def test_role_processes_starting_at_once_migrate_once(store_target: Path | str) -> None:
    postgres_only(store_target)
    runs = [in_thread(lambda: Store.connect(store_target)) for _ in range(4)]
    for thread, _ in runs:
        thread.join(30)
    opened = [out[0] for _, out in runs]
    assert all(isinstance(s, Store) for s in opened), opened
    assert opened[0].db.execute("SELECT version FROM schema_version").fetchall() == [(10,)]
    for s in opened:
        s.close()


def test_the_rest_of_the_interface_answers_on_both_engines(store: Store) -> None:
    (one,) = poll(store, entry(1, title="CSTO möts"))
    store.save_page(PageResult(one, "u", text="Kazakstan och CSTO."))
    matched(store, one, [NewAlert("a1", "w", "siem", "{}")])
    store.save_poll_result(PollResult("dn", None, error="timeout"), "u2", True)
    since = at(-10**6)
    assert store.source_health()["dn"]["consecutive_failures"] == 1
    assert store.source_health()["svt"]["articles_24h"] == 1
    assert store.backoff_facts(["dn", "nobody"])["dn"]["consecutive_failures"] == 1
    assert store.trouble_facts("svt")["last_new"] is not None
    assert store.articles_seen_between("svt", since, at(10**7)) == 1
    assert sum(store.articles_per_day("svt", since).values()) == 1
    assert [t[1] for t in store.watchlist_alert_times("w", since)] == [f"a{one}"]
    assert store.last_alert("w")["title"] == "CSTO möts"
    assert [a.id for a in store.search_candidates(None, since)] == [one]
    # PostgreSQL has no full-text index: every article of the window is a candidate.
    found = [a.id for a in store.search_candidates('"ingenting"', since)]
    assert found == ([one] if store.postgres else [])
    assert [row["id"] for row in store.articles_for_export(since)] == [one]
    assert [row["id"] for row in store.matched_stories("w", since)] == [one]
    assert store.outbox_depth() == {(PENDING, "siem"): 1}
    assert store.oldest_pending_alert() is not None
    assert store.database_size() > 0
    assert set(store.articles_by_id([one])) == {one}
    assert [row["id"] for row in store.story_alerts([], [one])] == ["a1"]
    assert store.list_alerts(watchlist="w")[0]["id"] == "a1"
    store.set_source_trouble("dn", "failing", at(0), [PendingAlert("n1", "siem", "", None, "{}", 0,
                                                                   kind="notice")])
    assert store.trouble_facts("dn")["trouble"] == "failing"
    assert store.drop_texts(["svt"]) == 1


def test_a_failing_statement_is_a_store_error(store: Store) -> None:
    store.close()
    with pytest.raises(StoreError):
        store.fetch_state("svt")


def test_a_refused_connection_names_the_database_without_its_password(postgres_url: str) -> None:
    wrong = "postgresql://postgres:hemligt@127.0.0.1:1/x"
    with pytest.raises(StoreError) as refused:
        Store.connect(wrong)
    assert "hemligt" not in str(refused.value)
    assert "postgresql://postgres@127.0.0.1:1/x" in str(refused.value)
    problem = health(wrong)
    assert problem is not None and "hemligt" not in problem and "127.0.0.1:1/x" in problem
    assert health(postgres_url) is None


def test_the_hot_path_has_an_index_on_postgresql_too(store: Store) -> None:
    """With sequential scans priced out, a statement that still scans a table has no index that
    could answer it (the SQLite plans: tests/test_query_plans.py, tests/test_web_pages.py)."""
    if not store.postgres:
        pytest.skip("SQLite's plans are checked in test_query_plans.py")
    for article in poll(store, *(entry(n) for n in range(20))):
        matched(store, article, [NewAlert(f"a{article}", "w", "siem", "{}")],
                store.assign_story(article, None, None, body_hash=f"h{article}"))
    store.db.execute("ANALYZE")
    store.db.execute("SET enable_seqscan = off")
    statements = hot_path_statements() | web_page_statements()
    for name, (sql, params) in statements.items():
        plan = "\n".join(row[0] for row in store.db.execute(f"EXPLAIN {sql}", params))
        assert "Seq Scan" not in plan, f"{name}:\n{plan}"
    unindexed = store.db.execute("EXPLAIN SELECT id FROM articles WHERE title = ?", ["x"])
    assert "Seq Scan" in "\n".join(row[0] for row in unindexed), "the check itself"


def test_the_modules_above_the_store_work_on_either_engine_unchanged(store: Store) -> None:
    """`monitor search` and retention take the store as it is (no change for PostgreSQL)."""
    (one, two) = poll(store, entry(1, title="CSTO möts i Astana"), entry(2, title="Väder"))
    store.save_pages([PageResult(one, "u", text="Kazakstan."), PageResult(two, "u", text="Sol.")])
    found = [(article.id, sorted(hit.words)) for article, hit in search(store, "CSTO", timedelta(days=1))]
    assert found == [(one, ["CSTO"])]
    report = prune(store, RetentionSettings(articles=60), now=datetime.now(UTC) + timedelta(days=1))
    assert report.articles_deleted == 2 and report.size_after > 0
    assert poll(store, entry(1)) == []


def test_a_lost_connection_fails_one_statement_and_the_next_reconnects(store_target: Path | str) -> None:
    postgres_only(store_target, "a connection to a server: PostgreSQL only")
    import psycopg

    store = Store.connect(store_target)
    poll(store, entry(1))
    with psycopg.connect(str(store_target), autocommit=True) as admin:  # the server drops it
        admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                      " WHERE datname = current_database() AND pid != pg_backend_pid()")
    with pytest.raises(StoreError):
        store.count_pending_alerts()
    assert poll(store, entry(2)), "the next statement runs on a new connection"
    assert not poll(store, entry(1)), "and sees what the lost one stored"
    store.close()


def test_a_connection_lost_inside_a_transaction_fails_the_whole_transaction(
    store_target: Path | str,
) -> None:
    postgres_only(store_target, "a connection to a server: PostgreSQL only")
    import psycopg

    store = Store.connect(store_target)
    with pytest.raises(StoreError), store.transaction():
        poll(store, entry(1))
        with psycopg.connect(str(store_target), autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                          " WHERE datname = current_database() AND pid != pg_backend_pid()")
        with contextlib.suppress(StoreError):
            store.count_pending_alerts()  # meets the loss
        poll(store, entry(2))  # not on a new connection: the transaction fails as a whole
    assert poll(store, entry(1)) and poll(store, entry(2)), "nothing of it was kept"
    store.close()
