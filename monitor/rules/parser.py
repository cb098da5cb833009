"""Recursive-descent parser: tokens to syntax tree.

Precedence, tightest first: NOT, NEAR/n, AND (also implied between side-by-side terms), OR.
"""

from __future__ import annotations

import re

from monitor.errors import QueryError
from monitor.rules.lexer import Kind, Token, lex
from monitor.rules.nodes import (
    META_FIELDS,
    And,
    Meta,
    Mode,
    Near,
    Node,
    Not,
    Or,
    Phrase,
    Scope,
    Term,
    has_positions,
)
from monitor.rules.text import WORD_RE, fold, fold_text, nfc, words

# Tokens that can begin an operand, and so also imply AND when two operands meet.
# (A tuple: an Enum member hashes in Python, but compares by identity first.)
_OPERAND_STARTS = (Kind.WORD, Kind.PHRASE, Kind.CASE, Kind.SCOPE, Kind.LPAREN, Kind.NOT)
_WILDCARDS = frozenset("*?")


def parse_query(text: str) -> Node:
    """The syntax tree of `text`; raises QueryError with the column of the fault."""
    return _Parser(text).parse()


MAX_NESTING = 50
# The nodes of words and quoted terms already read (errors are never kept: they name the
# column of their query).
_CACHE_LIMIT = 100_000
_WORDS: dict[str, Node] = {}
_QUOTED: dict[tuple[bool, str], Node] = {}


def _remember(cache: dict, key: object, node: Node) -> None:
    if len(cache) >= _CACHE_LIMIT:
        cache.clear()
    cache[key] = node


