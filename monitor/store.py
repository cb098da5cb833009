"""Every SQL statement lives here. The store decides what is new: an insert says whether the
article was already known (same canonical URL, or same GUID from the same source)."""

from __future__ import annotations

import fcntl
import functools
import inspect
import json
import os
import sqlite3
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
from sqlite_utils import Database

from monitor.errors import AlreadyRunning, StoreError
from monitor.language import detect_language
from monitor.migrations import migrate, migrate_postgres
from monitor.models import Entry, PageResult, PendingAlert, PollResult, StoredArticle
from monitor.normalize import canonical_url, content_hash, usable_url
from monitor.postgres import PostgresDatabase, is_postgres_url, without_password

# Article states: waiting for its page text, waiting to be matched, done.
FETCH, MATCH, DONE = "fetch", "match", "done"
# Outbox states: to be sent; sent; given up (kept, retryable by hand); held back for a digest or
# an hour's catch-up; carried by a digest or catch-up message (the `bundle` row).
PENDING, SENT, FAILED, HELD, BUNDLED = "pending", "sent", "failed", "held", "bundled"
# Why an alert is held: it goes out in its watchlist's next digest, or in the catch-up message
# at the end of the hour in which its watchlist reached max_per_hour.
HOLD_DIGEST, HOLD_CATCHUP = "digest", "catchup"
# How long a statement waits for another connection's lock before it fails with "database is
# locked". The monitor's own writers never wait on each other (the writer lock), so only an
# outside tool or a read-only command can hold the database this long.
BUSY_TIMEOUT = 5
# SQLite's result codes in words, so the one line a failure prints says what is wrong.
_PROBLEMS = {
    "SQLITE_BUSY": f"another connection held it for more than {BUSY_TIMEOUT} s",
    "SQLITE_LOCKED": "locked",
    "SQLITE_READONLY": "the database or its folder is read-only",
    "SQLITE_IOERR": "a read or write failed: disk full, file size limit or a failing disk",
    "SQLITE_CORRUPT": "the file is damaged",
    "SQLITE_NOTADB": "the file is not an SQLite database or is damaged",
    "SQLITE_CANTOPEN": "the file cannot be opened",
    "SQLITE_PERM": "permission denied",
}
# What either engine raises; each becomes a StoreError.
DATABASE_ERRORS = (sqlite3.Error, psycopg.Error)


def utcnow() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


@dataclass
class PollOutcome:
    new: list[int] = field(default_factory=list)
    revised: list[int] = field(default_factory=list)


@dataclass(frozen=True)
class NewAlert:
    id: str
    watchlist: str
    notifier: str
    body: str
    hold: str | None = None  # HOLD_DIGEST or HOLD_CATCHUP: held back instead of sent
    release_at: str | None = None  # a catch-up's: when its hour ends


@dataclass(frozen=True)
class MatchRecord:
    watchlist: str
    words: tuple[str, ...]
    snippet: str


def store_error(path: Path | str, exc: sqlite3.Error | psycopg.Error) -> StoreError:
    """The one place a database failure becomes a StoreError: the file (or the PostgreSQL URL
    without its password), the engine's words, and ours."""
    if isinstance(exc, psycopg.Error):
        words = str(exc).strip().splitlines()
        return StoreError(f"{path}: {words[0] if words else type(exc).__name__}")
    name = getattr(exc, "sqlite_errorname", "") or ""
    problem = next((text for code, text in _PROBLEMS.items()
                    if name == code or name.startswith(code + "_")), None)
    return StoreError(f"{path}: {exc}" + (f" ({problem})" if problem else ""))


def _guarded(method: Callable) -> Callable:
    @functools.wraps(method)
    def call(self: Store, *args: object, **kwargs: object) -> object:
        try:
            result = method(self, *args, **kwargs)
        except DATABASE_ERRORS as exc:
            raise store_error(self.path, exc) from exc
        # A lazy query runs its SQL while it is iterated, outside this frame.
        return _guarded_iterator(self.path, result) if inspect.isgenerator(result) else result
    return call


def _guarded_iterator(path: Path | str, rows: Iterator) -> Iterator:
    try:
        yield from rows
    except DATABASE_ERRORS as exc:
        raise store_error(path, exc) from exc


def _sqlite_errors_are_store_errors(cls: type) -> type:
    """Every public method of the store raises StoreError, never sqlite3.Error or psycopg.Error:
    callers handle one exception, and a transaction that failed has been rolled back by then
    (atomic())."""
    for name, member in list(vars(cls).items()):
        if inspect.isfunction(member) and not name.startswith("_"):
            setattr(cls, name, _guarded(member))
    return cls


@contextmanager
def writer_lock(database: Path) -> Iterator[None]:
    """One writer per database: `once` and `run` hold an exclusive flock on `<db>.lock`, with
    their pid written in it, for their whole life. The OS releases it when the process ends,
    however it ends, so a killed monitor never leaves a stale lock behind."""
    path = database.with_name(database.name + ".lock")
    fd = _open_lock_file(path)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise AlreadyRunning(
                f"another monitor is running on {database} (pid {_lock_holder(fd)})") from None
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        except OSError:
            pass  # a lock file we may only read still locks; the pid is a courtesy
        yield
    finally:
        os.close(fd)


def write_test(path: Path, timeout: float = 1.0) -> str | None:
    """None when a writer could start a transaction on the database now, else why not: the file
    or its folder read-only or gone, or another connection holding the write lock for more than
    `timeout` seconds. Takes the write lock and gives it back at once (BEGIN IMMEDIATE;
    ROLLBACK) on a connection of its own: nothing is written. For /healthz."""
    if not path.exists():
        return f"{path} does not exist"
    for target in (path, path.parent):
        if not os.access(target, os.W_OK):
            return f"{target} is read-only"
    try:
        connection = sqlite3.connect(f"{path.resolve().as_uri()}?mode=rw", uri=True,
                                     timeout=timeout, isolation_level=None)
    except sqlite3.Error as exc:
        return f"{path}: {exc}"
    try:
        connection.execute("BEGIN IMMEDIATE")
        connection.execute("ROLLBACK")
    except sqlite3.Error as exc:
        return f"{path}: {exc}"
    finally:
        connection.close()
    return None


def _open_lock_file(path: Path) -> int:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        return os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    except PermissionError:
        if path.exists():
            # flock needs no write access: someone else's lock file still serves.
            return os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        problem = "permission denied"
    except OSError as exc:
        problem = exc.strerror
    database = path.with_name(path.name.removesuffix(".lock"))
    raise StoreError(f"cannot open database {database}: cannot create its lock file {path}: {problem}")


def _lock_holder(fd: int) -> str:
    try:
        return os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "unknown"
    except OSError:
        return "unknown"


