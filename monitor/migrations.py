"""Schema versions. Each step runs once, in order; PRAGMA user_version records how far a database
has come. The pending steps run in one BEGIN IMMEDIATE transaction that re-reads the version
inside it, so two processes opening a new database at once never both run a step."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator

from sqlite_utils import Database

from monitor.postgres import PostgresDatabase

# Letters without a Unicode decomposition that the matcher reads as their Swedish or plain twin
# (monitor.rules.text._TWINS); the search index gets the twin, which its tokenizer then folds.
_TWIN_LETTERS = {"ø": "o", "Ø": "O", "æ": "a", "Æ": "A", "ł": "l", "Ł": "L", "đ": "d", "Đ": "D",
                 "ı": "i"}


def _twins(column: str) -> str:
    """SQL for the column's text with the twin letters replaced (SQLite's own replace(), so
    any connection can run the triggers)."""
    expression = column
    for letter, twin in _TWIN_LETTERS.items():
        expression = f"replace({expression}, '{letter}', '{twin}')"
    return expression


MIGRATIONS: tuple[str, ...] = (
    # 1: sources with fetch state, articles, matches, the alert outbox
    """
    CREATE TABLE sources (
        name TEXT PRIMARY KEY,
        url TEXT NOT NULL,
        etag TEXT,
        last_modified TEXT,
        last_status INTEGER,
        last_fetch TEXT,
        last_success TEXT,
        last_error TEXT,
        consecutive_failures INTEGER NOT NULL DEFAULT 0
    );
    CREATE TABLE articles (
        id INTEGER PRIMARY KEY,
        source TEXT NOT NULL,
        url TEXT NOT NULL UNIQUE,
        link TEXT NOT NULL,
        guid TEXT,
        title TEXT NOT NULL DEFAULT '',
        summary TEXT NOT NULL DEFAULT '',
        text TEXT NOT NULL DEFAULT '',
        author TEXT,
        lang TEXT,
        published TEXT,
        first_seen TEXT NOT NULL,
        content_hash TEXT NOT NULL,
        state TEXT NOT NULL,
        fetch_error TEXT
    );
    CREATE UNIQUE INDEX articles_source_guid ON articles(source, guid) WHERE guid IS NOT NULL;
    CREATE INDEX articles_state ON articles(state);
    CREATE INDEX articles_first_seen ON articles(first_seen);
    CREATE TABLE matches (
        article_id INTEGER NOT NULL REFERENCES articles(id),
        watchlist TEXT NOT NULL,
        words TEXT NOT NULL,
        snippet TEXT NOT NULL,
        matched_at TEXT NOT NULL,
        PRIMARY KEY (article_id, watchlist)
    );
    CREATE TABLE alerts (
        id TEXT PRIMARY KEY,
        article_id INTEGER NOT NULL REFERENCES articles(id),
        watchlist TEXT NOT NULL,
        notifier TEXT NOT NULL,
        body TEXT NOT NULL,
        status TEXT NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        last_error TEXT,
        created TEXT NOT NULL,
        sent_at TEXT,
        UNIQUE (article_id, watchlist, notifier)
    );
    CREATE INDEX alerts_status ON alerts(status);
    """,
    # 2: an article page whose <link rel=canonical> names an article already stored is a copy
    """
    ALTER TABLE articles ADD COLUMN duplicate_of INTEGER REFERENCES articles(id);
    ALTER TABLE articles ADD COLUMN skipped TEXT;
    """,
    # 3: stories (syndicated copies grouped), revisions of an article, one alert per story
    """
    CREATE TABLE stories (
        id INTEGER PRIMARY KEY,
        uid TEXT NOT NULL UNIQUE,
        created TEXT NOT NULL
    );
    ALTER TABLE articles ADD COLUMN story_id INTEGER REFERENCES stories(id);
    ALTER TABLE articles ADD COLUMN signature BLOB;
    ALTER TABLE articles ADD COLUMN feed_hash TEXT;
    ALTER TABLE articles ADD COLUMN revision INTEGER NOT NULL DEFAULT 1;
    CREATE INDEX articles_story ON articles(story_id);
    CREATE TABLE revisions (
        article_id INTEGER NOT NULL REFERENCES articles(id),
        revision INTEGER NOT NULL,
        title TEXT NOT NULL,
        summary TEXT NOT NULL,
        text TEXT NOT NULL,
        replaced TEXT NOT NULL,
        PRIMARY KEY (article_id, revision)
    );
    ALTER TABLE alerts ADD COLUMN story_id INTEGER REFERENCES stories(id);
    CREATE UNIQUE INDEX alerts_once_per_story ON alerts(story_id, watchlist, notifier)
        WHERE story_id IS NOT NULL;
    """,
    # 4: an email alert that some recipients refused remembers who is still owed it (a JSON
    # list; NULL means every recipient of the notifier)
    """
    ALTER TABLE alerts ADD COLUMN owed TEXT;
    """,
    # 5: short syndicated items (too short to compare) join a story by a hash of their body
    # words alone; content_hash includes the headline, which each outlet writes its own way
    """
    ALTER TABLE articles ADD COLUMN body_hash TEXT;
    CREATE INDEX articles_body_hash ON articles(body_hash) WHERE body_hash IS NOT NULL;
    """,
    # 6: the outbox carries digests, catch-ups and source notices besides alerts (article_id may
    # be NULL), retries back off across passes, an alert can fail for good, and alerts can be
    # held back for a digest or an hour's catch-up; sources remember their reported trouble
    """
    CREATE TABLE alerts_v6 (
        id TEXT PRIMARY KEY,
        kind TEXT NOT NULL DEFAULT 'alert',
        article_id INTEGER REFERENCES articles(id),
        story_id INTEGER REFERENCES stories(id),
        watchlist TEXT NOT NULL,
        notifier TEXT NOT NULL,
        body TEXT NOT NULL,
        status TEXT NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        last_error TEXT,
        created TEXT NOT NULL,
        sent_at TEXT,
        owed TEXT,
        queued TEXT NOT NULL,
        retry_at TEXT,
        backoff INTEGER NOT NULL DEFAULT 0,
        hold TEXT,
        release_at TEXT,
        bundle TEXT,
        thread TEXT,
        UNIQUE (article_id, watchlist, notifier)
    );
    INSERT INTO alerts_v6 (id, article_id, story_id, watchlist, notifier, body, status, attempts,
        last_error, created, sent_at, owed, queued)
        SELECT id, article_id, story_id, watchlist, notifier, body, status, attempts, last_error,
        created, sent_at, owed, created FROM alerts;
    DROP TABLE alerts;
    ALTER TABLE alerts_v6 RENAME TO alerts;
    CREATE INDEX alerts_status ON alerts(status, notifier);
    CREATE UNIQUE INDEX alerts_once_per_story ON alerts(story_id, watchlist, notifier)
        WHERE story_id IS NOT NULL AND kind = 'alert';
    CREATE INDEX alerts_bundle ON alerts(bundle) WHERE bundle IS NOT NULL;
    CREATE INDEX alerts_watchlist_created ON alerts(watchlist, created);
    ALTER TABLE sources ADD COLUMN failing_since TEXT;
    ALTER TABLE sources ADD COLUMN trouble TEXT;
    ALTER TABLE sources ADD COLUMN trouble_since TEXT;
    CREATE INDEX articles_source_seen ON articles(source, first_seen);
    """,
    # 7: full-text search over articles (`monitor search`). An external-content FTS5 table in
    # sqlite-utils' layout (articles_fts, triggers articles_ai/_ad/_au: Table.detect_fts and
    # search find it), written here as SQL rather than by Table.enable_fts because enable_fts
    # runs executescript, which commits this transaction half way; and because the index
    # only finds candidates for the matcher, it folds more than the matcher does (every
    # accent, å/ä/ö included, and the letters the matcher treats as twins: ø, æ, ł, đ, ı), so
    # it never misses a word the matcher would match. The update trigger fires only when
    # the indexed text changes, not on every change of an article's state.
    f"""
    CREATE VIRTUAL TABLE articles_fts USING FTS5 (
        title, summary, text,
        tokenize='unicode61 remove_diacritics 2',
        content="articles"
    );
    INSERT INTO articles_fts (rowid, title, summary, text)
        SELECT rowid, {_twins("title")}, {_twins("summary")}, {_twins("text")} FROM articles;
    CREATE TRIGGER articles_ai AFTER INSERT ON articles BEGIN
        INSERT INTO articles_fts (rowid, title, summary, text)
        VALUES (new.rowid, {_twins("new.title")}, {_twins("new.summary")}, {_twins("new.text")});
    END;
    CREATE TRIGGER articles_ad AFTER DELETE ON articles BEGIN
        INSERT INTO articles_fts (articles_fts, rowid, title, summary, text)
        VALUES ('delete', old.rowid, {_twins("old.title")}, {_twins("old.summary")},
                {_twins("old.text")});
    END;
    CREATE TRIGGER articles_au AFTER UPDATE OF title, summary, text ON articles BEGIN
        INSERT INTO articles_fts (articles_fts, rowid, title, summary, text)
        VALUES ('delete', old.rowid, {_twins("old.title")}, {_twins("old.summary")},
                {_twins("old.text")});
        INSERT INTO articles_fts (rowid, title, summary, text)
        VALUES (new.rowid, {_twins("new.title")}, {_twins("new.summary")}, {_twins("new.text")});
    END;
    """,
    # 8: retention. `pruned` remembers the identity of each deleted article (canonical URL,
    # and GUID within its source), so a feed that still lists it years later does not make it
    # new again. Indexes for the queries of every cycle that had none: alerts by story
    # (alerted_watchlists, threading), matches by watchlist (export, feeds).
    """
    CREATE TABLE pruned (
        url TEXT PRIMARY KEY,
        source TEXT NOT NULL,
        guid TEXT,
        pruned TEXT NOT NULL
    ) WITHOUT ROWID;
    CREATE INDEX pruned_source_guid ON pruned(source, guid) WHERE guid IS NOT NULL;
    CREATE INDEX alerts_story ON alerts(story_id, notifier) WHERE story_id IS NOT NULL;
    CREATE INDEX matches_watchlist ON matches(watchlist, matched_at);
    """,
    # 9: a notifier found down is left alone until `retry_at`, also by the alerts written after
    # that (a cycle writes alerts while its delivery passes run).
    """
    CREATE TABLE notifier_holds (
        notifier TEXT PRIMARY KEY,
        retry_at TEXT NOT NULL
    ) WITHOUT ROWID;
    """,
    # 10: deliverers claim the alerts they are sending (Store.claim_alerts), so two of them
    # never take the same one; a claim lapses at claimed_until (its deliverer died).
    """
    ALTER TABLE alerts ADD COLUMN claimed_by TEXT;
    ALTER TABLE alerts ADD COLUMN claimed_until TEXT;
    """,
)


def migrate(db: Database) -> int:
    """Bring the schema up to date; returns the version reached."""
    if _version(db) >= len(MIGRATIONS):
        return len(MIGRATIONS)  # the common case takes no write lock
    db.execute("BEGIN IMMEDIATE")
    try:
        # Another process may have migrated between the read above and the lock.
        version = _version(db)
        for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
            for statement in statements(script):
                db.execute(statement)
            db.execute(f"PRAGMA user_version = {number}")
        db.execute("COMMIT")
    except BaseException:
        if db.conn.in_transaction:
            db.execute("ROLLBACK")
        raise
    return len(MIGRATIONS)


def statements(script: str) -> Iterator[str]:
    """The script's statements one by one (db.execute runs one; executescript would commit
    the migration's transaction). A ';' inside a trigger body does not end its statement."""
    pending = ""
    for piece in script.split(";"):
        pending += piece + ";"
        if sqlite3.complete_statement(pending):
            if pending.strip(" \n;"):
                yield pending
            pending = ""
    if pending.strip(" \n;"):
        raise ValueError(f"incomplete statement in a migration: {pending.strip()[:80]}")


