"""The `monitor` command: argument parsing and printing only; the work happens elsewhere."""

from __future__ import annotations

import argparse
import difflib
import json
import logging
import os
import re
import signal
import sys
from collections.abc import Coroutine, Iterator, Sequence
from datetime import UTC, datetime
from functools import partial
from typing import TYPE_CHECKING, Any, TypeVar

from monitor import __version__
from monitor.config import load_config, resolve_config_path
from monitor.errors import AlreadyRunning, ConfigError, MonitorError, QueryError, StoreError
from monitor.models import BLOCKED_BY_ROBOTS, Config, Watchlist, source_state
from monitor.redact import RedactingFilter, config_secrets, redact

if TYPE_CHECKING:  # the pipeline pulls in Scrapy and the matcher; the CLI is up before them
    from monitor.alerts.outbox import DeliveryReport
    from monitor.pipeline import CycleReport, SourceReport
    from monitor.store import Store

# Usage errors (an unknown source or watchlist name, a bad --since) share 2 with argparse's
# own and with configuration errors: the command was given something it cannot use.
EXIT_OK, EXIT_NO_MATCH, EXIT_CONFIG, EXIT_STORE, EXIT_USAGE = 0, 1, 2, 3, 2
# Another `once` or `run` holds the database: exit at once, so cron never stacks up runs.
EXIT_BUSY = 2
# The roles of `monitor run --role` (monitor/cluster/roles.py, imported only when they run).
CLUSTER_ROLES = ("scheduler", "crawler", "matcher", "deliverer")
ALERTS_SHOWN = 100  # rows `monitor alerts` prints unless --limit says otherwise
ERROR_SHOWN = 200  # characters of an alert's last error in `monitor alerts`: one line
OUTPUT = "monitor.output"  # the logger of the daemon's stdout lines (cycles, the log notifier)
TIME_FORMAT = "%Y-%m-%d %H:%M:%S%z"  # local time with its UTC offset: 2026-11-30 19:04:05+0100
NAME_WIDTH_MAX = 40  # a cycle's source column is as wide as its longest name, up to this
_REDACTION = RedactingFilter()  # learns the config's own secrets once the config is loaded


class _StoppedEarly(Exception):
    """SIGTERM or SIGINT before the event loop took over the signals: nothing has started."""


def _stop_early(signum: int, frame: object) -> None:
    raise _StoppedEarly


def main(argv: Sequence[str] | None = None) -> int:
    # Until a command's event loop installs its own handlers (loading the config and compiling
    # the watchlists can take seconds), a stop signal ends the process quietly with rc 0.
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, _stop_early)
    args = _parser().parse_args(argv)
    # --config and -v may stand before or after the command; SUPPRESS keeps either from
    # overwriting the other with a default, so read them with getattr.
    _setup_logging(getattr(args, "verbose", 0))
    try:
        path = resolve_config_path(getattr(args, "config", None), os.environ)
        if getattr(args, "config_optional", False) and not path.exists():
            return args.handler(None, args)
        config = load_config(path)
        _learn_secrets(config)
        if config.log_format != "text":
            _setup_logging(getattr(args, "verbose", 0), config.log_format)
        return args.handler(config, args)
    except ConfigError as exc:
        return _fail(f"config error: {exc}", EXIT_CONFIG)
    except QueryError as exc:
        return _fail(f"query error: {exc}", EXIT_CONFIG)
    except StoreError as exc:
        return _fail(f"database error: {exc}", EXIT_STORE)
    except AlreadyRunning as exc:
        return _fail(str(exc), EXIT_BUSY)
    except MonitorError as exc:
        return _fail(f"error: {exc}", EXIT_USAGE)
    except _StoppedEarly:
        return EXIT_OK


def _fail(message: str, code: int) -> int:
    if _json_logs():  # a log shipper reading JSON lines gets the reason as one of them
        logging.getLogger("monitor").error("%s", message)
    else:
        print(message, file=sys.stderr)
    return code


def _json_logs() -> bool:
    return any(getattr(h, "monitor_cli", False) and isinstance(h.formatter, JsonFormatter)
               for h in logging.getLogger(OUTPUT).handlers)


def _learn_secrets(config: Config) -> None:
    _REDACTION.secrets.update(config_secrets(config))


