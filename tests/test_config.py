"""Config validation: every error names the key path, and the line where it can."""

from __future__ import annotations

from pathlib import Path

import pytest

from monitor.config import load_config, parse_duration
from monitor.errors import ConfigError

VALID = """\
database: data/monitor.db
sources:
  - name: svt-utrikes
    type: feed
    url: https://www.svt.se/nyheter/utrikes/rss.xml
    interval: 10m
watchlists:
  - name: kazakstan-csto
    query: 'kazak* OR tokajev* OR CSTO'
    notify: [siem]
notifiers:
  - name: siem
    type: webhook
    url: https://siem.example.se/hooks/news
    secret: "${WEBHOOK_SECRET}"
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def error_for(tmp_path: Path, text: str, env: dict[str, str] | None = None) -> str:
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, text), {"WEBHOOK_SECRET": "s", **(env or {})})
    return str(caught.value)


def test_valid_config_loads_with_defaults(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, VALID), {"WEBHOOK_SECRET": "hemlis"})
    assert config.database == tmp_path / "data" / "monitor.db"
    (source,) = config.sources
    assert source.interval == 600 and source.full_text is True
    assert config.notifier("siem").secret == "hemlis"
    assert config.watchlists[0].notify == ("siem",)


def test_unknown_key_is_named_with_line_and_suggestion(tmp_path: Path) -> None:
    message = error_for(tmp_path, VALID.replace("    interval: 10m", "    intervall: 10m"))
    assert message.startswith("sources[0].intervall: unknown key; did you mean 'interval'?")
    assert "(line 6)" in message


def test_bad_interval_names_the_key(tmp_path: Path) -> None:
    message = error_for(tmp_path, VALID.replace("interval: 10m", "interval: tio minuter"))
    assert message.startswith("sources[0].interval: not a duration")
    assert "(line 6)" in message


def test_wrong_type_names_the_key(tmp_path: Path) -> None:
    message = error_for(
        tmp_path, VALID.replace("    type: feed\n", "    type: feed\n    full_text: kanske\n")
    )
    assert message.startswith("sources[0].full_text: expected true or false, got 'kanske'")


def test_missing_required_key(tmp_path: Path) -> None:
    message = error_for(tmp_path, VALID.replace("    url: https://www.svt.se/nyheter/utrikes/rss.xml\n", ""))
    assert message.startswith("sources[0].url: required key is missing")


def test_watchlist_notifying_an_undefined_notifier(tmp_path: Path) -> None:
    message = error_for(tmp_path, VALID.replace("notify: [siem]", "notify: [siem, siemm2, analytiker]"))
    assert "watchlists[0].notify[1]: notifier 'siemm2' is not defined" in message
    assert "did you mean 'siem'?" in message


def test_query_that_does_not_parse_is_refused_with_a_caret(tmp_path: Path) -> None:
    message = error_for(tmp_path, VALID.replace("'kazak* OR tokajev* OR CSTO'", "'kazak* OR (tokajev*'"))
    assert message.startswith("watchlists[0].query (line 9):")
    assert "^" in message


def test_missing_environment_variable_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, VALID), {})
    assert "notifiers[0].secret: environment variable WEBHOOK_SECRET is not set (line 15)" in str(
        caught.value
    )


def test_environment_default(tmp_path: Path) -> None:
    text = VALID.replace("${WEBHOOK_SECRET}", "${WEBHOOK_SECRET:-standard}")
    config = load_config(write(tmp_path, text), {})
    assert config.notifier("siem").secret == "standard"


def test_unknown_source_type_and_bad_url(tmp_path: Path) -> None:
    assert "sources[0].type: unknown source type 'rss'" in error_for(
        tmp_path, VALID.replace("type: feed", "type: rss")
    )
    assert "sources[0].url: expected an http(s) URL" in error_for(
        tmp_path, VALID.replace("https://www.svt.se", "ftp://www.svt.se")
    )


def test_duplicate_source_names(tmp_path: Path) -> None:
    doubled = VALID.replace(
        "watchlists:",
        """  - name: svt-utrikes
    url: https://www.svt.se/rss.xml