@_sqlite_errors_are_store_errors
class Store:
    def __init__(self, db: Database | PostgresDatabase, path: Path | str = "database") -> None:
        self.db = db
        self.path = path
        self.postgres = isinstance(db, PostgresDatabase)

    @classmethod
    def connect(cls, target: Path | str) -> Store:
        """A `postgresql://` URL opens (and migrates) that PostgreSQL database; anything else
        is an SQLite file, as Store.open."""
        if is_postgres_url(target):
            return cls.open_postgres(str(target))
        return cls.open(Path(target))

    @classmethod
    def open_postgres(cls, url: str) -> Store:
        shown = without_password(url)
        db = None
        try:
            db = PostgresDatabase(url)
            migrate_postgres(db)
        except psycopg.Error as exc:
            if db is not None:
                db.close()
            raise store_error(f"cannot open database {shown}", exc) from exc
        return cls(db, shown)

    @classmethod
    def open(cls, path: Path) -> Store:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"cannot open database {path}: {exc}") from exc
        db = None
        try:
            db = Database(path)
            db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT * 1000}")
            if db.execute("PRAGMA page_count").fetchone()[0] == 0:
                # Only a new, empty file can take this without a VACUUM: retention gives
                # deleted pages back to the file system a little at a time.
                db.execute("PRAGMA auto_vacuum = INCREMENTAL")
            db.enable_wal()
            # In WAL mode a commit is then a write to the log without an fsync: it survives the
            # process being killed, and only an OS crash or power loss may take back the last
            # commits (never half of one). The log is synced at each checkpoint.
            db.execute("PRAGMA synchronous = NORMAL")
            db.execute("PRAGMA foreign_keys = ON")
            migrate(db)
        except sqlite3.Error as exc:
            if db is not None:
                db.close()
            raise store_error(f"cannot open database {path}", exc) from exc
        return cls(db, path)

    @classmethod
    def open_reader(cls, path: Path, timeout: float = 1.0) -> Store:
        """A short-lived read-only connection to an existing database, for another thread than
        the daemon's (its own connection belongs to the loop's thread): /metrics. Never
        creates, migrates or writes."""
        try:
            connection = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True,
                                         timeout=timeout)
        except sqlite3.Error as exc:
            raise store_error(f"cannot open database {path}", exc) from exc
        return cls(Database(connection), path)

    def close(self) -> None:
        self.db.close()

    def transaction(self) -> AbstractContextManager[None]:
        """One transaction around several of the methods below (theirs become savepoints in
        it): a batch of articles is written with one commit, all of it or none. Never await
        inside it: another task's write (a sent mark) would join this transaction."""
        return self._transaction()

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        try:
            with self.db.atomic():
                yield
        except DATABASE_ERRORS as exc:  # the commit itself, or a statement run outside a method
            raise store_error(self.path, exc) from exc

    # --- sources -----------------------------------------------------------------------

    def fetch_state(self, source: str) -> tuple[str | None, str | None]:
        row = self.db.execute(FETCH_STATE, [source]).fetchone()
        return (row[0], row[1]) if row else (None, None)

    def save_poll_result(
        self, result: PollResult, url: str, full_text: bool, revisions: bool = False
    ) -> PollOutcome:
        """Store a poll's new articles and the source's fetch state in one transaction, so the
        ETag never moves past articles that were not written. With `revisions`, a known
        article of this source whose headline or summary changed becomes a new revision."""
        now = utcnow()
        outcome = PollOutcome()
        with self.db.atomic():
            for entry in result.entries:
                self._insert_entry(result.source, entry, full_text, revisions, now, outcome)
            self._record_fetch(result, url, now)
        return outcome

    def _insert_entry(self, source: str, entry: Entry, full_text: bool, revisions: bool, now: str,
                      outcome: PollOutcome) -> None:
        url = canonical_url(entry.url)
        feed_hash = content_hash(entry.title, entry.summary)
        known = self.db.execute(KNOWN_ARTICLE, [url, entry.guid, source]).fetchone()
        if known is None and self.db.execute(PRUNED_IDENTITY, [url, entry.guid, source]).fetchone():
            return  # deleted by retention long ago: still not new, never alerted again
        if known is None:
            # Another process may insert the same article between the look-up and here: its
            # row wins, and this one is known (no row back).
            inserted = self.db.execute(
                "INSERT INTO articles (source, url, link, guid, title, summary, lang, published,"
                " first_seen, content_hash, feed_hash, state)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING RETURNING id",
                [source, url, entry.url, entry.guid, entry.title, entry.summary,
                 # One judgement per article: a page's text, when one will be fetched, tells
                 # better than a headline and a summary.
                 None if full_text else detect_language(f"{entry.title}\n{entry.summary}"),
                 entry.published, now,
                 feed_hash, feed_hash, FETCH if full_text else MATCH],
            ).fetchall()
            outcome.new += [row[0] for row in inserted]
        elif revisions and known[1] == source and known[2] not in (None, feed_hash) and entry.title:
            self._revise(known[0], entry, feed_hash, full_text, now)
            outcome.revised.append(known[0])

    def _revise(self, article_id: int, entry: Entry, feed_hash: str, full_text: bool, now: str) -> None:
        """Keep the previous revision, take the new headline and summary, and send the article
        through text fetching and matching again (its story stays)."""
        self.db.execute(
            "INSERT INTO revisions (article_id, revision, title, summary, text, replaced)"
            " SELECT id, revision, title, summary, text, ? FROM articles WHERE id = ?",
            [now, article_id],
        )
        self.db.execute(
            "UPDATE articles SET title = ?, summary = ?, feed_hash = ?, revision = revision + 1,"
            " state = ? WHERE id = ?",
            [entry.title, entry.summary, feed_hash, FETCH if full_text else MATCH, article_id],
        )

    def _record_fetch(self, result: PollResult, url: str, now: str) -> None:
        self.db.execute(
            "INSERT INTO sources (name, url) VALUES (?, ?) "
            "ON CONFLICT(name) DO UPDATE SET url = excluded.url",
            [result.source, url],
        )
        if result.ok:
            self.db.execute(
                "UPDATE sources SET last_status = ?, last_fetch = ?, last_success = ?,"
                " last_error = NULL, consecutive_failures = 0, failing_since = NULL,"
                " etag = CASE WHEN ? = 304 THEN etag ELSE ? END,"
                " last_modified = CASE WHEN ? = 304 THEN last_modified ELSE ? END"
                " WHERE name = ?",
                [result.status, now, now, result.status, result.etag, result.status,
                 result.last_modified, result.source],
            )
        else:
            self.db.execute(
                "UPDATE sources SET last_status = ?, last_fetch = ?, last_error = ?,"
                " consecutive_failures = consecutive_failures + 1,"
                " failing_since = COALESCE(failing_since, ?) WHERE name = ?",
                [result.status, now, result.error, now, result.source],
            )

    def source_health(self) -> dict[str, dict]:
        """Per source: fetch state, last success and error, consecutive failures, and the
        articles first seen in the last 24 hours (for `monitor sources`; not for a cycle).
        The count is one range of the index articles(source, first_seen) per source."""
        since = (datetime.now(UTC) - timedelta(hours=24)).isoformat(timespec="seconds")
        rows = {row["name"]: row for row in self.db.query("SELECT * FROM sources ORDER BY name")}
        for name, row in rows.items():
            row["articles_24h"] = self.db.execute(ARTICLES_SINCE_OF_SOURCE, [name, since]).fetchone()[0]
        return rows

    def backoff_facts(self, sources: Iterable[str]) -> dict[str, dict]:
        """What backoff needs of these sources (consecutive failures, last fetch): one primary-
        key lookup each, whatever the size of the database. Sources never polled are absent."""
        facts = {}
        for name in sources:
            row = self.db.execute(BACKOFF_FACTS, [name]).fetchone()
            if row is not None:
                facts[name] = {"consecutive_failures": row[0], "last_fetch": row[1]}
        return facts

    def database_size(self) -> int:
        """Bytes on disk: the database file and its write-ahead log (on PostgreSQL, the
        database's size as pg_database_size counts it)."""
        if self.postgres:
            return self.db.execute("SELECT pg_database_size(current_database())").fetchone()[0]
        path = Path(self.path)
        return sum(p.stat().st_size for p in (path, path.with_name(path.name + "-wal"))
                   if p.exists())

    # --- articles ----------------------------------------------------------------------

    def articles_in_state(self, state: str, sources: Iterable[str] | None = None) -> list[StoredArticle]:
        names = None if sources is None else list(sources)
        rows = self.db.query(_articles_in_state_sql(names), [state, *(names or ())])
        return [_article(row) for row in rows]

    def articles_with_ids(self, article_ids: Iterable[int], state: str) -> list[StoredArticle]:
        """Those of these articles that are in `state`, by id: primary-key lookups."""
        ids = list(article_ids)
        found: list[StoredArticle] = []
        for chunk in _chunks(ids, 500):
            found += [_article(row) for row in self.db.query(_articles_with_ids_sql(len(chunk)),
                                                             [state, *chunk])]
        return found

    def articles_of(self, article_ids: Iterable[int]) -> list[StoredArticle]:
        """These articles whatever their state, by id: a cluster's matcher of one shard reads an
        article that another shard's may have marked done already."""
        ids = list(article_ids)
        found: list[StoredArticle] = []
        for chunk in _chunks(ids, 500):
            found += [_article(row) for row in self.db.query(
                f"SELECT * FROM articles WHERE id IN ({', '.join('?' * len(chunk))}) ORDER BY id", chunk)]
        return found

    def alerted_watchlists(self, story_id: int) -> set[str]:
        rows = self.db.execute(ALERTED_WATCHLISTS, [story_id])
        return {row[0] for row in rows}

    def articles_since(self, since: str) -> Iterator[StoredArticle]:
        rows = self.db.query(
            "SELECT * FROM articles WHERE first_seen >= ? AND duplicate_of IS NULL ORDER BY id",
            [since],
        )
        return (_article(row) for row in rows)

    # --- search (`monitor search`) -------------------------------------------------------

    def search_candidates(self, fts_query: str | None, since: str,
                          source: str | None = None) -> Iterator[StoredArticle]:
        """Articles first seen since `since` (of `source`), newest first, that the full-text
        index finds for `fts_query` (an FTS5 query); with None, every article of the window.
        Candidates only: the matcher decides. PostgreSQL has no full-text index here: it
        ignores `fts_query` and returns every article of the window."""
        sql = "SELECT a.* FROM articles a"
        params: list = []
        if fts_query is not None and not self.postgres:
            sql += " JOIN articles_fts f ON f.rowid = a.id AND articles_fts MATCH ?"
            params.append(fts_query)
        sql += " WHERE a.first_seen >= ? AND a.duplicate_of IS NULL"
        params.append(since)
        if source is not None:
            sql += " AND a.source = ?"
            params.append(source)
        rows = self.db.query(sql + " ORDER BY a.first_seen DESC, a.id DESC", params)
        return (_article(row) for row in rows)

    # --- retention (monitor/retention.py) -------------------------------------------------

    def empty_texts_before(self, before: str) -> int:
        """Empty the text and summary of the articles first seen before `before` that are done,
        and of their earlier revisions; title, link, times, matches and snippets stay. Returns
        the articles emptied."""
        with self.db.atomic():
            self.db.execute(
                "UPDATE revisions SET text = '', summary = '' WHERE (text != '' OR summary != '')"
                " AND article_id IN (SELECT id FROM articles WHERE first_seen < ?)", [before])
            return self.db.execute(
                "UPDATE articles SET text = '', summary = '' WHERE first_seen < ? AND state = ?"
                " AND (text != '' OR summary != '')", [before, DONE]).rowcount

    def prune_articles(self, before: str, batch: int = 500) -> tuple[int, int]:
        """Delete the articles first seen before `before`, with their matches, revisions, sent
        alerts and emptied stories, keeping their identity in `pruned` so the store never
        takes them for new again. An article that an alert still to be sent (pending, held or
        failed and retryable) refers to is kept. One transaction per `batch` articles, so a
        running daemon is never held up long. Returns (deleted, kept for alerts)."""
        deleted = 0
        while True:
            with self.db.atomic():
                ids = [row[0] for row in self.db.execute(
                    "SELECT id FROM articles WHERE first_seen < ? AND id NOT IN"
                    f" ({_ARTICLES_OWED_ALERTS}) ORDER BY first_seen LIMIT ?",
                    [before, PENDING, HELD, FAILED, batch])]
                if ids:
                    self._delete_articles(ids)
            deleted += len(ids)
            if len(ids) < batch:
                break
        kept = self.db.execute(
            f"SELECT count(*) FROM articles WHERE first_seen < ? AND id IN ({_ARTICLES_OWED_ALERTS})",
            [before, PENDING, HELD, FAILED]).fetchone()[0]
        with self.db.atomic():
            # Digests, catch-ups and notices (no article) that went out long ago.
            self.db.execute("DELETE FROM alerts WHERE article_id IS NULL AND status = ?"
                            " AND created < ?", [SENT, before])
        return deleted, kept

    def _delete_articles(self, ids: list[int]) -> None:
        marks = ", ".join("?" * len(ids))
        now = utcnow()
        self.db.execute(
            f"INSERT INTO pruned (url, source, guid, pruned) SELECT url, source, guid, ?"
            f" FROM articles WHERE id IN ({marks}) ON CONFLICT DO NOTHING", [now, *ids])
        stories = [row[0] for row in self.db.execute(
            f"SELECT DISTINCT story_id FROM articles WHERE id IN ({marks}) AND story_id IS NOT NULL",
            ids)]
        self.db.execute(f"DELETE FROM matches WHERE article_id IN ({marks})", ids)
        self.db.execute(f"DELETE FROM revisions WHERE article_id IN ({marks})", ids)
        self.db.execute(f"DELETE FROM alerts WHERE article_id IN ({marks})", ids)
        # A younger copy of a deleted article stands for itself from now on.
        self.db.execute(f"UPDATE articles SET duplicate_of = NULL WHERE duplicate_of IN ({marks})", ids)
        self.db.execute(f"DELETE FROM articles WHERE id IN ({marks})", ids)
        for story in stories:
            self.db.execute(
                "DELETE FROM stories WHERE id = ? AND NOT EXISTS (SELECT 1 FROM articles"
                " WHERE story_id = ?) AND NOT EXISTS (SELECT 1 FROM alerts WHERE story_id = ?)",
                [story, story, story])

    def reclaim_space(self) -> int:
        """Give the pages freed by deletions back to the file system; returns how many. A
        database made before incremental vacuum (migration 8's time) is rebuilt once with
        VACUUM, which needs as much free disk as the database and blocks while it copies.
        PostgreSQL's autovacuum does this on its own: 0 there."""
        if self.postgres:
            return 0
        if self.db.execute("PRAGMA auto_vacuum").fetchone()[0] != _INCREMENTAL:
            self.db.execute("PRAGMA auto_vacuum = INCREMENTAL")
            self.db.execute("VACUUM")
        free = self.db.execute("PRAGMA freelist_count").fetchone()[0]
        if free:
            self.db.execute(f"PRAGMA incremental_vacuum({free})").fetchall()
        # The file shrinks when the write-ahead log is copied back; then the log is emptied too
        # (a reader still in the log only makes this a partial checkpoint, never an error).
        self.db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
        return free

    # --- web pages (monitor/web: read-only, on a reader's connection) ------------------------

    def alerted_stories(self, watchlists: Iterable[str], since: str, source: str | None = None,
                        limit: int = 50, offset: int = 0) -> list[dict]:
        """The stories that alerted one of `watchlists` since `since`, the latest first: one
        row per story (a story of an old alert without one is its article), with the article
        and time of its first alert. Ranges of the index alerts(watchlist, created); the source
        is read from the article by its primary key."""
        names = list(watchlists)
        if not names:
            return []
        return list(self.db.query(_alerted_stories_sql(len(names), source is not None),
                                  _alerted_stories_params(names, since, source, limit, offset)))

    def story_alerts(self, story_ids: Iterable[int], article_ids: Iterable[int] = ()) -> list[dict]:
        """Every alert (kind 'alert') of these stories, and of these articles that have no story,
        oldest first, with the status of the digest or catch-up that carried a bundled one."""
        stories, articles = list(story_ids), list(article_ids)
        clauses = []
        if stories:
            clauses.append(f"a.story_id IN ({', '.join('?' for _ in stories)})")
        if articles:
            clauses.append(f"(a.story_id IS NULL AND a.article_id IN ({', '.join('?' for _ in articles)}))")
        if not clauses:
            return []
        return list(self.db.query(
            "SELECT a.id, a.story_id, a.article_id, a.watchlist, a.notifier, a.status,"
            " a.last_error, a.created, a.sent_at, a.body, a.bundle, b.status AS bundle_status"
            " FROM alerts a LEFT JOIN alerts b ON b.id = a.bundle"
            f" WHERE a.kind = 'alert' AND ({' OR '.join(clauses)}) ORDER BY a.created, a.rowid",
            [*stories, *articles]))

    def articles_by_id(self, article_ids: Iterable[int]) -> dict[int, dict]:
        """These articles' headline, links, source and times, by id."""
        ids = list(article_ids)
        if not ids:
            return {}
        return {row["id"]: row for row in self.db.query(
            f"SELECT {_PAGE_COLUMNS} FROM articles WHERE id IN ({', '.join('?' for _ in ids)})",
            ids)}

    def story_articles(self, story_id: int) -> list[dict]:
        """The articles of a story (its copies at other outlets), oldest first."""
        return list(self.db.query(
            f"SELECT {_PAGE_COLUMNS} FROM articles WHERE story_id = ? ORDER BY first_seen, id",
            [story_id]))

    def article_page(self, article_id: int) -> dict | None:
        """One article as stored, with its text; None when there is no such article."""
        rows = list(self.db.query(
            f"SELECT {_PAGE_COLUMNS}, summary, text, lang, author, revision, fetch_error, skipped,"
            " duplicate_of FROM articles WHERE id = ?", [article_id]))
        return rows[0] if rows else None

    def article_matches(self, article_id: int) -> list[dict]:
        """The watchlists the article matched, with their words (a list) and snippets."""
        return [row | {"words": json.loads(row["words"])} for row in self.db.query(
            "SELECT watchlist, words, snippet, matched_at FROM matches WHERE article_id = ?"
            " ORDER BY watchlist", [article_id])]

    def article_revisions(self, article_id: int) -> list[dict]:
        """The earlier revisions of the article (headline, summary, when replaced), oldest first."""
        return list(self.db.query(
            "SELECT revision, title, summary, replaced FROM revisions WHERE article_id = ?"
            " ORDER BY revision", [article_id]))

    def articles_per_day(self, source: str, since: str) -> dict[str, int]:
        """The source's articles first seen since `since`, per UTC day (YYYY-MM-DD): one range
        of the index articles(source, first_seen)."""
        return {row[0]: row[1] for row in self.db.execute(ARTICLES_PER_DAY, [source, since])}

    def watchlist_alert_times(self, watchlist: str, since: str) -> list[tuple[str, str]]:
        """(first alert time, story key) of each story that alerted the watchlist since
        `since`: a range of the index alerts(watchlist, created)."""
        return [(row[1], row[0]) for row in self.db.execute(WATCHLIST_ALERT_TIMES, [watchlist, since])]

    def last_alert(self, watchlist: str) -> dict | None:
        """The watchlist's newest alert with its article's headline and link: one seek in the
        index alerts(watchlist, created)."""
        rows = list(self.db.query(LAST_ALERT, [watchlist]))
        return rows[0] if rows else None

    # --- export (`monitor export`, the Atom feeds) ------------------------------------------

    def articles_for_export(self, since: str) -> Iterator[dict]:
        """The articles first seen since `since` (copies under another URL left out), newest
        first, with the columns an export shows."""
        return self.db.query(
            f"SELECT {_EXPORT_COLUMNS} FROM articles a LEFT JOIN stories s ON s.id = a.story_id"
            " WHERE a.first_seen >= ? AND a.duplicate_of IS NULL"
            " ORDER BY a.first_seen DESC, a.id DESC", [since])

    def matched_stories(self, watchlist: str, since: str) -> list[dict]:
        """The stories the watchlist matched since `since`, newest first: one row per story,
        its first matched article with the match's words (a list) and snippet."""
        rows = self.db.query(
            f"SELECT {_EXPORT_COLUMNS}, m.words, m.snippet, m.matched_at FROM matches m"
            " JOIN articles a ON a.id = m.article_id LEFT JOIN stories s ON s.id = a.story_id"
            " WHERE m.watchlist = ? AND m.matched_at >= ? ORDER BY m.matched_at, a.id",
            [watchlist, since])
        stories: dict[object, dict] = {}
        for row in rows:
            stories.setdefault(row["story_id"] or f"article {row['id']}",
                               row | {"words": json.loads(row["words"])})
        return list(reversed(stories.values()))

    def save_page(self, page: PageResult) -> None:
        """One page: see save_pages."""
        self.save_pages([page])

    def save_pages(self, pages: Iterable[PageResult]) -> None:
        """The pages' main text (or why there is none), in one transaction; each article moves
        on to matching either way, so a page that cannot be read never holds back an alert on
        its headline.

        When a page names a canonical URL that another stored article already has, its article
        is a copy under another URL: it is recorded as such and not matched."""
        with self.db.atomic():
            for page in pages:
                self._save_page(page)

    def _save_page(self, page: PageResult) -> None:
        row = self.db.execute(
            "SELECT title, summary, url FROM articles WHERE id = ? AND state = ?", [page.article_id, FETCH]
        ).fetchone()
        if row is None:
            # Gone, or its page was stored already: a page fetched twice (a cluster's crawler
            # whose task was taken again) never sends a matched article back to matching.
            return
        if page.canonical_url and not page.error and self._join_canonical(
            page.article_id, row[2], page.canonical_url
        ):
            return
        title = row[0] or page.title or ""
        text = page.text or ""
        # No language from the page (no text, too short, no <html lang>): the feed's words judge.
        lang = page.lang or detect_language(f"{title}\n{row[1] or ''}")
        self.db.execute(
            "UPDATE articles SET title = ?, text = ?, author = COALESCE(?, author),"
            " lang = COALESCE(?, lang), published = COALESCE(published, ?),"
            " content_hash = ?, fetch_error = ?, state = ? WHERE id = ?",
            [title, text, page.author, lang, page.published,
             content_hash(title, text or row[1]), page.error, MATCH, page.article_id],
        )

    def _join_canonical(self, article_id: int, url: str, page_canonical: str) -> bool:
        # extract_article already refused canonical links to other sites and schemes.
        canonical = usable_url(page_canonical)
        if canonical is None or canonical == url:
            return False
        original = self.db.execute("SELECT id FROM articles WHERE url = ?", [canonical]).fetchone()
        if original is None:
            # The first form seen of this article: it is known by its canonical URL from now on.
            self.db.execute("UPDATE articles SET url = ? WHERE id = ?", [canonical, article_id])
            return False
        self.db.execute(
            "UPDATE articles SET duplicate_of = ?, state = ?, skipped = ? WHERE id = ?",
            [original[0], DONE, f"same canonical URL as article {original[0]}", article_id],
        )
        return True

    def drop_texts(self, sources: Iterable[str]) -> int:
        """Empty the page text and summary of these sources' articles that are done (matched or
        skipped), and of their earlier revisions: the sources' terms allow no stored copies.
        Title, link, times, matches and their snippets stay. Returns the articles emptied."""
        names = list(sources)
        where = f"source IN ({', '.join('?' for _ in names)})"
        with self.db.atomic():
            self.db.execute(
                "UPDATE revisions SET text = '', summary = '' WHERE (text != '' OR summary != '')"
                f" AND article_id IN (SELECT id FROM articles WHERE {where})", names)
            return self.db.execute(
                "UPDATE articles SET text = '', summary = '' WHERE state = ?"
                f" AND (text != '' OR summary != '') AND {where}", [DONE, *names]).rowcount

    def skip(self, article_id: int, reason: str) -> None:
        """An article that is stored but not matched (e.g. a language the source does not want)."""
        with self.db.atomic():
            self.db.execute("UPDATE articles SET state = ?, skipped = ? WHERE id = ?",
                            [DONE, reason, article_id])

    def save_matches(
        self, article_id: int, matches: Iterable[MatchRecord], alerts: Iterable[NewAlert],
        story_id: int | None = None, skipped: str | None = None,
    ) -> int:
        """Record the article's matches and their alerts (the outbox) and mark the article done,
        in one transaction: an alert is written down before anything tries to send it.
        `skipped` says why matching stopped short, when it did."""
        now = utcnow()
        created = 0
        with self.db.atomic():
            for match in matches:
                self.db.execute(
                    "INSERT INTO matches (article_id, watchlist, words, snippet, matched_at)"
                    " VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                    [article_id, match.watchlist, json.dumps(match.words, ensure_ascii=False),
                     match.snippet, now],
                )
            for alert in alerts:
                # One alert per (story, watchlist, notifier): a copy or a revision of a story that
                # already alerted is recorded above as a match, and ignored here.
                cursor = self.db.execute(
                    "INSERT INTO alerts (id, article_id, story_id, watchlist, notifier,"
                    " body, status, created, queued, hold, release_at, thread, retry_at)"
                    f" VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, {_NOTIFIER_HOLD})"
                    " ON CONFLICT DO NOTHING",
                    [alert.id, article_id, story_id, alert.watchlist, alert.notifier, alert.body,
                     HELD if alert.hold else PENDING, now, now, alert.hold, alert.release_at,
                     self._thread(story_id, alert.notifier), alert.notifier, now],
                )
                created += cursor.rowcount
            self.db.execute("UPDATE articles SET state = ?, skipped = COALESCE(?, skipped) WHERE id = ?",
                            [DONE, skipped, article_id])
        return created

    # --- stories ---------------------------------------------------------------------------

    def assign_story(self, article_id: int, story_id: int | None, signature: bytes | None,
                     body_hash: str | None = None) -> int:
        """Put the article in the given story, or in a new one of its own."""
        with self.db.atomic():
            if story_id is None:
                story_id = self.db.execute(
                    "INSERT INTO stories (uid, created) VALUES (?, ?) RETURNING id",
                    [uuid.uuid4().hex, utcnow()]).fetchone()[0]
            self.db.execute("UPDATE articles SET story_id = ?, signature = ?, body_hash = ? WHERE id = ?",
                            [story_id, signature, body_hash, article_id])
        return story_id

    def story_with_body_hash(self, body_hash: str, since: str) -> int | None:
        """The story of the earliest article first seen since `since` with this body hash."""
        row = self.db.execute(STORY_WITH_BODY_HASH, [body_hash, since]).fetchone()
        return row[0] if row else None

    def merge_stories(self, into: int, others: Iterable[int]) -> None:
        """Move every article of `others` into story `into` and drop the emptied stories.
        Only for stories without alerts: an alert sent under a story cannot be taken back."""
        others = [story for story in others if story != into]
        if not others:
            return
        marks = ", ".join("?" * len(others))
        with self.db.atomic():
            self.db.execute(f"UPDATE articles SET story_id = ? WHERE story_id IN ({marks})", [into, *others])
            self.db.execute(f"DELETE FROM stories WHERE id IN ({marks})", others)

    def story_of(self, article_id: int) -> tuple[int, str] | None:
        row = self.db.execute(STORY_OF, [article_id]).fetchone()
        return (row[0], row[1]) if row else None

    def story_urls(self, story_id: int) -> list[str]:
        """Every URL the story is known under, oldest first."""
        rows = self.db.execute(STORY_URLS, [story_id])
        return [row[0] for row in rows]

    def signatures_since(self, since: str) -> list[tuple[int, bytes, str]]:
        """(article id, signature, first seen) of the articles the story index should hold."""
        return [tuple(row) for row in self.db.execute(
            "SELECT id, signature, first_seen FROM articles WHERE signature IS NOT NULL"
            " AND first_seen >= ? ORDER BY id", [since])]

    # --- the outbox --------------------------------------------------------------------

    def _thread(self, story_id: int | None, notifier: str) -> str | None:
        """The first alert of the story to this notifier, which a later one threads under."""
        if story_id is None:
            return None
        row = self.db.execute(THREAD_OF_STORY, [story_id, notifier]).fetchone()
        return row[0] if row else None

    def pending_alerts(self, now: str | None = None) -> list[PendingAlert]:
        """The outbox rows to send, oldest first; with `now`, only those whose backoff is over."""
        params: list = [PENDING] if now is None else [PENDING, now]
        rows = self.db.query(_pending_alerts_sql(now is not None), params)
        return [_pending(row) for row in rows]

    def claim_alerts(self, owner: str, now: str, until: str, limit: int) -> list[PendingAlert]:
        """Take up to `limit` of the oldest pending alerts that are due (no retry_at, or one
        that has come) and not claimed by a live claim (none, or one that ended before `now`):
        they are marked claimed by `owner` until `until` and returned oldest first. On
        PostgreSQL the rows are chosen FOR UPDATE SKIP LOCKED, so deliverers claiming at once
        get disjoint sets; SQLite has one writer at a time."""
        with self.db.atomic():
            rows = list(self.db.query(_claim_alerts_sql(self.postgres),
                                      [owner, until, PENDING, now, now, limit]))
        rows.sort(key=lambda row: (row["created"], row["rowid"]))
        return [_pending({k: v for k, v in row.items() if k != "rowid"}) for row in rows]

    def add_message(self, alert: PendingAlert) -> None:
        """A message of its own in the outbox (a digest, a catch-up, a source notice)."""
        now = utcnow()
        with self.db.atomic():
            self._insert_message(alert, now)

    def _insert_message(self, alert: PendingAlert, now: str) -> None:
        self.db.execute(
            "INSERT INTO alerts (id, kind, article_id, story_id, watchlist, notifier, body, status,"
            f" created, queued, retry_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, {_NOTIFIER_HOLD})",
            [alert.id, alert.kind, alert.article_id, alert.story_id, alert.watchlist,
             alert.notifier, alert.body, PENDING, alert.created or now, now, alert.notifier, now])

    def mark_sent(self, alert_id: str) -> None:
        """One commit per sent alert, on purpose: a sent mark held back to share a commit with
        the next ones would be lost with the process, and its alert sent again. In WAL with
        synchronous=NORMAL the commit costs no fsync."""
        with self.db.atomic():
            self.db.execute(
                "UPDATE alerts SET status = ?, sent_at = ?, attempts = attempts + 1,"
                f" last_error = NULL, retry_at = NULL, {_UNCLAIMED} WHERE id = ?",
                [SENT, utcnow(), alert_id],
            )

    def mark_failed(self, alert_id: str, error: str, owed: Iterable[str] | None = None) -> None:
        """A failed attempt; with `owed`, the attempt reached some recipients and only these
        are still to be sent the alert (the others must not get it twice). Its claim ends: any
        deliverer may try it again."""
        with self.db.atomic():
            self.db.execute(
                "UPDATE alerts SET attempts = attempts + 1, last_error = ?,"
                f" owed = COALESCE(?, owed), {_UNCLAIMED} WHERE id = ?",
                [error, None if owed is None else json.dumps(list(owed), ensure_ascii=False),
                 alert_id],
            )

    def defer(self, alert_id: str, retry_at: str, backoff: int) -> None:
        """Leave the alert for a later pass: not tried before `retry_at` (and no longer claimed)."""
        with self.db.atomic():
            self.db.execute(f"UPDATE alerts SET retry_at = ?, backoff = ?, {_UNCLAIMED} WHERE id = ?",
                            [retry_at, backoff, alert_id])

    def backoff_of(self, alert_id: str) -> int:
        row = self.db.execute("SELECT backoff FROM alerts WHERE id = ?", [alert_id]).fetchone()
        return row[0] if row else 0

    def defer_notifier(self, notifier: str, retry_at: str) -> None:
        """A notifier that is unreachable: none of its pending alerts is tried before `retry_at`,
        nor any written for it until then."""
        with self.db.atomic():
            self.db.execute(
                "INSERT INTO notifier_holds (notifier, retry_at) VALUES (?, ?) ON CONFLICT(notifier)"
                " DO UPDATE SET retry_at = CASE WHEN excluded.retry_at > notifier_holds.retry_at"
                " THEN excluded.retry_at ELSE notifier_holds.retry_at END", [notifier, retry_at])
            self.db.execute(
                f"UPDATE alerts SET retry_at = ?, {_UNCLAIMED} WHERE notifier = ? AND status = ?"
                " AND (retry_at IS NULL OR retry_at < ?)", [retry_at, notifier, PENDING, retry_at])

    def give_up(self, alert_id: str, error: str) -> None:
        """No more automatic attempts: the alert is kept as failed, visible and retryable."""
        with self.db.atomic():
            self.db.execute("UPDATE alerts SET status = ?, last_error = ?, retry_at = NULL,"
                            f" {_UNCLAIMED} WHERE id = ?", [FAILED, error, alert_id])

    def give_up_expired(self, notifier: str, queued_before: str, reason: str) -> int:
        """Fail the notifier's pending alerts queued before `queued_before`; returns how many."""
        with self.db.atomic():
            return self.db.execute(
                f"UPDATE alerts SET status = ?, retry_at = NULL, {_UNCLAIMED},"
                " last_error = ? || COALESCE('; last error: ' || last_error, '')"
                " WHERE notifier = ? AND status = ? AND queued < ?",
                [FAILED, reason, notifier, PENDING, queued_before]).rowcount

    def retry_failed(self, alert_ids: Iterable[str] | None = None) -> int:
        """Put failed alerts (these, or all) back in the outbox with a fresh give-up clock."""
        now = utcnow()
        sql = (f"UPDATE alerts SET status = ?, queued = ?, retry_at = NULL, backoff = 0, {_UNCLAIMED}"
               " WHERE status = ?")
        params: list = [PENDING, now, FAILED]
        if alert_ids is not None:
            ids = list(alert_ids)
            sql += f" AND id IN ({', '.join('?' for _ in ids)})"
            params += ids
        with self.db.atomic():
            self.db.execute("DELETE FROM notifier_holds")  # tried now, whoever was left alone
            return self.db.execute(sql, params).rowcount

    def count_pending_alerts(self) -> int:
        return self.db.execute("SELECT count(*) FROM alerts WHERE status = ?", [PENDING]).fetchone()[0]

    def outbox_counts(self) -> dict[str, int]:
        """Outbox rows per status (pending, sent, failed, held, bundled)."""
        return {row[0]: row[1] for row in self.db.execute(
            "SELECT status, count(*) FROM alerts GROUP BY status")}


    # --- metrics (/metrics, at scrape time: ranges of indexes, never a scan) ------------

    def outbox_depth(self) -> dict[tuple[str, str], int]:
        """(status, notifier) → alerts not done with: pending, held and failed. Three ranges of
        the index alerts(status, notifier); sent and bundled rows, which grow for ever, are
        not counted."""
        return {(row[0], row[1]): row[2] for row in self.db.execute(
            "SELECT status, notifier, count(*) FROM alerts WHERE status IN (?, ?, ?)"
            " GROUP BY status, notifier", [PENDING, HELD, FAILED])}

    def oldest_pending_alert(self) -> str | None:
        """When the oldest alert still waiting to be sent was created (None: none waits)."""
        return self.db.execute("SELECT min(created) FROM alerts WHERE status = ?",
                               [PENDING]).fetchone()[0]

    def source_successes(self) -> dict[str, tuple[str | None, int]]:
        """Per polled source: its last successful poll (None: never) and its failures since."""
        return {row[0]: (row[1], row[2]) for row in self.db.execute(
            "SELECT name, last_success, consecutive_failures FROM sources")}

    # --- source trouble (operations notices) -------------------------------------------

    def trouble_facts(self, source: str) -> dict | None:
        """What the trouble check needs about one source: its fetch failures, the trouble last
        reported, and when its newest article was first seen. None before its first poll.
        Cheap at any size: the newest article is one seek in the index articles(source,
        first_seen)."""
        row = self.db.execute(TROUBLE_FACTS, [source]).fetchone()
        if row is None:
            return None
        facts = dict(zip(("name", "url", "failing_since", "consecutive_failures", "last_error",
                          "trouble", "trouble_since"), row, strict=True))
        facts["last_new"] = self.db.execute(LAST_NEW_OF_SOURCE, [source]).fetchone()[0]
        return facts

    def articles_seen_between(self, source: str, start: str, end: str) -> int:
        """The source's articles first seen from `start` to `end` (both included): a range of the
        index articles(source, first_seen), never a scan of the table."""
        return self.db.execute(ARTICLES_SEEN_BETWEEN, [source, start, end]).fetchone()[0]

    def set_source_trouble(self, source: str, trouble: str | None, since: str | None,
                           notices: Iterable[PendingAlert] = ()) -> None:
        """Remember the trouble reported for the source (None: none) and put its notices in the
        outbox, in one transaction: a notice is written exactly when the state changes, so a
        restart neither repeats nor loses one."""
        now = utcnow()
        with self.db.atomic():
            self.db.execute("UPDATE sources SET trouble = ?, trouble_since = ? WHERE name = ?",
                            [trouble, since, source])
            for notice in notices:
                self._insert_message(notice, now)

    # --- alert listing (`monitor alerts`) ----------------------------------------------

    def list_alerts(self, statuses: Iterable[str] = (), since: str | None = None,
                    watchlist: str | None = None, notifier: str | None = None,
                    limit: int | None = None) -> list[dict]:
        """Outbox rows, newest first, with the status of the digest or catch-up that carried a
        bundled one. A digest's `watchlist` names its watchlists comma-separated; `watchlist`
        matches any of them."""
        where, params = _alert_filter(statuses, since, watchlist, notifier)
        sql = ("SELECT a.id, a.kind, a.watchlist, a.notifier, a.status, a.attempts, a.created,"
               " a.retry_at, a.last_error, a.body, a.bundle, b.status AS bundle_status"
               " FROM alerts a LEFT JOIN alerts b ON b.id = a.bundle"
               f"{where} ORDER BY a.created DESC, a.rowid DESC")
        if limit is not None:
            sql += " LIMIT ?"
            params.append(limit)
        return list(self.db.query(sql, params))

    def count_alerts(self, statuses: Iterable[str] = (), since: str | None = None,
                     watchlist: str | None = None, notifier: str | None = None) -> dict[str, int]:
        """Per status, the outbox rows list_alerts would give without a limit."""
        where, params = _alert_filter(statuses, since, watchlist, notifier)
        return {row[0]: row[1] for row in self.db.execute(
            f"SELECT a.status, count(*) FROM alerts a{where} GROUP BY a.status", params)}

    def alert_statuses(self, alert_ids: Iterable[str]) -> dict[str, str]:
        """The status of each of these alerts that exists."""
        ids = list(alert_ids)
        if not ids:
            return {}
        return {row[0]: row[1] for row in self.db.execute(
            f"SELECT id, status FROM alerts WHERE id IN ({', '.join('?' for _ in ids)})", ids)}

    # --- held alerts: digests and catch-ups (monitor/alerts/digest.py) ----------------------

    def immediate_stories_since(self, watchlist: str, since: str) -> int:
        """The stories of the watchlist that went out as immediate alerts (sent or on their way,
        not held back) from `since` on. A story alerts each of the watchlist's notifiers, so its
        stories are counted, not its outbox rows."""
        return self.db.execute(IMMEDIATE_STORIES_SINCE,
                               [watchlist, since, HELD, BUNDLED]).fetchone()[0]

    def held_alerts(self, hold: str, watchlists: Iterable[str] | None = None,
                    due: str | None = None) -> list[HeldAlert]:
        """Alerts held back for `hold` (of these watchlists; with `due`, only those whose
        release time has come), oldest first."""
        names = None if watchlists is None else list(watchlists)
        params: list = [HELD, hold, *(names or ()), *(() if due is None else (due,))]
        sql = _held_alerts_sql(names, due is not None)
        return [HeldAlert(**row) for row in self.db.query(sql, params)]

    def bundle_held(self, message: PendingAlert, alert_ids: Iterable[str]) -> bool:
        """Put `message` (a digest or catch-up) in the outbox and mark the held alerts it carries
        as bundled into it, in one transaction: a held alert is in exactly one message, whatever
        stops the monitor when. False (and nothing written) when one of them was no longer held."""
        ids = list(alert_ids)
        now = utcnow()
        try:
            with self.db.atomic():
                self._insert_message(message, now)
                for chunk in _chunks(ids, 500):
                    changed = self.db.execute(
                        f"UPDATE alerts SET status = ?, bundle = ? WHERE status = ?"
                        f" AND id IN ({', '.join('?' for _ in chunk)})",
                        [BUNDLED, message.id, HELD, *chunk]).rowcount
                    if changed != len(chunk):
                        raise _AlreadyBundled
        except _AlreadyBundled:
            return False
        return True

    def last_message_created(self, kind: str, watchlist: str, notifier: str) -> str | None:
        """When the last message of this kind for these watchlists to this notifier was made."""
        return self.db.execute(
            "SELECT max(created) FROM alerts WHERE kind = ? AND watchlist = ? AND notifier = ?",
            [kind, watchlist, notifier]).fetchone()[0]

    def message_status(self, message_id: str) -> str | None:
        row = self.db.execute("SELECT status FROM alerts WHERE id = ?", [message_id]).fetchone()
        return row[0] if row else None


