"""The syntax tree of a query. Nodes are immutable and print back as a query that parses to
an equal tree, which keeps error messages, logs and tests readable."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class Mode(Enum):
    """How a term compares with a word of the article."""

    STEM = "stem"  # bare word: any Swedish inflection (same Snowball stem)
    EXACT = "exact"  # "quoted": the written form, any case
    CASE = "case"  # {braced}: the written form, same case
    WILDCARD = "wildcard"  # kazak*, *allians*, k?zak: a glob over the folded word


TEXT_FIELDS = ("title", "summary", "text")
META_FIELDS = ("source", "url", "lang")


@dataclass(frozen=True)
class Term:
    """One word. `text` is folded (lower case, accents dropped) except in CASE mode."""

    text: str
    mode: Mode

    def __str__(self) -> str:
        if self.mode is Mode.EXACT:
            return f'"{self.text}"'
        if self.mode is Mode.CASE:
            return f"{{{self.text}}}"
        return self.text


@dataclass(frozen=True)
class Phrase:
    """Words next to each other, in this order. All parts are EXACT or all are CASE."""

    parts: tuple[Term, ...]

    def __str__(self) -> str:
        joined = " ".join(part.text for part in self.parts)
        return f"{{{joined}}}" if self.parts[0].mode is Mode.CASE else f'"{joined}"'


@dataclass(frozen=True)
class And:
    children: tuple[Node, ...]

    def __str__(self) -> str:
        return " AND ".join(_operand(child) for child in self.children)


@dataclass(frozen=True)
class Or:
    children: tuple[Node, ...]

    def __str__(self) -> str:
        return " OR ".join(_operand(child) for child in self.children)


@dataclass(frozen=True)
class Not:
    child: Node

    def __str__(self) -> str:
        return f"NOT {_operand(self.child)}"


@dataclass(frozen=True)
class Near:
    """Both sides occur within `distance` words of each other, in either order."""

    left: Node
    right: Node
    distance: int

    def __str__(self) -> str:
        return f"{_operand(self.left)} NEAR/{self.distance} {_operand(self.right)}"


@dataclass(frozen=True)
class Scope:
    """The child, searched in one text field only (title, summary or text)."""

    field: str
    child: Node

    def __str__(self) -> str:
        return f"{self.field}:({self.child})"


@dataclass(frozen=True)
class Meta:
    """A test on a metadata field (source, url, lang): a case-insensitive glob over the whole
    value, or with `literal` the value itself."""

    field: str
    pattern: str
    literal: bool = False

    def __str__(self) -> str:
        value = f'"{self.pattern}"' if self.literal else self.pattern
        return f"{self.field}:{value}"


Node = Term | Phrase | And | Or | Not | Near | Scope | Meta


def has_positions(node: Node) -> bool:
    """Whether the node can stand at a place in the text, as NEAR needs of its operands."""
    if isinstance(node, Term | Phrase | Near):
        return True
    if isinstance(node, And | Or):
        return any(has_positions(child) for child in node.children)
    if isinstance(node, Scope):
        return has_positions(node.child)
    return False


def _operand(node: Node) -> str:
    # Parentheses keep the printed tree's shape whatever the precedence of its parts.
    return f"({node})" if isinstance(node, And | Or | Near) else str(node)
