"""Each query as a plain boolean over the atoms an article holds, compiled to Python.

The full evaluators (compiler.py) ask where words are, which costs microseconds per node.
Most woken watchlists fail on presence alone, and most queries need nothing but presence,
so every query also gets `could(present) -> bool`: true whenever the query may be true, and
exactly when it is true if the query has no phrase, NEAR or field scope. For "flat" queries,
whose hit words are simply their words that are present, the full evaluator never runs.
"""

from __future__ import annotations

from collections.abc import Callable

from monitor.rules.compiler import Atoms
from monitor.rules.nodes import And, Meta, Near, Node, Not, Or, Phrase, Scope, Term

Could = Callable[[set[int]], bool]

_TRUE, _FALSE = "True", "False"


def compile_boolean(node: Node, atoms: Atoms) -> tuple[Could, frozenset[int] | None]:
    """`could` for `node`, and for a flat query the atoms of its positive words (else None).
    `atoms` must already hold every atom of `node`."""
    source = _bounds(node, atoms, scoped=False)[0]
    # The expression holds nothing but atom ids and operators, never text from a query; the
    # parser's nesting limit (MAX_NESTING) keeps it within Python's.
    could = eval(f"lambda p: {source}")
    if not _is_flat(node, under_or=False):
        return could, None
    return could, frozenset(atoms.find(term) for term in _positive_terms(node))


def _bounds(node: Node, atoms: Atoms, scoped: bool) -> tuple[str, str]:
    """(upper, lower): expressions true whenever the node may be true, and only when it
    certainly is. Presence is certain only for a word searched in all fields."""
    if isinstance(node, Term):
        test = f"{atoms.find(node)} in p"
        return test, _FALSE if scoped else test
    if isinstance(node, Meta):
        test = f"{atoms.find(node)} in p"
        return test, test
    if isinstance(node, Phrase):
        return _all([f"{atoms.find(part)} in p" for part in node.parts]), _FALSE
    if isinstance(node, Scope):
        return _bounds(node.child, atoms, scoped=True)
    if isinstance(node, Not):
        upper, lower = _bounds(node.child, atoms, scoped)
        return _not(lower), _not(upper)
    if isinstance(node, Near):
        left, right = _bounds(node.left, atoms, scoped), _bounds(node.right, atoms, scoped)
        return _all([left[0], right[0]]), _FALSE
    children = [_bounds(child, atoms, scoped) for child in node.children]
    join = _all if isinstance(node, And) else _any
    return join([upper for upper, _ in children]), join([lower for _, lower in children])


def _all(parts: list[str]) -> str:
    if _FALSE in parts:
        return _FALSE
    parts = [part for part in parts if part != _TRUE]
    return " and ".join(f"({part})" for part in parts) if parts else _TRUE


def _any(parts: list[str]) -> str:
    if _TRUE in parts:
        return _TRUE
    parts = [part for part in parts if part != _FALSE]
    return " or ".join(f"({part})" for part in parts) if parts else _FALSE


def _not(part: str) -> str:
    return _FALSE if part == _TRUE else _TRUE if part == _FALSE else f"not ({part})"


def _is_flat(node: Node, under_or: bool) -> bool:
    # A false AND below an OR would drop its present words from the hit; an AND on the path
    # from the root is true whenever the query is.
    if isinstance(node, Term | Meta):
        return True
    if isinstance(node, Not):
        return _is_exact(node.child)
    if isinstance(node, And):
        return not under_or and all(_is_flat(child, under_or) for child in node.children)
    if isinstance(node, Or):
        return all(_is_flat(child, under_or=True) for child in node.children)
    return False  # phrases, NEAR and scopes need places


def _is_exact(node: Node) -> bool:
    """Whether presence alone decides the node."""
    if isinstance(node, Term | Meta):
        return True
    if isinstance(node, Not):
        return _is_exact(node.child)
    if isinstance(node, And | Or):
        return all(_is_exact(child) for child in node.children)
    return False


def _positive_terms(node: Node) -> list[Term]:
    if isinstance(node, Term):
        return [node]
    if isinstance(node, And | Or):
        return [term for child in node.children for term in _positive_terms(child)]
    return []  # NOT adds no words to a hit; metadata has none