# --- hot-path statements ---------------------------------------------------------------
# The statements every cycle runs, by name, so tests/test_query_plans.py can check with
# EXPLAIN QUERY PLAN that each is backed by an index: a cycle must not cost more as the
# database grows.

KNOWN_ARTICLE = ("SELECT id, source, feed_hash FROM articles WHERE url = ? OR (guid = ? AND source = ?)"
                 " ORDER BY id LIMIT 1")
PRUNED_IDENTITY = "SELECT 1 FROM pruned WHERE url = ? OR (guid = ? AND source = ?) LIMIT 1"
FETCH_STATE = "SELECT etag, last_modified FROM sources WHERE name = ?"
BACKOFF_FACTS = "SELECT consecutive_failures, last_fetch FROM sources WHERE name = ?"
ARTICLES_SINCE_OF_SOURCE = "SELECT count(*) FROM articles WHERE source = ? AND first_seen >= ?"
ALERTED_WATCHLISTS = "SELECT DISTINCT watchlist FROM alerts WHERE story_id = ?"
STORY_WITH_BODY_HASH = ("SELECT story_id FROM articles WHERE body_hash = ? AND story_id IS NOT NULL"
                        " AND first_seen >= ? ORDER BY first_seen, id LIMIT 1")
STORY_OF = "SELECT s.id, s.uid FROM articles a JOIN stories s ON s.id = a.story_id WHERE a.id = ?"
STORY_URLS = "SELECT url FROM articles WHERE story_id = ? ORDER BY first_seen, id"
THREAD_OF_STORY = ("SELECT id FROM alerts WHERE story_id = ? AND notifier = ? AND kind = 'alert'"
                   " ORDER BY created, rowid LIMIT 1")
