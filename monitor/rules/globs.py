"""Globs (`*` any run of characters, `?` one character) and an index that finds, in one pass,
which of many globs match which of many strings."""

from __future__ import annotations

import re
from bisect import bisect_right
from collections.abc import Iterable, Iterator, Sequence

import ahocorasick

# Marks where each subject string starts and ends inside the haystack; never part of a word
# or a URL.
_EDGE = "\x01"
_WILDCARD_RUN = re.compile(r"[*?]+")
# `lit*`, `*lit` and `*lit*` are settled by finding their anchor; others need a full check.
_ANCHOR_SETTLES = re.compile(r"\*?[^*?]+\*?")


def glob_regex(pattern: str) -> re.Pattern[str]:
    """A regex that fullmatches what the glob matches."""
    parts = (".*" if char == "*" else "." if char == "?" else re.escape(char) for char in pattern)
    return re.compile("".join(parts), re.DOTALL)


class GlobIndex:
    """Aho-Corasick over one literal anchor per glob.

    Each glob is filed under its longest literal piece (pinned to the start or end of the
    subject when the glob is), so a search touches only the globs whose anchor occurs, and
    the cost follows the length of the subjects and the number of hits, not of globs.
    """

    def __init__(self, globs: Iterable[tuple[int, str]]) -> None:
        self._automaton = ahocorasick.Automaton()
        self._unanchored: list[tuple[int, re.Pattern[str]]] = []  # e.g. "?*": checked always
        for glob_id, pattern in globs:
            self._add(glob_id, pattern)
        self._empty = len(self._automaton) == 0
        if not self._empty:
            self._automaton.make_automaton()

    def _add(self, glob_id: int, pattern: str) -> None:
        check = None if _ANCHOR_SETTLES.fullmatch(pattern) else glob_regex(pattern)
        anchor = _anchor(pattern)
        if anchor is None:
            self._unanchored.append((glob_id, glob_regex(pattern)))
            return
        entry = self._automaton.get(anchor, None)
        if entry is None:
            # How far back from the end of a found anchor its subject starts: the anchor's
            # length, less its leading edge mark if it has one.
            entry = (len(anchor) - anchor.startswith(_EDGE), [])
            self._automaton.add_word(anchor, entry)
        entry[1].append((glob_id, check))

    def search(self, subjects: Sequence[str]) -> Iterator[tuple[int, int]]:
        """Yields (glob id, subject index) for every glob that matches a whole subject, once."""
        seen: set[tuple[int, int]] = set()
        if not self._empty and subjects:
            haystack = _EDGE + _EDGE.join(subjects) + _EDGE
            starts = _starts(subjects)
            for end, (back, globs) in self._automaton.iter(haystack):
                index = bisect_right(starts, end - back + 1) - 1
                subject = subjects[index]
                for glob_id, check in globs:
                    found = (glob_id, index)
                    if found not in seen and (check is None or check.fullmatch(subject)):
                        seen.add(found)
                        yield found
        for index, subject in enumerate(subjects):
            for glob_id, check in self._unanchored:
                if check.fullmatch(subject):
                    yield glob_id, index


def _anchor(pattern: str) -> str | None:
    pieces = _WILDCARD_RUN.split(pattern)
    candidates = []
    for position, piece in enumerate(pieces):
        if not piece:
            continue
        if position == 0:
            piece = _EDGE + piece
        if position == len(pieces) - 1:
            piece += _EDGE
        candidates.append(piece)
    return max(candidates, key=len) if candidates else None


def _starts(subjects: Sequence[str]) -> list[int]:
    starts = []
    offset = 1
    for subject in subjects:
        starts.append(offset)
        offset += len(subject) + 1
    return starts
