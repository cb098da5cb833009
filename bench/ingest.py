"""Benchmark: `monitor once` ingesting local news, in two shapes.

    python bench/ingest.py --outlet [--articles 2000] [--watchlists 1000] [--hosts 4] [--runs 3]
                                    [--extract-pages 500] [--profile FILE.prof]
    python bench/ingest.py [--feeds 1000] [--items 50] [--runs 1]

--outlet (issue 16): one local outlet of `--articles` article pages of realistic weight (60–150
KB: menus, scripts, JSON-LD, cookie banner, ads, related lists, comments; see bench/outlet.py)
on `--hosts` host names pinned to 127.0.0.1 (crawl.hosts), each with an RSS feed listing its
pages, full_text: true, so `monitor once` fetches and extracts every page. `--watchlists`
generated watchlists (bench/match.py's generator) alert to a local webhook receiver started
here. Each run, on a fresh database and in this order:

- `monitor once` in a subprocess (the real CLI): stored articles / its wall time (process
  start included) = stored_per_s; stored articles / the time from the first article page
  served to the last article stored (a read-only poll of the database every 0.1 s) =
  window_per_s; first_alert_s = the webhook receiver's first POST minus the start of
  `monitor once` (receiver time, not alerts.created, which has whole seconds only).
- the bare fetch: bench/barefetch.py, a minimal Scrapy spider in a subprocess with the
  daemon's own concurrency settings (monitor.crawl.scrapy_settings for this config), fetching
  the same pages and doing nothing: pages/s from its first request to its last response.
- plain `trafilatura.extract(html)` over the same pages, in this process (one core): pages/s;
  by default over every n-th page, 500 of them (the pages are drawn alike; --extract-pages 0
  takes all, at about 40 s more per run).

parts_per_s = 1 / (1/fetch + 1/extract), the two parts in series; ratio = stored_per_s /
parts_per_s, per run. The table shows each run and the medians; the last line is
`ingest: stored_per_s=… first_alert_s=… parts_per_s=… ratio=…` (medians). Targets (issue 16):
stored_per_s >= 200 and ratio >= 0.5. The machine's speed drifts; compare ratios, not rates
from different invocations. With --profile FILE, one `monitor once` runs under cProfile
(`python -m cProfile -o FILE -m monitor …`; the main process only) and the 15 top cumulative
entries are printed instead of the figures.

Without --outlet (issue 14): many small feeds, each a host name of its own pinned to
127.0.0.1, as 1,000 outlets would be; items are feed-only (full_text: false), one watchlist
matches a tenth of them and alerts to the log. `monitor once` twice per run: the first
cycle's items stored per second and the wall time of a second, unchanged cycle (every feed
answers 304). Wall times include starting the process. Target (issue 14): the unchanged cycle
under 10 s on this machine.

Not a test.
"""

from __future__ import annotations

import argparse
import json
import os
import pstats
import random
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import match  # noqa: E402  (bench/match.py: the watchlist generator)
import outlet as local_outlet  # noqa: E402
from localnews import Arrivals, article, config, serve_outlets, webhook  # noqa: E402

from monitor.store import FETCH  # noqa: E402  (an article whose page is yet to be fetched)

TARGET_STORED_PER_S = 200.0
TARGET_RATIO = 0.5
POLL_SECONDS = 0.1
# Frames that hold everything else up in a cProfile of the daemon; left out of its top list.
PLUMBING = ("asyncio/", "_contextvars", "importlib", "scrapy/utils/", "scrapy/core/spidermw",
            "scrapy/spidermiddlewares/", "builtins.exec", "builtins.__import__", "<module>")
LEGEND = """
rows: article rows; stored: those stored with their page's text; served: article pages the outlet
served during `monitor once`; stored/s: stored / `monitor once` wall time (process start included);
window/s: stored / (first article page served → last article stored, polled every 0.1 s);
1st alert s: the webhook receiver's first POST − the start of `monitor once`; POSTs: alerts it got;
fetch/s: the bare Scrapy subprocess, same settings; extract/s: trafilatura.extract, one process;
parts/s = 1/(1/fetch + 1/extract); ratio = stored/s ÷ parts/s, per run; medians below the runs.
"""
FETCHED = "SELECT count(*) FROM articles WHERE state != ?"
# The daemon's Scrapy settings that decide how fast it fetches; the bare spider takes these.
FETCH_SETTING_PREFIXES = ("CONCURRENT_", "DOWNLOAD_", "AUTOTHROTTLE_", "RETRY_")
FETCH_SETTINGS = ("USER_AGENT", "COOKIES_ENABLED", "TWISTED_REACTOR")