TROUBLE_FACTS = ("SELECT name, url, failing_since, consecutive_failures, last_error, trouble,"
                 " trouble_since FROM sources WHERE name = ?")
LAST_NEW_OF_SOURCE = "SELECT max(first_seen) FROM articles WHERE source = ?"
ARTICLES_SEEN_BETWEEN = ("SELECT count(*) FROM articles WHERE source = ? AND first_seen >= ?"
                         " AND first_seen <= ?")
# A story's key among alerts: its story, or for an alert without one, its article.
STORY_KEY = "COALESCE('s' || a.story_id, 'a' || a.article_id)"
ARTICLES_PER_DAY = ("SELECT substr(first_seen, 1, 10) AS day, count(*) FROM articles"
                    " WHERE source = ? AND first_seen >= ? GROUP BY day")
WATCHLIST_ALERT_TIMES = (f"SELECT {STORY_KEY} AS story_key, min(a.created) FROM alerts a"
                         " WHERE a.watchlist = ? AND a.created >= ? AND a.kind = 'alert'"
                         " GROUP BY story_key")
LAST_ALERT = ("SELECT a.created, a.article_id, r.title, r.link, r.url, r.source FROM alerts a"
              " LEFT JOIN articles r ON r.id = a.article_id"
              " WHERE a.watchlist = ? AND a.kind = 'alert' ORDER BY a.created DESC LIMIT 1")
