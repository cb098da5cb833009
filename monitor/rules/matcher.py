"""Matches articles against all watchlists at once.

Per article: split each field into words once; look each distinct word up once (a cache of
words seen before, else the word, stem and case tables and one Aho-Corasick pass for all
wildcards), giving the atoms present; pick the watchlists whose required clauses are all met
(planner.py: sparse postings, a few numpy operations over the postings of the atoms
present); settle those that presence alone decides, and decide the others with their
compiled form (compiler.py), built when first needed and shared by identical queries. A
hit's words and snippet are worked out when first asked for, from the same form, and
shared with the article's other hits. The work grows with the article, its atoms and its
candidates, not with the number of watchlists; the memory with the clauses' atoms.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from itertools import chain
from time import perf_counter

from monitor.errors import QueryError
from monitor.rules.compiler import (
    FIELD_SHIFT,
    Atoms,
    Form,
    Span,
    Spans,
    compile_query,
    required_clauses,
    vetoes,
)
from monitor.rules.globs import Glob, GlobIndex
from monitor.rules.nodes import Meta, Node
from monitor.rules.parser import parse_query
from monitor.rules.planner import Costs, Plan
from monitor.rules.snippet import SNIPPET_WIDTH, Window, make_snippet
from monitor.rules.text import WORD_RE, fold, nfc, split_words, stem

TOKEN_CACHE_SIZE = 300_000
# Compiled forms kept for deciding and for the words of hits; built again when pushed out.
FORM_CACHE_SIZE = 100_000
# Longer words are not tested against wildcard terms: no word of any language is this long,
# and it bounds what one hostile word can cost.
MAX_WILDCARD_WORD = 200
# Seconds one article's matching may take, checked between the watchlists that need their
# deciders (see Matcher.match_within). A few hostile or careless queries can cost that much;
# ordinary ones take well under a millisecond.
MATCH_BUDGET = 5.0
_INDEX = (1 << FIELD_SHIFT) - 1  # the word-index part of a position
_LANG_SUBTAG = re.compile(r"[-_]")
# What made a query true: the article's words that stand for its present atoms (all their
# places), and word spans (phrases, NEAR).
Evidence = tuple[set[str], Collection[Span]]


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
class Cut:
    """Where an article's matching stopped when its time budget ran out."""

    watchlist: str  # the watchlist whose decision used up the budget
    undecided: tuple[str, ...]  # the watchlists left undecided (they might have matched)
    seconds: float  # the time taken


@dataclass(frozen=True)
class Matched:
    hits: dict[str, Hit]
    cut: Cut | None = None  # None: every watchlist was decided


class Hit:
    """Why a watchlist matched an article.

    Which watchlists match is decided without the words and snippets; each hit works them out
    when first asked (sharing what it can with the article's other hits) and keeps them. A
    hit holds on to its article until it is dropped.
    """

    __slots__ = ("_article", "_evidence", "_places", "_shown", "_why", "watchlist")

    def __init__(self, watchlist: str, article: _Article, why: Callable[[], Form]) -> None:
        """`why`: gives the watchlist's compiled form, which finds what made it true."""
        self.watchlist = watchlist
        self._article = article
        self._why = why
        self._evidence: Evidence | None = None
        self._places: list[tuple[int, int, str]] | None = None
        self._shown: tuple[str, tuple[Span, ...]] | None = None

    @property
    def words(self) -> tuple[str, ...]:
        """The matched words as written in the article, in reading order, each once."""
        return tuple(dict.fromkeys([place[2] for place in self._placed()]))

    @property
    def snippet(self) -> str:
        """About 200 characters around the first hit, '…' where cut."""
        return self._shown_snippet()[0]

    @property
    def snippet_spans(self) -> tuple[Span, ...]:
        """[start, end) of the hit words in `snippet`."""
        return self._shown_snippet()[1]

    def __repr__(self) -> str:
        return f"Hit({self.watchlist!r}, words={self.words!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Hit):
            return NotImplemented
        return self._reported() == other._reported()

    __hash__ = None  # type: ignore[assignment]  # equal by value, and built on demand

    def _reported(self) -> tuple[str, tuple[str, ...], str, tuple[Span, ...]]:
        return self.watchlist, self.words, self.snippet, self.snippet_spans

    def _found(self) -> Evidence:
        if self._evidence is None:
            self._evidence = self._article.evidence(self._why())
        return self._evidence

    def _placed(self) -> list[tuple[int, int, str]]:
        if self._places is None:
            self._places = self._article.placed(*self._found())
        return self._places

    def _shown_snippet(self) -> tuple[str, tuple[Span, ...]]:
        if self._shown is None:
            self._shown = self._article.snippet(self._placed(), *self._found())
        return self._shown


