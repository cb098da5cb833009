"""One writer per database, and a database that cannot be used is one clear line and exit 3:
two `once` runs at the same time, and a database that is locked, read-only, full or damaged,
each with the real CLI in a subprocess against a real SQLite file."""

from __future__ import annotations

import ctypes
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import yaml
from conftest import REPO, WEBHOOK_SECRET, monitor_config, write_config
from servers import Receiver, Site

FEED = ("rss/utrikes.xml",)
PR_CAPBSET_DROP, CAP_DAC_OVERRIDE = 24, 1  # <linux/prctl.h>, <linux/capability.h>


def start_monitor(config: Path, *args: str, preexec: Callable[[], None] | None = None
                  ) -> subprocess.Popen[str]:
    """The real CLI, as conftest.run_monitor runs it, but started without waiting for it."""
    env = {**os.environ, "WEBHOOK_SECRET": WEBHOOK_SECRET, "PYTHONPATH": str(REPO)}
    return subprocess.Popen(
        [sys.executable, "-m", "monitor", "--config", str(config), *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=config.parent,
        preexec_fn=preexec,
    )


def monitor(config: Path, *args: str, preexec: Callable[[], None] | None = None
            ) -> subprocess.CompletedProcess[str]:
    process = start_monitor(config, *args, preexec=preexec)
    out, err = process.communicate(timeout=120)
    return subprocess.CompletedProcess(process.args, process.returncode, out, err)


def assert_database_error(result: subprocess.CompletedProcess[str], *words: str) -> None:
    """Exit 3 and one line on stderr that starts with "database error:" and names the problem."""
    assert result.returncode == 3, result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    lines = [line for line in result.stderr.splitlines() if "database error" in line]
    assert len(lines) == 1, result.stderr
    assert result.stderr.rstrip().splitlines()[-1].startswith("database error: "), result.stderr
    assert any(word in lines[0] for word in words), lines[0]


def alert_ids(receiver: Receiver) -> Counter[str]:
    return Counter(json.loads(body)["id"] for body in receiver.bodies())


# --- one writer -----------------------------------------------------------------------------


def test_two_once_runs_at_the_same_time_never_deliver_twice(
    tmp_path: Path, site: Site, receiver: Receiver
) -> None:
    config = write_config(tmp_path, monitor_config(site, receiver))

    runs = [start_monitor(config, "once") for _ in range(2)]
    outputs = [run.communicate(timeout=180) for run in runs]
    results = [(run.returncode, out, err) for run, (out, err) in zip(runs, outputs, strict=True)]

    assert sorted(rc for rc, _, _ in results) == [0, 2], results
    for _, _, err in results:
        assert "Traceback" not in err, err
    (_, _, refused), = [r for r in results if r[0] == 2]
    (winner,) = [run for run in runs if run.returncode == 0]
    assert refused.strip() == (f"another monitor is running on {tmp_path / 'monitor.db'} "
                               f"(pid {winner.pid})")
    sent = alert_ids(receiver)
    assert sent and max(sent.values()) == 1, sent


def test_the_lock_goes_with_a_killed_monitor(tmp_path: Path, site: Site) -> None:
    """The OS releases the lock of a SIGKILLed process: no stale lock blocks the next run."""
    config = write_config(tmp_path, monitor_config(site, feeds=FEED))
    first = start_monitor(config, "run")
    lock = tmp_path / "monitor.db.lock"
    try:
        _wait_for(lambda: lock.exists() and lock.read_text().strip() == str(first.pid), first)
        assert monitor(config, "once").returncode == 2
    finally:
        first.send_signal(signal.SIGKILL)
        first.communicate(timeout=30)

    result = monitor(config, "once")

    assert result.returncode == 0, result.stderr


# --- a database that cannot be used -----------------------------------------------------------


@pytest.fixture
def database(tmp_path: Path, site: Site, receiver: Receiver) -> Path:
    """A config whose database holds one earlier cycle (one feed) and now watches three."""
    config = write_config(tmp_path, monitor_config(site, receiver, feeds=FEED, full_text=False))
    assert monitor(config, "once").returncode == 0
    write_config(tmp_path, monitor_config(site, receiver))
    return tmp_path / "monitor.db"


def test_a_locked_database_is_exit_3(database: Path) -> None:
    holder = sqlite3.connect(database, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        result = monitor(database.parent / "config.yaml", "once")
    finally:
        holder.rollback()
        holder.close()
    assert_database_error(result, "database is locked")


def without_root_override() -> None:
    """root ignores file modes through CAP_DAC_OVERRIDE: dropped from the bounding set before
    exec, the monitor runs as root but a file of mode 0444 is read-only to it."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_CAPBSET_DROP, CAP_DAC_OVERRIDE, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP)")


def test_a_read_only_database_is_exit_3(database: Path) -> None:
    database.chmod(0o444)  # the folder stays writable: it is the file that cannot be written

    result = monitor(database.parent / "config.yaml", "once",
                     preexec=without_root_override if os.geteuid() == 0 else None)

    assert_database_error(result, "readonly", "read-only")


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Callable[[int], Path]]:
    """A tmpfs of a given size (mounted again with a new size on a second call): a disk that
    really fills. A file-size limit (RLIMIT_FSIZE) cannot stand in for it here, because the
    language detector unpacks a 68 MB model into a temporary file while the cycle runs."""
    mount = tmp_path / "disk"
    mount.mkdir()
    mounted = False

    def size(kib: int) -> Path:
        nonlocal mounted
        options = f"size={kib}k" + (",remount" if mounted else "")
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(mount)],
                              capture_output=True, text=True)
        if done.returncode:
            pytest.skip(f"a tmpfs cannot be mounted here: {done.stderr.strip()}")
        mounted = True
        return mount

    try:
        yield size
    finally:
        if mounted:
            subprocess.run(["umount", str(mount)], check=True)


def test_a_full_disk_is_exit_3_and_nothing_is_half_written(
    database: Path, receiver: Receiver, small_disk: Callable[[int], Path]
) -> None:
    # Room for the database of the first cycle, its WAL index and a little more: the new
    # articles of the three feeds do not fit.
    disk = small_disk(database.stat().st_size // 1024 + 96)
    for name in ("config.yaml", "monitor.db"):
        shutil.copy(database.parent / name, disk / name)
    config = disk / "config.yaml"

    full = monitor(config, "once")

    assert_database_error(full, "full")
    small_disk(16 * 1024)
    again = monitor(config, "once")
    assert again.returncode == 0, again.stderr
    db = sqlite3.connect(disk / "monitor.db")
    try:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        states = dict(db.execute("SELECT state, count(*) FROM articles GROUP BY state").fetchall())
        sources = dict(db.execute("SELECT source, count(*) FROM articles GROUP BY source").fetchall())
        alerts = dict(db.execute("SELECT id, status FROM alerts WHERE notifier = 'siem'").fetchall())
    finally:
        db.close()
    assert set(states) == {"done"}, states  # nothing left between fetching and matching
    assert set(sources) == {"utrikes", "inrikes", "senaste"}, sources
    # Every alert the receiver got is recorded, and recorded as sent; every recorded one arrived.
    received = alert_ids(receiver)
    assert set(received) == set(alerts) and set(alerts.values()) == {"sent"}, (received, alerts)


def test_a_damaged_database_is_exit_3(database: Path) -> None:
    config = database.parent / "config.yaml"
    database.write_bytes(b"\x00garbage, not a database" * 400)

    assert_database_error(monitor(config, "once"), "not a database")


def test_a_truncated_database_is_exit_3(database: Path) -> None:
    config = database.parent / "config.yaml"
    with database.open("r+b") as file:
        file.truncate(database.stat().st_size // 2)

    assert_database_error(monitor(config, "once"), "malformed", "damaged")


def test_a_table_damaged_behind_a_sound_header_is_exit_3(database: Path) -> None:
    """The file opens and its schema reads, but the articles table's own page is garbage: the
    failure comes in the middle of the cycle, not when the database is opened."""
    config = database.parent / "config.yaml"
    with sqlite3.connect(database) as conn:
        page_size = conn.execute("PRAGMA page_size").fetchone()[0]
        root = conn.execute("SELECT rootpage FROM sqlite_master WHERE name = 'articles'").fetchone()[0]
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    with database.open("r+b") as file:
        file.seek((root - 1) * page_size)
        file.write(b"\xff" * page_size)

    assert_database_error(monitor(config, "once"), "malformed", "damaged")


def test_the_daemon_logs_a_database_error_and_tries_again(tmp_path: Path, database: Path) -> None:
    raw = yaml.safe_load((tmp_path / "config.yaml").read_text(encoding="utf-8"))
    for source in raw["sources"]:
        source["interval"] = "5s"
    config = write_config(tmp_path, raw)
    holder = sqlite3.connect(database, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    daemon = start_monitor(config, "run")
    log: list[str] = []
    reader = threading.Thread(target=lambda: log.extend(daemon.stderr), daemon=True)
    reader.start()
    try:
        _wait_for(lambda: any("database error: " in line for line in log), daemon)
        holder.rollback()
        # The next interval writes what the locked one could not.
        _wait_for(lambda: _count(database, "SELECT count(DISTINCT source) FROM articles") == 3, daemon)
    finally:
        holder.close()
        # Stopping cleanly mid-poll is the signal handling's business, not this test's.
        daemon.kill()
        daemon.wait(timeout=60)
        reader.join(timeout=10)
    assert "Traceback" not in "".join(log)
    (error,) = {line.split(" ERROR ", 1)[1] for line in log if "database error: " in line}
    assert "database is locked" in error and "retrying at the next interval" in error


def _wait_for(condition: Callable[[], bool], process: subprocess.Popen[str], timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert process.poll() is None, "the daemon ended"
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.2)


def _count(database: Path, sql: str) -> int:
    db = sqlite3.connect(database, timeout=0.1)
    try:
        return db.execute(sql).fetchone()[0]
    except sqlite3.OperationalError:
        return 0
    finally:
        db.close()