_PAGE_COLUMNS = "id, source, title, link, url, published, first_seen, story_id"
IMMEDIATE_STORIES_SINCE = (
    "SELECT count(DISTINCT COALESCE('s' || story_id, 'a' || article_id)) FROM alerts"
    " WHERE watchlist = ? AND kind = 'alert' AND created >= ? AND status NOT IN (?, ?)")


def _articles_in_state_sql(sources: list[str] | None) -> str:
    sql = "SELECT * FROM articles WHERE state = ?"
    if sources is not None:
        sql += f" AND source IN ({', '.join('?' for _ in sources)})"
    return sql + " ORDER BY id"


def _articles_with_ids_sql(count: int) -> str:
    return f"SELECT * FROM articles WHERE state = ? AND id IN ({', '.join('?' * count)}) ORDER BY id"


def _alerted_stories_sql(watchlists: int, of_source: bool) -> str:
    """Each story's first alert among these watchlists' alerts since a time (of a source): an
    alert of the range with no earlier one of its story in the range (the same second: the
    first written). Found through the story's alerts, alerts(story_id, notifier), or for an
    alert without a story, its article's, alerts(article_id, watchlist, notifier)."""
    def in_range(alias: str) -> str:
        sql = (f"{alias}.watchlist IN ({', '.join('?' * watchlists)}) AND {alias}.created >= ?"
               f" AND {alias}.kind = 'alert'")
        if of_source:
            sql += f" AND (SELECT r.source FROM articles r WHERE r.id = {alias}.article_id) = ?"
        return sql
    earlier = ("SELECT 1 FROM alerts e WHERE {key} AND " + in_range("e")
               + " AND (e.created < a.created OR (e.created = a.created AND e.rowid < a.rowid))")
    first_of_story = earlier.format(key="e.story_id = a.story_id")
    first_of_article = earlier.format(key="e.article_id = a.article_id AND e.story_id IS NULL")
    # Stories that alerted in the same second: the later article first.
    return (f"SELECT {STORY_KEY} AS story_key, a.story_id, a.article_id, a.watchlist,"
            f" a.created AS first_alert FROM alerts a WHERE {in_range('a')}"
            f" AND (a.story_id IS NULL OR NOT EXISTS ({first_of_story}))"
            f" AND (a.story_id IS NOT NULL OR NOT EXISTS ({first_of_article}))"
            " ORDER BY first_alert DESC, a.article_id DESC LIMIT ? OFFSET ?")


