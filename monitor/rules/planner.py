"""Decides which watchlists are worth evaluating for an article, from the atoms it holds.

A query names words that must be present for it to be true: `a AND (b OR c)` needs `a`, and
`b` or `c`. Each such need is a clause: a set of atoms, one of which must be present. Every
watchlist is filed under one clause, its trigger, chosen to be the least likely to be met,
so that common words wake few watchlists; one with a second clause is filed under pairs of
atoms, one from each, and wakes only when both are present. The matcher then tests each woken
watchlist on the presence of all its words at once (boolean.py). Queries that need nothing
present (`NOT x`) run every time.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from monitor.rules.compiler import Atoms
from monitor.rules.nodes import And, Meta, Near, Node, Or, Phrase, Scope, Term
from monitor.rules.text import stem

Clause = frozenset[int]

# The most frequent Swedish (and a few English) words: present in nearly every article, so
# the worst triggers, e.g. the "för" of "Organisationen för kollektiv säkerhet".
COMMON_WORDS = frozenset(
    """
    och i att det som en på är av för med till den har de inte om ett han men var jag sig
    från vi så kan man när år säger hon under också efter eller nu sin där vid mot ska
    skulle kommer ut får finns vara hade alla andra mycket än här då sedan över bara in blir
    upp även vad få två vill ha många hur mer går detta nya hans utan sina något allt första
    fick måste mellan blev bli dag någon några sitt stora varit dem bland bra tre ta genom
    del hela annat fram gör ingen göra enligt mig redan inom kom du helt ju samma kanske
    själv oss tidigare se dock denna både tid stor olika ser flera just the of and to in is
    """.split()
)
_COMMON_STEMS = frozenset(stem(word) for word in COMMON_WORDS) | COMMON_WORDS
_WILDCARDS = re.compile(r"[*?]+")


def required_clauses(node: Node, atoms: Atoms, cost: Callable[[Clause], float]) -> list[Clause]:
    """The clauses of `node`: atom sets of which one atom each must be present for it to be
    true. Empty when nothing needs to be present."""
    return list(dict.fromkeys(_required(node, atoms, cost)))


def _required(node: Node, atoms: Atoms, cost: Callable[[Clause], float]) -> list[Clause]:
    if isinstance(node, Term):
        return [frozenset({atoms.find(node)})]
    if isinstance(node, Phrase):
        return [frozenset({atoms.find(part)}) for part in node.parts]
    if isinstance(node, Meta):
        return [frozenset({atoms.find(node)})]
    if isinstance(node, Scope):
        return _required(node.child, atoms, cost)
    if isinstance(node, Near):
        return _required(node.left, atoms, cost) + _required(node.right, atoms, cost)
    if isinstance(node, And):
        return [clause for child in node.children for clause in _required(child, atoms, cost)]
    if isinstance(node, Or):
        # Some child must be true, so the union of one clause per child is required.
        union: set[int] = set()
        for child in node.children:
            required = _required(child, atoms, cost)
            if not required:
                return []
            union |= min(required, key=cost)
        return [frozenset(union)]
    return []  # NOT needs nothing present


def _chance(key: tuple[str, ...]) -> float:
    """A rough guess at how likely an article is to hold the atom with this key."""
    kind, text = key[0], key[1]
    if kind == "meta":
        return 0.5
    if kind == "wildcard":
        literal = max(len(piece) for piece in _WILDCARDS.split(text))
        return 0.5 if literal <= 2 else 0.2 if literal == 3 else 0.05
    if text.lower() in _COMMON_STEMS:
        return 0.9
    return 0.1 if len(text) <= 3 else 0.01


@dataclass
class Triggers:
    """Each watchlist filed under its trigger clause, or its two least likely clauses."""

    postings: dict[int, list[int]]  # atom -> watchlists with one clause, which holds it
    pairs: dict[int, dict[int, list[int]]]  # atom -> atom -> watchlists whose two clauses hold them
    always: list[int]  # watchlists that need no atom present

    @classmethod
    def plan(cls, nodes: list[Node], atoms: Atoms) -> Triggers:
        """Plans all watchlists; `atoms` must already hold every atom of `nodes`."""
        chance = [_chance(key) for key in atoms.keys]
        # Words many watchlists share are likely topical, common words: weigh them up.
        share = 1.0 / max(1, len(nodes))

        def cost(clause: Clause) -> float:
            return sum(chance[atom] + atoms.uses[atom] * share for atom in clause)

        triggers = cls({}, {}, [])
        for index, node in enumerate(nodes):
            clauses = sorted(required_clauses(node, atoms, cost), key=cost)
            if not clauses:
                triggers.always.append(index)
            elif len(clauses) == 1:
                for atom in clauses[0]:
                    triggers.postings.setdefault(atom, []).append(index)
            else:
                for atom in clauses[0]:
                    seconds = triggers.pairs.setdefault(atom, {})
                    for second in clauses[1]:
                        seconds.setdefault(second, []).append(index)
        return triggers

    def candidates(self, present: set[int]) -> list[int]:
        """The watchlists whose trigger clauses are met, in the order they were given."""
        woken: set[int] = set(self.always)
        postings, pairs = self.postings, self.pairs
        for atom in present & postings.keys():
            woken.update(postings[atom])
        for atom in present & pairs.keys():
            seconds = pairs[atom]
            for second in seconds.keys() & present:
                woken.update(seconds[second])
        return sorted(woken)
