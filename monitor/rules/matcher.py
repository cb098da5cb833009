"""Matches articles against all watchlists at once.

Per article: split each field into words once; look each distinct word up once (a cache of
words seen before, else the word, stem and case tables and one Aho-Corasick pass for all
wildcards), giving the atoms present; wake the watchlists filed under those atoms
(planner.py) and evaluate only those. The work grows with the article and its hits, not
with the number of watchlists.
"""

from __future__ import annotations

import re
from bisect import bisect_left, bisect_right
from collections.abc import Mapping
from dataclasses import dataclass
from itertools import chain

from monitor.errors import QueryError
from monitor.rules.compiler import (
    ALL_FIELDS,
    FIELD_SHIFT,
    Atoms,
    Evaluator,
    Item,
    Span,
    Spans,
    compile_node,
)
from monitor.rules.globs import GlobIndex, glob_regex
from monitor.rules.nodes import Meta
from monitor.rules.parser import parse_query
from monitor.rules.planner import HELD, Triggers
from monitor.rules.snippet import Window, make_snippet
from monitor.rules.text import WORD_RE, fold, nfc, split_words, stem

TOKEN_CACHE_SIZE = 300_000
_INDEX = (1 << FIELD_SHIFT) - 1  # the word-index part of a position
_LANG_SUBTAG = re.compile(r"[-_]")


@dataclass(frozen=True)
class Document:
    """What the matcher sees of an article."""

    title: str = ""
    summary: str = ""
    text: str = ""  # the article body
    source: str = ""
    url: str = ""
    lang: str = ""


@dataclass(frozen=True)
class Hit:
    """Why a watchlist matched an article."""

    watchlist: str
    words: tuple[str, ...]  # as written in the article, in reading order, each once
    snippet: str  # about 200 characters around the first hit, '…' where cut
    snippet_spans: tuple[tuple[int, int], ...]  # [start, end) of the hit words in `snippet`


class Matcher:
    """All watchlists compiled together. `Matcher({"name": "query", ...}).match(document)`.

    A bad query raises QueryError naming its watchlist. `token_cache_size` bounds the cache
    of words already looked up (0 turns it off); results are the same either way. The
    cache makes `match` unsafe to call from several threads at once.
    """

    def __init__(self, queries: Mapping[str, str], *, token_cache_size: int = TOKEN_CACHE_SIZE) -> None:
        self._names = list(queries)
        self._atoms = Atoms()
        self._evaluators: list[Evaluator] = []
        nodes = []
        for name, query in queries.items():
            try:
                node = parse_query(query)
            except QueryError as error:
                raise QueryError(error.message, error.query, error.column, name) from None
            self._atoms.start_watchlist()
            self._evaluators.append(compile_node(node, self._atoms))
            nodes.append(node)
        self._triggers = Triggers.plan(nodes, self._atoms)
        self._globs = GlobIndex(self._atoms.globs)
        self._metas = _MetaIndex(self._atoms.metas)
        # Words already looked up, and of those the ones that stand for some atom.
        self._seen: set[str] = set()
        self._with_atoms: dict[str, tuple[int, ...]] = {}
        self._token_cache_size = token_cache_size

    @property
    def names(self) -> list[str]:
        return list(self._names)

    def match(self, doc: Document) -> dict[str, Hit]:
        """The watchlists that match `doc`, by name, in the order they were given."""
        article = _Article(doc)
        article.note_atoms(self._token_atoms(article.distinct_tokens()))
        article.present |= self._metas.true_for(doc)
        hits = {}
        for index in self._triggers.candidates(article.present):
            found = self._evaluators[index](article, ALL_FIELDS)
            if found is not None:
                name = self._names[index]
                hits[name] = article.hit(name, found)
        return hits

    def _token_atoms(self, tokens: set[str]) -> dict[str, tuple[int, ...]]:
        """The atoms each word of the article stands for, leaving out words that stand for none."""
        if not self._token_cache_size:
            listed = list(tokens)
            return {token: atoms for token, atoms in zip(listed, self._look_up(listed), strict=True) if atoms}
        # Most words of an article were seen before and stand for nothing: set operations
        # sort them out without a Python step per word.
        unknown = tokens - self._seen
        if unknown:
            if len(self._seen) + len(unknown) > self._token_cache_size:
                self._seen.clear()
                self._with_atoms.clear()
                unknown = tokens
            unknown = list(unknown)
            for token, atoms in zip(unknown, self._look_up(unknown), strict=True):
                if atoms:
                    self._with_atoms[token] = atoms
            self._seen.update(unknown)
        with_atoms = self._with_atoms
        return {token: with_atoms[token] for token in tokens & with_atoms.keys()}

    def _look_up(self, tokens: list[str]) -> list[tuple[int, ...]]:
        folded = [fold(token) for token in tokens]
        by_stem, by_folded, by_written = (
            self._atoms.by_stem,
            self._atoms.by_folded,
            self._atoms.by_written,
        )
        found = [
            [*by_folded.get(word, ()), *by_stem.get(stem(word), ()), *by_written.get(token, ())]
            for token, word in zip(tokens, folded, strict=True)
        ]
        for atom, index in self._globs.search(folded):
            found[index].append(atom)
        return [tuple(atoms) for atoms in found]


