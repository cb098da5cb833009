"""The `monitor` command: argument parsing and printing only; the work happens elsewhere."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from collections.abc import Sequence

from monitor import __version__
from monitor.config import load_config, resolve_config_path
from monitor.errors import ConfigError, MonitorError, StoreError
from monitor.models import Config
from monitor.pipeline import CycleReport, SourceReport

EXIT_OK, EXIT_CONFIG, EXIT_STORE, EXIT_USAGE = 0, 2, 3, 64


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    _setup_logging(args.verbose)
    try:
        config = load_config(resolve_config_path(args.config, os.environ))
        return args.handler(config, args)
    except ConfigError as exc:
        print(f"config error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except StoreError as exc:
        print(f"database error: {exc}", file=sys.stderr)
        return EXIT_STORE
    except MonitorError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE


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
    parser.set_defaults(config=None, verbose=0)
    parser.add_argument("--version", action="version", version=f"monitor {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, handler, text in (
        ("run", cmd_run, "run the daemon until SIGTERM/SIGINT"),
        ("once", cmd_once, "run one full cycle over all sources, then exit"),
        ("check", cmd_check, "validate the config and print what would run"),
    ):
        commands.add_parser(name, parents=[common], help=text, description=text).set_defaults(
            handler=handler)
    return parser


def _setup_logging(verbose: int) -> None:
    level = logging.DEBUG if verbose else logging.INFO
    logging.basicConfig(level=level, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for noisy in ("apscheduler", "httpx", "httpcore", "trafilatura", "htmldate"):
        logging.getLogger(noisy).setLevel(logging.DEBUG if verbose > 1 else logging.WARNING)


# --- commands -------------------------------------------------------------------------------


def cmd_check(config: Config, args: argparse.Namespace) -> int:
    print(f"config {config.path}: ok")
    print(f"database: {config.database}")
    print(f"sources ({len(config.sources)}):")
    for s in config.sources:
        text = "full text" if s.full_text else "feed only"
        print(f"  {s.name:<22} {s.type:<5} every {_duration(s.interval):<6} {text:<9}  {s.url}")
    print(f"watchlists ({len(config.watchlists)}):")
    for w in config.watchlists:
        print(f"  {w.name:<22} → {', '.join(w.notify) or '(no notifier)'}")
        print(f"    {w.query}")
    print(f"notifiers ({len(config.notifiers)}):")
    for n in config.notifiers:
        print(f"  {n.name:<22} {n.type}")
    return EXIT_OK


def cmd_once(config: Config, args: argparse.Namespace) -> int:
    from monitor.crawl import Crawler
    from monitor.pipeline import Monitor, run_cycle
    from monitor.store import Store

    store = Store.open(config.database)

    async def one_cycle() -> CycleReport:
        crawler = Crawler(config.crawl)
        try:
            return await run_cycle(Monitor.build(config, store, crawler), config.sources)
        finally:
            await crawler.close()

    try:
        print_cycle(asyncio.run(one_cycle()))
    finally:
        store.close()
    return EXIT_OK


def cmd_run(config: Config, args: argparse.Namespace) -> int:
    from monitor.scheduler import Daemon

    asyncio.run(Daemon(config, print_cycle).run())
    return EXIT_OK


# --- printing -------------------------------------------------------------------------------


def print_cycle(report: CycleReport) -> None:
    for source in report.sources:
        print(format_source(source), flush=True)
    delivery = report.delivery
    ok = len(report.sources) - report.sources_failed
    print(
        f"cycle: sources {ok} ok, {report.sources_failed} failed; "
        f"articles {report.new_articles} new, {report.matched_articles} matched; "
        f"alerts {report.alerts_created} new, {delivery.sent} sent, {delivery.failed} failed, "
        f"{delivery.pending} pending",
        flush=True,
    )


def format_source(s: SourceReport) -> str:
    if s.error:
        return f"  {s.name:<22} error  {s.error}"
    if s.status == 304:
        return f"  {s.name:<22} 304    not modified"
    return f"  {s.name:<22} {s.status}    {s.entries} entries, {s.new} new"


def _duration(seconds: int) -> str:
    for unit, size in (("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


if __name__ == "__main__":
    sys.exit(main())