def run_once(config_path: Path) -> tuple[float, str]:
    started = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "monitor", "--config", str(config_path), "once"],
                            capture_output=True, text=True, cwd=ROOT,
                            env={**os.environ, "PYTHONPATH": str(ROOT)}, check=False)
    elapsed = time.perf_counter() - started
    if result.returncode != 0:
        sys.exit(f"monitor once failed ({result.returncode}):\n{result.stderr[-3000:]}")
    summary = next((line for line in reversed(result.stdout.splitlines()) if "cycle:" in line), "")
    return elapsed, summary


def stored(database: Path) -> int:
    with sqlite3.connect(database) as db:
        return db.execute("SELECT count(*) FROM articles").fetchone()[0]

def feeds_bench(args: argparse.Namespace) -> None:
    """Issue 14: `monitor once` twice over many small feeds."""
    rows = []
    with serve_outlets(args.feeds) as outlets:
        for n in range(args.feeds):
            for serial in range(args.items):
                outlets.add(n, article(n, serial, "Tokajev" if serial % 10 == 0 else ""), keep=args.items)
        for run in range(args.runs):
            with tempfile.TemporaryDirectory() as tmp:
                path = Path(tmp) / "config.yaml"
                path.write_text(yaml.safe_dump(config(outlets, "10m"), allow_unicode=True))
                requests_before = outlets.requests
                first, first_line = run_once(path)
                count = stored(Path(tmp) / "monitor.db")
                first_requests = outlets.requests - requests_before
                before, not_modified = outlets.requests, outlets.not_modified
                second, second_line = run_once(path)
                rows.append((run + 1, count, first, count / first, first_requests, second,
                             outlets.requests - before, outlets.not_modified - not_modified))
                print(f"run {run + 1}: {first_line.strip()}\n       {second_line.strip()}", flush=True)
    print(f"\n{args.feeds} feeds × {args.items} items, `monitor once` twice per run "
          f"(wall time includes process start)")
    print(f"{'run':>3}  {'stored':>7}  {'1st cycle s':>11}  {'items/s':>8}  {'requests':>8}  "
          f"{'2nd cycle s':>11}  {'requests':>8}  {'304s':>6}")
    for run, count, first, rate, first_requests, second, requests, nm in rows:
        print(f"{run:>3}  {count:>7}  {first:>11.1f}  {rate:>8.0f}  {first_requests:>8}  "
              f"{second:>11.1f}  {requests:>8}  {nm:>6}")
    best = min(r[5] for r in rows)
    print(f"ingest: feeds={args.feeds} items={args.items} stored_per_s={max(r[3] for r in rows):.0f} "
          f"unchanged_cycle_s={best:.1f} target_s=10 runs={len(rows)}")


# --- Issue 16: one outlet of heavy pages, 1,000 watchlists --------------------------------


@dataclass
class OutletRun:
    stored: int  # articles stored with their page's text
    rows: int  # article rows (a row is written for each feed entry before its page is fetched)
    served: int  # article pages the outlet served during `monitor once`
    alerts: int  # alert rows written
    delivered: int  # POSTs the webhook receiver got
    wall: float  # `monitor once`, process start to exit
    window: float  # first article page served → last article stored
    first_alert: float | None
    fetch_rate: float  # bare Scrapy, pages/s
    extract_rate: float  # plain trafilatura, pages/s

    @property
    def stored_per_s(self) -> float:
        return self.stored / self.wall

    @property
    def window_per_s(self) -> float:
        return self.stored / self.window if self.window > 0 else float("nan")

    @property
    def parts_per_s(self) -> float:
        return 1 / (1 / self.fetch_rate + 1 / self.extract_rate)

    @property
    def ratio(self) -> float:
        return self.stored_per_s / self.parts_per_s


