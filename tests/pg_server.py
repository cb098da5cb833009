"""A real PostgreSQL server for the tests: its own cluster in a temporary folder, on a free
127.0.0.1 port, never the system's service. One server per test process (per xdist worker),
and a fresh database per test."""

from __future__ import annotations

import itertools
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pytest

# Debian's server binaries, of whichever major version is installed (the newest if several).
BINARIES = max(Path("/usr/lib/postgresql").glob("*/bin"),
               key=lambda path: int(path.parent.name) if path.parent.name.isdigit() else 0,
               default=Path("/usr/lib/postgresql/15/bin"))
_databases = itertools.count(1)


def _binary(name: str) -> str:
    path = BINARIES / name
    if not path.exists():
        found = shutil.which(name)
        if found is None:
            pytest.fail(f"PostgreSQL's {name} is missing: install the Debian package postgresql "
                        "(it puts the server's programs in /usr/lib/postgresql/VERSION/bin)")
        return found
    return str(path)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _as_server_user() -> list[str]:
    """PostgreSQL refuses to run as root: then its programs run as the user postgres."""
    return ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []


def _hand_over(folder: Path) -> None:
    if os.geteuid() == 0:
        user = pwd.getpwnam("postgres")
        for path in (folder, *folder.rglob("*")):
            os.chown(path, user.pw_uid, user.pw_gid)


@contextmanager
def postgres_server(folder: Path) -> Iterator[str]:
    """A PostgreSQL cluster in `folder` (which its user must be able to reach), started on a
    free port with fsync off, its socket in the folder; yields the URL of its `postgres`
    database (user postgres, no password) and stops it at the end."""
    folder.mkdir(parents=True, exist_ok=True)
    _hand_over(folder)
    data, log = folder / "data", folder / "server.log"
    run = _as_server_user()
    subprocess.run([*run, _binary("initdb"), "-D", str(data), "-U", "postgres", "--auth=trust",
                    "-E", "UTF8", "--locale=C.UTF-8"],
                   check=True, capture_output=True, text=True)
    port = _free_port()
    options = (f"-c port={port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={folder}"
               " -c fsync=off -c synchronous_commit=off -c full_page_writes=off")
    started = subprocess.run([*run, _binary("pg_ctl"), "-D", str(data), "-l", str(log), "-w",
                              "-t", "60", "-o", options, "start"], capture_output=True, text=True)
    if started.returncode != 0:
        text = log.read_text(errors="replace") if log.exists() else ""
        raise RuntimeError(f"PostgreSQL did not start: {started.stderr}\n{text}")
    try:
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run([*run, _binary("pg_ctl"), "-D", str(data), "stop", "-m", "immediate"],
                       capture_output=True)


@pytest.fixture(scope="session")
def postgres_session() -> Iterator[str]:
    """This test process's server (each xdist worker has its own). Its folder is under /tmp,
    which the postgres user can reach (pytest's own temporary folders are root's only)."""
    folder = Path(tempfile.mkdtemp(prefix="monitor-pg-"))
    try:
        with postgres_server(folder) as url:
            yield url
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def postgres_url(postgres_session: str) -> str:
    """A fresh, empty database on the session's server, for one test."""
    name = f"t_{os.getpid()}_{next(_databases)}"
    with psycopg.connect(postgres_session, autocommit=True) as admin:
        admin.execute(f"CREATE DATABASE {name}")
    return postgres_session.rsplit("/", 1)[0] + f"/{name}"
