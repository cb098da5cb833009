"""The real `monitor` command in a subprocess: check, exit codes and the daemon's lifecycle."""

from __future__ import annotations

import json
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from conftest import REPO, monitor_config, run_monitor, write_config
from servers import Receiver, Site


def test_check_prints_what_would_run(tmp_path: Path, site: Site) -> None:
    config = write_config(tmp_path, monitor_config(site))
    result = run_monitor(config, "check")
    assert result.returncode == 0, result.stderr
    assert "sources (3):" in result.stdout
    assert "utrikes" in result.stdout and "every 10m" in result.stdout
    assert "kazakstan-csto" in result.stdout


def test_check_fails_with_the_key_path(tmp_path: Path, site: Site) -> None:
    raw = monitor_config(site)
    raw["sources"][0]["intervall"] = "5m"
    result = run_monitor(write_config(tmp_path, raw), "check")
    assert result.returncode == 2
    assert "sources[0].intervall: unknown key; did you mean 'interval'?" in result.stderr


def test_bad_query_refused_by_once_before_anything_runs(tmp_path: Path, site: Site) -> None:
    config = write_config(tmp_path, monitor_config(site, query="kazak* AND (CSTO"))
    result = run_monitor(config, "once")
    assert result.returncode == 2
    assert "watchlists[0].query" in result.stderr and "^" in result.stderr
    assert site.requests == []
    assert not (tmp_path / "monitor.db").exists()


def test_unwritable_database_is_a_clear_error(tmp_path: Path, site: Site) -> None:
    (tmp_path / "blocked").write_text("a file, not a folder")
    raw = monitor_config(site)
    raw["database"] = "blocked/monitor.db"
    result = run_monitor(write_config(tmp_path, raw), "once")
    assert result.returncode == 3
    assert result.stderr.startswith("database error: cannot open database")