def _parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", "-c", metavar="PATH", default=argparse.SUPPRESS,
                        help="config file (default: $MONITOR_CONFIG, else ./config.yaml)")
    common.add_argument("--verbose", "-v", action="count", default=argparse.SUPPRESS,
                        help="more log output (-vv for Scrapy's)")
    parser = argparse.ArgumentParser(
        prog="monitor", parents=[common],
        description="Watches news sources, matches watchlists, sends alerts once per story.",
    )
    parser.add_argument("--version", action="version", version=f"monitor {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    run = commands.add_parser(
        "run", parents=[common], help="run the daemon until SIGTERM/SIGINT",
        description="Run the daemon until SIGTERM/SIGINT: one process on the SQLite database, or, "
        "with a `cluster:` section, the roles given by --role on Redis and PostgreSQL "
        "(docs/scaling.md).")
    run.add_argument("--role", action="append", choices=(*CLUSTER_ROLES, "all"), default=None,
                     help="with a cluster: section, the role of this process (repeatable; "
                     "default: all of them)")
    run.set_defaults(handler=cmd_run)
    for name, handler, text in (
        ("once", cmd_once, "run one full cycle over all sources, then exit"),
        ("check", cmd_check, "validate the config and print what would run"),
    ):
        commands.add_parser(name, parents=[common], help=text, description=text).set_defaults(
            handler=handler)
    sources = commands.add_parser(
        "sources", parents=[common], help="show each source's health, or --test sources",
        description="Show each source's health from the database. With --test, fetch each named "
        "source (default: all) once instead and print what it gives: entries, the first titles, "
        "the text extracted from the first article, the robots.txt verdict. --test stores "
        "nothing and sends nothing; exit 1 when a tested source failed or gave no entries.")
    sources.add_argument("--test", nargs="*", metavar="NAME", default=None,
                         help="fetch these sources once (default: all) instead")
    sources.set_defaults(handler=cmd_sources)
    match = commands.add_parser(
        "match", parents=[common], help="test a query on files, URLs or stdin",
        description="Show whether QUERY matches each input, with the hits in context. "
        "A URL is fetched and its main text extracted as the daemon would. Exit 0 when "
        "at least one input matched, 1 when none did.")
    match.add_argument("query", metavar="QUERY")
    match.add_argument("inputs", metavar="FILE|URL", nargs="*", help="default: stdin")
    # Without a config: the query is taken as written, URLs fetched with the default settings.
    match.set_defaults(handler=cmd_match, config_optional=True)
    discover = commands.add_parser(
        "discover", parents=[common], help="list the feeds and sitemaps a site advertises",
        description="Print the feeds and sitemaps a site advertises (<link rel=alternate>, "
        "robots.txt, common paths) as ready-to-paste sources: entries. Uses the crawl settings "
        "of the config when there is one.")
    discover.add_argument("url", metavar="URL")
    discover.set_defaults(handler=cmd_discover, config_optional=True)
    backtest = commands.add_parser(
        "backtest", parents=[common], help="what a query would have alerted among stored articles",
        description="Run a watchlist (by name) or a query over the stored articles and list "
        "what it would have alerted. Sends nothing.")
    backtest.add_argument("query", metavar="WATCHLIST|QUERY")
    backtest.add_argument("--since", default="30d", help="how far back (default 30d)")
    backtest.set_defaults(handler=cmd_backtest)
    _alerts_parser(commands, common)
    _search_parsers(commands, common)
    test_notify = commands.add_parser(
        "test-notify", parents=[common], help="send a test message through one notifier",
        description="Send one clearly marked test message through the named notifier, at once "
        "and without retries (nothing is stored), and print what the receiver answered. "
        "Exit 0 when it took the message, 1 when it refused it or did not answer.")
    test_notify.add_argument("notifier", metavar="NAME")
    test_notify.set_defaults(handler=cmd_test_notify)
    digest = commands.add_parser(
        "digest", parents=[common], help="bundle and send the digests now (for cron)",
        description="Bundle the alerts held for the digests of the named watchlists (default: "
        "every watchlist with a digest) and send them now, one per digest and notifier; then "
        "deliver the rest of the outbox. For running digests from cron instead of `monitor run`.")
    digest.add_argument("watchlists", metavar="WATCHLIST", nargs="*")
    digest.set_defaults(handler=cmd_digest)
    web = commands.add_parser(
        "web", parents=[common], help="serve the pages over the database, without the daemon",
        description="Serve the web pages (stories, articles, sources, watchlists), /healthz, "
        "/metrics and the Atom feeds over an existing database until SIGTERM/SIGINT. Nothing is "
        "crawled or sent. Listens on http.listen from the config, else 127.0.0.1:8080; off the "
        "loopback, http.auth.token is required.")
    web.add_argument("--listen", metavar="HOST:PORT", help="where to listen (default: http.listen, "
                     "else 127.0.0.1:8080)")
    web.set_defaults(handler=cmd_web)
    return parser


