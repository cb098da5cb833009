"""`monitor search`: stored articles that a query matches, newest first. The full-text index
(migration 7) narrows the articles down to candidates; the matcher, the one definition of
what a query means, decides. A query the index cannot narrow (only NOTs, a wildcard with no
letters before it) is run over every article of the --since window instead."""

from __future__ import annotations

import unicodedata
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

from monitor.models import StoredArticle
from monitor.pipeline import document
from monitor.rules import Hit, Matcher, parse_query
from monitor.rules.nodes import And, Meta, Mode, Near, Node, Not, Or, Phrase, Scope, Term
from monitor.rules.text import fold_text, stem
from monitor.store import Store

QUERY = "query"
_WILDCARDS = "*?"
# Letters and decimal digits: what SQLite's unicode61 tokenizer surely keeps inside a token.
_TOKEN_CATEGORIES = frozenset({"Lu", "Ll", "Lt", "Lm", "Lo", "Nd"})


def search(store: Store, query: str, since: timedelta, source: str | None = None,
           limit: int | None = None) -> Iterator[tuple[StoredArticle, Hit]]:
    """(article, hit) of the stored articles first seen within `since` that `query` matches,
    newest first, at most `limit`."""
    candidates = fts_query(parse_query(query))
    matcher = Matcher({QUERY: query})
    start = (datetime.now(UTC) - since).isoformat(timespec="seconds")
    found = 0
    for article in store.search_candidates(candidates, start, source):
        if limit is not None and found >= limit:
            return
        hit = matcher.match(document(article)).get(QUERY)
        if hit is not None:
            found += 1
            yield article, hit


def fts_query(node: Node) -> str | None:
    """An FTS5 query that finds every article the node matches (and some more), or None
    when there is none narrower than "everything".

    Each word becomes a prefix query: a bare word's Snowball stem (Swedish stemming only cuts
    suffixes, so every inflection starts with the stem), a quoted word as written, a wildcard
    term the letters before its first wildcard. A phrase needs all of its words, NEAR both
    sides; a NOT, a source:/url:/lang: test or a field scope only narrows further, so it is
    left to the matcher."""
    if isinstance(node, Term):
        return _term(node)
    if isinstance(node, Phrase):
        return _all([_term(part) for part in node.parts])
    if isinstance(node, And):
        return _all([fts_query(child) for child in node.children])
    if isinstance(node, Near):
        return _all([fts_query(node.left), fts_query(node.right)])
    if isinstance(node, Or):
        parts = [fts_query(child) for child in node.children]
        return None if None in parts else "(" + " OR ".join(parts) + ")"
    if isinstance(node, Scope):
        return fts_query(node.child)
    assert isinstance(node, Not | Meta)
    return None


def _all(parts: list[str | None]) -> str | None:
    known = [part for part in parts if part is not None]
    return "(" + " AND ".join(known) + ")" if known else None


def _term(term: Term) -> str | None:
    text = fold_text(term.text)  # CASE terms keep their case; the index has none
    if term.mode is Mode.STEM:
        text = stem(text)
    elif term.mode is Mode.WILDCARD:
        text = text[:min((text.find(w) for w in _WILDCARDS if w in text), default=len(text))]
    # Folded words hold letters and digits only, so nothing in them is FTS5 syntax; the index's
    # tokenizer folds the accents and å/ä/ö the same way on both sides. A character the
    # matcher counts as part of a word but the tokenizer may not (½, ², marks) would make the
    # index miss the word: such a term narrows nothing.
    if not text or not all(unicodedata.category(char) in _TOKEN_CATEGORIES for char in text):
        return None
    return f'"{text}"*'