class StoreWatch:
    """Polls the articles table read-only and notes when the count of articles past the fetch
    (their page stored, or its failure) last grew. Feed entries are rows before their pages
    are fetched; the articles_state index keeps the poll cheap."""

    def __init__(self, database: Path) -> None:
        self.database = database
        self.count = 0
        self.last_growth: float | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)

    def _poll(self) -> None:
        db: sqlite3.Connection | None = None
        while not self._stop.wait(POLL_SECONDS):
            try:
                if db is None and self.database.exists():
                    db = sqlite3.connect(f"file:{self.database}?mode=ro", uri=True, timeout=0.05)
                if db is not None:
                    count = db.execute(FETCHED, [FETCH]).fetchone()[0]
                    if count > self.count:
                        self.count, self.last_growth = count, time.time()
            except sqlite3.OperationalError:  # not created yet, or busy for a moment
                continue
        if db is not None:
            db.close()

    def __enter__(self) -> StoreWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def outlet_config(site: local_outlet.Outlet, hook: str, queries: dict[str, str]) -> dict:
    return {
        "database": "monitor.db",
        "crawl": {"delay": 0, "timeout": "30s", "allow_private": True, "page_cache": False,
                  "hosts": site.hosts_config()},
        "sources": [{"name": host, "url": site.feed_url(host), "interval": "10m", "full_text": True}
                    for host in site.stories],
        "watchlists": [{"name": name, "query": query, "notify": ["siem"]} for name, query in queries.items()],
        "notifiers": [{"name": "siem", "type": "webhook", "url": hook}],
    }


def monitor_command(config_path: Path, profile: Path | None) -> list[str]:
    profiler = ["-m", "cProfile", "-o", str(profile)] if profile else []
    return [sys.executable, *profiler, "-m", "monitor", "--config", str(config_path), "once"]


def run_monitor(config_path: Path, profile: Path | None) -> tuple[float, float, str]:
    """`monitor once`: (time.time() at its start, at its exit, its summary line)."""
    log = config_path.with_name("once.log")
    with log.open("w") as out:
        started = time.time()
        result = subprocess.run(monitor_command(config_path, profile), stdout=out, stderr=subprocess.STDOUT,
                                cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, check=False)
        ended = time.time()
    text = log.read_text()
    if result.returncode != 0:
        sys.exit(f"monitor once failed ({result.returncode}):\n{text[-3000:]}")
    summary = next((line for line in reversed(text.splitlines()) if "cycle:" in line), "")
    return started, ended, summary.strip()


def fetch_settings(config_path: Path) -> dict:
    """The daemon's own Scrapy settings for this config, the parts that set the pace."""
    from monitor.config import load_config
    from monitor.crawl import scrapy_settings

    loaded = load_config(config_path)
    settings = scrapy_settings(loaded.crawl, loaded.sources)
    return {key: value for key, value in settings.items()
            if key.startswith(FETCH_SETTING_PREFIXES) or key in FETCH_SETTINGS}


def bare_fetch_rate(site: local_outlet.Outlet, config_path: Path) -> float:
    plan = config_path.with_name("barefetch.json")
    plan.write_text(json.dumps({"settings": fetch_settings(config_path), "pages": site.page_urls()}))
    result = subprocess.run([sys.executable, str(ROOT / "bench" / "barefetch.py"), str(plan)],
                            capture_output=True, text=True, cwd=ROOT, check=False)
    if result.returncode != 0:
        sys.exit(f"bench/barefetch.py failed ({result.returncode}):\n{result.stderr[-3000:]}")
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    if figures["pages"] != len(site.pages):
        sys.exit(f"the bare spider fetched {figures['pages']} of {len(site.pages)} pages")
    return figures["pages"] / figures["seconds"]


def extract_rate(pages: list[str]) -> float:
    import trafilatura

    started = time.perf_counter()
    for page in pages:
        trafilatura.extract(page)
    return len(pages) / (time.perf_counter() - started)


def outcome(database: Path) -> tuple[int, int, int]:
    """Article rows, those with a text, alert rows."""
    with sqlite3.connect(database) as db:
        articles, with_text = db.execute("SELECT count(*), count(nullif(text, '')) FROM articles").fetchone()
        alerts = db.execute("SELECT count(*) FROM alerts").fetchone()[0]
    return articles, with_text, alerts


