"""The alert document: built once when the alert enters the outbox, then sent as stored, so every
retry carries the same id and the same bytes (and so the same signature)."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import Any

from monitor.models import StoredArticle


def new_alert_id() -> str:
    return uuid.uuid4().hex


@dataclass(frozen=True)
class StoryContext:
    """The story an alert is about: its stable id, the other URLs it is known under when the
    alert is written, and whether the alert comes from a revised article."""

    uid: str | None = None
    also_seen_at: tuple[str, ...] = ()
    update: bool = False


def build_body(
    alert_id: str,
    watchlist: str,
    article: StoredArticle,
    words: tuple[str, ...],
    snippet: str,
    created: str,
    story: StoryContext = StoryContext(),
    held_back: str | None = None,
) -> str:
    document = {
        "id": alert_id,
        "kind": "alert",
        "watchlist": watchlist,
        "created": created,
        "story": story.uid,
        "update": story.update,
        "article": {
            "url": article.url,
            "title": article.title,
            "summary": article.summary,
            "published": article.published,
            "source": article.source,
            "lang": article.lang,
        },
        "matches": list(words),
        "snippet": snippet,
        "also_seen_at": list(story.also_seen_at),
    }
    if held_back:  # the alert that reached its watchlist's max_per_hour says what follows
        document["held_back"] = held_back
    return json.dumps(document, ensure_ascii=False, separators=(",", ":"))


def read_body(body: str) -> dict[str, Any]:
    return json.loads(body)
