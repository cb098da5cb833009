"""`monitor search`: the full-text index finds candidates, the matcher decides. Each test starts
from a fresh real SQLite file; one runs the real CLI on a database filled by `monitor once`
against the local news site."""

from __future__ import annotations

import sqlite3
from datetime import timedelta
from pathlib import Path

import pytest
from conftest import monitor_config, run_monitor, write_config
from servers import Site
from sqlite_utils import Database

from monitor.migrations import MIGRATIONS, statements
from monitor.models import Entry, PageResult, PollResult
from monitor.search import search
from monitor.store import Store

WEEK = timedelta(days=7)


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store.open(tmp_path / "monitor.db")


def add(store: Store, n: int, title: str, text: str = "", source: str = "svt") -> int:
    entry = Entry(url=f"https://{source}.example/{n}", guid=f"g{n}", title=title, summary="",
                  published=None)
    [article_id] = store.save_poll_result(
        PollResult(source=source, status=200, entries=(entry,)), "u", True).new
    store.save_page(PageResult(article_id=article_id, url=entry.url, text=text))
    return article_id


def titles(store: Store, query: str, **options: object) -> list[str]:
    return [article.title for article, _ in search(store, query, WEEK, **options)]


def test_an_inflected_word_finds_the_article(store: Store) -> None:
    add(store, 1, "Möte i Almaty", "Säkerhetsorganisationen samlas i morgon.")
    add(store, 2, "Protesterna växer", "Demonstranter på gatorna.")
    add(store, 3, "Väder", "Regn och blåst.")

    assert titles(store, "säkerhetsorganisation") == ["Möte i Almaty"]
    assert titles(store, "protest") == ["Protesterna växer"]
    assert titles(store, "demonstrant*") == ["Protesterna växer"]
    assert titles(store, "fotboll") == []


def test_å_ä_ö_are_letters_and_other_accents_are_not(store: Store) -> None:
    add(store, 1, "Nytt år i Umeå", "Kazán och Støre på besök.")
    add(store, 2, "Ar och Umea", "Inget annat.")

    assert titles(store, "Umeå") == ["Nytt år i Umeå"]
    assert titles(store, "år") == ["Nytt år i Umeå"]
    # The index folds å to a to find candidates; the matcher keeps them apart.
    assert titles(store, "Umea") == ["Ar och Umea"]
    assert titles(store, "Kazan") == ["Nytt år i Umeå"]
    assert titles(store, "Störe") == ["Nytt år i Umeå"]


def test_results_are_newest_first_and_filtered_by_source_and_time(
    store: Store, tmp_path: Path
) -> None:
    add(store, 1, "CSTO i Almaty", source="svt")
    add(store, 2, "CSTO lämnar", source="dn")
    add(store, 3, "CSTO förra månaden", source="svt")
    with sqlite3.connect(tmp_path / "monitor.db") as db:
        db.execute("UPDATE articles SET first_seen = '2020-01-01T00:00:00+00:00' WHERE id = 3")
        db.execute("UPDATE articles SET first_seen = '2999-01-01T00:00:00+00:00' WHERE id = 2")

    assert titles(store, "CSTO") == ["CSTO lämnar", "CSTO i Almaty"]
    assert titles(store, "CSTO", source="svt") == ["CSTO i Almaty"]
    assert [a.title for a, _ in search(store, "CSTO", timedelta(days=36500))][-1] == "CSTO förra månaden"
    assert titles(store, "CSTO", limit=1) == ["CSTO lämnar"]


def test_a_query_the_index_cannot_narrow_scans_the_window(store: Store) -> None:
    add(store, 1, "Försvarsalliansen möts")
    add(store, 2, "Fotboll i kväll")

    assert titles(store, "*allians*") == ["Försvarsalliansen möts"]
    assert titles(store, "NOT fotboll") == ["Försvarsalliansen möts"]
    assert titles(store, "fotboll OR NOT fotboll") == ["Fotboll i kväll", "Försvarsalliansen möts"]


def candidates(store: Store, fts_query: str) -> list[int]:
    return [a.id for a in store.search_candidates(fts_query, "2000-01-01")]


def test_the_index_follows_changed_and_emptied_text(store: Store) -> None:
    article = add(store, 1, "Rubrik", "Tokajev talar.")
    store.skip(article, "done")
    assert candidates(store, '"tokajev"*') == [article]
    store.drop_texts(["svt"])
    assert candidates(store, '"tokajev"*') == []
    # A revision (the feed changed its summary) fetches the page again, with a new text.
    revised = Entry(url="https://svt.example/1", guid="g1", title="Rubrik", summary="Ny ingress.",
                    published=None)
    outcome = store.save_poll_result(PollResult(source="svt", status=200, entries=(revised,)), "u", True,
                                     revisions=True)
    assert outcome.revised == [article]
    store.save_page(PageResult(article_id=article, url="u", text="Nu om Almaty."))
    assert candidates(store, "almaty") == [article]
    assert titles(store, "Almaty") == ["Rubrik"]


def test_migration_indexes_the_articles_already_stored(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    db = Database(path)
    for script in MIGRATIONS[:6]:
        for statement in statements(script):
            db.execute(statement)
    db.execute("PRAGMA user_version = 6")
    db.execute("INSERT INTO articles (source, url, link, title, first_seen, content_hash, state)"
               " VALUES ('svt', 'https://x/1', 'https://x/1', 'Kazakstans president',"
               " '2999-01-01T00:00:00+00:00', 'h', 'done')")
    db.conn.commit()
    db.close()

    store = Store.open(path)
    assert titles(store, "Kazakstan") == ["Kazakstans president"]


def test_search_command_prints_hits_in_context(tmp_path: Path, site: Site) -> None:
    config = write_config(tmp_path, monitor_config(site))
    assert run_monitor(config, "once").returncode == 0

    found = run_monitor(config, "search", "säkerhetsstyrkor", "--source", "utrikes")
    elsewhere = run_monitor(config, "search", "säkerhetsstyrkor", "--source", "inrikes")
    none = run_monitor(config, "search", "Umea")

    assert found.returncode == 0, found.stderr
    lines = found.stdout.splitlines()
    assert lines[-1].endswith("found (since 7d)")
    assert "[säkerhetsstyrkorna]" in found.stdout.lower()
    assert site.url("/nyheter/utrikes/") in found.stdout
    assert elsewhere.returncode == 1 and elsewhere.stdout == "0 articles found (since 7d)\n"
    assert none.returncode == 1
    assert run_monitor(config, "search", "Umeå").returncode == 0
