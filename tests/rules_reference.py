"""A plain reference evaluator of the query language, for tests only.

It evaluates one query at a time by walking the syntax tree and looping over every word of
every field: slow and obviously right. The fast Matcher must agree with it on every query
and document (tests/test_rules_properties.py). It shares only the parser and the definition
of letters (fold, stem) with the Matcher; tokenising, term tests, phrases, NEAR, scopes and
the collection of hit words are written again here, the simple way.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from monitor.rules import Document, parse_query
from monitor.rules.matcher import MAX_WILDCARD_WORD
from monitor.rules.nodes import And, Meta, Mode, Near, Node, Not, Or, Phrase, Scope, Term
from monitor.rules.text import fold, stem

FIELDS = ("title", "summary", "text")

# (field number, first word, last word), both ends inclusive
RefSpan = tuple[int, int, int]


@dataclass
class _Word:
    raw: str
    start: int
    end: int


def reference_match(queries: dict[str, str], doc: Document) -> dict[str, tuple[str, ...]]:
    """For each query that matches `doc`: the hit words, as the Matcher reports them."""
    fields = [_split(unicodedata.normalize("NFC", getattr(doc, name))) for name in FIELDS]
    texts = [unicodedata.normalize("NFC", getattr(doc, name)) for name in FIELDS]
    result = {}
    for name, query in queries.items():
        spans = _evaluate(parse_query(query), doc, fields, frozenset(range(3)))
        if spans is not None:
            result[name] = _words(spans, fields, texts)
    return result


def _split(text: str) -> list[_Word]:
    words = []
    current = ""
    start = 0
    for index, char in enumerate(text + " "):
        if char.isalnum():  # letters and digits; all else separates words
            if not current:
                start = index
            current += char
        elif current:
            words.append(_Word(current, start, index))
            current = ""
    return words


def _words(spans: set[RefSpan], fields: list[list[_Word]], texts: list[str]) -> tuple[str, ...]:
    found: list[str] = []
    for field, first, last in sorted(spans):
        written = texts[field][fields[field][first].start : fields[field][last].end]
        written = " ".join(written.split())
        if written not in found:
            found.append(written)
    return tuple(found)


def _evaluate(
    node: Node, doc: Document, fields: list[list[_Word]], allowed: frozenset[int]
) -> set[RefSpan] | None:
    """None when false; else the spans of the words that make it true (maybe none)."""
    if isinstance(node, Term):
        found = {(f, i, i) for f in allowed for i, w in enumerate(fields[f]) if _is(node, w.raw)}
        return found or None
    if isinstance(node, Phrase):
        return _phrase(node, fields, allowed) or None
    if isinstance(node, Meta):
        return set() if _meta_holds(node, doc) else None
    if isinstance(node, Scope):
        return _evaluate(node.child, doc, fields, allowed & {FIELDS.index(node.field)})
    if isinstance(node, Not):
        return set() if _evaluate(node.child, doc, fields, allowed) is None else None
    if isinstance(node, Near):
        return _near(node, doc, fields, allowed)
    results = [_evaluate(child, doc, fields, allowed) for child in node.children]
    true = [spans for spans in results if spans is not None]
    if isinstance(node, And) and len(true) < len(results):
        return None
    if isinstance(node, Or) and not true:
        return None
    return set().union(*true)


def _is(term: Term, raw: str) -> bool:
    if term.mode is Mode.CASE:
        return raw == term.text
    if term.mode is Mode.EXACT:
        return fold(raw) == term.text
    if term.mode is Mode.STEM:
        return stem(fold(raw)) == stem(term.text)
    folded = fold(raw)
    # The documented limit: longer words are not tested against wildcards.
    return len(folded) <= MAX_WILDCARD_WORD and re.fullmatch(_glob(term.text), folded, re.DOTALL) is not None


def _phrase(node: Phrase, fields: list[list[_Word]], allowed: frozenset[int]) -> set[RefSpan]:
    found = set()
    length = len(node.parts)
    for field in allowed:
        words = fields[field]
        for first in range(len(words) - length + 1):
            if all(_is(part, words[first + k].raw) for k, part in enumerate(node.parts)):
                found.add((field, first, first + length - 1))
    return found


def _near(
    node: Near, doc: Document, fields: list[list[_Word]], allowed: frozenset[int]
) -> set[RefSpan] | None:
    ones = _evaluate(node.left, doc, fields, allowed)
    others = _evaluate(node.right, doc, fields, allowed)
    if not ones or not others:
        return None
    found = set()
    for one in ones:
        for other in others:
            gap = max(0, other[1] - one[2], one[1] - other[2])
            if one[0] == other[0] and gap <= node.distance:
                found |= {one, other}
    return found or None


def _meta_holds(node: Meta, doc: Document) -> bool:
    value = getattr(doc, node.field).lower()
    values = [value]
    if node.field == "lang":
        values.append(re.split("[-_]", value)[0])
    if node.literal:
        return node.pattern in values
    return any(re.fullmatch(_glob(node.pattern), v, re.DOTALL) for v in values)


def _glob(pattern: str) -> str:
    return "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