watchlists:""",
    )
    assert "sources[1].name: duplicate name 'svt-utrikes'" in error_for(tmp_path, doubled)


def test_not_yaml_and_missing_file(tmp_path: Path) -> None:
    assert "not valid YAML" in error_for(tmp_path, "sources: [\n")
    with pytest.raises(ConfigError, match="cannot read config file"):
        load_config(tmp_path / "nope.yaml", {})


@pytest.mark.parametrize(
    ("text", "seconds"), [("90s", 90), ("10m", 600), ("1h30m", 5400), ("2d", 172800), (45, 45)]
)
def test_durations(text: str | int, seconds: int) -> None:
    assert parse_duration(text) == seconds


def test_shipped_config_is_valid() -> None:
    config = load_config(Path(__file__).parent.parent / "config.yaml", {})
    names = {s.name for s in config.sources}
    assert len(names) >= 10
    assert any(w.name == "kazakstan-csto" for w in config.watchlists)
    assert {n.type for n in config.notifiers} == {"log"}


def test_source_type_specific_keys(tmp_path: Path) -> None:
    sitemap = VALID.replace("type: feed", "type: sitemap\n    max_age: 1d")
    assert load_config(write(tmp_path, sitemap), {"WEBHOOK_SECRET": "s"}).sources[0].max_age == 86400
    page = VALID.replace("type: feed", "type: page\n    follow: 'article a.teaser'")
    assert load_config(write(tmp_path, page), {"WEBHOOK_SECRET": "s"}).sources[0].follow == "article a.teaser"
    assert "sources[0].follow: unknown key" in error_for(
        tmp_path, VALID.replace("type: feed", "type: feed\n    follow: a")
    )
    assert "sources[0].follow: not a CSS selector" in error_for(
        tmp_path, VALID.replace("type: feed", "type: page\n    follow: 'a[['")
    )
    assert "sources[0].languages[0]: expected a language code" in error_for(
        tmp_path, VALID.replace("type: feed", "type: feed\n    languages: [svenska]")
    )


def test_user_agent_names_the_project_and_the_contact(tmp_path: Path) -> None:
    text = VALID.replace("sources:", "crawl:\n  contact: mailto:drift@example.se\nsources:")
    config = load_config(write(tmp_path, text), {"WEBHOOK_SECRET": "s"})
    assert config.crawl.user_agent.startswith("monitor/")
    assert config.crawl.user_agent.endswith("(+mailto:drift@example.se)")


# --- alerts: delivery, digests, flood control, retries, channels, operations (issue 13) --------


def test_alert_options_load_with_their_defaults(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, VALID), {"WEBHOOK_SECRET": "s"})
    (watchlist,) = config.watchlists
    assert (watchlist.delivery, watchlist.schedule, watchlist.timezone) == ("immediate", None,
                                                                            "Europe/Stockholm")
    assert watchlist.digest_schedule is None and watchlist.max_per_hour is None
    siem = config.notifier("siem")
    assert (siem.retry_within, siem.give_up_after, siem.timeout) == (30.0, 86400, 15.0)
    assert config.operations.notify == () and config.operations.alert_after == 6 * 3600
    digest = load_config(write(tmp_path, VALID.replace(
        "    notify: [siem]", "    notify: [siem]\n    delivery: digest\n    timezone: Asia/Almaty")),
        {"WEBHOOK_SECRET": "s"})
    assert digest.watchlists[0].digest_schedule == "0 7 * * *"


@pytest.mark.parametrize(("lines", "expected"), [
    ("    delivery: daily", "watchlists[0].delivery: expected immediate or digest, got 'daily'"),
    ("    schedule: '0 25 * * *'", "watchlists[0].schedule: not a cron expression"),
    ("    timezone: Europe/Stokholm", "watchlists[0].timezone: unknown time zone 'Europe/Stokholm'"),
    ("    max_per_hour: 0", "watchlists[0].max_per_hour: must be at least 1"),
    ("    delivery: digest\n    max_per_hour: 5", "watchlists[0].max_per_hour: a digest watchlist"),
    ("    send_empty: true", "watchlists[0].send_empty: only a watchlist with a digest"),
])
def test_bad_watchlist_delivery_names_the_key(tmp_path: Path, lines: str, expected: str) -> None:
    message = error_for(tmp_path, VALID.replace("    notify: [siem]", f"    notify: [siem]\n{lines}"))
    assert message.startswith(expected), message


@pytest.mark.parametrize(("lines", "expected"), [
    ("    retry_within: soon", "notifiers[0].retry_within: not a duration"),
    ("    give_up_after: 0", "notifiers[0].give_up_after: must be at least 1s"),
    ("    timeout: -1", "notifiers[0].timeout: must be more than 0 seconds"),
])
def test_bad_notifier_retry_settings_name_the_key(tmp_path: Path, lines: str, expected: str) -> None:
    message = error_for(tmp_path, VALID + lines + "\n")
    assert message.startswith(expected), message


def test_timeouts_take_durations(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, VALID + "    timeout: 1m\n    retry_within: 0\n"),
                         {"WEBHOOK_SECRET": "s"})
    assert (config.notifier("siem").timeout, config.notifier("siem").retry_within) == (60.0, 0.0)


def test_operations_notify_must_name_a_notifier(tmp_path: Path) -> None:
    message = error_for(tmp_path, VALID + "operations:\n  notify: [siemm]\n")
    assert message.startswith("operations.notify[0]: notifier 'siemm' is not defined under "
                              "notifiers; did you mean 'siem'?")


def test_a_user_template_that_does_not_compile_is_refused_at_load(tmp_path: Path) -> None:
    (tmp_path / "mallar").mkdir()
    (tmp_path / "mallar" / "alert.html").write_text("<p>{{ story.title </p>\n")
    message = error_for(tmp_path, VALID + "templates: mallar\n")
    assert message.startswith("templates: a template in")
    assert "alert.html, line 1" in message
    (tmp_path / "mallar" / "alert.html").write_text("<p>{{ story.title }}</p>\n")
    assert load_config(write(tmp_path, VALID + "templates: mallar\n"),
                       {"WEBHOOK_SECRET": "s"}).templates == tmp_path / "mallar"


def test_an_apprise_url_apprise_does_not_know_is_refused_without_quoting_it(tmp_path: Path) -> None:
    text = VALID + ("  - name: chatt\n    type: apprise\n"
                    "    urls: ['nosuchservice://hemlig-token-123']\n")
    message = error_for(tmp_path, text)
    assert message.startswith("notifiers[1].urls[0]: not an Apprise URL")
    assert "hemlig-token-123" not in message


@pytest.mark.parametrize(("value", "expected"), [("auto", None), ("0", 0), ("3", 3)])
def test_extract_workers_is_auto_or_a_count(tmp_path: Path, value: str, expected: int | None) -> None:
    config = load_config(write(tmp_path, VALID + f"crawl: {{extract_workers: {value}}}\n"),
                         environ={"WEBHOOK_SECRET": "x"})
    assert config.crawl.extract_workers == expected


@pytest.mark.parametrize("value", ["-1", "many", "true", "1000"])
def test_a_bad_extract_workers_names_its_key(tmp_path: Path, value: str) -> None:
    with pytest.raises(ConfigError, match=r"crawl\.extract_workers"):
        load_config(write(tmp_path, VALID + f"crawl: {{extract_workers: {value}}}\n"),
                    environ={"WEBHOOK_SECRET": "x"})
