"""What a message says: every outbox document (alert, digest, catch-up, source notice, test)
rendered from Jinja2 templates into a subject, a plain-text part, an HTML part and a short chat
body. The channels decide only how it travels.

Templates are looked up by file name, first in the user's `templates:` folder, then in the
ones shipped in monitor/alerts/templates/: `{kind}.subject.txt`, `{kind}.txt`, `{kind}.html`
and `{kind}.chat.txt` for each kind. HTML templates are autoescaped, so everything that came
from the web comes out as text. Times are shown in the watchlist's time zone (a digest's own
"timezone"; source notices and tests in Europe/Stockholm) as "2026-11-30 08:40 CET".
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from jinja2 import ChoiceLoader, Environment, FileSystemLoader, PackageLoader, TemplateError
from markupsafe import Markup, escape

from monitor.alerts.payload import read_body
from monitor.errors import DeliveryError
from monitor.models import (
    ALERT,
    CATCHUP,
    DEFAULT_TIMEZONE,
    DIGEST_MESSAGE,
    SOURCE_NOTICE,
    TEST,
    Config,
    PendingAlert,
)
from monitor.normalize import one_line

KINDS = (ALERT, DIGEST_MESSAGE, CATCHUP, SOURCE_NOTICE, TEST)
# A Subject is read in a list of messages; a longer one is cut (the body has the title whole).
SUBJECT_MAX = 200
# Chat services cut long messages (Discord at 2,000 characters, Telegram at 4,096): a body is
# kept within the smallest of them, and a digest lists this many headlines before "… and N more".
CHAT_BODY_MAX = 1_900
CHAT_STORIES_MAX = 15


@dataclass(frozen=True)
class Rendered:
    subject: str  # one line: a mail Subject, a chat title
    text: str
    html: str
    chat: str  # a short body for chat services: the essentials and the link(s)


class Renderer:
    """Renders outbox documents with the shipped templates, or the user's where a file of the
    same name is in `templates`; `timezones` maps a watchlist name to its time zone."""

    def __init__(self, templates: Path | None = None, timezones: dict[str, str] | None = None) -> None:
        loaders = [FileSystemLoader(str(templates))] if templates else []
        loaders.append(PackageLoader("monitor.alerts", "templates"))
        self.environment = Environment(
            loader=ChoiceLoader(loaders),
            autoescape=lambda name: bool(name) and name.endswith(".html"),
            trim_blocks=True,
            lstrip_blocks=True,
            keep_trailing_newline=True,
        )
        self.environment.filters.update(localtime=local_time, emphasise=emphasise, one_line=one_line)
        self.timezones = dict(timezones or {})

    def check(self) -> None:
        """Compile every template the user's folder overrides: a syntax error shows when the
        config is loaded (`monitor check`, start, reload), not at the first send."""
        loader = self.environment.loader.loaders[0] if len(self.environment.loader.loaders) > 1 else None
        for name in loader.list_templates() if loader else ():
            try:
                self.environment.get_template(name)
            except TemplateError as exc:
                line = getattr(exc, "lineno", None)
                raise ValueError(f"{name}{f', line {line}' if line else ''}: "
                                 f"{getattr(exc, 'message', None) or exc}") from None

    @classmethod
    def for_config(cls, config: Config) -> Renderer:
        return cls(config.templates, {w.name: w.timezone for w in config.watchlists})

    def render(self, alert: PendingAlert) -> Rendered:
        doc = read_body(alert.body)
        kind = doc.get("kind", ALERT)
        if kind not in KINDS:
            raise ValueError(f"no templates for messages of kind {kind!r}")
        context = self.context(doc)

        def part(suffix: str) -> str:
            name = f"{kind}.{suffix}"
            try:
                return self.environment.get_template(name).render(context)
            except TemplateError as exc:
                # A broken user template fails this message, not the delivery pass: it stays
                # in the outbox and goes once the template is mended (or gives up in time).
                line = getattr(exc, "lineno", None)
                where = f"{name}, line {line}" if line else name
                raise DeliveryError(f"message template {where}: {exc.message or exc}", local=True) from exc

        # Folded to one line whatever a template writes: a line break in a header would let a
        # web title add headers of its own.
        return Rendered(
            subject=one_line(part("subject.txt"), SUBJECT_MAX),
            text=part("txt"),
            html=part("html"),
            chat=_cut_chat(part("chat.txt")),
        )

    def context(self, doc: dict[str, Any]) -> dict[str, Any]:
        """What the templates see: the document as `doc`, its time zone as `tz`, and for the
        kinds with stories, those stories grouped by watchlist."""
        kind = doc.get("kind", ALERT)
        context: dict[str, Any] = {"doc": doc, "kind": kind, "tz": self.timezone_of(doc),
                                   "chat_stories_max": CHAT_STORIES_MAX}
        if kind == ALERT:
            context["story"] = story_view(doc)
        elif kind in (DIGEST_MESSAGE, CATCHUP):
            stories = [story_view(s) for s in doc.get("stories") or []]
            context["stories"] = stories
            context["groups"] = group_by_watchlist(stories)
        return context

    def timezone_of(self, doc: dict[str, Any]) -> str:
        if doc.get("timezone"):
            return doc["timezone"]
        return self.timezones.get(doc.get("watchlist") or "", DEFAULT_TIMEZONE)


def story_view(doc: dict[str, Any]) -> dict[str, Any]:
    """One alert document as the templates use it: a title that is never empty, and the
    fields a story line needs."""
    article = doc.get("article") or {}
    return {
        "doc": doc,
        "watchlist": doc.get("watchlist") or "",
        "title": " ".join((article.get("title") or "").split()) or article.get("url") or "",
        "url": article.get("url") or "",
        "source": article.get("source") or "",
        "time": article.get("published") or doc.get("created"),
        "snippet": doc.get("snippet") or article.get("summary") or "",
        "matches": list(doc.get("matches") or []),
        "also_seen_at": list(doc.get("also_seen_at") or []),
        "is_update": bool(doc.get("update")),  # not "update": Jinja would find dict.update
    }


def group_by_watchlist(stories: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Stories in the order the digest lists them, grouped under their watchlists (the
    document already orders them by watchlist; this only cuts the list where it changes)."""
    groups: list[dict[str, Any]] = []
    for story in stories:
        if not groups or groups[-1]["watchlist"] != story["watchlist"]:
            groups.append({"watchlist": story["watchlist"], "stories": []})
        groups[-1]["stories"].append(story)
    return groups