class _MetaIndex:
    """Which metadata atoms (url:, source:, lang:) hold for a document."""

    def __init__(self, metas: list[tuple[int, Meta]]) -> None:
        self._by_field: dict[str, list[tuple[int, Meta]]] = {"lang": [], "source": []}
        self._literal_urls: dict[str, list[int]] = {}
        url_globs = []
        for atom, meta in metas:
            if meta.field != "url":
                self._by_field[meta.field].append((atom, meta))
            elif meta.literal:
                self._literal_urls.setdefault(meta.pattern, []).append(atom)
            else:
                url_globs.append((atom, meta.pattern))
        self._url_globs = GlobIndex(url_globs)
        # Sources and languages repeat from article to article: decide each value once.
        self._seen: dict[tuple[str, str], frozenset[int]] = {}

    def true_for(self, doc: Document) -> set[int]:
        url = doc.url.lower()
        true = set(self._literal_urls.get(url, ()))
        true.update(atom for atom, _ in self._url_globs.search([url]))
        true |= self._repeating("lang", doc.lang)
        true |= self._repeating("source", doc.source)
        return true

    def _repeating(self, field: str, value: str) -> frozenset[int]:
        key = (field, value)
        true = self._seen.get(key)
        if true is None:
            values = _meta_values(field, value)
            true = frozenset(atom for atom, meta in self._by_field[field] if _holds(meta, values))
            if len(self._seen) > 10_000:
                self._seen.clear()
            self._seen[key] = true
        return true


def _meta_values(field: str, value: str) -> tuple[str, ...]:
    value = value.lower()
    if field == "lang":
        # lang:sv also holds for sv-SE and sv_FI.
        return (value, _LANG_SUBTAG.split(value, maxsplit=1)[0])
    return (value,)


def _holds(meta: Meta, values: tuple[str, ...]) -> bool:
    if meta.literal:
        return meta.pattern in values
    pattern = glob_regex(meta.pattern)
    return any(pattern.fullmatch(value) for value in values)