def _alerted_stories_params(names: list[str], since: str, source: str | None, limit: int,
                            offset: int) -> list:
    in_range = [*names, since, *(() if source is None else (source,))]
    return [*in_range, *in_range, *in_range, limit, offset]


def web_page_statements() -> dict[str, tuple[str, list]]:
    """The pages' statements whose cost could grow with the database, with sample parameters:
    each must be answered from an index (tests/test_web_pages.py checks the plans)."""
    now = utcnow()
    return {
        "alerted_stories": (_alerted_stories_sql(2, False),
                            _alerted_stories_params(["w", "v"], now, None, 51, 0)),
        "alerted_stories of a source": (_alerted_stories_sql(1, True),
                                        _alerted_stories_params(["w"], now, "svt", 51, 0)),
        "articles_per_day": (ARTICLES_PER_DAY, ["svt", now]),
        "watchlist_alert_times": (WATCHLIST_ALERT_TIMES, ["w", now]),
        "last_alert": (LAST_ALERT, ["w"]),
        "story_urls": (STORY_URLS, [1]),
    }


def _pending_alerts_sql(due_only: bool) -> str:
    sql = f"SELECT {_PENDING_COLUMNS} FROM alerts WHERE status = ?"
    if due_only:
        sql += " AND (retry_at IS NULL OR retry_at <= ?)"
    return sql + " ORDER BY created, rowid"


