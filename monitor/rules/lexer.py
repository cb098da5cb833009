"""Splits a query into tokens, each with the 1-based column where it starts.

Values of the metadata scopes (`url:`, `source:`, `lang:`) are read raw, up to the next space
or parenthesis, so that `url:https://www.svt.se/nyheter/utrikes/*` stays one glob.
"""

from __future__ import annotations

import re
from enum import Enum
from typing import NamedTuple

from monitor.errors import QueryError
from monitor.rules.nodes import META_FIELDS, TEXT_FIELDS

MAX_DISTANCE = 1000
SCOPES = TEXT_FIELDS + META_FIELDS

_SCOPE_RE = re.compile(r"([A-Za-z]+):")
_NEAR_RE = re.compile(r"NEAR/(\d+)")
# After spaces: a word (group 1) or another character (group 2); in url:, source: and lang:
# values braces are plain.
_NEXT = re.compile(r'\s*(?:([^\s()"{}]+)|(\S))?')
_NEXT_RAW = re.compile(r'\s*(?:([^\s()"]+)|(\S))?')
_OPERATOR_INITIALS = frozenset("AON")  # of AND, OR, NOT, NEAR


class Kind(Enum):
    WORD = "word"
    PHRASE = "phrase"  # "…"
    CASE = "case"  # {…}
    SCOPE = "scope"  # title: url: …
    LPAREN = "("
    RPAREN = ")"
    AND = "AND"
    OR = "OR"
    NOT = "NOT"
    NEAR = "NEAR"
    END = "end of query"


class Token(NamedTuple):
    kind: Kind
    text: str
    column: int
    distance: int = 0  # NEAR only


def lex(query: str) -> list[Token]:
    """The tokens of `query`, ending with an END token one column past its last character."""
    return _Lexer(query).run()


class _Lexer:
    def __init__(self, query: str) -> None:
        self.query = query
        self.pos = 0
        self.tokens: list[Token] = []
        self.depth = 0
        self.raw_value_next = False  # just after url:, source: or lang:
        self.raw_group_depth: int | None = None  # inside url:( … ), closed at this depth

    def run(self) -> list[Token]:
        query, tokens = self.query, self.tokens
        while True:
            # One regex skips the spaces and takes the next word, or the next character.
            found = (_NEXT_RAW if self._raw else _NEXT).match(query, self.pos)
            word = found.group(1)
            if word is not None:
                self.pos = found.end()
                if word[0] in _OPERATOR_INITIALS or ":" in word:
                    self._word(word, found.start(1))
                else:  # a plain word, as most are
                    tokens.append(Token(Kind.WORD, word, found.start(1) + 1))
                    self.raw_value_next = False
                continue
            char = found.group(2)
            if char is None:
                break
            self.pos = found.start(2)
            if char in "()":
                self._paren(char)
            elif char == '"':
                self._delimited(Kind.PHRASE, '"', "quote")
            elif char == "{":
                self._delimited(Kind.CASE, "}", "brace")
            else:
                raise self._error("'}' without a matching '{'", self.pos)
        tokens.append(Token(Kind.END, "", len(query) + 1))
        return tokens

    @property
    def _raw(self) -> bool:
        return self.raw_value_next or self.raw_group_depth is not None

    def _emit(self, kind: Kind, text: str, start: int, distance: int = 0) -> None:
        self.tokens.append(Token(kind, text, start + 1, distance))

    def _error(self, message: str, index: int) -> QueryError:
        return QueryError(message, self.query, index + 1)

    def _paren(self, char: str) -> None:
        if char == "(":
            self.depth += 1
            if self.raw_value_next:
                self.raw_group_depth = self.depth
        else:
            if self.raw_group_depth == self.depth:
                self.raw_group_depth = None
            self.depth -= 1
        self.raw_value_next = False
        self._emit(Kind.LPAREN if char == "(" else Kind.RPAREN, char, self.pos)
        self.pos += 1

    def _delimited(self, kind: Kind, closer: str, name: str) -> None:
        end = self.query.find(closer, self.pos + 1)
        if end < 0:
            raise self._error(f"unterminated {name}: add the closing {closer}", self.pos)
        self._emit(kind, self.query[self.pos + 1 : end], self.pos)
        self.raw_value_next = False
        self.pos = end + 1

    def _word(self, word: str, start: int) -> None:
        """A word that may be an operator or start with a scope (`title:`)."""
        if word[0] in _OPERATOR_INITIALS and self._operator(word, start):
            return
        scope = None if self._raw else _SCOPE_RE.match(word)
        if scope:
            self._scope(scope.group(1), start)
            self.pos = start + scope.end()
            return
        self._emit(Kind.WORD, word, start)
        self.raw_value_next = False

    def _operator(self, word: str, start: int) -> bool:
        # Only upper-case operators count: "and" and "or" are ordinary words.
        if word in ("AND", "OR", "NOT"):
            self._emit(Kind[word], word, start)
        elif word == "NEAR" or word.startswith("NEAR/"):
            self._emit(Kind.NEAR, word, start, self._distance(word, start))
        else:
            return False
        self.raw_value_next = False
        return True

    def _distance(self, word: str, start: int) -> int:
        match = _NEAR_RE.fullmatch(word)
        if not match:
            raise self._error("NEAR needs a distance in words, e.g. NEAR/5", start)
        distance = int(match.group(1))
        if not 1 <= distance <= MAX_DISTANCE:
            raise self._error(f"the NEAR distance must be between 1 and {MAX_DISTANCE}", start)
        return distance

    def _scope(self, name: str, start: int) -> None:
        scope = name.lower()
        if scope not in SCOPES:
            known = ", ".join(f"{known}:" for known in SCOPES)
            raise self._error(
                f"unknown scope {name + ':'!r}; use one of {known}, "
                f'or put the term in quotes ("{name}:…") to search for it',
                start,
            )
        self._emit(Kind.SCOPE, scope, start)
        self.raw_value_next = scope in META_FIELDS