def local_time(value: str | None, timezone: str = DEFAULT_TIMEZONE) -> str:
    """An ISO time as '2026-11-30 08:40 CET' in `timezone`: unambiguous in any language, and
    the zone's abbreviation tells a reader which clock it is. Unreadable input is shown as is."""
    if not value:
        return "unknown time"
    try:
        when = datetime.fromisoformat(value.replace("Z", "+00:00"))
        zone = ZoneInfo(timezone)
    except (ValueError, ZoneInfoNotFoundError):
        return value
    if when.tzinfo is None:
        when = when.replace(tzinfo=ZoneInfo("UTC"))
    local = when.astimezone(zone)
    return f"{local:%Y-%m-%d %H:%M} {local.tzname()}"


def emphasise(text: str, words: list[str] | tuple[str, ...], tag: str = "strong") -> Markup:
    """The text escaped, with each whole-word occurrence of a matched word in <strong> (or
    another `tag`: the web pages use <mark>)."""
    if not words:
        return escape(text)
    alternatives = "|".join(re.escape(w) for w in sorted(set(words), key=len, reverse=True))
    pattern = re.compile(rf"(?<!\w)(?:{alternatives})(?!\w)")
    around = Markup(f"<{tag}>%s</{tag}>")
    parts, last = [], 0
    for found in pattern.finditer(text):
        parts += [escape(text[last:found.start()]), around % found[0]]
        last = found.end()
    parts.append(escape(text[last:]))
    return Markup("").join(parts)


def _cut_chat(text: str) -> str:
    text = text.strip()
    if len(text) <= CHAT_BODY_MAX:
        return text
    return text[: CHAT_BODY_MAX - 1].rstrip() + "…"