def _claim_alerts_sql(skip_locked: bool) -> str:
    """Claim the oldest due, unclaimed pending alerts (parameters: owner, until, the pending
    status, now, now, limit). The one clause SQLite lacks, and needs not, is the row lock."""
    return (f"UPDATE alerts SET claimed_by = ?, claimed_until = ? WHERE id IN (SELECT id FROM alerts"
            " WHERE status = ? AND (retry_at IS NULL OR retry_at <= ?)"
            " AND (claimed_until IS NULL OR claimed_until < ?) ORDER BY created, rowid LIMIT ?"
            f"{' FOR UPDATE SKIP LOCKED' if skip_locked else ''}) RETURNING rowid, {_PENDING_COLUMNS}")


def _held_alerts_sql(watchlists: list[str] | None, due_only: bool) -> str:
    sql = f"SELECT {_HELD_COLUMNS} FROM alerts WHERE status = ? AND hold = ? AND kind = 'alert'"
    if watchlists is not None:
        sql += f" AND watchlist IN ({', '.join('?' for _ in watchlists)})"
    if due_only:
        sql += " AND release_at <= ?"
    return sql + " ORDER BY created, rowid"


def hot_path_statements() -> dict[str, tuple[str, list]]:
    """Each statement of a cycle, by name, with sample parameters: the SQL the store runs."""
    now = utcnow()
    return {
        "insert_entry: known article": (KNOWN_ARTICLE, ["https://x/a", "guid", "svt"]),
        "insert_entry: pruned identity": (PRUNED_IDENTITY, ["https://x/a", "guid", "svt"]),
        "articles_in_state": (_articles_in_state_sql(None), [MATCH]),
        "articles_in_state of sources": (_articles_in_state_sql(["svt", "dn"]), [FETCH, "svt", "dn"]),
        "articles_with_ids": (_articles_with_ids_sql(2), [MATCH, 1, 2]),
        "fetch_state": (FETCH_STATE, ["svt"]),
        "backoff_facts": (BACKOFF_FACTS, ["svt"]),
        "story_with_body_hash": (STORY_WITH_BODY_HASH, ["hash", now]),
        "story_of": (STORY_OF, [1]),
        "story_urls": (STORY_URLS, [1]),
        "alerted_watchlists": (ALERTED_WATCHLISTS, [1]),
        "pending_alerts": (_pending_alerts_sql(False), [PENDING]),
        "pending_alerts due": (_pending_alerts_sql(True), [PENDING, now]),
        "claim_alerts": (_claim_alerts_sql(False), ["deliverer", now, PENDING, now, now, 10]),
        "save_matches: thread": (THREAD_OF_STORY, [1, "siem"]),
        "immediate_stories_since": (IMMEDIATE_STORIES_SINCE, ["w", now, HELD, BUNDLED]),
        "held_alerts": (_held_alerts_sql(None, False), [HELD, HOLD_DIGEST]),
        "held_alerts due": (_held_alerts_sql(["w"], True), [HELD, HOLD_CATCHUP, "w", now]),
        "trouble_facts": (TROUBLE_FACTS, ["svt"]),
        "trouble_facts: last new": (LAST_NEW_OF_SOURCE, ["svt"]),
        "articles_seen_between": (ARTICLES_SEEN_BETWEEN, ["svt", now, now]),
        "sources: articles in 24 h": (ARTICLES_SINCE_OF_SOURCE, ["svt", now]),
    }


