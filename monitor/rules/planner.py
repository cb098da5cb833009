"""Decides which watchlists are worth evaluating for an article, from the atoms it holds.

A query names words that must be present for it to be true: `a AND (b OR c)` needs `a`, and
`b` or `c`. Each such need is a clause (compiler.Form.clauses): a set of atoms, one of which
must be present. The least likely clause of each watchlist is its trigger. The plan holds
sparse postings, never a table of atoms × watchlists:

- an inverted index, atom -> the watchlists whose trigger holds the atom (sorted int32);
- per watchlist, its other clauses, as offsets into one flat array of atoms.

An article's candidates are the union of the postings of the atoms it holds; of those, the
ones with every other clause met survive. Both steps are a handful of numpy operations over
the postings touched, so the work follows the article's atoms and the watchlists they
trigger, and the memory the number of clause atoms, not atoms × watchlists. Queries that
need nothing present (`NOT x`) are always candidates.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Sequence

import numpy as np

from monitor.rules.compiler import Atoms
from monitor.rules.text import stem

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


class Costs:
    """How costly a clause is as a trigger: about how many watchlists it wakes per article,
    the chance that an article holds each of its atoms times the watchlists that use it.
    Follows the atoms' use counts as watchlists are added."""

    def __init__(self, atoms: Atoms) -> None:
        self._atoms = atoms
        self._chance: list[float] = []

    def __call__(self, clause: Collection[int]) -> float:
        chance, keys = self._chance, self._atoms.keys
        if len(chance) < len(keys):
            chance += [_chance(key) for key in keys[len(chance) :]]
        uses = self._atoms.uses
        return sum(chance[atom] * (1 + uses[atom]) for atom in clause)


class Plan:
    """The postings of all watchlists' clauses (see the module's doc)."""

    def __init__(self, clauses: Sequence[Sequence[Collection[int]]], atoms: Atoms) -> None:
        """`clauses`: each watchlist's required clauses; `atoms` must hold all their atoms."""
        cost = Costs(atoms)
        self.watchlists = len(clauses)
        self.atom_count = len(atoms.keys)
        trigger_atoms: list[int] = []
        trigger_owners: list[int] = []
        rest_counts = np.zeros(len(clauses), np.int64)
        rest_sizes: list[int] = []
        rest_atoms: list[int] = []
        always = []
        for index, required in enumerate(clauses):
            if not required:
                always.append(index)
                continue
            ordered = sorted(required, key=cost)
            trigger_atoms += ordered[0]
            trigger_owners += [index] * len(ordered[0])
            rest_counts[index] = len(ordered) - 1
            for clause in ordered[1:]:
                rest_sizes.append(len(clause))
                rest_atoms += clause
        self.always = np.array(always, np.int32)
        order = np.argsort(np.array(trigger_atoms, np.int32), kind="stable")
        self.trigger_ptr = _offsets(np.bincount(np.array(trigger_atoms, np.int64), minlength=self.atom_count))
        self.trigger_ids = np.array(trigger_owners, np.int32)[order]
        self.rest_ptr = _offsets(rest_counts)
        self.clause_ptr = _offsets(np.array(rest_sizes, np.int64))
        self.clause_atoms = np.array(rest_atoms, np.int32)

    def nbytes(self) -> int:
        arrays = (self.always, self.trigger_ptr, self.trigger_ids, self.rest_ptr, self.clause_ptr)
        return sum(array.nbytes for array in arrays) + self.clause_atoms.nbytes

    def candidates(self, present: Collection[int]) -> list[int]:
        """The watchlists whose clauses are all met when the atoms `present` are, in the
        order they were given."""
        held = np.fromiter(present, np.int64, len(present))
        woken = np.zeros(self.watchlists, bool)
        woken[self.trigger_ids[_ranges(self.trigger_ptr, held)[0]]] = True
        woken[self.always] = True
        rows = np.flatnonzero(woken)  # in order, each once
        if not len(rows):
            return []
        mask = np.zeros(self.atom_count, bool)
        mask[held] = True
        clause_index, owner = _ranges(self.rest_ptr, rows)
        atom_index, clause_of_atom = _ranges(self.clause_ptr, clause_index)
        met = np.zeros(len(clause_index), bool)
        met[clause_of_atom[mask[self.clause_atoms[atom_index]]]] = True
        unmet = np.bincount(owner[~met], minlength=len(rows))
        return rows[unmet == 0].tolist()


def _offsets(counts: np.ndarray) -> np.ndarray:
    """Where each row starts in a flat array of rows of these lengths, and where the last ends."""
    offsets = np.zeros(len(counts) + 1, np.int64)
    np.cumsum(counts, out=offsets[1:])
    return offsets


def _ranges(offsets: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The flat indexes of the given rows (offsets from `_offsets`), and for each, the
    number of its row among `rows`."""
    starts = offsets[rows]
    lengths = offsets[rows + 1] - starts
    owner = np.repeat(np.arange(len(rows)), lengths)
    # Each index is its row's start plus its place within the row.
    ends = np.cumsum(lengths)
    index = np.arange(int(ends[-1]) if len(ends) else 0) + np.repeat(starts - (ends - lengths), lengths)
    return index, owner
