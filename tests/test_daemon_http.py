"""The daemon's own HTTP listener, end to end: `monitor run` with `http:` serves /healthz,
/metrics that move with its cycles, and each watchlist's matched stories as an Atom feed; a
port already taken is a clear error naming the key."""

from __future__ import annotations

import socket
import urllib.error
import urllib.request
from pathlib import Path

import feedparser
from conftest import monitor_config, run_monitor, start_daemon, stop_daemon, wait_for, write_config
from prometheus_client.parser import text_string_to_metric_families
from servers import Receiver, Site, free_port


def get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def samples(text: str, name: str) -> dict[tuple, float]:
    return {tuple(sorted(s.labels.items())): s.value
            for family in text_string_to_metric_families(text) for s in family.samples
            if s.name == name}


def test_the_daemon_serves_health_metrics_and_atom_feeds(
    tmp_path: Path, site: Site, receiver: Receiver
) -> None:
    port = free_port()
    raw = monitor_config(site, receiver, feeds=("rss/utrikes.xml",))
    raw["sources"][0]["interval"] = "5s"
    raw["http"] = {"listen": f"127.0.0.1:{port}"}
    config = write_config(tmp_path, raw)
    base = f"http://127.0.0.1:{port}"
    daemon = start_daemon(config, tmp_path / "daemon.log")
    try:
        wait_for(lambda: printed(tmp_path).count("cycle:") >= 2, daemon, 90)
        health = get(f"{base}/healthz")
        metrics = get(f"{base}/metrics")[1].decode()
        status, atom = get(f"{base}/feeds/kazakstan-csto.atom")
        missing, _ = get(f"{base}/feeds/ingen-sadan.atom")
    finally:
        assert stop_daemon(daemon) == 0

    assert health[0] == 200 and health[1].startswith(b"ok")
    fetches = samples(metrics, "monitor_fetches_total")
    assert fetches[(("source", "utrikes"), ("status", "200"))] == 1
    assert fetches[(("source", "utrikes"), ("status", "304"))] >= 1, "the second poll: 304"
    stored = samples(metrics, "monitor_articles_stored_total")
    assert stored[(("source", "utrikes"),)] == 5
    assert samples(metrics, "monitor_scheduler_running")[()] == 1
    assert status == 200
    feed = feedparser.parse(atom)
    assert not feed.bozo and len(feed.entries) == 5, "one entry per matched story"
    assert any("Tokajev" in entry.title for entry in feed.entries)
    assert missing == 404


def printed(tmp_path: Path) -> str:
    return (tmp_path / "daemon.out").read_text()


def test_a_port_in_use_is_an_error_naming_http_listen(tmp_path: Path, site: Site) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        raw = monitor_config(site, feeds=("rss/utrikes.xml",))
        raw["http"] = {"listen": f"127.0.0.1:{taken.getsockname()[1]}"}
        config = write_config(tmp_path, raw)

        result = run_monitor(config, "run", timeout=60)

    assert result.returncode == 2, result.stderr
    assert "http.listen: cannot listen on 127.0.0.1:" in result.stderr
