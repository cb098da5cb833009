"""The container's entrypoint (docker-entrypoint.sh), run with sh on this machine: Docker itself
is not needed for what it does to a bind-mounted folder. Dropping root needs root."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import REPO

ENTRYPOINT = REPO / "docker-entrypoint.sh"
MONITOR_UID = 10001
as_root = pytest.mark.skipif(os.geteuid() != 0 or shutil.which("setpriv") is None,
                             reason="dropping to the monitor user needs root and setpriv")


@pytest.fixture
def host_folder() -> Iterator[Path]:
    """A folder as a host would bind-mount it: a root-owned config left in it, the folder
    reachable by other users (pytest's own tmp folders are not)."""
    parent = Path(tempfile.mkdtemp(prefix="monitor-docker-"))
    parent.chmod(0o755)
    # The image's /app is readable by every user; a checkout need not be (a clean clone in a
    # mktemp folder is 0700), so the script and the shipped config are copied beside the folder.
    shutil.copy(ENTRYPOINT, parent / ENTRYPOINT.name)
    shutil.copy(REPO / "config.yaml", parent / "shipped-config.yaml")
    for copy in (parent / ENTRYPOINT.name, parent / "shipped-config.yaml"):
        copy.chmod(0o755)
    data = parent / "data"
    data.mkdir()
    try:
        yield data
    finally:
        shutil.rmtree(parent)


def entrypoint(data: Path, *command: str, user: int | None = None) -> subprocess.CompletedProcess[str]:
    env = {"PATH": "/usr/bin:/bin", "MONITOR_CONFIG": str(data / "config.yaml"),
           "MONITOR_SHIPPED_CONFIG": str(data.parent / "shipped-config.yaml")}
    prefix = [] if user is None else ["setpriv", f"--reuid={user}", f"--regid={user}", "--clear-groups"]
    return subprocess.run([*prefix, "sh", str(data.parent / ENTRYPOINT.name), *command],
                          capture_output=True, text=True, env=env, timeout=30)


@as_root
def test_started_as_root_it_gives_the_folder_to_the_monitor_user_and_drops_root(
        host_folder: Path) -> None:
    (host_folder / "monitor.db").write_bytes(b"left by the host")
    result = entrypoint(host_folder, "sh", "-c", 'id -u; id -g; id -G; echo "$HOME"')
    assert result.returncode == 0, result.stderr
    uid, gid, groups, home = result.stdout.split("\n")[:4]
    assert (uid, gid, groups) == (str(MONITOR_UID), str(MONITOR_UID), str(MONITOR_UID))
    assert home in ("/home/monitor", str(host_folder))
    config = host_folder / "config.yaml"
    assert config.read_text() == (REPO / "config.yaml").read_text(), "first start: shipped config"
    assert "copied the shipped configuration" in result.stderr
    for path in (host_folder, config, host_folder / "monitor.db"):
        assert (path.stat().st_uid, path.stat().st_gid) == (MONITOR_UID, MONITOR_UID), path


@as_root
def test_an_edited_config_is_kept_on_the_next_start(host_folder: Path) -> None:
    (host_folder / "config.yaml").write_text("# edited\n")
    result = entrypoint(host_folder, "cat", str(host_folder / "config.yaml"))
    assert result.returncode == 0, result.stderr
    assert result.stdout == "# edited\n"


@as_root
def test_started_as_a_user_that_cannot_write_the_folder_it_says_what_to_do(host_folder: Path) -> None:
    result = entrypoint(host_folder, "true", user=MONITOR_UID)
    assert result.returncode == 1
    assert f"cannot write to {host_folder} as uid {MONITOR_UID}" in result.stderr
    assert "--user" in result.stderr and "0:0" in result.stderr
    assert not (host_folder / "config.yaml").exists()
    assert host_folder.stat().st_uid == 0, "nothing changed"


@as_root
def test_started_as_the_folder_owner_it_changes_nothing_and_runs(host_folder: Path) -> None:
    os.chown(host_folder, MONITOR_UID, MONITOR_UID)
    result = entrypoint(host_folder, "id", "-u", user=MONITOR_UID)
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"{MONITOR_UID}\n"
    assert (host_folder / "config.yaml").stat().st_uid == MONITOR_UID
