"""The `cluster:` section: what a user adds to move to the role processes. A broken section
names its key; a URL's password never appears in an error; `--role` without the section is
refused with what to add."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import monitor_config, run_monitor, write_config
from servers import Site

from monitor.config import load_config
from monitor.errors import ConfigError

GOOD = {"redis": "redis://127.0.0.1:6379/0", "database": "postgresql://monitor:pw@127.0.0.1/monitor"}


def test_the_section_is_read_with_its_defaults(tmp_path: Path, site: Site) -> None:
    config = load_config(write_config(tmp_path, monitor_config(site) | {"cluster": GOOD}))
    assert config.cluster is not None
    assert (config.cluster.redis, config.cluster.database) == (GOOD["redis"], GOOD["database"])
    assert (config.cluster.shards, config.cluster.lease, config.cluster.prefix) == (16, 15, "monitor:")
    assert load_config(write_config(tmp_path, monitor_config(site))).cluster is None


@pytest.mark.parametrize(("change", "key", "said"), [
    ({"redis": "http://127.0.0.1:6379"}, "cluster.redis", "redis://"),
    ({"database": "mysql://monitor:hemligt@db/monitor"}, "cluster.database", "postgresql://"),
    ({"database": None}, "cluster.database", "required key is missing"),
    ({"shards": 0}, "cluster.shards", "1 to 1024"),
    ({"lease": "1s"}, "cluster.lease", ""),
    ({"prefix": "two words"}, "cluster.prefix", "without spaces"),
    ({"replicas": 2}, "cluster.replicas", "unknown key"),
])
def test_a_broken_section_names_its_key_and_hides_passwords(
    tmp_path: Path, site: Site, change: dict, key: str, said: str
) -> None:
    section = {k: v for k, v in (GOOD | change).items() if v is not None}
    with pytest.raises(ConfigError) as error:
        load_config(write_config(tmp_path, monitor_config(site) | {"cluster": section}))
    assert key in str(error.value)
    assert said in str(error.value)
    assert "hemligt" not in str(error.value)


def test_role_without_a_cluster_section_is_refused_with_what_to_add(tmp_path: Path, site: Site) -> None:
    result = run_monitor(write_config(tmp_path, monitor_config(site)), "run", "--role", "crawler",
                         timeout=60)
    assert result.returncode == 2
    assert "cluster: section" in result.stderr


@pytest.mark.parametrize("command", [["once"], ["prune"], ["digest"]])
def test_the_single_process_writers_refuse_a_cluster_config(
    tmp_path: Path, site: Site, command: list[str]
) -> None:
    config = monitor_config(site) | {"cluster": GOOD, "retention": {"articles": "30d"}}
    result = run_monitor(write_config(tmp_path, config), *command, timeout=60)
    assert result.returncode == 2
    assert "single-process SQLite store" in result.stderr
    assert not (tmp_path / "monitor.db").exists()


def test_check_shows_the_cluster_without_its_passwords(tmp_path: Path, site: Site) -> None:
    section = {"redis": "redis://:hemligt@127.0.0.1:6379/0",
               "database": "postgresql://monitor:hemligt@127.0.0.1/monitor"}
    result = run_monitor(write_config(tmp_path, monitor_config(site) | {"cluster": section}), "check")
    assert result.returncode == 0, result.stderr
    assert "cluster: redis redis://" in result.stdout and "16 watchlist shards" in result.stdout
    assert "hemligt" not in result.stdout