class _Article:
    """One document while it is being matched: its words, and which atoms they stand for.

    Positions, spans and character offsets are worked out only when an evaluator or a hit
    asks for them, and then kept for the other watchlists."""

    def __init__(self, doc: Document) -> None:
        self.fields = (nfc(doc.title), nfc(doc.summary), nfc(doc.text))
        self.tokens = [split_words(field) for field in self.fields]
        self.present: set[int] = {HELD}
        self.atom_tokens: dict[int, list[str]] = {}  # atom -> the article's words for it
        self._by_token: dict[str, list[int]] | None = None
        self._positions: dict[int, list[int]] = {}
        self._spans: dict[int, Spans] = {}
        self._position_sets: dict[int, set[int]] = {}
        self._word_offsets: dict[int, tuple[list[int], list[int]]] = {}
        self._windows: dict[Span, _SnippetWindow] = {}
        self._written_spans: dict[Span, str] = {}

    def distinct_tokens(self) -> set[str]:
        title, summary, text = self.tokens
        return set(text).union(title, summary)

    def note_atoms(self, token_atoms: dict[str, tuple[int, ...]]) -> None:
        for token, atoms in token_atoms.items():
            for atom in atoms:
                self.atom_tokens.setdefault(atom, []).append(token)
        self.present.update(self.atom_tokens)

    # --- what evaluators ask ---

    def spans(self, atom: int) -> Spans:
        spans = self._spans.get(atom)
        if spans is None:
            spans = self._spans[atom] = [(p, p) for p in self._atom_positions(atom)]
        return spans

    def positions(self, atom: int) -> set[int]:
        positions = self._position_sets.get(atom)
        if positions is None:
            positions = self._position_sets[atom] = set(self._atom_positions(atom))
        return positions

    def _atom_positions(self, atom: int) -> list[int]:
        """Where the atom occurs, in reading order."""
        positions = self._positions.get(atom)
        if positions is None:
            tokens = self.atom_tokens.get(atom, ())
            by_token = self._token_positions()
            if len(tokens) == 1:
                positions = by_token[tokens[0]]
            else:
                positions = sorted(chain.from_iterable(by_token[token] for token in tokens))
            self._positions[atom] = positions
        return positions

    def _token_positions(self) -> dict[str, list[int]]:
        """Where each word that stands for some atom occurs."""
        if self._by_token is None:
            found: dict[str, list[int]] = {t: [] for ts in self.atom_tokens.values() for t in ts}
            for field, tokens in enumerate(self.tokens):
                base = field << FIELD_SHIFT
                # A comprehension sifts the few wanted words out of hundreds fastest.
                for index in [index for index, token in enumerate(tokens) if token in found]:
                    found[tokens[index]].append(base + index)
            self._by_token = found
        return self._by_token

    # --- hits ---

    def hit(self, watchlist: str, found: list[Item]) -> Hit:
        atoms = {item for item in found if isinstance(item, int)}
        spans = {item for item in found if not isinstance(item, int)}
        if not atoms and not spans:
            # Matched on metadata alone: show the start of the article.
            text = next((f for f in (self.fields[1], self.fields[2], self.fields[0]) if f.strip()), "")
            snippet, snippet_spans = make_snippet(text, [])
            return Hit(watchlist, (), snippet, snippet_spans)
        # Each word with its first place: for an atom, its words' first occurrences.
        tokens = {token for atom in atoms for token in self.atom_tokens[atom]}
        by_token = self._token_positions()
        firsts = [(by_token[token][0], by_token[token][0], token) for token in tokens]
        firsts += [(start, end, self._written(start, end)) for start, end in spans]
        firsts.sort()
        words = tuple(dict.fromkeys([first[2] for first in firsts]))
        window = self._window(firsts[0][:2])
        inside = [(p, p) for p, token in window.words if token in tokens]
        inside += [span for span in spans if window.low <= span[0] and span[1] < window.high]
        starts, ends = self._offsets(window.field)
        marks = [(starts[start & _INDEX], ends[end & _INDEX]) for start, end in inside]
        return Hit(watchlist, words, window.text.line, window.text.place(marks))

    def _window(self, first: Span) -> _SnippetWindow:
        """The snippet around a first hit, shared by every watchlist with the same first hit."""
        window = self._windows.get(first)
        if window is None:
            field = first[0] >> FIELD_SHIFT
            starts, ends = self._offsets(field)
            text = Window.around(self.fields[field], (starts[first[0] & _INDEX], ends[first[1] & _INDEX]))
            base = field << FIELD_SHIFT
            low, high = base + bisect_left(starts, text.start), base + bisect_right(ends, text.end)
            by_token = self._token_positions()
            tokens = self.tokens[field]
            inside = [(p, tokens[p - base]) for p in range(low, high) if tokens[p - base] in by_token]
            window = self._windows[first] = _SnippetWindow(field, text, low, high, inside)
        return window

    def _written(self, start: int, end: int) -> str:
        """The words from position `start` to `end` as the article has them, on one line."""
        if start == end:
            return self.tokens[start >> FIELD_SHIFT][start & _INDEX]
        written = self._written_spans.get((start, end))
        if written is None:
            starts, ends = self._offsets(start >> FIELD_SHIFT)
            text = self.fields[start >> FIELD_SHIFT][starts[start & _INDEX] : ends[end & _INDEX]]
            written = self._written_spans[(start, end)] = " ".join(text.split())
        return written

    def _offsets(self, field: int) -> tuple[list[int], list[int]]:
        """Where each word of the field starts and ends."""
        offsets = self._word_offsets.get(field)
        if offsets is None:
            matches = list(WORD_RE.finditer(self.fields[field]))
            offsets = self._word_offsets[field] = ([m.start() for m in matches], [m.end() for m in matches])
        return offsets


@dataclass(frozen=True)
class _SnippetWindow:
    field: int
    text: Window
    low: int  # positions [low, high) are inside the window
    high: int
    words: list[tuple[int, str]]  # (position, word) of the words inside that stand for atoms
