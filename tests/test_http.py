"""The daemon's HTTP listener: /healthz, /metrics and the bearer token, served by start_http on a
real SQLite store; the counters are moved by real cycles against the local news site."""

from __future__ import annotations

import asyncio
import base64
import sqlite3
import subprocess
import sys
from collections.abc import Awaitable, Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import aiohttp
from conftest import REPO, WEBHOOK_SECRET, monitor_config, run_monitor, write_config
from prometheus_client.parser import text_string_to_metric_families
from servers import Receiver, Site, free_port

from monitor.config import load_config
from monitor.http import HttpHandle, start_http
from monitor.metrics import Metrics
from monitor.models import Config, HttpSettings

Status = dict[str, Any]
RUNNING: Status = {"running": True, "sources": {}}


def filled_config(tmp_path: Path, site: Site, receiver: Receiver | None = None) -> Config:
    """The config of a database filled by one real `monitor once` against the local site."""
    raw = monitor_config(site, receiver, feeds=("rss/utrikes.xml", "rss/inrikes.latin1.xml"))
    for notifier in raw["notifiers"]:
        notifier["retry_within"] = 0  # a receiver that is down is left for the next pass
    path = write_config(tmp_path, raw)
    result = run_monitor(path, "once")
    assert result.returncode == 0, result.stderr
    return load_config(path, {"WEBHOOK_SECRET": WEBHOOK_SECRET})


def serve(config: Config, health: Callable[[], Status],
          check: Callable[[HttpHandle, aiohttp.ClientSession], Awaitable[None]]) -> None:
    """Start the listener on a free port of 127.0.0.1, run `check` against it, stop it."""
    if config.http is None:
        config = replace(config, http=HttpSettings("127.0.0.1", 0))

    async def main() -> None:
        handle = await start_http(config, health, Metrics(config))
        try:
            async with aiohttp.ClientSession(f"http://127.0.0.1:{handle.port}") as session:
                await check(handle, session)
        finally:
            await handle.close()

    asyncio.run(main())


async def get(session: aiohttp.ClientSession, path: str, token: str | None = None) -> tuple[int, str]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with session.get(path, headers=headers) as response:
        return response.status, await response.text()


