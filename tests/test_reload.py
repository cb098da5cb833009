"""Issue 14, item 7: SIGHUP reloads without a stall and keeps the schedule: a new source is
polled at once, an unchanged one keeps its next time, a broken config changes nothing."""

from __future__ import annotations

import signal
import time
from pathlib import Path

from conftest import monitor_config, start_daemon, stop_daemon, wait_for, write_config
from servers import Site
from test_live_crawler import printed

UTRIKES, INRIKES = "/rss/utrikes.xml", "/rss/inrikes.latin1.xml"


def test_reload_polls_a_new_source_at_once_and_keeps_the_others_schedule(
        tmp_path: Path, site: Site) -> None:
    raw = monitor_config(site, feeds=("rss/utrikes.xml",))
    raw["sources"][0]["interval"] = "1h"
    config = write_config(tmp_path, raw)
    log = tmp_path / "stderr.log"
    daemon = start_daemon(config, log)
    try:
        wait_for(lambda: "cycle:" in printed(log), daemon)  # its first poll is over
        raw["sources"] += monitor_config(site, feeds=("rss/inrikes.latin1.xml",))["sources"]
        write_config(tmp_path, raw)
        daemon.send_signal(signal.SIGHUP)
        wait_for(lambda: site.statuses(INRIKES), daemon)
        wait_for(lambda: "configuration reloaded: 2 sources" in log.read_text(), daemon)
        time.sleep(2)  # two more ticks: an unchanged source must not be re-polled in them
    finally:
        assert stop_daemon(daemon) == 0

    assert site.statuses(UTRIKES) == [200], "the unchanged source keeps its next time (1h)"
    assert site.statuses(INRIKES) == [200]


def test_a_broken_config_on_reload_is_refused_and_the_daemon_keeps_polling(
        tmp_path: Path, site: Site) -> None:
    raw = monitor_config(site, feeds=("rss/utrikes.xml",))
    raw["sources"][0]["interval"] = "5s"
    config = write_config(tmp_path, raw)
    log = tmp_path / "stderr.log"
    daemon = start_daemon(config, log)
    try:
        wait_for(lambda: site.statuses(UTRIKES), daemon)
        config.write_text("sources: [unclosed\n", encoding="utf-8")
        daemon.send_signal(signal.SIGHUP)
        wait_for(lambda: "reload refused" in log.read_text(), daemon)
        wait_for(lambda: len(site.statuses(UTRIKES)) >= 2, daemon, timeout=30)
    finally:
        assert stop_daemon(daemon) == 0

    assert "reload refused, keeping the running configuration" in log.read_text()
    assert site.statuses(UTRIKES)[:2] == [200, 304]
