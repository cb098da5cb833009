"""Benchmark: `monitor once` over many local feeds — the first cycle's items stored per second,
and the wall time of a second, unchanged cycle (every feed answers 304).

    python bench/ingest.py [--feeds 1000] [--items 50] [--runs 1]

Each feed is a host name of its own pinned to 127.0.0.1 (crawl.hosts), as 1,000 outlets would
be; items are feed-only (full_text: false), one watchlist matches a tenth of them and alerts to
the log. Wall times include starting the process (Python, Scrapy, the matcher). Target (issue
14): the unchanged cycle under 10 s on this machine. Not a test.
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

from localnews import article, config, serve_outlets  # noqa: E402


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--feeds", type=int, default=1000)
    parser.add_argument("--items", type=int, default=50)
    parser.add_argument("--runs", type=int, default=1, help="repeat the two cycles on fresh databases")
    args = parser.parse_args()
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


if __name__ == "__main__":
    main()