async def eventually_status(session: aiohttp.ClientSession, path: str, wanted: int,
                            timeout: float = 10) -> str:
    """The body once `path` answers `wanted` (the write test is cached for a couple of seconds)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        status, body = await get(session, path)
        if status == wanted:
            return body
        assert asyncio.get_running_loop().time() < deadline, (status, body)
        await asyncio.sleep(0.2)


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """(sample name, sorted labels) → value, from the exposition text, by prometheus-client's
    own parser (which refuses text it cannot parse)."""
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def test_healthz_503_with_the_reason_when_the_database_is_locked_or_the_scheduler_stopped(
        tmp_path: Path, site: Site) -> None:
    config = filled_config(tmp_path, site)
    status: Status = dict(RUNNING)

    async def check(handle: HttpHandle, session: aiohttp.ClientSession) -> None:
        assert await get(session, "/healthz") == (200, "ok\n")

        # Another process holds the write lock: no writer could get in (this works as root too,
        # where a read-only file mode would not stop a write).
        locker = sqlite3.connect(config.database, isolation_level=None)
        try:
            locker.execute("BEGIN EXCLUSIVE")
            body = await eventually_status(session, "/healthz", 503)
            assert body.startswith("database not writable:")
            assert "database is locked" in body and str(config.database) in body
        finally:
            locker.execute("ROLLBACK")
            locker.close()
        assert await eventually_status(session, "/healthz", 200) == "ok\n"

        status.update(running=False, reason="stopping")
        assert await get(session, "/healthz") == (503, "scheduler: stopping\n")

    serve(config, lambda: status, check)


def test_healthz_503_when_the_database_file_is_gone(tmp_path: Path, site: Site) -> None:
    config = filled_config(tmp_path, site)

    async def check(handle: HttpHandle, session: aiohttp.ClientSession) -> None:
        assert (await get(session, "/healthz"))[0] == 200
        moved = config.database.with_name("moved.db")
        config.database.rename(moved)
        body = await eventually_status(session, "/healthz", 503)
        assert body == f"database not writable: {config.database} does not exist\n"

    serve(config, lambda: RUNNING, check)


def test_token_is_required_on_every_path_and_nothing_but_reading_is_served(
        tmp_path: Path, site: Site) -> None:
    config = filled_config(tmp_path, site)
    config = replace(config, http=HttpSettings("127.0.0.1", 0, token="s3cret-token"))

    async def check(handle: HttpHandle, session: aiohttp.ClientSession) -> None:
        for path in ("/healthz", "/metrics", "/nowhere"):
            assert (await get(session, path))[0] == 401
            assert (await get(session, path, token="s3cret-toke"))[0] == 401
        async with session.get("/healthz", headers={"Authorization": "s3cret-token"}) as response:
            assert response.status == 401, "the token alone, without Bearer, is not enough"
            # A browser is asked for a password: the token, under any user name.
            assert response.headers["WWW-Authenticate"].startswith("Basic")
        assert await get(session, "/healthz", token="s3cret-token") == (200, "ok\n")
        for user, password, status in (("analytiker", "s3cret-token", 200), ("", "s3cret-token", 200),
                                       ("s3cret-token", "", 401), ("analytiker", "fel", 401)):
            basic = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
            async with session.get("/healthz", headers={"Authorization": basic}) as response:
                assert response.status == status, (user, password)
        async with session.get("/healthz", headers={"Authorization": "Basic ***"}) as response:
            assert response.status == 401
        headers = {"Authorization": "Bearer s3cret-token"}
        async with session.get("/metrics", headers=headers) as response:
            assert response.status == 200
            assert response.headers["X-Content-Type-Options"] == "nosniff"
            assert response.headers["Content-Security-Policy"].startswith("default-src 'none'")
        async with session.post("/healthz", headers=headers) as response:
            assert response.status == 405

    serve(config, lambda: RUNNING, check)


def test_metrics_read_the_outbox_sources_database_and_lateness_at_scrape_time(
        tmp_path: Path, site: Site, receiver: Receiver) -> None:
    receiver.answer = 503  # the webhook is down: its alerts stay pending
    config = filled_config(tmp_path, site, receiver)
    pending = _count(config.database, "SELECT count(*) FROM alerts WHERE status = 'pending'")
    assert pending > 0
    status: Status = {"running": True,
                      "sources": {"utrikes": {"late": 42.5, "behind": True}, "inrikes": {"late": 0}}}

    async def check(handle: HttpHandle, session: aiohttp.ClientSession) -> None:
        code, text = await get(session, "/metrics")
        assert code == 200
        values = samples(text)
        assert values["monitor_outbox_alerts", (("notifier", "siem"), ("status", "pending"))] == pending
        assert values["monitor_outbox_alerts", (("notifier", "logg"), ("status", "pending"))] == 0
        assert values["monitor_oldest_pending_alert_age_seconds", ()] >= 0
        for source in ("utrikes", "inrikes"):
            assert 0 <= values["monitor_source_last_success_age_seconds", (("source", source),)] < 120
            assert values["monitor_source_consecutive_failures", (("source", source),)] == 0
        size = config.database.stat().st_size
        assert values["monitor_database_size_bytes", ()] >= size > 0
        assert values["monitor_source_late_seconds", (("source", "utrikes"),)] == 42.5
        assert values["monitor_sources_behind", ()] == 1
        assert values["monitor_scheduler_running", ()] == 1

    serve(config, lambda: status, check)


# Two real cycles in one process with the listener on its loop, as the daemon runs them; after
# each, the /metrics text as scraped over HTTP, into a file (stdout carries the log notifier's).
TWO_CYCLES = """
import asyncio, sys
from pathlib import Path
import aiohttp
from monitor.config import load_config
from monitor.crawl import Crawler
from monitor.http import start_http
from monitor.metrics import Metrics
from monitor.pipeline import Monitor, run_cycle
from monitor.store import Store

async def main(path, out):
    config = load_config(Path(path))
    store = Store.open(config.database)
    crawler = Crawler(config.crawl, config.sources)
    monitor = Monitor.build(config, store, crawler)
    metrics = Metrics(config)
    http = await start_http(config, lambda: {"running": True}, metrics)
    try:
        async with aiohttp.ClientSession() as session:
            for cycle in (1, 2):
                metrics.observe_cycle(await run_cycle(monitor, config.sources))
                async with session.get(f"http://127.0.0.1:{http.port}/metrics") as response:
                    Path(out, f"metrics-{cycle}.txt").write_text(await response.text())
    finally:
        await http.close()
        await crawler.close()
        store.close()

