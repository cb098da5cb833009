from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import yaml
from servers import Mailbox, Receiver, Site, news_site, smtp_server, webhook_receiver

from monitor.store import Store

REPO = Path(__file__).resolve().parent.parent
WATCH_QUERY = 'kazak* OR tokajev* OR CSTO OR "organisationen för kollektiv säkerhet"'
WEBHOOK_SECRET = "hemligt-test"


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    with news_site(tmp_path) as served:
        yield served


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with webhook_receiver() as r:
        yield r


@pytest.fixture
def mailbox() -> Iterator[Mailbox]:
    with smtp_server() as m:
        yield m


def monitor_config(
    site: Site,
    receiver: Receiver | None = None,
    mailbox: Mailbox | None = None,
    feeds: tuple[str, ...] = ("rss/utrikes.xml", "rss/inrikes.latin1.xml", "atom/senaste.xml"),
    query: str = WATCH_QUERY,
    full_text: bool = True,
) -> dict:
    notifiers: list[dict] = [{"name": "logg", "type": "log"}]
    if receiver:
        notifiers.append({"name": "siem", "type": "webhook", "url": receiver.url,
                          "secret": "${WEBHOOK_SECRET}"})
    if mailbox:
        notifiers.append({
            "name": "analytiker", "type": "email", "to": ["analys@example.se"],
            "from": "monitor@example.se",
            "smtp": {"host": mailbox.host, "port": mailbox.port, "starttls": False},
        })
    return {
        "database": "monitor.db",
        # Pages are extracted in the monitor's own process: a pool of workers per run would
        # cost the suite seconds of start-up each (tests/test_extract_pool.py tests the pool).
        "crawl": {"delay": 0, "timeout": "10s", "extract_workers": 0},
        "sources": [
            {"name": Path(feed).stem.split(".")[0], "type": "feed", "url": site.url(feed),
             "interval": "10m", "full_text": full_text}
            for feed in feeds
        ],
        "watchlists": [{"name": "kazakstan-csto", "query": query,
                        "notify": [n["name"] for n in notifiers]}],
        "notifiers": notifiers,
    }


def backoff_over(database: Path) -> None:
    """As if the backoff across delivery passes (a minute at first) had run out: the next run
    tries the pending alerts at once. Only the clock is skipped; nothing else changes."""
    db = sqlite3.connect(database)
    try:
        with db:
            db.execute("UPDATE alerts SET retry_at = NULL")
            db.execute("DELETE FROM notifier_holds")
    finally:
        db.close()


def write_config(directory: Path, config: dict) -> Path:
    path = directory / "config.yaml"
    path.write_text(yaml.safe_dump(config, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path


def run_monitor(config: Path, *args: str, env: dict[str, str] | None = None,
                timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """The real CLI in its own process: each run gets a fresh Twisted reactor, as in production."""
    environment = {**os.environ, "WEBHOOK_SECRET": WEBHOOK_SECRET, **(env or {})}
    environment["PYTHONPATH"] = str(REPO)
    return subprocess.run(
        [sys.executable, "-m", "monitor", "--config", str(config), *args],
        capture_output=True, text=True, timeout=timeout, env=environment, cwd=config.parent,
    )


# --- the daemon in a subprocess -----------------------------------------------------------


def start_daemon(config: Path, log: Path, *args: str) -> subprocess.Popen[str]:
    """`monitor run`: stderr (the log) in `log`, stdout (cycle lines, alerts) beside it, .out."""
    return subprocess.Popen(
        [sys.executable, "-m", "monitor", "--config", str(config), *args, "run"],
        stdout=log.with_suffix(".out").open("w"), stderr=log.open("w"), text=True,
        cwd=config.parent,
        env={**os.environ, "PYTHONPATH": str(REPO), "WEBHOOK_SECRET": WEBHOOK_SECRET},
    )


def wait_for(condition: Callable[[], bool], daemon: subprocess.Popen[str], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if daemon.poll() is not None:
            raise AssertionError(f"the daemon ended early with rc {daemon.returncode}")
        if time.monotonic() > deadline:
            daemon.kill()
            raise AssertionError("timed out waiting for the daemon")
        time.sleep(0.1)


def stop_daemon(daemon: subprocess.Popen[str]) -> int:
    daemon.send_signal(signal.SIGTERM)
    try:
        return daemon.wait(timeout=30)
    except subprocess.TimeoutExpired:
        daemon.kill()
        raise

from pg_server import postgres_session, postgres_url  # noqa: E402, F401
from redis_server import redis_session, redis_url  # noqa: E402, F401 (fixtures, registered by import)


@pytest.fixture(params=["sqlite", "postgres"])
def store_target(request: pytest.FixtureRequest, tmp_path: Path) -> Path | str:
    """Where a fresh store lives, on each engine: an SQLite file, or a new PostgreSQL database."""
    if request.param == "sqlite":
        return tmp_path / "monitor.db"
    return request.getfixturevalue("postgres_url")


@pytest.fixture
def store(store_target: Path | str) -> Iterator[Store]:
    """A store on each engine, through Store.connect (tests/test_store*.py)."""
    opened = Store.connect(store_target)
    yield opened
    opened.close()