def outlet_run(site: local_outlet.Outlet, hook: Arrivals, config_text: str, pages: list[str],
               profile: Path | None = None) -> OutletRun:
    with tempfile.TemporaryDirectory() as tmp:
        config_path = Path(tmp) / "config.yaml"
        config_path.write_text(config_text)
        site.reset_counts()
        received = len(hook.alerts)
        with StoreWatch(Path(tmp) / "monitor.db") as watch:
            started, ended, summary = run_monitor(config_path, profile)
        print(f"  {summary}", flush=True)
        articles, with_text, alerts = outcome(Path(tmp) / "monitor.db")
        with hook.lock:
            arrivals = sorted(t for t, _, _ in hook.alerts[received:])
        served, first_page = site.article_requests, site.first_article
        window = (watch.last_growth or ended) - (first_page or started)
        first_alert = arrivals[0] - started if arrivals else None
        fetch = bare_fetch_rate(site, config_path) if profile is None else float("nan")
    extract = extract_rate(pages) if profile is None else float("nan")
    return OutletRun(with_text, articles, served, alerts, len(arrivals), ended - started, window, first_alert,
                     fetch, extract)


def _cores() -> str:
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return f"{usable} usable core(s) of {os.cpu_count()}"


def _ordinal(n: int) -> str:
    return {1: "", 2: "2nd ", 3: "3rd "}.get(n, f"{n}th ")


def _seconds(value: float | None) -> str:
    return f"{value:.2f}" if value is not None else "none"


def print_outlet_table(runs: list[OutletRun], label: str = "") -> None:
    print(f"{'run':>6} {'rows':>6} {'stored':>6} {'served':>6} {'once s':>7} {'stored/s':>8} "
          f"{'window/s':>8} {'1st alert s':>11} {'alerts':>6} {'POSTs':>6} {'fetch/s':>7} "
          f"{'extract/s':>9} {'parts/s':>7} {'ratio':>6}")
    for n, r in enumerate(runs, 1):
        print(f"{label or n:>6} {r.rows:>6} {r.stored:>6} {r.served:>6} {r.wall:>7.1f} "
              f"{r.stored_per_s:>8.1f} {r.window_per_s:>8.1f} {_seconds(r.first_alert):>11} "
              f"{r.alerts:>6} {r.delivered:>6} "
              f"{r.fetch_rate:>7.0f} {r.extract_rate:>9.1f} {r.parts_per_s:>7.1f} {r.ratio:>6.2f}")
    if len(runs) > 1:
        med = statistics.median
        alerts = [r.first_alert for r in runs if r.first_alert is not None]
        print(f"{'median':>6} {'':>6} {'':>6} {'':>6} {med(r.wall for r in runs):>7.1f} "
              f"{med(r.stored_per_s for r in runs):>8.1f} {med(r.window_per_s for r in runs):>8.1f} "
              f"{_seconds(med(alerts) if alerts else None):>11} {'':>6} {'':>6} "
              f"{med(r.fetch_rate for r in runs):>7.0f} {med(r.extract_rate for r in runs):>9.1f} "
              f"{med(r.parts_per_s for r in runs):>7.1f} {med(r.ratio for r in runs):>6.2f}")


def print_profile(profile: Path, count: int = 15) -> None:
    """The top entries by cumulative time, without the frames that only carry the others: the
    event loop, context runs, imports' machinery and Scrapy's async-generator wrappers."""
    print(f"\ncProfile of `monitor once` (main process only; {profile}), top {count} by cumulative time,"
          f" plumbing left out ({', '.join(PLUMBING)}):")
    stats = pstats.Stats(str(profile))
    total = stats.total_tt  # type: ignore[attr-defined]
    entries = sorted(stats.stats.items(), key=lambda item: item[1][3], reverse=True)  # type: ignore[attr-defined]
    print(f"{'cumulative s':>12} {'share':>6} {'own s':>7} {'calls':>7}  function")
    shown = 0
    for (filename, line, name), (_, calls, own, cumulative, _) in entries:
        where = f"{filename}:{line}({name})"
        if any(part in where for part in PLUMBING):
            continue
        where = where.replace(str(ROOT) + "/", "").split("site-packages/")[-1]
        print(f"{cumulative:>12.1f} {cumulative / total:>6.0%} {own:>7.1f} {calls:>7}  {where}")
        shown += 1
        if shown == count:
            break