asyncio.run(main(*sys.argv[1:]))
"""


def test_metrics_counters_move_with_each_cycle(tmp_path: Path, site: Site, receiver: Receiver) -> None:
    raw = monitor_config(site, receiver, feeds=("rss/utrikes.xml", "rss/inrikes.latin1.xml"))
    raw["http"] = {"listen": f"127.0.0.1:{free_port()}"}
    path = write_config(tmp_path, raw)
    result = subprocess.run([sys.executable, "-c", TWO_CYCLES, str(path), str(tmp_path)],
                            capture_output=True,
                            text=True, timeout=120, cwd=tmp_path,
                            env={"PYTHONPATH": str(REPO), "WEBHOOK_SECRET": "x", "PATH": "/usr/bin:/bin"})
    assert result.returncode == 0, result.stderr
    first, second = (samples((tmp_path / f"metrics-{n}.txt").read_text()) for n in (1, 2))
    database = tmp_path / "monitor.db"

    def fetches(values: dict, source: str, status: str) -> float:
        return values.get(("monitor_fetches_total", (("source", source), ("status", status))), 0)

    # First cycle: every feed answered 200 and its articles were stored; second: one 304 each.
    for source in ("utrikes", "inrikes"):
        assert (fetches(first, source, "200"), fetches(first, source, "304")) == (1, 0)
        assert (fetches(second, source, "200"), fetches(second, source, "304")) == (1, 1)
        stored = _count(database, f"SELECT count(*) FROM articles WHERE source = '{source}'")
        key = ("monitor_articles_stored_total", (("source", source),))
        assert first[key] == second[key] == stored > 0
    alerts = _count(database, "SELECT count(*) FROM alerts WHERE watchlist = 'kazakstan-csto'")
    assert alerts > 0
    assert first["monitor_alerts_created_total", (("watchlist", "kazakstan-csto"),)] == alerts
    matched = _count(database, "SELECT count(DISTINCT article_id) FROM matches")
    assert first["monitor_matches_total", (("watchlist", "kazakstan-csto"),)] == matched
    sent = len(receiver.bodies())
    assert sent == alerts // 2  # one alert per notifier: the webhook's half
    assert first["monitor_alerts_delivered_total", (("notifier", "siem"), ("outcome", "sent"))] == sent
    assert first["monitor_alerts_delivered_total", (("notifier", "logg"), ("outcome", "sent"))] == sent
    assert (first["monitor_cycle_duration_seconds_count", ()],
            second["monitor_cycle_duration_seconds_count", ()]) == (1, 2)
    for stage in ("poll", "articles", "deliver"):
        assert second["monitor_stage_duration_seconds_count", (("stage", stage),)] == 2
    assert second["monitor_outbox_alerts", (("notifier", "siem"), ("status", "pending"))] == 0


def _count(database: Path, sql: str) -> int:
    db = sqlite3.connect(database)
    try:
        return db.execute(sql).fetchone()[0]
    finally:
        db.close()


def test_docker_healthcheck_asks_healthz(tmp_path: Path, site: Site) -> None:
    """`python -m monitor.healthcheck`, the image's HEALTHCHECK, against the real listener."""
    config = filled_config(tmp_path, site)
    config = replace(config, http=HttpSettings("127.0.0.1", 0, token="t0ken"))
    status: Status = dict(RUNNING)

    async def healthcheck(**env: str) -> tuple[int | None, str]:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "monitor.healthcheck", stdout=subprocess.PIPE,
            env={"PYTHONPATH": str(REPO), **env})
        out, _ = await process.communicate()
        return process.returncode, out.decode()

    async def check(handle: HttpHandle, session: aiohttp.ClientSession) -> None:
        port = str(handle.port)
        assert await healthcheck(MONITOR_HTTP_PORT=port, MONITOR_HTTP_TOKEN="t0ken") == (0, "ok\n")
        code, out = await healthcheck(MONITOR_HTTP_PORT=port)
        assert (code, out.split(":")[0]) == (1, "401")
        status.update(running=False, reason="stopping")
        assert await healthcheck(MONITOR_HTTP_PORT=port, MONITOR_HTTP_TOKEN="t0ken") == (
            1, "503: scheduler: stopping\n")
        assert (await healthcheck(MONITOR_HTTP_PORT=str(free_port())))[0] == 1
        assert (await healthcheck(MONITOR_HTTP_PORT="off"))[0] == 0

    serve(config, lambda: status, check)
