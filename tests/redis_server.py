"""A real redis-server for the tests: started in a temporary folder on a free 127.0.0.1 port, one
per xdist worker, emptied before each test."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import redis

REDIS_SERVER = "/usr/bin/redis-server"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _wait_for_ping(url: str, server: subprocess.Popen[bytes], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    client = redis.Redis.from_url(url, socket_timeout=1)
    try:
        while True:
            if server.poll() is not None:
                raise RuntimeError(f"redis-server ended at start with rc {server.returncode}")
            try:
                if client.ping():
                    return
            except redis.ConnectionError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"redis-server did not answer PING at {url} within {timeout}s")
            time.sleep(0.05)
    finally:
        client.close()


@contextmanager
def redis_server(folder: Path) -> Iterator[str]:
    """Start /usr/bin/redis-server without persistence in `folder`; yield its URL; kill it after."""
    if not Path(REDIS_SERVER).exists() and shutil.which("redis-server") is None:
        pytest.fail("redis-server is missing: install the Debian package `redis-server` "
                    "(apt-get install redis-server; .ci/run does it)")
    binary = REDIS_SERVER if Path(REDIS_SERVER).exists() else str(shutil.which("redis-server"))
    folder.mkdir(parents=True, exist_ok=True)
    port = _free_port()
    url = f"redis://127.0.0.1:{port}/0"
    log = (folder / "redis.log").open("wb")
    server = subprocess.Popen(
        [binary, "--save", "", "--appendonly", "no", "--dir", str(folder),
         "--port", str(port), "--bind", "127.0.0.1"],
        stdout=log, stderr=subprocess.STDOUT,
    )
    try:
        _wait_for_ping(url, server)
        yield url
    finally:
        server.kill()
        server.wait(timeout=10)
        log.close()


@pytest.fixture(scope="session")
def redis_session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One redis-server per xdist worker (a session is one worker)."""
    with redis_server(tmp_path_factory.mktemp("redis")) as url:
        yield url


@pytest.fixture
def redis_url(redis_session: str) -> str:
    """The session's server, emptied: each test starts from no keys."""
    client = redis.Redis.from_url(redis_session)
    try:
        client.flushall()
    finally:
        client.close()
    return redis_session
