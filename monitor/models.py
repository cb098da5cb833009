"""Plain data that travels between the stages: configuration objects and what the spiders yield."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

# The reason given when robots.txt disallows a request; what the cycle line, `monitor sources`
# and the source's state are told by (see blocked_by_robots).
BLOCKED_BY_ROBOTS = "blocked by robots.txt"


def blocked_by_robots(error: str | None) -> bool:
    return bool(error) and error.startswith(BLOCKED_BY_ROBOTS)


def source_state(row: dict) -> str:
    """A source's state from its row of Store.source_health(): new (never polled), ok, failing,
    or blocked (robots.txt said no, which no retry will change). `monitor sources`, /sources."""
    if not row:
        return "new"
    if not row["consecutive_failures"]:
        return "ok"
    return "blocked" if blocked_by_robots(row["last_error"]) else "failing"


@dataclass(frozen=True)
class Source:
    name: str
    type: str  # "feed" | "sitemap" | "page"
    url: str
    interval: int  # seconds between polls
    full_text: bool = True
    languages: tuple[str, ...] = ()  # empty: every language
    delay: float | None = None  # per-domain politeness overrides
    concurrency: int | None = None
    max_age: int = 2 * 86400  # sitemap: entries older than this are not fetched
    follow: str | None = None  # page: CSS selector of the article links
    # False: the page text and summary are used for matching, then dropped (the outlet's terms
    # allow linking, not keeping copies); title, link, time and matched words stay.
    store_text: bool = True
    # False: this source's requests ignore robots.txt (for users with the outlet's permission).
    obey_robots: bool = True


IMMEDIATE, DIGEST = "immediate", "digest"
DEFAULT_SCHEDULE = "0 7 * * *"
DEFAULT_TIMEZONE = "Europe/Stockholm"


@dataclass(frozen=True)
class Watchlist:
    name: str
    query: str
    notify: tuple[str, ...]
    languages: tuple[str, ...] = ()  # empty: every language
    delivery: str = IMMEDIATE  # "immediate": one alert per story; "digest": on `schedule`
    # Cron expression (minute hour day month weekday) of the digest, in `timezone`. An immediate
    # watchlist with `max_per_hour` and a schedule sends its overflow in that digest.
    schedule: str | None = None
    timezone: str = DEFAULT_TIMEZONE  # times in its messages, and of the schedule
    send_empty: bool = False  # a digest with no stories is still sent
    max_per_hour: int | None = None  # immediate alerts per clock hour; the rest are held back

    @property
    def digest_schedule(self) -> str | None:
        """The cron expression its held alerts go out on, if any."""
        if self.delivery == DIGEST:
            return self.schedule or DEFAULT_SCHEDULE
        return self.schedule


@dataclass(frozen=True)
class SmtpSettings:
    host: str
    port: int = 587
    starttls: bool = True
    ssl: bool = False
    username: str | None = None
    password: str | None = None
    timeout: float = 30.0


DEFAULT_RETRY_WITHIN = 30.0
DEFAULT_GIVE_UP_AFTER = 24 * 3600


@dataclass(frozen=True)
class Notifier:
    name: str
    type: str  # "email" | "webhook" | "apprise" | "log"
    # Within one delivery pass a failed send is retried for this many seconds, then left for
    # the next pass; an alert not delivered `give_up_after` seconds after it was queued fails.
    retry_within: float = DEFAULT_RETRY_WITHIN
    give_up_after: int = DEFAULT_GIVE_UP_AFTER


@dataclass(frozen=True)
class LogNotifier(Notifier):
    pass


@dataclass(frozen=True)
class EmailNotifier(Notifier):
    to: tuple[str, ...] = ()
    sender: str = ""
    smtp: SmtpSettings = field(default_factory=lambda: SmtpSettings(host="localhost"))


@dataclass(frozen=True)
class WebhookNotifier(Notifier):
    url: str = ""
    secret: str | None = None
    timeout: float = 15.0
    headers: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class AppriseNotifier(Notifier):
    urls: tuple[str, ...] = ()  # Apprise URLs: slack://…, msteams://…, ntfy://…, tgram://…
    timeout: float = 30.0


@dataclass(frozen=True)
class OperationsSettings:
    """Messages about the monitor itself: a source failing or silent, and its recovery."""

    notify: tuple[str, ...] = ()
    alert_after: int = 6 * 3600  # a source failing this long is reported
    silent_after: int = 48 * 3600  # a source that normally has news, and had none this long


@dataclass(frozen=True)
class HttpSettings:
    """The daemon's own HTTP listener: /healthz, /metrics, /feeds/WATCHLIST.atom (and pages)."""

    host: str = "127.0.0.1"
    port: int = 8080
    token: str | None = None  # http.auth.token: required as a Bearer token when set


