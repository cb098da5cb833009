"""Decides which watchlists are worth evaluating for an article, from the atoms it holds.

A query names words that must be present for it to be true: `a AND (b OR c)` needs `a`, and
`b` or `c`. Each such need is a clause: a set of atoms, one of which must be present. Every
watchlist keeps its (up to) `SLOTS` least likely clauses, one per slot. For each atom and
slot there is a bit mask over all watchlists: bit w is set when the atom is in watchlist w's
clause of that slot. An article's present atoms OR their masks together slot by slot; the
watchlists whose bits survive the AND of all slots have every kept clause met. The atoms
come in groups, one per word of the article (the atoms it stands for), and each group's
masks are ORed once and kept: that is one vectorised OR per group, over 64 watchlists to a
machine word, and no Python step per watchlist. The masks take atoms × SLOTS × watchlists / 8
bytes (7 MB for 10,000 watchlists with 1,400 distinct terms), the kept groups up to 32 MB.

When those clauses and the words under top-level NOTs (vetoes) say all there is to a query
(an AND of words, OR-groups of words and NOT-ed words), presence decides it with one set
test; the others go to their deciders (compiler.py). Queries that need nothing present
(`NOT x`) are always candidates.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from itertools import product
from math import prod

import numpy as np

from monitor.rules.compiler import Atoms, group_leaves
from monitor.rules.nodes import And, Meta, Near, Node, Not, Or, Phrase, Scope, Term
from monitor.rules.text import stem

Clause = frozenset[int]
SLOTS = 4
# At most this many clauses are drawn from one OR (the product of its children's counts).
OR_UNIONS = 16
# The masks of at most this many groups of atoms, or of this many bytes, are kept.
GROUP_ROWS, GROUP_ROWS_BYTES = 50_000, 32 << 20

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
        # Some child must be true, so every union of one clause per child is required. With
        # few such unions, all are offered ("Anna Berg" OR "Anna Bergs" needs `anna`, and
        # `berg` or `bergs`); else the union of each child's cheapest.
        choices = []
        for child in node.children:
            required = _required(child, atoms, cost)
            if not required:
                return []
            choices.append(required)
        if prod(map(len, choices)) > OR_UNIONS:
            return [frozenset().union(*(min(required, key=cost) for required in choices))]
        unions = {frozenset().union(*picked) for picked in product(*choices)}
        return [union for union in unions if not any(other < union for other in unions)]
    return []  # NOT needs nothing present


def vetoes(node: Node, atoms: Atoms) -> frozenset[int]:
    """Atoms whose presence alone makes `node` false: the words and metadata tests of its
    top-level NOTs (`a NOT (b OR c)` is false wherever b or c is)."""
    vetoed: set[int] = set()
    for part in _conjuncts(node):
        if isinstance(part, Not) and _is_word_group(part.child):
            vetoed.update(atoms.find(leaf) for leaf in group_leaves(part.child))
    return frozenset(vetoed)


def decided_by_presence(node: Node, clauses: list[Clause]) -> bool:
    """Whether the clauses (all kept) and vetoes of `node` are exactly its truth: an AND of
    words, OR-groups of words, and NOTs of those."""
    if len(clauses) > SLOTS:
        return False
    return all(
        _is_word_group(part) or (isinstance(part, Not) and _is_word_group(part.child))
        for part in _conjuncts(node)
    )


def _conjuncts(node: Node) -> tuple[Node, ...]:
    return node.children if isinstance(node, And) else (node,)


def _is_word_group(node: Node) -> bool:
    """A word or metadata test in all fields, or an OR of them."""
    if isinstance(node, Or):
        return all(_is_word_group(child) for child in node.children)
    return isinstance(node, Term | Meta)


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
    """For each atom and slot, the bit mask of the watchlists whose kept clause holds it."""

    masks: np.ndarray  # [atom, slot, word]: 64 watchlists to a word
    unused: np.ndarray  # [slot, word]: the watchlists with fewer clauses than slots
    # One entry per watchlist (so also their count): the atoms that make it false, when
    # presence alone decides it (a woken watchlist is then true exactly when none of them is
    # present); else None.
    vetoes: list[frozenset[int] | None]
    # The masks of groups of atoms that come together (the atoms one word stands for), ORed:
    # [row, slot, word], rows filled as groups are met, then started over when full.
    group_masks: np.ndarray
    group_rows: dict[tuple[int, ...], int] = field(default_factory=dict)

    @classmethod
    def plan(cls, nodes: list[Node], atoms: Atoms, group_rows: int | None = None) -> Triggers:
        """Plans all watchlists; `atoms` must already hold every atom of `nodes`. Keeps the
        masks of up to `group_rows` groups (default: GROUP_ROWS, or GROUP_ROWS_BYTES' worth)."""
        chance = [_chance(key) for key in atoms.keys]
        # Words many watchlists share are likely topical, common words: weigh them up.
        share = 1.0 / max(1, len(nodes))

        def cost(clause: Clause) -> float:
            return sum(chance[atom] + atoms.uses[atom] * share for atom in clause)

        slots: dict[tuple[int, int], int] = {}  # (atom, slot) -> mask, as a big integer
        unused = [0] * SLOTS
        vetoed: list[frozenset[int] | None] = []
        for index, node in enumerate(nodes):
            bit = 1 << index
            clauses = sorted(required_clauses(node, atoms, cost), key=cost)
            vetoed.append(vetoes(node, atoms) if decided_by_presence(node, clauses) else None)
            for slot in range(len(clauses), SLOTS):
                unused[slot] |= bit
            for slot, clause in enumerate(clauses[:SLOTS]):
                for atom in clause:
                    slots[atom, slot] = slots.get((atom, slot), 0) | bit
        words = max(1, (len(nodes) + 63) // 64)  # one even for no watchlists: none is woken
        masks = np.zeros((len(atoms.keys), SLOTS, words), "<u8")
        for (atom, slot), mask in slots.items():
            masks[atom, slot] = _words(mask, words)
        if group_rows is None:
            group_rows = max(64, min(GROUP_ROWS, GROUP_ROWS_BYTES // (SLOTS * words * masks.itemsize)))
        # Zeroed pages are only taken as rows are written.
        group_masks = np.zeros((group_rows, SLOTS, words), masks.dtype)
        return cls(masks, np.stack([_words(mask, words) for mask in unused]), vetoed, group_masks)

    def candidates(self, groups: Collection[tuple[int, ...]]) -> list[int]:
        """The watchlists whose kept clauses are all met, in the order they were given, when
        the atoms present are those of `groups`. An article's atoms come in far fewer groups
        (one per word) than atoms, so this ORs fewer masks."""
        if len(self.group_rows) + len(groups) > len(self.group_masks):
            self.group_rows.clear()  # start over, so that no group below pushes out another
        if len(groups) > len(self.group_masks):
            held = np.fromiter(set().union(*groups), np.intp)
            met = np.bitwise_or.reduce(self.masks[held], axis=0)
        else:
            known = self.group_rows.get
            rows = [known(group) for group in groups]
            if None in rows:
                rows = [self._group_row(group) for group in groups]
            met = np.bitwise_or.reduce(self.group_masks[rows], axis=0)
        return _set_bits(np.bitwise_and.reduce(met | self.unused, axis=0).tolist())

    def _group_row(self, group: tuple[int, ...]) -> int:
        row = self.group_rows.get(group)
        if row is None:
            row = self.group_rows[group] = len(self.group_rows)
            self.group_masks[row] = np.bitwise_or.reduce(self.masks[list(group)], axis=0)
        return row


def _set_bits(words: list[int]) -> list[int]:
    """The numbers of the bits set in 64-bit words (word 0 holds bits 0-63), in order."""
    found = []
    for index, word in enumerate(words):
        base = index * 64
        while word:
            low = word & -word
            found.append(base + low.bit_length() - 1)
            word ^= low
    return found


def _words(mask: int, count: int) -> np.ndarray:
    return np.frombuffer(mask.to_bytes(count * 8, "little"), "<u8")
