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
