"""Benchmark: the daemon for a long while — 200 local feeds polled every 5 s, a new matching item
appearing every few seconds throughout, each alerted to a local webhook.

    python bench/soak.py [--sources 200] [--interval 5s] [--minutes 30] [--every 3]

Prints resident memory and open file descriptors of the daemon at start (after its first
minute) and end, the time from an item appearing in a feed to its webhook arriving (median,
p95, max), and whether any alert was lost or repeated. Targets (issue 14): memory growth under
10 %, descriptors flat, p95 under the interval + 2 s, none lost or repeated. Not a test.
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

from localnews import article, config, serve_outlets, webhook  # noqa: E402

from monitor.config import parse_duration  # noqa: E402


def resident_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def descriptors(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sources", type=int, default=200)
    parser.add_argument("--interval", default="5s")
    parser.add_argument("--minutes", type=float, default=30)
    parser.add_argument("--every", type=float, default=3.0, help="seconds between new items")
    parser.add_argument("--seed", type=int, default=5)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    interval = parse_duration(args.interval)
    with serve_outlets(args.sources) as outlets, webhook() as hook, tempfile.TemporaryDirectory() as tmp:
        for n in range(args.sources):
            for serial in range(5):
                outlets.add(n, article(n, serial))  # old news that matches nothing
        path = Path(tmp) / "config.yaml"
        path.write_text(yaml.safe_dump(config(outlets, args.interval, hook.url), allow_unicode=True))
        log = (Path(tmp) / "daemon.log").open("w")
        daemon = subprocess.Popen([sys.executable, "-m", "monitor", "--config", str(path), "run"],
                                  cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
                                  stdout=log, stderr=subprocess.STDOUT)
        appeared: dict[str, float] = {}
        samples: list[tuple[float, int, int]] = []
        started = time.time()
        end = started + args.minutes * 60
        serial = 1000
        try:
            while time.time() < end and daemon.poll() is None:
                n = rng.randrange(args.sources)
                serial += 1
                item = article(n, serial, "Tokajev")
                outlets.add(n, item)
                appeared[f"http://{outlets.host(n)}:{outlets.port}/a/{item.key}"] = item.appeared
                if not samples or time.time() - samples[-1][0] >= 60:
                    samples.append((time.time(), resident_kb(daemon.pid), descriptors(daemon.pid)))
                time.sleep(args.every)
            time.sleep(interval + 10)  # the last items' polls and deliveries
            samples.append((time.time(), resident_kb(daemon.pid), descriptors(daemon.pid)))
        finally:
            daemon.send_signal(signal.SIGTERM)
            try:
                stopped_rc = daemon.wait(30)
            except subprocess.TimeoutExpired:
                daemon.kill()
                stopped_rc = "killed after 30 s"
            log.close()
        arrivals = list(hook.alerts)
        tail = (Path(tmp) / "daemon.log").read_text().splitlines()[-5:]
    by_url: dict[str, list[float]] = {}
    for when, _, url in arrivals:
        by_url.setdefault(url, []).append(when)
    delays = [min(by_url[url]) - t for url, t in appeared.items() if url in by_url]
    lost = [url for url in appeared if url not in by_url]
    repeated = [url for url, times in by_url.items() if len(times) > 1]
    first, last = samples[1] if len(samples) > 1 else samples[0], samples[-1]
    growth = (last[1] - first[1]) / first[1] * 100 if first[1] else 0.0
    print(f"soak: {args.sources} sources every {args.interval}, {args.minutes:g} min, a new item "
          f"every {args.every:g} s; daemon stopped: rc {stopped_rc}")
    print(f"{'minute':>6}  {'RSS MB':>7}  {'fds':>5}")
    for when, rss, fds in samples:
        print(f"{(when - started) / 60:>6.1f}  {rss / 1024:>7.1f}  {fds:>5}")
    if delays:
        print(f"items {len(appeared)}, alerted {len(appeared) - len(lost)}, lost {len(lost)}, "
              f"repeated {len(repeated)}; appear→webhook median {statistics.median(delays):.1f} s, "
              f"p95 {percentile(delays, 0.95):.1f} s, max {max(delays):.1f} s")
    print("daemon log tail:", *tail, sep="\n  ")
    print(f"soak: minutes={args.minutes:g} sources={args.sources} rss_growth_pct={growth:.1f} "
          f"fds_start={first[2]} fds_end={last[2]} "
          f"p95_s={percentile(delays, 0.95) if delays else float('nan'):.1f} "
          f"target_p95_s={interval + 2} lost={len(lost)} repeated={len(repeated)}")


if __name__ == "__main__":
    main()