class Matcher:
    """All watchlists compiled together. `Matcher({"name": "query", ...}).match(document)`.

    A bad query raises QueryError naming its watchlist. `token_cache_size` bounds the cache
    of words already looked up (0 turns it off); results are the same either way. Calls
    from several threads take turns, as they share that cache.
    """

    def __init__(self, queries: Mapping[str, str], *, token_cache_size: int = TOKEN_CACHE_SIZE) -> None:
        self._names = list(queries)
        self._queries = list(queries.values())
        self._atoms = Atoms()
        cost = Costs(self._atoms)
        clauses: list[list[tuple[int, ...]]] = []
        # Per watchlist, when presence alone decides it: the atoms that make it false.
        self._vetoes: list[frozenset[int] | None] = []
        planned: dict[str, tuple[list[tuple[int, ...]], frozenset[int] | None]] = {}
        for name, query in queries.items():
            self._atoms.start_watchlist()
            known = planned.get(query)
            if known is None:
                form = compile_query(_parse(name, query), self._atoms.add)
                required = [tuple(clause) for clause in required_clauses(form, cost)]
                known = planned[query] = (required, vetoes(form))
            else:
                for clause in known[0]:
                    self._atoms.count_uses(clause)
            clauses.append(known[0])
            self._vetoes.append(known[1])
        self._plan = Plan(clauses, self._atoms)
        self._forms: dict[str, Form] = {}
        self._globs = GlobIndex(self._atoms.globs)
        self._metas = _MetaIndex(self._atoms.metas)
        # Words already looked up, and of those the ones that stand for some atom.
        self._seen: set[str] = set()
        self._with_atoms: dict[str, tuple[int, ...]] = {}
        self._token_cache_size = token_cache_size
        self._lock = threading.Lock()

    @property
    def names(self) -> list[str]:
        return list(self._names)

    def match(self, doc: Document) -> dict[str, Hit]:
        """The watchlists that match `doc`, by name, in the order they were given."""
        return self.match_within(doc, None).hits

    def match_within(self, doc: Document, budget: float | None = MATCH_BUDGET) -> Matched:
        """`match`, in about `budget` seconds (None: no limit). Once the budget is spent, the
        watchlists not yet decided are left so and named in the result's `cut`; the hits
        found until then stand. The budget is checked after each watchlist that needs its
        decider, so one watchlist's own decision is never cut short."""
        with self._lock:
            return self._match(doc, None if budget is None else perf_counter() + budget)

    def _match(self, doc: Document, deadline: float | None) -> Matched:
        started = perf_counter()
        article = _Article(doc)
        present = article.note_atoms(self._token_atoms(article.distinct_tokens()))
        present |= self._metas.true_for(doc)
        names, vetoed_by = self._names, self._vetoes
        hits = {}
        candidates = self._plan.candidates(present)
        # The words and snippets of hits are worked out only when asked for.
        for index in candidates:
            vetoed = vetoed_by[index]
            if vetoed is not None:  # presence decides it: the clauses are all it needs
                if present.isdisjoint(vetoed):
                    hits[names[index]] = Hit(names[index], article, self._why(index))
                continue
            if self._form(index).holds(article):
                hits[names[index]] = Hit(names[index], article, self._why(index))
            if deadline is not None and perf_counter() > deadline:
                later = candidates[candidates.index(index) + 1 :]
                if later:
                    undecided = tuple(names[other] for other in later)
                    return Matched(hits, Cut(names[index], undecided, perf_counter() - started))
        return Matched(hits)

    def _why(self, index: int) -> Callable[[], Form]:
        return lambda: self._form(index)

    def _form(self, index: int) -> Form:
        """The compiled form of a watchlist: built when first needed, shared by identical
        queries, and built again (the query parsed again) if pushed out of the cache."""
        query = self._queries[index]
        form = self._forms.get(query)
        if form is None:
            if len(self._forms) >= FORM_CACHE_SIZE:
                self._forms.clear()
            form = self._forms[query] = compile_query(parse_query(query), self._atoms.find)
        return form

    def _token_atoms(self, tokens: set[str]) -> dict[str, tuple[int, ...]]:
        """The atoms each word of the article stands for, leaving out words that stand for none."""
        if not self._token_cache_size:
            listed = list(tokens)
            return {token: atoms for token, atoms in zip(listed, self._look_up(listed), strict=True) if atoms}
        # Most words of an article were seen before and stand for nothing: set operations
        # sort them out without a Python step per word.
        unseen = tokens - self._seen
        if unseen:
            if len(self._seen) + len(unseen) > self._token_cache_size:
                self._seen.clear()
                self._with_atoms.clear()
                unseen = tokens
            unknown = list(unseen)
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
        if max(map(len, folded), default=0) <= MAX_WILDCARD_WORD:
            for atom, index in self._globs.search(folded):
                found[index].append(atom)
        else:
            kept = [index for index, word in enumerate(folded) if len(word) <= MAX_WILDCARD_WORD]
            for atom, index in self._globs.search([folded[index] for index in kept]):
                found[kept[index]].append(atom)
        return [tuple(atoms) for atoms in found]


