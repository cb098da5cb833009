"""The few lines of context shown with a hit, and a helper to mark the hit words in them."""

from __future__ import annotations

import re
from bisect import bisect_right
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

SNIPPET_WIDTH = 200
ELLIPSIS = "…"

_SPACE = re.compile(r"\s")
_NON_SPACE = re.compile(r"\S")
_SPACE_RUN = re.compile(r"\s{2,}|[^\S ]")  # what collapsing to single spaces changes
_CONTEXT_BEFORE = SNIPPET_WIDTH // 3

Span = tuple[int, int]


def make_snippet(text: str, hits: Sequence[Span], width: int = SNIPPET_WIDTH) -> tuple[str, tuple[Span, ...]]:
    """About `width` characters of `text` around the first hit, cut between words, on one line.

    `hits` are [start, end) character spans in `text`, the first one first; the spans that fall
    inside the snippet are returned moved to snippet offsets, overlapping ones merged.
    """
    window = Window.around(text, hits[0] if hits else (0, 0), width)
    return window.line, window.place(hits)


def highlight(snippet: str, spans: Iterable[Span], before: str = "[", after: str = "]") -> str:
    """The snippet with `before` and `after` around each span: 'the [CSTO] force'."""
    parts = []
    done = 0
    for start, end in _merge(spans):
        parts += [snippet[done:start], before, snippet[start:end], after]
        done = end
    parts.append(snippet[done:])
    return "".join(parts)


@dataclass(slots=True)
class Window:
    """A stretch [start, end) of a text, shown as `line`: on one line, '…' where cut."""

    start: int
    end: int
    line: str
    shift: int  # characters added in front of the text (the '…')
    run_ends: list[int] = field(default_factory=list)  # where collapsed whitespace runs end
    removed: list[int] = field(default_factory=list)  # characters removed up to each run

    @classmethod
    def around(cls, text: str, first: Span, width: int = SNIPPET_WIDTH) -> Window:
        start, end = _bounds(text, first, width)
        piece = text[start:end]
        stripped = piece.lstrip()
        start += len(piece) - len(stripped)
        piece = stripped.rstrip()
        end = start + len(piece)
        # Searching from the cut finds the nearest other word at once, without copying.
        prefix = ELLIPSIS if start and _NON_SPACE.search(text, 0, start) else ""
        suffix = ELLIPSIS if _NON_SPACE.search(text, end) else ""
        run_ends, removed, total = [], [], 0
        for run in _SPACE_RUN.finditer(piece):
            total += run.end() - run.start() - 1
            run_ends.append(run.end())
            removed.append(total)
        if run_ends:
            piece = _SPACE_RUN.sub(" ", piece)
        return cls(start, end, prefix + piece + suffix, len(prefix), run_ends, removed)

    def place(self, hits: Iterable[Span]) -> tuple[Span, ...]:
        """The hits inside the window, as [start, end) offsets in `line`, overlaps merged."""
        start, end = self.start, self.end
        return _merge(self.move([(first, last) for first, last in hits if start <= first and last <= end]))

    def move(self, spans: list[Span]) -> list[Span]:
        """Spans that lie inside the window, as offsets in `line`, in the same order."""
        if self.run_ends:
            return [(self._move(first), self._move(last)) for first, last in spans]
        shift = self.shift - self.start
        return [(first + shift, last + shift) for first, last in spans]

    def _move(self, offset: int) -> int:
        offset -= self.start
        runs = bisect_right(self.run_ends, offset)
        return offset - (self.removed[runs - 1] if runs else 0) + self.shift


def _bounds(text: str, first: Span, width: int) -> Span:
    if len(text) <= width:
        return 0, len(text)
    first_start, first_end = first
    start = max(0, first_start - _CONTEXT_BEFORE)
    end = min(len(text), max(start + width, first_end))
    start = min(start, max(0, end - width))
    return _word_start(text, start, first_start), _word_end(text, end, first_end)


def _word_start(text: str, start: int, limit: int) -> int:
    """`start` moved forward past a cut word, but not past `limit`; or back when it can't."""
    if start == 0 or text[start - 1].isspace() or text[start].isspace():
        return start
    space = _SPACE.search(text, start, limit)
    if space:
        return space.end()
    while start > 0 and not text[start - 1].isspace():
        start -= 1
    return start


def _word_end(text: str, end: int, limit: int) -> int:
    """`end` moved back before a cut word, but not before `limit`; or on when it can't."""
    if end >= len(text) or text[end].isspace() or text[end - 1].isspace():
        return end
    back = end
    while back > limit and not text[back - 1].isspace():
        back -= 1
    if back > limit:
        return back - 1
    after = _SPACE.search(text, end)
    return after.start() if after else len(text)


def _merge(spans: Iterable[Span]) -> tuple[Span, ...]:
    merged: list[Span] = []
    for start, end in sorted(spans):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return tuple(merged)