def test_config_from_environment_variable(tmp_path: Path, site: Site) -> None:
    config = write_config(tmp_path, monitor_config(site))
    result = subprocess.run(
        [sys.executable, "-m", "monitor", "check"], capture_output=True, text=True,
        cwd=REPO, env={"MONITOR_CONFIG": str(config), "PYTHONPATH": str(REPO)}, timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert str(config) in result.stdout


def test_daemon_polls_alerts_and_stops_cleanly_on_sigterm(
    tmp_path: Path, site: Site, receiver: Receiver
) -> None:
    raw = monitor_config(site, receiver, feeds=("rss/utrikes.xml", "rss/inrikes.latin1.xml"))
    for source in raw["sources"]:
        source["interval"] = "5s"
    config = write_config(tmp_path, raw)
    env = {"WEBHOOK_SECRET": "x", "PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"}
    daemon = subprocess.Popen(
        [sys.executable, "-m", "monitor", "--config", str(config), "run"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=tmp_path,
    )
    try:
        _wait_for(lambda: len(site.statuses("/rss/utrikes.xml")) >= 3, timeout=90)
    finally:
        daemon.send_signal(signal.SIGTERM)
        out, err = daemon.communicate(timeout=90)

    assert daemon.returncode == 0, err
    assert site.statuses("/rss/utrikes.xml")[:3] == [200, 304, 304], "one reactor, many polls"
    urls = sorted(json.loads(body)["article"]["url"] for body in receiver.bodies())
    assert len(urls) == len(set(urls)) == 5, "each matching article alerted once"
    assert out.count("ALERT [kazakstan-csto]") == 5
    assert "stopping: finishing in-flight work" in err


def _wait_for(condition, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        time.sleep(0.2)


def test_match_shows_hits_in_context_from_stdin_and_files(tmp_path: Path, site: Site) -> None:
    config = write_config(tmp_path, monitor_config(site))
    article = REPO / "tests/fixtures/site/nyheter/utrikes/csto-styrkor-almaty.html"
    unrelated = REPO / "tests/fixtures/site/nyheter/inrikes/riksdagen-budget.html"
    result = subprocess.run(
        [sys.executable, "-m", "monitor", "--config", str(config), "match", "kazak* AND CSTO",
         str(article), str(unrelated)],
        capture_output=True, text=True, env={"PYTHONPATH": str(REPO)}, timeout=60,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith(f"{article}: MATCH (CSTO")
    assert "[CSTO]-styrkorna" in lines[1]
    assert lines[2] == f"{unrelated}: no match", "the Mest läst box does not count"

    piped = subprocess.run(
        [sys.executable, "-m", "monitor", "--config", str(config), "match", "{CSTO}"],
        input="Rapport om CSTO:s övning.\n", capture_output=True, text=True,
        env={"PYTHONPATH": str(REPO)}, timeout=60,
    )
    assert piped.stdout.splitlines() == ["<stdin>: MATCH (CSTO)", "    Rapport om [CSTO]:s övning."]


def test_match_fetches_a_url_as_the_daemon_would(tmp_path: Path, site: Site) -> None:
    config = write_config(tmp_path, monitor_config(site))
    url = site.url("/ekonomi/kazakstan-uran.html")
    result = run_monitor(config, "match", "kazakstan-csto", url)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"{url}: MATCH (")
    no = run_monitor(config, "match", "tokajev", site.url("/nyheter/inrikes/riksdagen-budget.html"))
    assert no.returncode == 1 and no.stdout.endswith(": no match\n")


def test_bad_query_gets_a_caret_in_match(tmp_path: Path, site: Site) -> None:
    config = write_config(tmp_path, monitor_config(site))
    result = run_monitor(config, "match", "kazak* AND (CSTO", "/dev/null")
    assert result.returncode == 2
    assert result.stderr.splitlines()[-2:] == ["  kazak* AND (CSTO", "             ^"]


def test_backtest_lists_what_would_have_alerted_and_sends_nothing(
    tmp_path: Path, site: Site, receiver: Receiver
) -> None:
    config = write_config(tmp_path, monitor_config(site))
    assert run_monitor(config, "once").returncode == 0
    raw = monitor_config(site, receiver)
    write_config(tmp_path, raw)

    result = run_monitor(config, "backtest", "kazakstan-csto", "--since", "7d")
    narrower = run_monitor(config, "backtest", "title:(CSTO*)")

    assert result.returncode == 0, result.stderr
    assert re.search(r"\n5 stories \(5 articles\) would have alerted \(since \d{4}-\d\d-\d\d "
                     r"\d\d:\d\d \(7d\); nothing was sent\)\n$", result.stdout), result.stdout
    assert narrower.stdout.splitlines()[-1].startswith("2 stories (2 articles) would have alerted")
    assert receiver.received == []


def test_reload_refuses_a_bad_query_with_a_caret_and_keeps_running(tmp_path: Path, site: Site) -> None:
    raw = monitor_config(site, feeds=("rss/utrikes.xml",))
    config = write_config(tmp_path, raw)
    log = tmp_path / "stderr.log"
    with log.open("w") as stderr:
        daemon = subprocess.Popen(
            [sys.executable, "-m", "monitor", "--config", str(config), "run"],
            stdout=subprocess.DEVNULL, stderr=stderr, text=True, cwd=tmp_path,
            env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"},
        )
        try:
            _wait_for(lambda: len(site.statuses("/rss/utrikes.xml")) >= 1, timeout=60)
            raw["watchlists"][0]["query"] = "tokajev NEAR/ CSTO"
            write_config(tmp_path, raw)
            daemon.send_signal(signal.SIGHUP)
            _wait_for(lambda: "reload refused" in log.read_text(), timeout=60)
            raw["watchlists"][0]["query"] = "tokajev"
            raw["sources"][0]["interval"] = "5s"
            write_config(tmp_path, raw)
            daemon.send_signal(signal.SIGHUP)
            _wait_for(lambda: len(site.statuses("/rss/utrikes.xml")) >= 2, timeout=60)
        finally:
            daemon.send_signal(signal.SIGTERM)
            daemon.wait(timeout=60)
    err = log.read_text()

    assert daemon.returncode == 0
    assert "reload refused, keeping the running configuration" in err
    assert "tokajev NEAR/ CSTO\n" in err and "^" in err
    assert "configuration reloaded: 1 source, 1 watchlist" in err


def test_discover_prints_sources_ready_to_paste_without_a_config(tmp_path: Path, site: Site) -> None:
    import yaml

    result = subprocess.run(
        [sys.executable, "-m", "monitor", "--config", str(tmp_path / "none.yaml"), "discover",
         site.url("/")], capture_output=True, text=True, env={"PYTHONPATH": str(REPO)}, timeout=120,
    )
    assert result.returncode == 0, result.stderr
    sources = yaml.safe_load(result.stdout)["sources"]
    urls = {s["url"] for s in sources}
    assert site.url("/rss/utrikes.xml") in urls and site.url("/sitemap-index.xml") in urls
    assert {s["type"] for s in sources} == {"feed", "sitemap"}


def test_discover_on_an_unreachable_site_says_why(tmp_path: Path) -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    result = subprocess.run(
        [sys.executable, "-m", "monitor", "--config", str(tmp_path / "none.yaml"), "discover",
         f"http://127.0.0.1:{port}/"], capture_output=True, text=True, env={"PYTHONPATH": str(REPO)},
        timeout=120,
    )
    assert result.returncode == 1
    assert f"could not fetch http://127.0.0.1:{port}/" in result.stderr
    assert "ConnectionRefusedError" in result.stderr
    assert result.stdout == ""
