"""The exception tree. Each failure condition has its own class and a message that says what to do."""

from __future__ import annotations


class MonitorError(Exception):
    """Base class for every error the monitor raises on purpose."""


class ConfigError(MonitorError):
    """The configuration file is missing, unreadable or invalid. The message names the key path."""


class QueryError(MonitorError):
    """A watchlist query does not parse. Carries the query and the 1-based column of the fault."""

    def __init__(self, message: str, query: str, column: int, watchlist: str | None = None) -> None:
        self.message = message
        self.query = query
        self.column = column
        self.watchlist = watchlist
        super().__init__(self.__str__())

    def __str__(self) -> str:
        where = f"watchlist {self.watchlist!r}: " if self.watchlist else ""
        caret = " " * (self.column - 1) + "^"
        return f"{where}{self.message} at column {self.column}\n  {self.query}\n  {caret}"


class StoreError(MonitorError):
    """The database cannot be opened, read or written (locked, read-only, full, damaged)."""


class AlreadyRunning(MonitorError):
    """Another `once` or `run` holds the database's writer lock."""


class FetchError(MonitorError):
    """A source could not be fetched or parsed."""


class DeliveryError(MonitorError):
    """An alert could not be delivered; it stays in the outbox and is retried. `owed` names the
    recipients still to be sent it when others already accepted it (None: all of them).
    `permanent`: the receiver refused this alert for good (retrying will not help).
    `retry_after`: seconds the receiver asked us to wait (HTTP Retry-After).
    `local`: the fault is ours with this one message (a template), not the receiver's."""

    def __init__(self, message: str, owed: tuple[str, ...] | None = None, *,
                 permanent: bool = False, retry_after: float | None = None,
                 local: bool = False) -> None:
        super().__init__(message)
        self.owed = owed
        self.permanent = permanent
        self.retry_after = retry_after
        self.local = local

    @property
    def receiver_down(self) -> bool:
        """The receiver took nothing: its other messages would fare no better now."""
        return self.owed is None and not self.permanent and not self.local
