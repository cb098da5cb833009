"""The log notifier's one line for each kind of message."""

from __future__ import annotations

import json

from monitor.alerts.log import format_line
from monitor.models import PendingAlert


def line(document: dict) -> str:
    return format_line(PendingAlert(document["id"], "logg", "", None, json.dumps(document), 0,
                                    kind=document["kind"]))


def story(i: int, watchlist: str) -> dict:
    return {"id": f"a{i}", "kind": "alert", "watchlist": watchlist, "created": "2026-11-30T06:00:00+00:00",
            "article": {"url": f"https://example.se/{i}", "title": f"Rubrik\n{i}", "summary": "",
                        "published": None, "source": "svt"},
            "matches": ["CSTO"], "snippet": "", "also_seen_at": []}


def test_a_digest_is_one_line_naming_its_watchlists_and_first_headlines() -> None:
    stories = [story(i, "kazakstan") for i in range(6)] + [story(6, "csto")]
    digest = {"id": "d1", "kind": "digest", "created": "2026-11-30T06:00:00+00:00", "timezone": "UTC",
              "watchlists": ["kazakstan", "csto"], "stories": stories, "note": None}

    text = line(digest)

    assert text.startswith("DIGEST [kazakstan, csto] 7 stories: Rubrik 0 | Rubrik 1")
    assert text.endswith("| … 2 more") and "\n" not in text
    assert line({**digest, "kind": "catchup", "stories": []}) == "CATCH-UP [kazakstan, csto] 0 stories"


def test_source_notices_tests_and_held_back_alerts_are_readable_lines() -> None:
    notice = {"id": "s1", "kind": "source", "created": "2026-11-30T06:00:00+00:00", "source": "svt",
              "url": "https://svt.se/rss", "state": "recovered", "since": "2026-11-30T05:00:00+00:00",
              "problem": "svt works again\nafter 7 hours", "consecutive_failures": 0,
              "last_error": None, "last_new": None}
    test = {"id": "t1", "kind": "test", "created": "2026-11-30T06:00:00+00:00", "notifier": "logg",
            "message": "hello"}
    held = {**story(1, "kazakstan"), "held_back": "More matches this hour come at 09:00."}

    assert line(notice) == "SOURCE svt RECOVERED: svt works again after 7 hours — https://svt.se/rss"
    assert line(test) == "TEST message to logg (t1): hello"
    assert line(held).endswith("— More matches this hour come at 09:00.")
    assert line(held).startswith("ALERT [kazakstan] Rubrik 1 — https://example.se/1")