class _Parser:
    def __init__(self, query: str) -> None:
        self.query = query
        self.tokens = lex(query)
        self.index = 0
        self.depth = 0  # groups and NOTs open around the current token

    def parse(self) -> Node:
        if self._peek().kind is Kind.END:
            raise QueryError("empty query: write at least one word", self.query, 1)
        node = self._or(None)
        token = self._peek()
        if token.kind is Kind.RPAREN:
            raise self._error("')' without a matching '('", token)
        if token.kind is not Kind.END:  # pragma: no cover - the loops above consume all else
            raise self._error(f"unexpected {token.kind.value}", token)
        return node

    # Each level takes `meta`: the metadata field (url, source, lang) whose values are being
    # parsed, or None in ordinary text.

    def _or(self, meta: str | None) -> Node:
        children = [self._and(meta)]
        while self._peek().kind is Kind.OR:
            self._operator()
            children.append(self._and(meta))
        return children[0] if len(children) == 1 else Or(tuple(children))

    def _and(self, meta: str | None) -> Node:
        children = [self._near(meta)]
        while True:
            kind = self._peek().kind
            if kind is Kind.AND:
                self._operator()
            elif kind not in _OPERAND_STARTS:
                break
            children.append(self._near(meta))
        return children[0] if len(children) == 1 else And(tuple(children))

    def _near(self, meta: str | None) -> Node:
        left = self._not(meta)
        chained = 0
        while self._peek().kind is Kind.NEAR:
            operator = self._operator()
            # Each NEAR of a chain holds the ones before it: as deep as nested groups, and
            # held to the same limit.
            chained += 1
            if chained > MAX_NESTING:
                raise self._error(f"more than {MAX_NESTING} NEARs in a row", operator)
            right = self._not(meta)
            if not (has_positions(left) and has_positions(right)):
                raise self._error("NEAR needs words or phrases on both sides", operator)
            left = Near(left, right, operator.distance)
        return left

    def _not(self, meta: str | None) -> Node:
        if self._peek().kind is Kind.NOT:
            operator = self._operator()
            self._open(operator)
            node = Not(self._not(meta))
            self.depth -= 1
            return node
        return self._primary(meta)

    def _primary(self, meta: str | None) -> Node:
        token = self._advance()
        kind = token.kind
        if kind is Kind.LPAREN:
            return self._group(token, meta)
        if kind is Kind.WORD:
            return self._meta(token, meta, literal=False) if meta else self._word(token)
        if kind is Kind.PHRASE:
            return self._meta(token, meta, literal=True) if meta else self._quoted(token)
        if kind is Kind.CASE:
            return self._quoted(token)
        if kind is Kind.SCOPE:
            return self._scope(token, meta)
        if kind is Kind.RPAREN:
            raise self._error("')' without a matching '('", token)
        if kind is Kind.END:  # pragma: no cover - operators check for an operand first
            raise self._error("the query ends too early", token)
        raise self._error(f"{token.text} needs a term before it", token)

    def _group(self, opener: Token, meta: str | None) -> Node:
        if self._peek().kind is Kind.RPAREN:
            raise self._error("empty parentheses", opener)
        self._open(opener)
        node = self._or(meta)
        if self._peek().kind is not Kind.RPAREN:
            raise self._error("'(' is never closed: add ')'", opener)
        self._advance()
        self.depth -= 1
        return node

    def _open(self, token: Token) -> None:
        """Enters a group or NOT; deeper nesting than anyone writes is refused, not recursed
        into until Python gives up."""
        self.depth += 1
        if self.depth > MAX_NESTING:
            raise self._error(f"groups and NOTs nested more than {MAX_NESTING} deep", token)

    def _scope(self, token: Token, meta: str | None) -> Node:
        if self._peek().kind not in _OPERAND_STARTS[:-1]:
            raise self._error(f"{token.text}: needs a word or a (group) right after it", token)
        if token.text in META_FIELDS:
            return self._primary(token.text)
        return Scope(token.text, self._primary(meta))

    def _word(self, token: Token) -> Node:
        # Watchlists repeat their words: each distinct one is read once (nodes are immutable).
        node = _WORDS.get(token.text)
        if node is None:
            node = self._read_word(token)
            _remember(_WORDS, token.text, node)
        return node

    def _read_word(self, token: Token) -> Node:
        text = nfc(token.text)
        if _WILDCARDS.intersection(text):
            return self._wildcard(text, token)
        parts = words(text)
        if not parts:
            raise self._error(f"{token.text!r} has no letters or digits to search for", token)
        if len(parts) == 1:
            # Acronyms are not stemmed: Snowball would cut OSSE to "oss" (us). They inflect
            # with a colon (OSSE:s), which splits off anyway.
            acronym = len(parts[0]) > 1 and parts[0].isupper()
            return Term(fold(parts[0]), Mode.EXACT if acronym else Mode.STEM)
        # Punctuation inside a term (CSTO-styrkorna) makes it a phrase of its parts.
        return Phrase(tuple(Term(fold(part), Mode.EXACT) for part in parts))

    def _wildcard(self, text: str, token: Token) -> Term:
        for offset, char in enumerate(text):
            if char not in _WILDCARDS and not WORD_RE.fullmatch(char):
                raise QueryError(
                    "a wildcard term can only hold letters, digits, * and ?",
                    self.query,
                    token.column + offset,
                )
        if _WILDCARDS.issuperset(text):
            raise self._error("a wildcard needs at least one letter or digit beside * and ?", token)
        return Term(re.sub(r"\*+", "*", fold_text(text)), Mode.WILDCARD)

    def _quoted(self, token: Token) -> Node:
        key = (token.kind is Kind.CASE, token.text)
        node = _QUOTED.get(key)
        if node is None:
            node = self._read_quoted(token)
            _remember(_QUOTED, key, node)
        return node

    def _read_quoted(self, token: Token) -> Node:
        case = token.kind is Kind.CASE
        wildcard = next((i for i, char in enumerate(token.text) if char in _WILDCARDS), None)
        if wildcard is not None:
            where = "{ }" if case else "quotes"
            raise QueryError(
                f"* and ? cannot be used inside {where}; they are for bare terms",
                self.query,
                token.column + 1 + wildcard,
            )
        parts = words(token.text)
        if not parts:
            raise self._error("empty phrase: put words between the quotes", token)
        mode = Mode.CASE if case else Mode.EXACT
        terms = tuple(Term(part if case else fold(part), mode) for part in parts)
        return terms[0] if len(terms) == 1 else Phrase(terms)

    def _meta(self, token: Token, field: str, literal: bool) -> Meta:
        pattern = token.text.lower()
        if not pattern.strip():
            raise self._error(f"empty value for {field}:", token)
        if not literal and set(pattern) == {"*"}:
            raise self._error(f"a lone * matches everything; leave out {field}:", token)
        return Meta(field, pattern, literal)

    def _operator(self) -> Token:
        """Consumes a binary or prefix operator, which must be followed by an operand."""
        operator = self._advance()
        if self._peek().kind not in _OPERAND_STARTS:
            raise self._error(f"{operator.text} needs a term after it", operator)
        return operator

    def _peek(self) -> Token:
        return self.tokens[self.index]

    def _advance(self) -> Token:
        token = self.tokens[self.index]
        if token.kind is not Kind.END:
            self.index += 1
        return token

    def _error(self, message: str, token: Token) -> QueryError:
        return QueryError(message, self.query, token.column)
