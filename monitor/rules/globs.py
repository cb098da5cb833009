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


class Glob:
    """What a glob matches: the one definition, used by every wildcard and metadata test.

    Worked out without a backtracking regex, so its cost follows the subject's length: the
    pattern is cut at its stars into pieces of fixed length (letters and `?`); the first
    piece must start the subject, the last must end it, and each piece between is taken at
    its first place after the one before (the earliest place never rules out a later
    piece). Each piece is sought with str.find on its letters, so the worst case is the
    subject's length times the pattern's, in C for the most part.
    """

    __slots__ = ("_head", "_middle", "_tail", "shortest")

    def __init__(self, pattern: str) -> None:
        pieces = [_Piece(text) for text in pattern.split("*")]
        self._head = pieces[0]
        self._tail = pieces[-1] if len(pieces) > 1 else None  # None: no star
        self._middle = [piece for piece in pieces[1:-1] if piece.length]
        # The fewest characters a subject needs: shorter ones are turned down at once.
        self.shortest = sum(piece.length for piece in pieces)

    def matches(self, subject: str) -> bool:
        """Whether the glob matches the whole of `subject`."""
        size = len(subject)
        if size < self.shortest:
            return False
        head, tail = self._head, self._tail
        if tail is None:
            return size == head.length and head.at(subject, 0)
        end = size - tail.length  # where the last piece must start
        if not (head.at(subject, 0) and tail.at(subject, end)):
            return False
        start = head.length
        for piece in self._middle:
            found = piece.find(subject, start, end)
            if found < 0:
                return False
            start = found + piece.length
        return True


class _Piece:
    """A run of a pattern between stars: letters and `?`s, of a fixed length."""

    __slots__ = ("_anchor", "_letters", "length")

    def __init__(self, text: str) -> None:
        self.length = len(text)
        # (offset, letters) of each run of letters between the `?`s.
        self._letters = [(match.start(), match.group()) for match in re.finditer(r"[^?]+", text)]
        # The longest run is sought first: it occurs least often.
        self._anchor = max(self._letters, key=lambda run: len(run[1]), default=None)

    def at(self, subject: str, start: int) -> bool:
        """Whether the piece matches `subject` at `start` (to be within the subject)."""
        # A loop costs less than all() over a generator, and most pieces have one run.
        for offset, letters in self._letters:  # noqa: SIM110
            if not subject.startswith(letters, start + offset):
                return False
        return True

    def find(self, subject: str, start: int, end: int) -> int:
        """The first place from `start` where the piece matches and ends by `end`, or -1."""
        last = end - self.length  # the last place it may start
        if self._anchor is None:  # only `?`s: any place will do
            return start if start <= last else -1
        offset, letters = self._anchor
        while start <= last:
            found = subject.find(letters, start + offset, last + offset + len(letters))
            if found < 0:
                return -1
            place = found - offset
            if self.at(subject, place):
                return place
            start = place + 1
        return -1


class GlobIndex:
    """Aho-Corasick over one literal anchor per glob.

    Each glob is filed under its longest literal piece (pinned to the start or end of the
    subject when the glob is), so a search touches only the globs whose anchor occurs, and
    the cost follows the length of the subjects and the number of hits, not of globs.
    """

    def __init__(self, globs: Iterable[tuple[int, str]]) -> None:
        self._automaton = ahocorasick.Automaton()
        self._unanchored: list[tuple[int, Glob]] = []  # e.g. "?*": checked always
        for glob_id, pattern in globs:
            self._add(glob_id, pattern)
        self._empty = len(self._automaton) == 0
        if not self._empty:
            self._automaton.make_automaton()

    def _add(self, glob_id: int, pattern: str) -> None:
        check = None if _ANCHOR_SETTLES.fullmatch(pattern) else Glob(pattern)
        anchor = _anchor(pattern)
        if anchor is None:
            self._unanchored.append((glob_id, Glob(pattern)))
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
        # Each glob is tested once per subject, however often its anchor occurs in it
        # (`*a*a*c*` in a word of a thousand a's).
        tested: set[tuple[int, int]] = set()
        if not self._empty and subjects:
            haystack = _EDGE + _EDGE.join(subjects) + _EDGE
            starts = _starts(subjects)
            for end, (back, globs) in self._automaton.iter(haystack):
                index = bisect_right(starts, end - back + 1) - 1
                subject = subjects[index]
                for glob_id, check in globs:
                    found = (glob_id, index)
                    if found not in tested:
                        tested.add(found)
                        if check is None or check.matches(subject):
                            yield found
        for index, subject in enumerate(subjects):
            for glob_id, check in self._unanchored:
                if check.matches(subject):
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