def outlet_bench(args: argparse.Namespace) -> None:
    """Issue 16: heavy pages from one outlet, many watchlists, beside bare Scrapy and trafilatura."""
    vocab = match.Vocabulary.build(random.Random(args.seed))
    queries = match.watchlists(args.watchlists, vocab, args.seed + args.watchlists)
    began = time.perf_counter()
    with local_outlet.serve(args.articles, args.hosts, args.seed) as site, webhook() as hook:
        bodies = site.page_bodies()
        step = max(1, len(bodies) // args.extract_pages) if args.extract_pages else 1
        pages = [page.decode() for page in bodies[::step]]  # every step-th page, for trafilatura
        weight = sum(len(page) for page in bodies) / len(bodies) / 1000
        print(f"{args.articles} article pages on {len(site.stories)} hosts, {weight:.0f} KB each on average "
              f"(built in {time.perf_counter() - began:.0f} s); {args.watchlists} watchlists → webhook; "
              f"trafilatura on every {_ordinal(step)}page ({len(pages)}); {_cores()}", flush=True)
        config_text = yaml.safe_dump(outlet_config(site, hook.url, queries), allow_unicode=True)
        if args.profile:
            run = outlet_run(site, hook, config_text, pages, args.profile.resolve())
            print(f"profiled run: {run.stored} stored in {run.wall:.1f} s ({run.stored_per_s:.1f}/s with "
                  f"the profiler's overhead)")
            print_profile(args.profile.resolve())
            return
        runs = []
        for n in range(args.runs):
            print(f"run {n + 1}:", flush=True)
            runs.append(outlet_run(site, hook, config_text, pages))
            print_outlet_table(runs[-1:], label=f"{n + 1}")
    print(LEGEND)
    print_outlet_table(runs)
    print_verdict(runs)


def _verdict(value: float, target: float) -> str:
    return "met" if value >= target else "NOT met"


def print_verdict(runs: list[OutletRun]) -> None:
    """The targets, then the one line of figures (medians over the runs)."""
    med = statistics.median
    stored_per_s, ratio = med(r.stored_per_s for r in runs), med(r.ratio for r in runs)
    alerts = [r.first_alert for r in runs if r.first_alert is not None]
    first_alert = _seconds(med(alerts) if alerts else None)
    print(f"\ntargets: stored_per_s >= {TARGET_STORED_PER_S:.0f}: "
          f"{_verdict(stored_per_s, TARGET_STORED_PER_S)}; ratio >= {TARGET_RATIO}: "
          f"{_verdict(ratio, TARGET_RATIO)}  ({_cores()})")
    print(f"ingest: stored_per_s={stored_per_s:.1f} first_alert_s={first_alert} "
          f"parts_per_s={med(r.parts_per_s for r in runs):.1f} ratio={ratio:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--outlet", action="store_true", help="issue 16: one outlet of heavy pages")
    parser.add_argument("--runs", type=int, default=None, help="runs on fresh databases (default 3 with "
                        "--outlet, else 1)")
    outlet = parser.add_argument_group("--outlet")
    outlet.add_argument("--articles", type=int, default=2000)
    outlet.add_argument("--watchlists", type=int, default=1000)
    outlet.add_argument("--hosts", type=int, default=4, help="host names the pages are spread over")
    outlet.add_argument("--seed", type=int, default=16)
    outlet.add_argument("--extract-pages", type=int, default=500, help="trafilatura's baseline on this many "
                        "of the pages, evenly spread (0: all)")
    outlet.add_argument("--profile", type=Path, help="profile one `monitor once` into this file instead")
    feeds = parser.add_argument_group("without --outlet")
    feeds.add_argument("--feeds", type=int, default=1000)
    feeds.add_argument("--items", type=int, default=50)
    args = parser.parse_args()
    if args.outlet:
        args.runs = args.runs or 3
        outlet_bench(args)
    else:
        args.runs = args.runs or 1
        feeds_bench(args)


if __name__ == "__main__":
    main()