def _version(db: Database) -> int:
    return db.execute("PRAGMA user_version").fetchone()[0]


# --- PostgreSQL ----------------------------------------------------------------------------
# The same tables, columns and indexes, step for step (step n here is SQLite's step n): ids are
# BIGINT identities, a signature is BYTEA, times stay ISO text so comparisons agree with
# SQLite's. alerts has a `rowid` column of its own, so `ORDER BY created, rowid` reads the same
# on both engines. There is no full-text index (step 7 is empty): Store.search_candidates
# returns the window's articles and the matcher decides.

POSTGRES_MIGRATIONS: tuple[str, ...] = (
    # 1
    """
    CREATE TABLE sources (
        name TEXT PRIMARY KEY,
        url TEXT NOT NULL,
        etag TEXT,
        last_modified TEXT,
        last_status INTEGER,
        last_fetch TEXT,
        last_success TEXT,
        last_error TEXT,
        consecutive_failures INTEGER NOT NULL DEFAULT 0
    );
    CREATE TABLE articles (
        id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
        source TEXT NOT NULL,
        url TEXT NOT NULL UNIQUE,
        link TEXT NOT NULL,
        guid TEXT,
        title TEXT NOT NULL DEFAULT '',
        summary TEXT NOT NULL DEFAULT '',
        text TEXT NOT NULL DEFAULT '',
        author TEXT,
        lang TEXT,
        published TEXT,
        first_seen TEXT NOT NULL,
        content_hash TEXT NOT NULL,
        state TEXT NOT NULL,
        fetch_error TEXT
    );
    CREATE UNIQUE INDEX articles_source_guid ON articles(source, guid) WHERE guid IS NOT NULL;
    CREATE INDEX articles_state ON articles(state);
    CREATE INDEX articles_first_seen ON articles(first_seen);
    CREATE TABLE matches (
        article_id BIGINT NOT NULL REFERENCES articles(id),
        watchlist TEXT NOT NULL,
        words TEXT NOT NULL,
        snippet TEXT NOT NULL,
        matched_at TEXT NOT NULL,
        PRIMARY KEY (article_id, watchlist)
    );
    CREATE TABLE alerts (
        id TEXT PRIMARY KEY,
        rowid BIGSERIAL NOT NULL,
        article_id BIGINT NOT NULL REFERENCES articles(id),
        watchlist TEXT NOT NULL,
        notifier TEXT NOT NULL,
        body TEXT NOT NULL,
        status TEXT NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        last_error TEXT,
        created TEXT NOT NULL,
        sent_at TEXT,
        UNIQUE (article_id, watchlist, notifier)
    );
    CREATE INDEX alerts_status ON alerts(status);
    """,
    # 2
    """
    ALTER TABLE articles ADD COLUMN duplicate_of BIGINT REFERENCES articles(id);
    ALTER TABLE articles ADD COLUMN skipped TEXT;
    """,
    # 3
    """
    CREATE TABLE stories (
        id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
        uid TEXT NOT NULL UNIQUE,
        created TEXT NOT NULL
    );
    ALTER TABLE articles ADD COLUMN story_id BIGINT REFERENCES stories(id);
    ALTER TABLE articles ADD COLUMN signature BYTEA;
    ALTER TABLE articles ADD COLUMN feed_hash TEXT;
    ALTER TABLE articles ADD COLUMN revision INTEGER NOT NULL DEFAULT 1;
    CREATE INDEX articles_story ON articles(story_id);
    CREATE TABLE revisions (
        article_id BIGINT NOT NULL REFERENCES articles(id),
        revision INTEGER NOT NULL,
        title TEXT NOT NULL,
        summary TEXT NOT NULL,
        text TEXT NOT NULL,
        replaced TEXT NOT NULL,
        PRIMARY KEY (article_id, revision)
    );
    ALTER TABLE alerts ADD COLUMN story_id BIGINT REFERENCES stories(id);
    CREATE UNIQUE INDEX alerts_once_per_story ON alerts(story_id, watchlist, notifier)
        WHERE story_id IS NOT NULL;
    """,
    # 4
    """
    ALTER TABLE alerts ADD COLUMN owed TEXT;
    """,
    # 5
    """
    ALTER TABLE articles ADD COLUMN body_hash TEXT;
    CREATE INDEX articles_body_hash ON articles(body_hash) WHERE body_hash IS NOT NULL;
    """,
    # 6: SQLite rebuilds the table; PostgreSQL alters it in place
    """
    ALTER TABLE alerts ADD COLUMN kind TEXT NOT NULL DEFAULT 'alert';
    ALTER TABLE alerts ALTER COLUMN article_id DROP NOT NULL;
    ALTER TABLE alerts ADD COLUMN queued TEXT;
    UPDATE alerts SET queued = created;
    ALTER TABLE alerts ALTER COLUMN queued SET NOT NULL;
    ALTER TABLE alerts ADD COLUMN retry_at TEXT;
    ALTER TABLE alerts ADD COLUMN backoff INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE alerts ADD COLUMN hold TEXT;
    ALTER TABLE alerts ADD COLUMN release_at TEXT;
    ALTER TABLE alerts ADD COLUMN bundle TEXT;
    ALTER TABLE alerts ADD COLUMN thread TEXT;
    DROP INDEX alerts_status;
    CREATE INDEX alerts_status ON alerts(status, notifier);
    DROP INDEX alerts_once_per_story;
    CREATE UNIQUE INDEX alerts_once_per_story ON alerts(story_id, watchlist, notifier)
        WHERE story_id IS NOT NULL AND kind = 'alert';
    CREATE INDEX alerts_bundle ON alerts(bundle) WHERE bundle IS NOT NULL;
    CREATE INDEX alerts_watchlist_created ON alerts(watchlist, created);
    ALTER TABLE sources ADD COLUMN failing_since TEXT;
    ALTER TABLE sources ADD COLUMN trouble TEXT;
    ALTER TABLE sources ADD COLUMN trouble_since TEXT;
    CREATE INDEX articles_source_seen ON articles(source, first_seen);
    """,
    # 7: no full-text index on PostgreSQL
    "",
    # 8
    """
    CREATE TABLE pruned (
        url TEXT PRIMARY KEY,
        source TEXT NOT NULL,
        guid TEXT,
        pruned TEXT NOT NULL
    );
    CREATE INDEX pruned_source_guid ON pruned(source, guid) WHERE guid IS NOT NULL;
    CREATE INDEX alerts_story ON alerts(story_id, notifier) WHERE story_id IS NOT NULL;
    CREATE INDEX matches_watchlist ON matches(watchlist, matched_at);
    """,
    # 9
    """
    CREATE TABLE notifier_holds (
        notifier TEXT PRIMARY KEY,
        retry_at TEXT NOT NULL
    );
    """,
    # 10
    """
    ALTER TABLE alerts ADD COLUMN claimed_by TEXT;
    ALTER TABLE alerts ADD COLUMN claimed_until TEXT;
    """,
)
# pg_advisory_xact_lock's key for migrations: any fixed number, the same in every process.
_MIGRATION_LOCK = 0x6D6F6E69746F72  # "monitor"


def migrate_postgres(db: PostgresDatabase) -> int:
    """Bring a PostgreSQL schema up to date; returns the version reached. The version is kept in
    a one-row table; the pending steps run in one transaction under an advisory lock, so role
    processes starting at once migrate exactly once (the others wait, then find it done)."""
    with db.atomic():
        db.execute("SELECT pg_advisory_xact_lock(?)", [_MIGRATION_LOCK])
        db.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
        row = db.execute("SELECT version FROM schema_version").fetchone()
        if row is None:
            db.execute("INSERT INTO schema_version (version) VALUES (0)")
        version = row[0] if row else 0
        for number, script in enumerate(POSTGRES_MIGRATIONS[version:], start=version + 1):
            for statement in script.split(";"):
                if statement.strip():
                    db.execute(statement)
            db.execute("UPDATE schema_version SET version = ?", [number])
    return len(POSTGRES_MIGRATIONS)
