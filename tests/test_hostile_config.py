"""Issue 11, item 7: the config is data, never a weapon. A YAML bomb or a Python tag is refused
with exit 2, an oversized file is refused, an error never prints a value that came from the
environment, and no log line at any level shows a credential."""

from __future__ import annotations

import resource
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import REPO, monitor_config, run_monitor, write_config
from servers import Receiver, Site

from monitor.redact import redact

MEMORY_LIMIT = 512 * 2**20


def check(config: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """`monitor check` in a process that may use at most MEMORY_LIMIT of address space."""
    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))

    return subprocess.run(
        [sys.executable, "-m", "monitor", "--config", str(config), "check"],
        capture_output=True, text=True, timeout=60, preexec_fn=limit, cwd=config.parent,
        env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin", **(env or {})},
    )


def anchor_bomb() -> str:
    """Nested anchors, 9 levels of 9 aliases: under 500 bytes, 9**9 strings when expanded."""
    lines = ["a: &a [" + ", ".join(['"lol"'] * 9) + "]"]
    for previous, name in zip("abcdefgh", "bcdefghi", strict=True):
        lines.append(f"{name}: &{name} [" + ", ".join([f"*{previous}"] * 9) + "]")
    return "\n".join(lines) + "\n"


def test_a_yaml_anchor_bomb_is_refused_at_once_in_little_memory(tmp_path: Path) -> None:
    bomb = anchor_bomb()
    assert len(bomb.encode()) < 500
    config = tmp_path / "config.yaml"
    config.write_text(bomb)
    started = time.monotonic()
    result = check(config)
    assert result.returncode == 2, result.stderr[-2000:]
    assert "YAML anchors and aliases are not supported" in result.stderr
    assert "line 1" in result.stderr
    assert "Traceback" not in result.stderr
    assert time.monotonic() - started < 30


@pytest.mark.parametrize("tagged, key, line", [
    ("database: !!python/name:os.system\n", "database", 1),
    ("sources:\n  - name: x\n    url: !!python/object/apply:os.system ['touch pwned']\n",
     "sources[0].url", 3),
    ("sources: !!set {a, b}\n", "sources", 1),
])
def test_a_python_or_unknown_yaml_tag_is_a_config_error_with_key_and_line(
    tmp_path: Path, tagged: str, key: str, line: int
) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(tagged)
    result = check(config)
    assert result.returncode == 2, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    assert f"{key}: the YAML tag" in result.stderr and f"(line {line})" in result.stderr
    assert not (tmp_path / "pwned").exists()


def test_a_config_larger_than_16_mb_is_refused_with_its_limit(tmp_path: Path, site: Site) -> None:
    config = write_config(tmp_path, monitor_config(site))
    with config.open("a") as file:
        file.write(("# " + "x" * 1000 + "\n") * 17 * 1024)
    result = check(config)
    assert result.returncode == 2, result.stderr[-2000:]
    assert "larger than 16 MB" in result.stderr
    assert "Traceback" not in result.stderr


SECRET = "hemlig-token-4711"


@pytest.mark.parametrize("key, value, where", [
    ("url", "${SECRET}", "sources[0].url"),
    ("url", "ftp://${SECRET}/feed", "sources[0].url"),
    ("interval", "${SECRET}", "sources[0].interval"),
    ("type", "${SECRET}", "sources[0].type"),
])
def test_a_value_from_the_environment_is_never_echoed_in_a_config_error(
    tmp_path: Path, site: Site, key: str, value: str, where: str
) -> None:
    raw = monitor_config(site, feeds=("rss/utrikes.xml",))
    raw["sources"][0][key] = value
    result = check(write_config(tmp_path, raw), env={"SECRET": SECRET})
    assert result.returncode == 2, result.stderr
    assert SECRET not in result.stderr + result.stdout
    assert "hemlig" not in result.stderr
    assert where in result.stderr and "(line " in result.stderr
    assert "<from " in result.stderr and "${SECRET}" in result.stderr


def test_a_query_from_the_environment_is_not_echoed_when_it_does_not_parse(
    tmp_path: Path, site: Site
) -> None:
    raw = monitor_config(site, feeds=("rss/utrikes.xml",))
    raw["watchlists"][0]["query"] = "${QUERY}"
    result = check(write_config(tmp_path, raw), env={"QUERY": "hemligt AND (projekt"})
    assert result.returncode == 2, result.stderr
    assert "hemligt" not in result.stderr
    assert "watchlists[0].query" in result.stderr


def test_no_log_line_at_any_level_shows_webhook_credentials(
    tmp_path: Path, site: Site, receiver: Receiver
) -> None:
    raw = monitor_config(site, receiver, feeds=("rss/utrikes.xml",))
    hook = raw["notifiers"][1]
    hook["url"] = receiver.url.replace("http://", "http://hookuser:HOOKPASSWORD@") + \
        "?token=SECRETTOKEN&kanal=nyheter"
    hook["headers"] = {"Authorization": "Bearer BEARERSECRET", "X-Extra": "EXTRASECRET"}
    result = run_monitor(write_config(tmp_path, raw), "-vv", "once")

    assert result.returncode == 0, result.stderr[-3000:]
    assert receiver.received, "the webhook was posted"
    assert receiver.received[0][0]["X-Extra"] == "EXTRASECRET"  # sent, just never shown
    assert "HTTP Request: POST" in result.stderr, "httpx's request line is logged, redacted"
    assert "token=***" in result.stderr and "kanal=nyheter" in result.stderr
    for secret in ("SECRETTOKEN", "HOOKPASSWORD", "BEARERSECRET", "EXTRASECRET", "hemligt-test"):
        assert secret not in result.stderr, secret
        assert secret not in result.stdout, secret


@pytest.mark.parametrize("line, hidden, kept", [
    ('HTTP Request: POST https://h.example/x?token=T0K&a=1 "HTTP/1.1 200 OK"', "T0K",
     "https://h.example/x?token=***&a=1"),
    ("smtp://user:pa55word@mail.example:587/", "pa55word", "smtp://***@mail.example:587/"),
    ("https://x.example/?api_key=K1&hub.signature=S2&access_token=A3&q=kazakstan", "K1",
     "q=kazakstan"),
    ("https://x.example/?api_key=K1&hub.signature=S2&access_token=A3&q=kazakstan", "S2", "x.example"),
    ("https://x.example/?api_key=K1&hub.signature=S2&access_token=A3&q=kazakstan", "A3", "api_key="),
    ("headers={'Authorization': 'Bearer B1', 'Content-Type': 'application/json'}", "B1",
     "'Content-Type': 'application/json'"),
    ("Cookie: sessionid=C1; other=C2", "C1", "Cookie: ***"),
    ("https://x.example/a?sig=S3#frag", "S3", "#frag"),
])
def test_redact_hides_credentials_in_urls_and_headers(line: str, hidden: str, kept: str) -> None:
    out = redact(line)
    assert hidden not in out and kept in out, out


def test_redact_hides_configured_secrets_and_keeps_ordinary_urls() -> None:
    assert redact("posting with X-Extra: EXTRASECRET", {"EXTRASECRET"}) == "posting with X-Extra: ***"
    plain = "article https://nyheter.example/utrikes/a.html?id=4711&utm_source=rss fetched"
    assert redact(plain) == plain
