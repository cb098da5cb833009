"""Matches articles against all watchlists at once.

Per article: tokenise each field once, look each distinct word up once (a cache, then the
word, stem and case tables and one Aho-Corasick pass for wildcards), tick off the clauses of
the watchlists that use the words found, and evaluate only the watchlists whose clauses are
all met. The work grows with the article and its hits, not with the number of watchlists.
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
from monitor.rules.planner import Triggers
from monitor.rules.snippet import Window, make_snippet
from monitor.rules.text import WORD_RE, fold, nfc, stem

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
    """All watchlists compiled together. `Matcher({"name": "query", ...}).match(document)`."""

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
        self._token_cache: dict[str, tuple[int, ...]] = {}
        self._token_cache_size = token_cache_size

    @property
    def names(self) -> list[str]:
        return list(self._names)

    def match(self, doc: Document) -> dict[str, Hit]:
        """The watchlists that match `doc`, by name, in the order they were given."""
        article = _Article(doc)
        article.note_atoms(self._token_atoms(set(chain.from_iterable(article.tokens))))
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
        found = {}
        unknown = []
        cache = self._token_cache
        for token in tokens:
            atoms = cache.get(token)
            if atoms is None:
                unknown.append(token)
            elif atoms:
                found[token] = atoms
        if unknown:
            if len(cache) + len(unknown) > self._token_cache_size:
                cache.clear()
            for token, atoms in zip(unknown, self._look_up(unknown), strict=True):
                if self._token_cache_size:
                    cache[token] = atoms
                if atoms:
                    found[token] = atoms
        return found

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
    """One document while it is being matched: its words, and which atoms they stand for."""

    def __init__(self, doc: Document) -> None:
        self.fields = (nfc(doc.title), nfc(doc.summary), nfc(doc.text))
        self.tokens = [WORD_RE.findall(field) for field in self.fields]
        self.present: set[int] = set()
        self.atom_tokens: dict[int, list[str]] = {}  # atom -> the article's words for it
        self._by_token: dict[str, list[int]] | None = None
        self._positions: dict[int, list[int]] = {}
        self._spans: dict[int, Spans] = {}
        self._position_sets: dict[int, set[int]] = {}
        self._word_offsets: dict[int, tuple[list[int], list[int]]] = {}
        self._windows: dict[Span, tuple[Window, int, int]] = {}

    def note_atoms(self, token_atoms: dict[str, tuple[int, ...]]) -> None:
        for token, atoms in token_atoms.items():
            for atom in atoms:
                self.atom_tokens.setdefault(atom, []).append(token)
        self.present.update(self.atom_tokens)

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
        if self._by_token is None:
            self._by_token = self._find_positions()
        return self._by_token

    def _find_positions(self) -> dict[str, list[int]]:
        # Only the words that stand for some atom are worth a position list.
        found: dict[str, list[int]] = {t: [] for ts in self.atom_tokens.values() for t in ts}
        for field, tokens in enumerate(self.tokens):
            base = field << FIELD_SHIFT
            for index, token in enumerate(tokens):
                positions = found.get(token)
                if positions is not None:
                    positions.append(base + index)
        return found

    def hit(self, watchlist: str, found: list[Item]) -> Hit:
        atoms = {item for item in found if isinstance(item, int)}
        spans = {item for item in found if not isinstance(item, int)}
        if not atoms and not spans:
            # Matched on metadata alone: show the start of the article.
            text = next((f for f in (self.fields[1], self.fields[2], self.fields[0]) if f.strip()), "")
            snippet, snippet_spans = make_snippet(text, [])
            return Hit(watchlist, (), snippet, snippet_spans)
        # A word's first place: its first occurrence for atoms, the span's start for spans.
        by_token = self._token_positions()
        tokens = {token for atom in atoms for token in self.atom_tokens[atom]}
        firsts = [(by_token[token][0], by_token[token][0], token) for token in tokens]
        firsts += [(start, end, self._written(start, end)) for start, end in spans]
        firsts.sort()
        words = tuple(dict.fromkeys(first[2] for first in firsts))
        window, low, high = self._window(firsts[0][:2])
        inside = [span for span in spans if low <= span[0] and span[1] < high]
        for atom in atoms:
            positions = self._atom_positions(atom)
            inside += [(p, p) for p in positions[bisect_left(positions, low) : bisect_left(positions, high)]]
        return Hit(watchlist, words, window.line, window.place(map(self._characters, inside)))

    def _window(self, first: Span) -> tuple[Window, int, int]:
        """The snippet window around a first hit, with the positions of the words inside it.
        Shared by every watchlist whose first hit is the same."""
        cached = self._windows.get(first)
        if cached is None:
            field = first[0] >> FIELD_SHIFT
            starts, ends = self._offsets(field)
            window = Window.around(self.fields[field], self._characters(first))
            base = field << FIELD_SHIFT
            low, high = bisect_left(starts, window.start), bisect_right(ends, window.end)
            cached = self._windows[first] = (window, base + low, base + high)
        return cached

    def _written(self, start: int, end: int) -> str:
        """The words from position `start` to `end` as the article has them, on one line."""
        if start == end:
            return self.tokens[start >> FIELD_SHIFT][start & _INDEX]
        first, last = self._characters((start, end))
        return " ".join(self.fields[start >> FIELD_SHIFT][first:last].split())

    def _characters(self, span: Span) -> tuple[int, int]:
        starts, ends = self._offsets(span[0] >> FIELD_SHIFT)
        return starts[span[0] & _INDEX], ends[span[1] & _INDEX]

    def _offsets(self, field: int) -> tuple[list[int], list[int]]:
        """Where each word of the field starts and ends."""
        offsets = self._word_offsets.get(field)
        if offsets is None:
            matches = list(WORD_RE.finditer(self.fields[field]))
            offsets = [m.start() for m in matches], [m.end() for m in matches]
            self._word_offsets[field] = offsets
        return offsets