def _parse(name: str, query: str) -> Node:
    try:
        return parse_query(query)
    except QueryError as error:
        raise QueryError(error.message, error.query, error.column, name) from None


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
    glob = Glob(meta.pattern)
    return any(glob.matches(value) for value in values)


class _Article:
    """One document while it is being matched: its words, and which atoms they stand for.

    Positions, spans and character offsets are worked out only when an evaluator or a hit
    asks for them, and then kept for the other watchlists."""

    def __init__(self, doc: Document) -> None:
        self.fields = (nfc(doc.title), nfc(doc.summary), nfc(doc.text))
        self.tokens = [split_words(field) for field in self.fields]
        self.present: set[int] = set()
        self._token_atoms: dict[str, tuple[int, ...]] = {}  # the words that stand for atoms
        self._atom_tokens: dict[int, list[str]] | None = None
        self._by_token: dict[str, list[int]] | None = None
        self._positions: dict[int, list[int]] = {}
        self._spans: dict[int, Spans] = {}
        self._position_sets: dict[int, set[int]] = {}
        self._firsts: dict[str, int] | None = None
        self._windows: dict[Span | int, _SnippetWindow] = {}
        self._written_spans: dict[Span, str] = {}

    def distinct_tokens(self) -> set[str]:
        title, summary, text = self.tokens
        return set(text).union(title, summary)

    def note_atoms(self, token_atoms: dict[str, tuple[int, ...]]) -> set[int]:
        """Takes the atoms each word stands for; returns the atoms present."""
        self._token_atoms = token_atoms
        self.present = set().union(*token_atoms.values())
        return self.present

    # --- what evaluators ask ---

    def spans(self, atom: int) -> Spans:
        spans = self._spans.get(atom)
        if spans is None:
            spans = self._spans[atom] = [(p, p) for p in self.places(atom)]
        return spans

    def positions(self, atom: int) -> set[int]:
        positions = self._position_sets.get(atom)
        if positions is None:
            positions = self._position_sets[atom] = set(self.places(atom))
        return positions

    def places(self, atom: int) -> list[int]:
        """Where the atom occurs, in reading order."""
        positions = self._positions.get(atom)
        if positions is None:
            tokens = self._tokens_of().get(atom, ())
            by_token = self._token_positions()
            if len(tokens) == 1:
                positions = by_token[tokens[0]]
            else:
                positions = sorted(chain.from_iterable(by_token[token] for token in tokens))
            self._positions[atom] = positions
        return positions

    def followed_by(self, place: int, atoms: tuple[int, ...]) -> bool:
        """Whether the words after `place` (in its field) stand for `atoms`, in order."""
        tokens, index = self.tokens[place >> FIELD_SHIFT], place & _INDEX
        following = tokens[index + 1 : index + 1 + len(atoms)]
        if len(following) < len(atoms):
            return False  # the field ends first
        token_atoms = self._token_atoms
        # A loop costs less than all() over a generator, and phrases are many.
        for atom, token in zip(atoms, following, strict=True):  # noqa: SIM110
            if atom not in token_atoms.get(token, ()):
                return False
        return True

    def any_within(self, places: list[int], atoms: Collection[int], distance: int) -> bool:
        """Whether a word standing for one of `atoms` (all present) is within `distance` words
        of one of `places`: the words around each place are looked at, not the places of
        `atoms`."""
        wanted, fields = self.tokens_for(atoms), self.tokens
        for place in places:
            tokens, index = fields[place >> FIELD_SHIFT], place & _INDEX
            if not wanted.isdisjoint(tokens[max(0, index - distance) : index + distance + 1]):
                return True
        return False

    def _tokens_of(self) -> dict[int, list[str]]:
        """The article's words for each atom present."""
        if self._atom_tokens is None:
            self._atom_tokens = {}
            for token, atoms in self._token_atoms.items():
                for atom in atoms:
                    self._atom_tokens.setdefault(atom, []).append(token)
        return self._atom_tokens

    def _token_positions(self) -> dict[str, list[int]]:
        """Where each word that stands for some atom occurs."""
        if self._by_token is None:
            found: dict[str, list[int]] = {token: [] for token in self._token_atoms}
            for field, tokens in enumerate(self.tokens):
                base = field << FIELD_SHIFT
                # A comprehension sifts the few wanted words out of hundreds fastest.
                for index in [index for index, token in enumerate(tokens) if token in found]:
                    found[tokens[index]].append(base + index)
            self._by_token = found
        return self._by_token

    # --- hits ---

    def evidence(self, form: Form) -> Evidence:
        """The words (all their places) and the spans that make `form` true."""
        found = form.find(self)
        assert found is not None, "asked why a query holds that does not"
        return (
            self.tokens_for([item for item in found if isinstance(item, int)]),
            {item for item in found if not isinstance(item, int)},
        )

    def tokens_for(self, atoms: Collection[int]) -> set[str]:
        """The article's words that stand for any of `atoms` (all present)."""
        atom_tokens = self._tokens_of()
        return {token for atom in atoms for token in atom_tokens[atom]}

    def placed(self, tokens: set[str], spans: Collection[Span]) -> list[tuple[int, int, str]]:
        """The first place of each of `tokens`, and each of `spans`, as (start, end, written
        form), in reading order."""
        first_places = self._first_places()
        places = [(first_places[token], first_places[token], token) for token in tokens]
        if spans:
            words_of = self.tokens
            places += [
                (start, end, self._written(start, end) if start < end else
                 words_of[start >> FIELD_SHIFT][start & _INDEX])
                for start, end in spans
            ]
        places.sort()
        return places

    def snippet(
        self, places: list[tuple[int, int, str]], tokens: set[str], spans: Collection[Span]
    ) -> tuple[str, tuple[Span, ...]]:
        """The snippet around the first of `places` (from `placed`), with `tokens` and the
        `spans` inside it marked."""
        if not places:
            # Matched on metadata alone: show the start of the article.
            text = next((f for f in (self.fields[1], self.fields[2], self.fields[0]) if f.strip()), "")
            return make_snippet(text, [])
        window = self._window(places[0][:2])
        word_marks = [mark for token, mark in window.marks if token in tokens]
        if not spans:
            return window.text.line, tuple(word_marks)
        low, high, inside = window.low, window.high, window.places
        spans_inside = [(start - low, end - low) for start, end in spans if low <= start and end < high]
        span_marks = window.text.place([(inside[start][0], inside[end][1]) for start, end in spans_inside])
        return window.text.line, _merge_marks(word_marks, span_marks)

    def _first_places(self) -> dict[str, int]:
        """Where each word that stands for some atom first occurs."""
        if self._firsts is None:
            self._firsts = {token: places[0] for token, places in self._token_positions().items() if places}
        return self._firsts

    def _window(self, first: Span) -> _SnippetWindow:
        """The snippet around a first hit, shared by every watchlist with the same first hit,
        or in the same short field (shown whole wherever the hit is)."""
        field = first[0] >> FIELD_SHIFT
        key = field if len(self.fields[field]) <= SNIPPET_WIDTH else first
        window = self._windows.get(key)
        if window is None:
            window = self._windows[key] = self._new_window(first)
        return window

    def _new_window(self, first: Span) -> _SnippetWindow:
        field = first[0] >> FIELD_SHIFT
        text = self.fields[field]
        hit_start, hit_end = self._char_span(*first)
        window = Window.around(text, (hit_start, hit_end))
        # A window starts and ends at white space (or the ends of the text), so the regex
        # finds exactly the whole words inside it.
        low = first[0] - len(WORD_RE.findall(text, window.start, hit_start))
        words = WORD_RE.findall(text, window.start, window.end)
        places = [m.span() for m in WORD_RE.finditer(text, window.start, window.end)]
        # The atom words inside, with their marks in the snippet line, in reading order;
        # words never overlap, so each keeps its own mark.
        wanted = self._token_atoms
        atom_words = [index for index, word in enumerate(words) if word in wanted]
        placed = window.move([places[index] for index in atom_words])
        marks = list(zip([words[index] for index in atom_words], placed, strict=True))
        return _SnippetWindow(field, window, low, low + len(words), places, marks)

    def _written(self, start: int, end: int) -> str:
        """The words from position `start` to `end` (after it) as the article has them, on
        one line."""
        written = self._written_spans.get((start, end))
        if written is None:
            # Phrases repeat across watchlists: each is written out once per article.
            text_start, text_end = self._char_span(start, end)
            text = self.fields[start >> FIELD_SHIFT][text_start:text_end]
            written = self._written_spans[start, end] = " ".join(text.split())
        return written

    def _char_span(self, start: int, end: int) -> Span:
        """Where in its field's text the words from position `start` to `end` are: found by
        searching, since working out every word's offset costs more than all the rest."""
        field = start >> FIELD_SHIFT
        tokens, text = self.tokens[field], self.fields[field]
        first = start & _INDEX
        word = tokens[first]
        text_start = _nth_word(text, word, tokens[:first].count(word))
        text_end = text_start + len(word)
        # Only separators lie between two words, so each next word is the next one found.
        for index in range(first + 1, (end & _INDEX) + 1):
            text_end = text.find(tokens[index], text_end) + len(tokens[index])
        return text_start, text_end


def _nth_word(text: str, word: str, nth: int) -> int:
    """Where the `nth` (from 0) whole-word occurrence of `word` starts in `text`."""
    at = text.find(word)
    while at >= 0:
        end = at + len(word)
        if (at == 0 or not text[at - 1].isalnum()) and (end == len(text) or not text[end].isalnum()):
            if not nth:
                return at
            nth -= 1
            at = text.find(word, end)
        else:
            at = text.find(word, at + 1)
    raise ValueError(f"the text has fewer than {nth + 1} more of the word {word!r}")


def _merge_marks(word_marks: list[Span], span_marks: tuple[Span, ...]) -> tuple[Span, ...]:
    """Marks of single words (never overlapping each other) and of spans, overlaps merged."""
    merged: list[Span] = []
    for start, end in sorted(word_marks + list(span_marks)):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return tuple(merged)


@dataclass(slots=True)
class _SnippetWindow:
    field: int
    text: Window
    low: int  # positions [low, high) are inside the window
    high: int
    places: list[Span]  # where the words inside start and end in the field's text
    marks: list[tuple[str, Span]]  # the words inside that stand for atoms, marked in the line