@dataclass(frozen=True)
class HeldAlert:
    """An alert held back for a digest or an hour's catch-up."""

    id: str
    watchlist: str
    notifier: str
    body: str
    story_id: int | None
    article_id: int | None
    created: str
    release_at: str | None


_HELD_COLUMNS = "id, watchlist, notifier, body, story_id, article_id, created, release_at"


class _AlreadyBundled(Exception):
    """Raised inside bundle_held's transaction to roll it back."""


def _chunks(items: list, size: int) -> Iterator[list]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


def _alert_filter(statuses: Iterable[str], since: str | None, watchlist: str | None,
                  notifier: str | None) -> tuple[str, list]:
    clauses: list[str] = []
    params: list = []
    statuses = list(statuses)
    if statuses:
        clauses.append(f"a.status IN ({', '.join('?' for _ in statuses)})")
        params += statuses
    if since is not None:
        clauses.append("a.created >= ?")
        params.append(since)
    if watchlist is not None:
        # A digest's row names several watchlists, comma-separated (names have no commas).
        clauses.append("(a.watchlist = ? OR ',' || a.watchlist || ',' LIKE ? ESCAPE '\\')")
        params += [watchlist, "%," + _like_escaped(watchlist) + ",%"]
    if notifier is not None:
        clauses.append("a.notifier = ?")
        params.append(notifier)
    return (" WHERE " + " AND ".join(clauses) if clauses else ""), params


def _like_escaped(value: str) -> str:
    return value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


# PRAGMA auto_vacuum's value for INCREMENTAL.
_INCREMENTAL = 2
# The articles that an alert still to be sent refers to (parameters: the three statuses).
_ARTICLES_OWED_ALERTS = ("SELECT article_id FROM alerts WHERE status IN (?, ?, ?)"
                         " AND article_id IS NOT NULL")

_EXPORT_COLUMNS = ("a.id, a.source, a.title, a.link, a.url, a.published, a.first_seen, a.lang,"
                   " a.author, a.summary, a.text, a.story_id, s.uid AS story_uid")


# A new outbox row's retry_at: the hold on its notifier while it is left alone (parameters: the
# notifier, now).
_NOTIFIER_HOLD = "(SELECT retry_at FROM notifier_holds WHERE notifier = ? AND retry_at > ?)"

# Ends an alert's claim (Store.claim_alerts).
_UNCLAIMED = "claimed_by = NULL, claimed_until = NULL"

_PENDING_COLUMNS = ("id, notifier, watchlist, article_id, body, attempts, owed, kind, story_id,"
                    " thread, created")


def _pending(row: dict) -> PendingAlert:
    return PendingAlert(**row | {"owed": _owed(row["owed"])})


def _owed(column: str | None) -> tuple[str, ...] | None:
    return None if column is None else tuple(json.loads(column))


def _article(row: dict) -> StoredArticle:
    return StoredArticle(
        id=row["id"], source=row["source"], url=row["url"], guid=row["guid"],
        title=row["title"], summary=row["summary"], text=row["text"],
        published=row["published"], lang=row["lang"], story_id=row["story_id"],
        revision=row["revision"], first_seen=row["first_seen"], link=row["link"] or row["url"],
    )
