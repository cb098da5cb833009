"""What a new user runs into first: `match` outside a project folder, a mistyped watchlist
name in `backtest`, the window `--since` printed as searched, `discover HOST:PORT` of a plain
HTTP server, a refused port reported at once, and the exit codes."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path

from conftest import REPO, monitor_config, run_monitor, write_config
from servers import Site


def monitor(cwd: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """The CLI with no --config and no $MONITOR_CONFIG, in `cwd`."""
    env = {k: v for k, v in os.environ.items() if k != "MONITOR_CONFIG"}
    env["PYTHONPATH"] = str(REPO)
    return subprocess.run([sys.executable, "-m", "monitor", *args], capture_output=True,
                          text=True, timeout=timeout, env=env, cwd=cwd)


def test_match_needs_no_config_file(tmp_path: Path) -> None:
    article = tmp_path / "artikel.txt"
    article.write_text("CSTO-styrkorna landade i Almaty under natten.", encoding="utf-8")
    assert not (tmp_path / "config.yaml").exists()

    hit = monitor(tmp_path, "match", "csto AND almaty", str(article))
    miss = monitor(tmp_path, "match", "tokajev", str(article))

    assert hit.returncode == 0, hit.stderr
    assert "MATCH (CSTO, Almaty)" in hit.stdout
    assert miss.returncode == 1 and "no match" in miss.stdout, miss.stderr


def test_backtest_of_a_mistyped_watchlist_name_suggests_the_right_one(
    tmp_path: Path, site: Site
) -> None:
    config = write_config(tmp_path, monitor_config(site))

    typo = run_monitor(config, "backtest", "kazakstan-cst")
    quoted = run_monitor(config, "backtest", '"kazakstan-cst"')

    assert typo.returncode == 2
    assert "no watchlist 'kazakstan-cst'; did you mean 'kazakstan-csto'?" in typo.stderr
    assert typo.stdout == ""
    # Quoted, it is a query (a phrase), searched as asked.
    assert quoted.returncode == 0, quoted.stderr
    assert "would have alerted" in quoted.stdout


def test_backtest_since_filters_and_prints_the_time_it_searched_from(
    tmp_path: Path, site: Site
) -> None:
    config = write_config(tmp_path, monitor_config(site))
    assert run_monitor(config, "once").returncode == 0

    before = datetime.now().astimezone()
    week = run_monitor(config, "backtest", "kazakstan-csto", "--since", "7d")
    after = datetime.now().astimezone()
    instant = run_monitor(config, "backtest", "kazakstan-csto", "--since", "1s")

    assert week.returncode == 0, week.stderr
    summary = week.stdout.splitlines()[-1]
    found = re.search(r"since (\d{4}-\d\d-\d\d \d\d:\d\d) \(7d\)", summary)
    assert found, summary
    start = datetime.strptime(found.group(1), "%Y-%m-%d %H:%M").replace(tzinfo=before.tzinfo)
    assert (before - timedelta(days=7, minutes=1)) <= start <= after - timedelta(days=7)
    assert summary.startswith("5 stories (5 articles)"), summary
    # The articles were first seen more than a second ago: the window leaves them out.
    time.sleep(1.5)
    assert instant.stdout.splitlines()[-1].startswith("0 stories (0 articles)"), instant.stdout


def test_discover_host_and_port_without_a_scheme_falls_back_to_http(
    tmp_path: Path, site: Site
) -> None:
    address = site.base.removeprefix("http://")  # 127.0.0.1:PORT, plain HTTP

    result = monitor(tmp_path, "discover", address)

    assert result.returncode == 0, result.stderr
    assert f"url: http://{address}/rss/utrikes.xml" in result.stdout, result.stdout
    assert "OpenSSL" not in result.stderr + result.stdout
    pages = [path for method, path, _ in site.requests if path == "/"]
    assert pages == ["/"], "https was refused by the plain server; http asked once"


def test_discover_of_a_refused_port_answers_within_the_timeout_without_retries(
    tmp_path: Path,
) -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = write_config(tmp_path, {"crawl": {"timeout": "10s", "delay": 0.5}, "sources": [],
                                     "watchlists": [], "notifiers": []})

    started = time.monotonic()
    result = run_monitor(config, "-vv", "discover", f"127.0.0.1:{port}")
    elapsed = time.monotonic() - started

    assert result.returncode == 1
    assert f"could not fetch https://127.0.0.1:{port}:" in result.stderr
    assert "ConnectionRefusedError" in result.stderr and "over http:" in result.stderr
    # Scrapy's own log (-vv) shows every attempt: no retry, and no probe of a host that is down.
    assert "Retrying" not in result.stderr, result.stderr
    assert "robots.txt" not in result.stderr and "/rss" not in result.stderr, result.stderr
    # A refused connection answers at once; the bound is the timeout plus a process start.
    assert elapsed < 10 + 5, f"{elapsed:.1f} s (it was 23 s with retries and probes)"


def test_usage_errors_exit_2_like_argparse(tmp_path: Path, site: Site) -> None:
    config = write_config(tmp_path, monitor_config(site))

    unknown_source = run_monitor(config, "sources", "--test", "utrike")
    bad_since = run_monitor(config, "backtest", "csto", "--since", "forever")
    bad_argument = run_monitor(config, "alerts", "--limit", "many")

    assert unknown_source.returncode == 2 and "no source named 'utrike'" in unknown_source.stderr
    assert bad_since.returncode == 2 and "--since" in bad_since.stderr
    assert bad_argument.returncode == 2 and "--limit" in bad_argument.stderr
