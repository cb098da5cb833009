"""The store's PostgreSQL connection: the few methods of sqlite_utils.Database that store.py
uses (execute, query, atomic, close), over one psycopg 3 connection, and the one function
that turns the store's SQL (written for both engines, `?` placeholders) into PostgreSQL's."""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg.rows import dict_row

# A string literal, or a placeholder or percent sign outside one.
_TOKENS = re.compile(r"'(?:[^']|'')*'|\?|%")


def is_postgres_url(target: object) -> bool:
    return isinstance(target, str) and target.startswith(("postgresql://", "postgres://"))


def without_password(url: str) -> str:
    """The URL as it may be printed: the password, if any, left out."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{parts.username or ''}@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


@functools.lru_cache(maxsize=1024)
def postgres_sql(sql: str) -> str:
    """The statement for psycopg: `?` placeholders become `%s`, and a literal `%` becomes `%%`
    (psycopg's own escape); string literals are left as they are."""
    def replace(match: re.Match[str]) -> str:
        token = match.group(0)
        if token == "?":
            return "%s"
        if token == "%":
            return "%%"
        return token.replace("%", "%%")
    return _TOKENS.sub(replace, sql)


class PostgresDatabase:
    """One connection in autocommit mode: a statement outside atomic() commits at once, as on
    SQLite; atomic() is a transaction, and inside one a savepoint."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.conn = psycopg.connect(url, autocommit=True)
        self._depth = 0  # transactions open (atomic() blocks entered and not left)

    def execute(self, sql: str, params: Sequence[object] = ()) -> psycopg.Cursor:
        return self._live().execute(postgres_sql(sql), list(params))

    def query(self, sql: str, params: Sequence[object] = ()) -> Iterator[dict]:
        with self._live().cursor(row_factory=dict_row) as cursor:
            cursor.execute(postgres_sql(sql), list(params))
            yield from cursor

    def atomic(self) -> AbstractContextManager[object]:
        """BEGIN … COMMIT when outermost, SAVEPOINT … RELEASE inside another; rolled back when
        the block raises."""
        return self._transaction()

    @contextmanager
    def _transaction(self) -> Iterator[object]:
        with self._live().transaction() as transaction:
            self._depth += 1
            try:
                yield transaction
            finally:
                self._depth -= 1

    def _live(self) -> psycopg.Connection:
        """The connection; a new one when the last was lost (the server restarted, a network
        cut, a terminated backend) and no transaction is open on it: the statement that met
        the loss failed, the next one runs. Inside a transaction the loss stays an error, so
        the transaction is never half on one connection and half on another."""
        if self.conn.broken and self._depth == 0:
            self.conn.close()
            self.conn = psycopg.connect(self.url, autocommit=True)
        return self.conn

    def close(self) -> None:
        self.conn.close()


def health(url: str, timeout: float = 1.0) -> str | None:
    """None when a writer could use the PostgreSQL database now, else why not (unreachable,
    refused, or a read-only standby), naming it without its password. For /healthz, as
    monitor.store.write_test is for an SQLite file."""
    shown = without_password(url)
    try:
        with psycopg.connect(url, autocommit=True, connect_timeout=max(1, round(timeout))) as conn:
            if conn.execute("SELECT pg_is_in_recovery()").fetchone()[0]:
                return f"{shown} is read-only (a standby in recovery)"
    except psycopg.Error as exc:
        words = str(exc).strip().splitlines()
        return f"{shown}: {words[0] if words else type(exc).__name__}"
    return None