@dataclass(frozen=True)
class RetentionSettings:
    """How long stored articles keep their text, and their rows (None: for ever)."""

    text: int | None = None  # seconds after first seen; the text and summary are emptied
    articles: int | None = None  # seconds after first seen; the row goes (its identity stays)


@dataclass(frozen=True)
class CrawlSettings:
    user_agent: str
    timeout: int = 30
    max_size: int = 10 * 1024 * 1024
    concurrency_per_domain: int = 2
    delay: float = 0.5
    obey_robots: bool = True
    max_backoff: int = 4 * 3600  # a failing source is retried at least this often
    cache_dir: Path | None = None  # HTTP cache of article pages
    # Links inside documents may reach private addresses (loopback, RFC 1918, link-local …).
    allow_private: bool = False
    # Fixed addresses for host names, like /etc/hosts: ((name, (address, …)), …)
    hosts: tuple[tuple[str, tuple[str, ...]], ...] = ()
    # Processes that extract article pages (None: one per usable core; 0: in the crawler's own
    # process), and how long one page may take there before it fails alone.
    extract_workers: int | None = None
    extract_timeout: int = 30


@dataclass(frozen=True)
class ClusterSettings:
    """The role processes' shared engines (docs/scaling.md): without this section the monitor
    is one process on SQLite."""

    redis: str  # redis://[:password@]host:port/db — the lease, the frontier, the streams
    database: str  # postgresql://user[:password]@host[:port]/dbname — the shared store
    shards: int = 16  # the watchlists are split into this many shards among the matchers
    lease: int = 15  # seconds: the scheduler's lock and every role's heartbeat live this long
    prefix: str = "monitor:"  # of every Redis key, so that two monitors can share one Redis


@dataclass(frozen=True)
class Config:
    path: Path
    database: Path
    sources: tuple[Source, ...]
    watchlists: tuple[Watchlist, ...]
    notifiers: tuple[Notifier, ...]
    crawl: CrawlSettings
    operations: OperationsSettings = field(default_factory=OperationsSettings)
    templates: Path | None = None  # a folder of Jinja2 templates overriding the shipped ones
    http: HttpSettings | None = None  # None: no listener
    retention: RetentionSettings = field(default_factory=RetentionSettings)
    log_format: str = "text"  # "text" | "json"
    cluster: ClusterSettings | None = None  # None: one process on the SQLite `database`

    def notifier(self, name: str) -> Notifier:
        return next(n for n in self.notifiers if n.name == name)

    def watchlist(self, name: str) -> Watchlist | None:
        return next((w for w in self.watchlists if w.name == name), None)


@dataclass(frozen=True)
class Entry:
    """One article link found by a source (feed item, sitemap entry or listing-page link),
    before the store decides whether it is new."""

    url: str
    guid: str | None
    title: str
    summary: str
    published: str | None  # ISO 8601 UTC


@dataclass(frozen=True)
class PollResult:
    """What one poll of one source produced: entries, or a 304, or an error."""

    source: str
    status: int | None
    entries: tuple[Entry, ...] = ()
    etag: str | None = None
    last_modified: str | None = None
    error: str | None = None
    # A child document of the source (a sitemap named by an index or robots.txt): its entries
    # add to the root document's result, its failure does not fail the source.
    part: bool = False

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass(frozen=True)
class PageResult:
    """An article page fetched for its main text."""

    article_id: int
    url: str
    title: str | None = None
    text: str | None = None
    author: str | None = None
    published: str | None = None
    lang: str | None = None
    canonical_url: str | None = None
    error: str | None = None


@dataclass(frozen=True)
class StoredArticle:
    id: int
    source: str
    url: str
    guid: str | None
    title: str
    summary: str
    text: str
    published: str | None
    lang: str | None
    story_id: int | None = None
    revision: int = 1
    first_seen: str = ""
    # The address as the outlet gave it; `url` is its canonical form, the article's identity.
    # Pages are fetched here: a server need not answer at the canonical form.
    link: str = ""


# What an outbox row carries: one story's alert, a digest or catch-up of several, a notice about
# a source, or a test message (never stored).
ALERT, DIGEST_MESSAGE, CATCHUP, SOURCE_NOTICE, TEST = "alert", "digest", "catchup", "source", "test"


@dataclass(frozen=True)
class PendingAlert:
    id: str
    notifier: str
    watchlist: str  # a digest's watchlists, comma-separated; "" for a source notice
    article_id: int | None
    body: str  # the exact JSON document sent (and signed) on every attempt
    attempts: int
    # Email: the recipients still owed the alert after some refused it; None means all of them.
    owed: tuple[str, ...] | None = None
    kind: str = ALERT
    story_id: int | None = None
    # The id of the first alert of the same story to the same notifier, when this one is a later
    # one (another watchlist, a revision): mail threads it under that one.
    thread: str | None = None
    created: str = ""
