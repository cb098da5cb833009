"""What `monitor once` and `monitor run` print: every line stamped with the local time, or one
JSON object per line with `log_format: json`; one summary per cycle with singular and plural
right, columns that stay aligned, and a backing-off source counted as waiting."""

from __future__ import annotations

import json
import re
from pathlib import Path

from conftest import monitor_config, run_monitor, write_config
from servers import Site

# 2026-11-30 19:04:05+0100: local time with its offset from UTC
STAMP = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d[+-]\d{4} ")
LONG_NAME = "utrikes-from-a-source-with-a-long-name"


def one_item_feed(site: Site) -> None:
    """A copy of the utrikes feed holding only its first item, which matches the watchlist."""
    feed = (site.root / "rss/utrikes.xml").read_text(encoding="utf-8")
    first = feed.index("<item>")
    second = feed.index("<item>", first + 1)
    end = feed.rindex("</item>") + len("</item>")
    site.write("rss/one.xml", feed[:second] + feed[end:])


def lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


def test_every_line_starts_with_the_local_time_and_the_summary_counts_in_words(
    tmp_path: Path, site: Site
) -> None:
    one_item_feed(site)
    config = write_config(tmp_path, monitor_config(site, feeds=("rss/one.xml",)))

    # -v: the per-article line on stderr; the zone: times are local, with the offset.
    result = run_monitor(config, "-v", "once", env={"TZ": "Europe/Stockholm"})

    assert result.returncode == 0, result.stderr
    out, err = lines(result.stdout), lines(result.stderr)
    for line in out + err:
        assert STAMP.match(line), line
    assert all(line[19:24] == "+0100" for line in out + err), "Stockholm in November is UTC+1"
    assert any(re.search(r"DEBUG monitor.pipeline: article \S+/csto-styrkor-almaty.html \(one\): "
                         r"\d+ chars of text, matched kazakstan-csto$", line) for line in err), err
    assert any(line.endswith(" one 200    1 entry, 1 new") for line in out), out
    summary = out[-1][STAMP.match(out[-1]).end():]
    assert summary.startswith("cycle: 1 source: 1 ok, 0 failed; 1 new article, 1 matched; "
                              "1 new alert, 1 sent, 0 pending"), summary


def test_a_long_name_widens_the_column_for_every_source_of_the_cycle(
    tmp_path: Path, site: Site
) -> None:
    raw = monitor_config(site)
    raw["sources"][0]["name"] = LONG_NAME

    result = run_monitor(write_config(tmp_path, raw), "once")

    assert result.returncode == 0, result.stderr
    rows = [line[STAMP.match(line).end():] for line in lines(result.stdout)
            if re.search(r" 200 +\d+ entries", line)]
    assert len(rows) == 3, result.stdout
    assert {row.index(" 200 ") for row in rows} == {2 + len(LONG_NAME)}, rows


def test_json_logs_are_one_object_per_line_with_a_structured_cycle(
    tmp_path: Path, site: Site
) -> None:
    raw = monitor_config(site, feeds=("rss/utrikes.xml", "rss/nothing-here.xml"))
    raw["log_format"] = "json"
    # A secret in a source's URL must stay hidden in JSON as in text.
    raw["sources"][1]["url"] = site.url("rss/nothing-here.xml?token=s3cret-value")

    # -vv: Scrapy's own log too, which names the URL with its token.
    result = run_monitor(write_config(tmp_path, raw), "-vv", "once")

    assert result.returncode == 0, result.stderr
    records = [json.loads(line) for line in lines(result.stdout) + lines(result.stderr)]
    assert all({"time", "level", "logger", "message"} <= set(r) for r in records)
    assert all(re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}[+-]\d\d:\d\d$", r["time"])
               for r in records)
    cycles = [r for r in records if r.get("event") == "cycle"]
    assert len(cycles) == 1
    cycle = cycles[0]
    assert cycle["sources"] == {"ok": 1, "failed": 1, "waiting": 0}
    assert cycle["articles"] == {"new": 5, "matched": 5}
    assert cycle["alerts"]["new"] == 5 and cycle["alerts"]["sent"] == 5
    assert cycle["alerts"]["pending"] == 0 and cycle["alerts"]["failed"] == 0
    by_name = {s["name"]: s for s in cycle["per_source"]}
    assert by_name["utrikes"]["state"] == "ok" and by_name["utrikes"]["new"] == 5
    assert by_name["nothing-here"]["state"] == "failed"
    scrapy = [r["message"] for r in records if r["logger"].startswith("scrapy")]
    assert any("nothing-here.xml?token=***" in message for message in scrapy), scrapy
    assert "s3cret-value" not in result.stdout + result.stderr


def test_a_source_backing_off_is_counted_waiting_not_ok(tmp_path: Path, site: Site) -> None:
    site.failures["/rss/inrikes.latin1.xml"] = 503
    config = write_config(tmp_path, monitor_config(site))
    first = run_monitor(config, "once")
    assert "3 sources: 2 ok, 1 failed;" in first.stdout, first.stdout

    second = run_monitor(config, "once")

    assert second.returncode == 0, second.stderr
    assert "3 sources: 2 ok, 0 failed, 1 waiting;" in second.stdout, second.stdout
    assert re.search(r"  inrikes +wait   backing off after 1 ", second.stdout), second.stdout