def _search_parsers(commands: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    search = commands.add_parser(
        "search", parents=[common], help="find stored articles with a query",
        description="Find the stored articles a query (the watchlist language) matches, newest "
        "first, with the hit words in context. Exit 1 when none matched.")
    search.add_argument("query", metavar="QUERY")
    search.add_argument("--since", default="7d", help="how far back (default 7d)")
    search.add_argument("--source", metavar="NAME", help="only this source's articles")
    search.add_argument("--limit", type=int, default=50, metavar="N", help="at most N (default 50)")
    search.set_defaults(handler=cmd_search)
    export = commands.add_parser(
        "export", parents=[common], help="export stored articles or a watchlist's stories",
        description="Write the articles stored within --since as CSV or JSON lines; with "
        "--watchlist, that watchlist's matched stories (one per story: the article, the matched "
        "words, the snippet, the story id), also as an Atom feed.")
    export.add_argument("--since", default="7d", help="how far back (default 7d)")
    export.add_argument("--format", default="jsonl", choices=("csv", "jsonl", "atom"))
    export.add_argument("--watchlist", metavar="NAME")
    export.add_argument("--output", "-o", metavar="FILE", help="default: stdout")
    export.set_defaults(handler=cmd_export)
    prune = commands.add_parser(
        "prune", parents=[common], help="apply the retention settings now",
        description="Empty the text of articles older than retention.text, delete the articles "
        "older than retention.articles (never those with alerts still to be sent; their "
        "identity is kept, so they never alert again), and give the space back. Takes the "
        "writer lock: not while `monitor run` is running (the daemon prunes daily itself).")
    prune.set_defaults(handler=cmd_prune)


def _alerts_parser(commands: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    alerts = commands.add_parser(
        "alerts", parents=[common], help="list the outbox: alerts and their delivery state",
        description="List the outbox, newest first: each alert, digest, catch-up and source "
        "notice with its delivery state, attempts, next try and last error. Times are UTC. "
        "`monitor alerts retry` puts failed ones back.")
    alerts.add_argument("--failed", dest="statuses", action="append_const", const="failed",
                        help="only alerts given up on (retry them with `monitor alerts retry`)")
    alerts.add_argument("--pending", dest="statuses", action="append_const", const="pending",
                        help="only alerts still to be sent")
    alerts.add_argument("--held", dest="statuses", action="append_const", const="held",
                        help="only alerts held back for a digest or an hour's catch-up")
    alerts.add_argument("--since", default=None,
                        help="created within this long (default 7d; with --failed, --pending "
                        "or --held: all)")
    alerts.add_argument("--watchlist", metavar="W", help="only this watchlist's")
    alerts.add_argument("--notifier", metavar="N", help="only those to this notifier")
    alerts.add_argument("--limit", type=int, default=ALERTS_SHOWN,
                        help=f"show at most this many (default {ALERTS_SHOWN}); the summary "
                        "counts them all")
    alerts.set_defaults(handler=cmd_alerts)
    actions = alerts.add_subparsers(dest="action", metavar="ACTION")
    retry = actions.add_parser(
        "retry", parents=[common], help="put failed alerts back in the outbox",
        description="Put failed alerts back in the outbox with a fresh give-up clock. The next "
        "delivery pass sends them: the next `monitor once`, or a running daemon within a "
        "minute. Exit 1 when nothing was put back.")
    retry.add_argument("ids", metavar="ID", nargs="*", help="alert ids (see monitor alerts --failed)")
    retry.add_argument("--all-failed", action="store_true", help="every failed alert")
    retry.set_defaults(handler=cmd_alerts_retry)


def _setup_logging(verbose: int, log_format: str = "text") -> None:
    """Log records on stderr, the daemon's own lines (cycles, the log notifier) on stdout; both
    start with the local time, or are one JSON object each with `log_format: json`. Called
    again once the config is read, to take its format."""
    root = logging.getLogger()
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    output = logging.getLogger(OUTPUT)
    output.setLevel(logging.INFO)
    output.propagate = False
    for logger, stream, formatter in (
        (root, sys.stderr, JsonFormatter() if log_format == "json" else TextFormatter(True)),
        (output, sys.stdout, JsonFormatter() if log_format == "json" else TextFormatter(False)),
    ):
        for old in [h for h in logger.handlers if getattr(h, "monitor_cli", False)]:
            logger.removeHandler(old)
        handler = logging.StreamHandler(stream)
        handler.monitor_cli = True  # ours to replace on the second call, and only ours
        handler.setFormatter(formatter)
        # On the handler, not a logger: it then sees every record, whichever logger it came from.
        handler.addFilter(_REDACTION)
        logger.addHandler(handler)
    logging.captureWarnings(True)  # a library's warning is a log line like any other
    for noisy in ("apscheduler", "httpx", "httpcore", "trafilatura", "htmldate", "asyncio",
                  "tldextract", "filelock", "charset_normalizer", "aiohttp"):
        logging.getLogger(noisy).setLevel(logging.DEBUG if verbose > 1 else logging.WARNING)
    if verbose > 1:
        # Scrapy's own log; monitor.crawl quiets Scrapy only when nobody chose a level.
        for name in ("scrapy", "scrapy.downloadermiddlewares.retry",
                     "scrapy.downloadermiddlewares.robotstxt"):
            logging.getLogger(name).setLevel(logging.DEBUG)


def local_time(timestamp: float) -> datetime:
    return datetime.fromtimestamp(timestamp).astimezone()


class TextFormatter(logging.Formatter):
    """`2026-11-30 19:04:05+0100 WARNING monitor.pipeline: …`; each further line of a message
    or traceback carries the same prefix, so grep and log shippers see whole records."""

    def __init__(self, with_level: bool) -> None:
        super().__init__()
        self.with_level = with_level

    def format(self, record: logging.LogRecord) -> str:
        prefix = local_time(record.created).strftime(TIME_FORMAT)
        if self.with_level:
            prefix += f" {record.levelname} {record.name}:"
        text = record.getMessage()
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        for extra in (record.exc_text, record.stack_info):
            if extra:
                text = f"{text}\n{extra}"
        return "\n".join(f"{prefix} {line}".rstrip() for line in text.splitlines() or [""])


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time (ISO 8601, local, with offset), level, logger, message,
    exc when there is a traceback, and the fields of a structured event (a cycle)."""

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, object] = {
            "time": local_time(record.created).isoformat(timespec="milliseconds"),
            "level": record.levelname, "logger": record.name, "message": record.getMessage(),
        }
        doc.update(getattr(record, "event", None) or {})
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            doc["exc"] = record.exc_text
        if record.stack_info:
            doc["stack"] = record.stack_info
        return json.dumps(doc, ensure_ascii=False, default=str)


def _out(line: str, event: dict | None = None) -> None:
    """A line of the daemon's output on stdout, through the same formatting as the log."""
    logging.getLogger(OUTPUT).info("%s", line, extra={"event": event} if event else None)


# --- commands -------------------------------------------------------------------------------

_Result = TypeVar("_Result")


def _run_loop(coroutine: Coroutine[Any, Any, _Result]) -> _Result:
    """asyncio.run, for the commands that need an event loop: asyncio (with ssl and the
    futures) is imported here, so `check` and the other quick commands start without it."""
    import asyncio

    return asyncio.run(coroutine)



def cmd_check(config: Config, args: argparse.Namespace) -> int:
    print(f"config {config.path}: ok")
    if config.cluster is None:
        print(f"database: {config.database}")
    else:
        cluster = config.cluster
        print(f"cluster: redis {redact(cluster.redis, _REDACTION.secrets)}, database "
              f"{redact(cluster.database, _REDACTION.secrets)}, {cluster.shards} watchlist shards, "
              f"lease {_duration(cluster.lease)} (monitor run --role …; docs/scaling.md)")
    print(f"sources ({len(config.sources)}):")
    for s in config.sources:
        text = "full text" if s.full_text else "feed only"
        print(f"  {s.name:<22} {s.type:<8} every {_duration(s.interval):<6} {text:<9}  "
              f"{redact(s.url, _REDACTION.secrets)}")
    print(f"watchlists ({len(config.watchlists)}):" if config.watchlists else
          "watchlists (0): none — articles are collected, nothing alerts")
    for w in config.watchlists:
        print(f"  {w.name:<22} → {', '.join(w.notify) or '(no notifier)'}  ({_delivery(w)})")
        print(f"    {w.query}")
    print(f"notifiers ({len(config.notifiers)}):")
    for n in config.notifiers:
        print(f"  {n.name:<22} {n.type}")
    return EXIT_OK


def _delivery(watchlist: Watchlist) -> str:
    """How the watchlist's alerts go out, in a few words."""
    parts = [watchlist.delivery]
    if watchlist.digest_schedule:
        parts.append(f"digest '{watchlist.digest_schedule}'")
    if watchlist.max_per_hour:
        parts.append(f"at most {watchlist.max_per_hour}/hour")
    parts.append(watchlist.timezone)
    return ", ".join(parts)


def cmd_sources(config: Config, args: argparse.Namespace) -> int:
    from monitor.pipeline import backoff_until
    from monitor.retention import format_size

    if args.test is not None:
        return _test_sources(config, args.test)
    store = open_store(config)
    try:
        health = store.source_health()
        size = store.database_size()
    finally:
        store.close()
    print(f"{'source':<22} {'type':<8} {'state':<8} {'fails':>5} {'24h':>5}  "
          f"{'last success':<20} {'next try (UTC)':<15} last error")
    for source in config.sources:
        row = health.get(source.name) or {}
        retry_at = backoff_until(source, row, config.crawl.max_backoff)
        state = source_state(row)
        print(f"{source.name:<22} {source.type:<8} {state:<8} {row.get('consecutive_failures', 0):>5} "
              f"{row.get('articles_24h', 0):>5}  {_short_time(row.get('last_success')):<20} "
              f"{f'{retry_at:%Y-%m-%d %H:%M}' if retry_at else 'due':<15} "
              f"{row.get('last_error') or ''}")
    print(f"database: {config.database} ({format_size(size)}, file and write-ahead log)")
    return EXIT_OK


def _test_sources(config: Config, names: list[str]) -> int:
    from monitor.normalize import one_line
    from monitor.probe import probe_sources

    known = {s.name: s for s in config.sources}
    unknown = [name for name in names if name not in known]
    if unknown:
        raise MonitorError(f"no source named {', '.join(map(repr, unknown))} "
                           f"(sources: {', '.join(known)})")
    chosen = [known[name] for name in dict.fromkeys(names)] or list(config.sources)
    probes = probe_sources(config, chosen)
    for probe in probes:
        s, poll = probe.source, probe.poll
        print(f"{s.name}  {s.type}  {redact(s.url, _REDACTION.secrets)}")
        print(f"    robots.txt: {probe.robots}")
        if poll.error:
            if poll.error != probe.robots:
                print(f"    error: {poll.error}")
            continue
        print(f"    {poll.status}: {_count(len(poll.entries), 'entry', 'entries')}")
        for title in probe.titles:
            print(f"    - {title}")
        page = probe.page
        if page is None:
            continue
        if page.error:
            print(f"    first article: {one_line(page.error, 500)} ({one_line(page.url, 500)})")
        else:
            print(f"    first article: {len(page.text or '')} characters of text, language "
                  f"{page.lang or 'unknown'} ({one_line(page.url, 500)})")
    print(f"tested {_count(len(probes), 'source')}; nothing was stored or sent")
    return EXIT_OK if all(p.poll.ok and p.poll.entries for p in probes) else EXIT_NO_MATCH


def _short_time(value: str | None) -> str:
    return value.replace("T", " ")[:19] if value else "never"


def open_store(config: Config) -> Store:
    """The store a command reads: the cluster's PostgreSQL database when the config has a
    `cluster:` section, else the SQLite file."""
    from monitor.store import Store

    return Store.connect(config.cluster.database) if config.cluster else Store.open(config.database)


def single_process_only(config: Config, command: str, instead: str) -> None:
    """Refuse a command that writes as the single process does when the config is a cluster's."""
    if config.cluster is not None:
        raise MonitorError(f"`monitor {command}` runs on the single-process SQLite store; with a "
                           f"cluster: section {instead} (docs/scaling.md)")


def cmd_once(config: Config, args: argparse.Namespace) -> int:
    from monitor.store import writer_lock

    single_process_only(config, "once", "the roles poll on their schedule: monitor run --role …")
    with writer_lock(config.database):
        return _once(config)


def _once(config: Config) -> int:
    from monitor.crawl import Crawler
    from monitor.pipeline import Monitor, run_cycle
    from monitor.scheduler import run_until_stopped
    from monitor.store import Store

    store = Store.open(config.database)

    async def one_cycle() -> CycleReport | None:
        crawler = Crawler(config.crawl, config.sources)
        try:
            cycle = run_cycle(Monitor.build(config, store, crawler), config.sources)
            return await run_until_stopped(cycle, crawler)
        finally:
            await crawler.close()

    try:
        report = _run_loop(one_cycle())
    finally:
        store.close()
    if report is None:
        _out("cycle: stopped before it finished; what was not fetched or sent waits for the "
             "next run")
    else:
        print_cycle(report)
    return EXIT_OK


def cmd_run(config: Config, args: argparse.Namespace) -> int:
    from monitor.scheduler import Daemon
    from monitor.store import writer_lock

    roles = getattr(args, "role", None)
    if config.cluster is not None:
        return _run_roles(config, roles or ["all"])
    if roles:
        raise MonitorError("--role needs a cluster: section in the config (redis and database URLs; "
                         "docs/scaling.md)")
    with writer_lock(config.database):
        # A reloaded config may bring new secrets (headers, passwords) for the log filter.
        # One summary per scheduler tick; quiet sources only with -v (see print_cycle).
        on_cycle = partial(print_cycle, verbose=getattr(args, "verbose", 0), every_source=False)
        _run_loop(Daemon(config, on_cycle, _learn_secrets).run())
    return EXIT_OK


def _run_roles(config: Config, roles: list[str]) -> int:
    from monitor.cluster.roles import run_roles

    chosen = list(CLUSTER_ROLES) if "all" in roles else list(dict.fromkeys(roles))
    _run_loop(run_roles(config, chosen))
    return EXIT_OK


def cmd_match(config: Config | None, args: argparse.Namespace) -> int:
    from monitor.querytools import match_inputs, query_for
    from monitor.rules import highlight

    config = config or _default_config()

    stdin_text = sys.stdin.read() if not args.inputs else None
    outcomes = match_inputs(query_for(config, args.query), args.inputs, stdin_text, config)
    for outcome in outcomes:
        if outcome.error:
            print(f"{outcome.name}: error: {outcome.error}")
        elif outcome.hit is None:
            print(f"{outcome.name}: no match")
        else:
            print(f"{outcome.name}: MATCH ({', '.join(outcome.hit.words)})")
            print(f"    {highlight(outcome.hit.snippet, outcome.hit.snippet_spans)}")
    return EXIT_OK if any(o.hit for o in outcomes) else EXIT_NO_MATCH


def _default_config() -> Config:
    """What a command that needs no config file runs with when there is none."""
    from pathlib import Path

    from monitor.config import DEFAULT_USER_AGENT
    from monitor.models import CrawlSettings

    return Config(path=Path("config.yaml").resolve(), database=Path("monitor.db").resolve(),
                  sources=(), watchlists=(), notifiers=(),
                  crawl=CrawlSettings(user_agent=DEFAULT_USER_AGENT))


def cmd_discover(config: Config | None, args: argparse.Namespace) -> int:
    from monitor.config import DEFAULT_USER_AGENT
    from monitor.discover import report, run_discover
    from monitor.models import CrawlSettings

    crawl = config.crawl if config else CrawlSettings(user_agent=DEFAULT_USER_AGENT)
    return EXIT_OK if report(run_discover(crawl, args.url), args.url) else EXIT_NO_MATCH


def cmd_backtest(config: Config, args: argparse.Namespace) -> int:
    from monitor.querytools import backtest, parse_since, query_for
    from monitor.rules import parse_query

    _check_watchlist_name(config, args.query)
    query = query_for(config, args.query)
    parse_query(query)
    start = datetime.now(UTC) - parse_since(args.since)
    store = open_store(config)
    try:
        found, stories = 0, set()
        for article, hit in backtest(store, query, start):
            found += 1
            stories.add(article.story_id or -article.id)
            print(f"{article.published or '':<25} {article.source:<18} {article.title}")
            print(f"    {article.url}  [{', '.join(hit.words)}]")
        # The window as searched, in local time: what --since meant, not only what was typed.
        since = f"{local_time(start.timestamp()):%Y-%m-%d %H:%M} ({args.since})"
        print(f"{_count(len(stories), 'story', 'stories')} ({_count(found, 'article')}) would "
              f"have alerted (since {since}; nothing was sent)")
    finally:
        store.close()
    return EXIT_OK


def cmd_search(config: Config, args: argparse.Namespace) -> int:
    from monitor.querytools import parse_since, query_for
    from monitor.rules import highlight, parse_query
    from monitor.search import search

    query = query_for(config, args.query)
    parse_query(query)
    since = parse_since(args.since)
    if args.limit < 1:
        raise MonitorError("--limit: must be at least 1")
    store = open_store(config)
    try:
        found = 0
        for article, hit in search(store, query, since, args.source, args.limit):
            found += 1
            print(f"{article.title or article.link}")
            print(f"    {article.source}  {_short_time(article.published or article.first_seen)}"
                  f"  {article.link}")
            print(f"    {highlight(hit.snippet, hit.snippet_spans)}")
    finally:
        store.close()
    more = " (--limit reached)" if found == args.limit else ""
    print(f"{found} {'article' if found == 1 else 'articles'} found (since {args.since}){more}")
    return EXIT_OK if found else EXIT_NO_MATCH


def cmd_export(config: Config, args: argparse.Namespace) -> int:
    from monitor.export import export
    from monitor.querytools import parse_since

    since = parse_since(args.since)
    store = open_store(config)
    try:
        chunks = export(store, config, args.format, since, args.watchlist)
        if args.output is None:
            for chunk in chunks:
                sys.stdout.write(chunk)
        else:
            _write_export(args.output, chunks)
    finally:
        store.close()
    return EXIT_OK


def _write_export(path: str, chunks: Iterator[str]) -> None:
    # Written beside the target and renamed, so a reader never sees half an export.
    partial = f"{path}.partial"
    try:
        with open(partial, "w", encoding="utf-8", newline="") as out:
            for chunk in chunks:
                out.write(chunk)
        os.replace(partial, path)
    except OSError as exc:
        raise MonitorError(f"--output: cannot write {path}: {exc.strerror or exc}") from None


def cmd_prune(config: Config, args: argparse.Namespace) -> int:
    from monitor.retention import prune
    from monitor.store import Store, writer_lock

    single_process_only(config, "prune", "the active scheduler prunes once a day")
    if config.retention.text is None and config.retention.articles is None:
        print("nothing to prune: the config sets no retention (retention: {text: 90d, "
              "articles: 365d})")
        return EXIT_OK
    with writer_lock(config.database):
        store = Store.open(config.database)
        try:
            print(prune(store, config.retention))
        finally:
            store.close()
    return EXIT_OK


# A bare name: letters, digits, - _ . and no spaces, quotes, parentheses or operators.
_NAME_LIKE = re.compile(r"^[^\W\d_][\w.-]*$")


def _check_watchlist_name(config: Config, argument: str) -> None:
    """A mistyped watchlist name would run as a one-word query and quietly find nothing. A
    bare name close to a watchlist's is refused with the suggestion; quoted, it is a query."""
    if config.watchlist(argument) is not None or not _NAME_LIKE.match(argument):
        return
    names = [w.name for w in config.watchlists]
    close = difflib.get_close_matches(argument, names, n=1)
    if close:
        raise MonitorError(f"no watchlist {argument!r}; did you mean {close[0]!r}? (to search "
                           f"for the word instead, quote it: '\"{argument}\"')")


def cmd_alerts(config: Config, args: argparse.Namespace) -> int:
    from monitor.querytools import parse_since

    statuses = sorted(set(args.statuses or ()))
    since = args.since or (None if statuses else "7d")
    start = (datetime.now(UTC) - parse_since(since)).isoformat(timespec="seconds") if since else None
    if args.limit < 0:
        raise MonitorError(f"--limit: must be 0 or more, got {args.limit}")
    filters = {"statuses": statuses, "since": start, "watchlist": args.watchlist,
               "notifier": args.notifier}
    # A read: no writer lock, so it works while the daemon runs.
    store = open_store(config)
    try:
        rows = store.list_alerts(**filters, limit=args.limit)
        counts = store.count_alerts(**filters)
    finally:
        store.close()
    if rows:
        print(f"{'created (UTC)':<19}  {'id':<32}  {'kind':<7}  {'status':<8}  {'tries':>5}  "
              f"{'next try (UTC)':<19}  watchlist → notifier")
    for row in rows:
        print(format_alert(row))
    print(alerts_summary(counts, len(rows), since))
    return EXIT_OK


def format_alert(row: dict) -> str:
    from monitor.normalize import one_line

    lines = [f"{_short_time(row['created']):<19}  {row['id']:<32}  {row['kind']:<7}  "
             f"{row['status']:<8}  {row['attempts']:>5}  "
             f"{_short_time(row['retry_at']) if row['retry_at'] else '':<19}  "
             f"{row['watchlist'] or '-'} → {row['notifier']}",
             f"    {alert_headline(row['body'])}"]
    if row["bundle"]:
        lines.append(f"    went out in {row['bundle']} ({row['bundle_status'] or 'gone'})")
    if row["last_error"]:
        lines.append(f"    last error: {one_line(row['last_error'], ERROR_SHOWN)}")
    return "\n".join(redact(line, _REDACTION.secrets) for line in lines)


def alert_headline(body: str) -> str:
    """One line saying what the message is about: an alert's headline and link, a digest's
    number of stories, a source notice's problem."""
    import json

    from monitor.normalize import one_line

    try:
        doc = json.loads(body)
    except ValueError:
        return "(unreadable body)"
    kind = doc.get("kind", "alert")
    if kind in ("digest", "catchup"):
        stories = len(doc.get("stories") or ())
        return f"{stories} {'story' if stories == 1 else 'stories'}"
    if kind == "source":
        return one_line(f"{doc.get('source')} {doc.get('state')}: {doc.get('problem')}", 300)
    article = doc.get("article") or {}
    return f"{one_line(article.get('title'), 150)} — {one_line(article.get('url'), 300)}"


def alerts_summary(counts: dict[str, int], shown: int, since: str | None) -> str:
    total = sum(counts.values())
    if not total:
        return "no alerts" + (f" in the last {since}" if since else "")
    parts = ", ".join(f"{count} {status}" for status, count in sorted(counts.items()))
    more = f"; newest {shown} shown (--limit)" if shown < total else ""
    window = f" in the last {since}" if since else ""
    hint = "; put failed ones back with: monitor alerts retry ID…|--all-failed" if counts.get(
        "failed") else ""
    return f"{total} alerts{window}: {parts}{more}{hint}"


def cmd_alerts_retry(config: Config, args: argparse.Namespace) -> int:
    from monitor.store import FAILED

    if args.all_failed == bool(args.ids):
        raise MonitorError("monitor alerts retry: give alert ids or --all-failed (not both)")
    # A short write under the busy timeout; a running daemon picks the alerts up on its next
    # delivery pass, within a minute.
    store = open_store(config)
    try:
        if args.all_failed:
            retried = store.retry_failed()
        else:
            ids = list(dict.fromkeys(args.ids))
            statuses = store.alert_statuses(ids)
            for alert_id in ids:
                if alert_id not in statuses:
                    print(f"{alert_id}: no such alert (see monitor alerts)", file=sys.stderr)
                elif statuses[alert_id] != FAILED:
                    print(f"{alert_id}: not failed but {statuses[alert_id]}; nothing to retry",
                          file=sys.stderr)
            retried = store.retry_failed([i for i in ids if statuses.get(i) == FAILED])
    finally:
        store.close()
    if not retried:
        print("no failed alerts were put back", file=sys.stderr)
        return EXIT_NO_MATCH
    print(f"{retried} failed alert{'s' if retried != 1 else ''} put back in the outbox; the next "
          "delivery pass sends them (monitor once, or a running daemon within a minute)")
    return EXIT_OK


def cmd_digest(config: Config, args: argparse.Namespace) -> int:
    from monitor.store import writer_lock

    single_process_only(config, "digest", "the active scheduler sends digests on their schedule")
    names = _digest_watchlists(config, args.watchlists)
    with writer_lock(config.database):  # never at the same time as `run` or `once`
        return _digest(config, names)


def _digest_watchlists(config: Config, names: list[str]) -> list[str]:
    with_digest = [w.name for w in config.watchlists if w.digest_schedule is not None]
    unknown = [name for name in names if config.watchlist(name) is None]
    if unknown:
        raise MonitorError(f"no watchlist named {', '.join(map(repr, unknown))} "
                           f"(watchlists: {', '.join(w.name for w in config.watchlists)})")
    without = [name for name in names if name not in with_digest]
    if without:
        raise MonitorError(
            f"watchlist {', '.join(map(repr, without))} has no digest (set delivery: digest, or "
            f"a schedule); watchlists with a digest: {', '.join(with_digest) or 'none'}")
    if not with_digest:
        raise MonitorError("no watchlist has a digest (delivery: digest, or a schedule)")
    return list(dict.fromkeys(names)) or with_digest


def _digest(config: Config, names: list[str]) -> int:
    from monitor.alerts.digest import bundle_and_deliver, describe_bundles
    from monitor.store import Store

    store = Store.open(config.database)
    try:
        bundles, delivery = _run_loop(bundle_and_deliver(store, config, names))
        lines = describe_bundles(store, bundles)
    finally:
        store.close()
    for line in lines:
        print(line)
    if not bundles:
        print(f"digest: nothing held for {', '.join(names)}; nothing sent")
    print(f"delivery: {delivery.sent} sent, {delivery.failed} failed, {delivery.pending} pending",
          flush=True)
    return EXIT_OK


def cmd_web(config: Config, args: argparse.Namespace) -> int:
    from dataclasses import replace

    from monitor.config import LOCAL_HOSTS, parse_listen, unprotected_listen
    from monitor.models import HttpSettings
    from monitor.web.serve import serve_until_stopped

    settings = config.http or HttpSettings()
    if args.listen is not None:
        try:
            host, port = parse_listen(args.listen)
        except ValueError as exc:
            raise MonitorError(f"--listen: {exc}") from None
        if host not in LOCAL_HOSTS and settings.token is None:
            raise MonitorError(f"--listen: {unprotected_listen(args.listen)}")
        settings = replace(settings, host=host, port=port)
    if not config.database.exists():
        raise StoreError(f"no database at {config.database}: `monitor once` or `monitor run` "
                         "makes one")

    def ready(host: str, port: int) -> None:
        shown = f"[{host}]" if ":" in host else host
        print(f"web: serving http://{shown}:{port}/ over {config.database} (read-only; "
              "Ctrl-C stops)", flush=True)

    try:
        _run_loop(serve_until_stopped(replace(config, http=settings), ready))
    except OSError as exc:
        raise MonitorError(f"cannot listen on {settings.host}:{settings.port}: "
                           f"{exc.strerror or exc}") from None
    return EXIT_OK


# --- printing -------------------------------------------------------------------------------


EXIT_REFUSED = 1  # test-notify: the receiver refused the message or did not answer


def cmd_test_notify(config: Config, args: argparse.Namespace) -> int:
    from monitor.alerts.testmessage import find_notifier, send_test_message
    from monitor.errors import DeliveryError

    notifier = find_notifier(config, args.notifier)
    try:
        receipt = _run_loop(send_test_message(config, notifier))
    except DeliveryError as exc:
        print(f"test message to {notifier.name} ({notifier.type}) not delivered: "
              f"{redact(str(exc), _REDACTION.secrets)}", flush=True)
        return EXIT_REFUSED
    print(f"test message to {notifier.name} ({notifier.type}) delivered: "
          f"{redact(receipt, _REDACTION.secrets)}", flush=True)
    return EXIT_OK


def print_cycle(report: CycleReport, verbose: int = 0, every_source: bool = True) -> None:
    """One summary line per report (a scheduler tick, or `once`), after a line for each source:
    every source with `every_source` or -v, else only those with news, an error or a wait.
    With log_format json: one object holding the summary and every source."""
    shown = [s for s in report.sources if every_source or verbose or _eventful(s)]
    width = min(max((len(s.name) for s in shown), default=0), NAME_WIDTH_MAX)
    if not _json_logs():
        for source in shown:
            _out(format_source(source, width))
    _out(format_cycle(report), cycle_event(report))


def _eventful(s: SourceReport) -> bool:
    return bool(s.new or s.revised or s.error or s.backing_off or s.pages_blocked)


def _count(n: int, noun: str, plural: str | None = None) -> str:
    return f"{n} {noun if n == 1 else plural or noun + 's'}"


def _source_counts(report: CycleReport) -> tuple[int, int, int]:
    """ok, failed, waiting: a source backing off after failures was not polled, so not ok."""
    waiting = sum(1 for s in report.sources if s.backing_off)
    failed = report.sources_failed
    return len(report.sources) - failed - waiting, failed, waiting


def format_cycle(report: CycleReport) -> str:
    ok, failed, waiting = _source_counts(report)
    sources = f"{_count(len(report.sources), 'source')}: {ok} ok, {failed} failed"
    if waiting:
        sources += f", {waiting} waiting"
    return (f"cycle: {sources}; {_count(report.new_articles, 'new article')}, "
            f"{report.matched_articles} matched; {_count(report.alerts_created, 'new alert')}, "
            f"{format_delivery(report.delivery)}")


def cycle_event(report: CycleReport) -> dict:
    """The cycle for machines (log_format json); strings that came from the web redacted."""
    ok, failed, waiting = _source_counts(report)
    d = report.delivery
    secrets = _REDACTION.secrets

    def source(s: SourceReport) -> dict:
        state = "waiting" if s.backing_off else "failed" if s.error else "ok"
        entry = {"name": s.name, "state": state, "status": s.status, "entries": s.entries,
                 "new": s.new, "revised": s.revised, "pages_blocked": s.pages_blocked}
        if s.error or s.backing_off:
            entry["error" if s.error else "waiting"] = redact(s.error or s.backing_off, secrets)
        return entry

    return {
        "event": "cycle",
        "sources": {"ok": ok, "failed": failed, "waiting": waiting},
        "articles": {"new": report.new_articles, "matched": report.matched_articles},
        "alerts": {"new": report.alerts_created, "sent": d.sent, "pending": d.pending,
                   "failed": d.failed_total, "held": d.held, "not_delivered": d.failed,
                   "gave_up": d.gave_up},
        "per_source": [source(s) for s in report.sources],
    }


def format_delivery(delivery: DeliveryReport) -> str:
    """This pass's sends, then the outbox as it stands. What needs no attention (no failed
    attempts, nothing failed or held back) is left out, to keep the line short."""
    parts = [f"{delivery.sent} sent"]
    if delivery.failed:
        # Messages this pass could not deliver (each after its retries within the pass).
        parts.append(f"{delivery.failed} not delivered this pass")
    if delivery.gave_up:
        parts.append(f"{delivery.gave_up} given up")
    parts.append(f"{delivery.pending} pending")
    if delivery.failed_total:
        parts.append(f"{delivery.failed_total} failed (see monitor alerts --failed)")
    if delivery.held:
        parts.append(f"{delivery.held} held back")
    return ", ".join(parts)


def format_source(s: SourceReport, width: int = 22) -> str:
    name = s.name if len(s.name) <= width else s.name[:width - 1] + "…"
    if s.backing_off:
        state, text = "wait", s.backing_off
    elif s.error:
        state, text = "error", s.error
    elif s.status == 304:
        state, text = "304", "not modified"
    else:
        revised = f", {s.revised} revised" if s.revised else ""
        blocked = (f"; {_count(s.pages_blocked, 'article page')} {BLOCKED_BY_ROBOTS}"
                   if s.pages_blocked else "")
        state, text = str(s.status), f"{_count(s.entries, 'entry', 'entries')}, {s.new} new{revised}{blocked}"
    return f"  {name:<{width}} {state:<6} {redact(text, _REDACTION.secrets)}"


def _duration(seconds: int) -> str:
    for unit, size in (("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


if __name__ == "__main__":
    sys.exit(main())
