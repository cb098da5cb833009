"""The compiled form of a query: the one definition of what a query means.

A syntax tree (nodes.py) is compiled once into a small tree of forms, with its terms turned
into atoms (ids shared by every watchlist, see Atoms) and its scopes pushed down into the
field bits of the words and phrases under them; ORs of words become one word group. Each
kind of form defines, in one class:

- `find(facts)`: what makes it true in an article (the evidence: hit words and spans), or
  None when it is false. This is its meaning.
- `holds(facts)`: whether it is true. Connectives stop at the first proof; every other form
  is true exactly when `find` finds something.
- `clauses(cost)`: the atom sets one atom each of which must be present for it to be true,
  from which the planner (planner.py) picks the watchlists worth evaluating.

So the meaning of NEAR is `Near.find`, of a phrase `Phrase.find`, of a scope the `fields`
of the words and phrases under it; nothing else restates them.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections import Counter
from collections.abc import Callable, Collection, Iterator
from itertools import chain, product
from math import prod
from typing import Protocol

from monitor.rules.nodes import And, Meta, Mode, Near, Node, Not, Or, Phrase, Scope, Term
from monitor.rules.text import stem

# A position packs the field (0 title, 1 summary, 2 text) above the word index, so positions
# in different fields are never near each other and sort in reading order.
FIELD_SHIFT = 32
ALL_FIELDS = 0b111
FIELD_BITS = {"title": 0b001, "summary": 0b010, "text": 0b100}

Span = tuple[int, int]  # first and last word position, inclusive
Spans = list[Span]
# What made a form true: an atom id stands for every occurrence of the atom; a Span for one
# place. Atoms keep the common case (a plain word, anywhere) free of per-occurrence work.
Item = int | Span
Found = list[Item] | None  # None: false; a list (maybe empty): true
Clause = frozenset[int]
Cost = Callable[[Clause], float]
# At most this many clauses are drawn from one OR (the product of its children's counts).
OR_UNIONS = 16


class Facts(Protocol):
    """What a form may ask about one article."""

    present: set[int]  # atoms (words and metadata tests) the article holds

    def spans(self, atom: int) -> Spans: ...

    def places(self, atom: int) -> list[int]: ...  # positions in reading order

    def positions(self, atom: int) -> set[int]: ...

    # Whether the words after `place` stand for `atoms`, in order.
    def followed_by(self, place: int, atoms: tuple[int, ...]) -> bool: ...

    # Whether a word of one of `atoms` (all present) is within `distance` words of one of
    # `places`.
    def any_within(self, places: list[int], atoms: Collection[int], distance: int) -> bool: ...


class Atoms:
    """The registry of all distinct terms, with the lookup tables the matcher searches."""

    def __init__(self) -> None:
        self._ids: dict[tuple[str, ...], int] = {}
        # The node objects met (the parser shares those of repeated words), a shortcut past
        # their keys: by id, as a node hashes in Python; each kept, so its id stays its own.
        self._by_node: dict[int, tuple[Term | Meta, int]] = {}
        self.by_stem: dict[str, list[int]] = {}
        self.by_folded: dict[str, list[int]] = {}
        self.by_written: dict[str, list[int]] = {}
        self.globs: list[tuple[int, str]] = []
        self.metas: list[tuple[int, Meta]] = []
        self.keys: list[tuple[str, ...]] = []  # by atom id
        self.uses: Counter[int] = Counter()  # how many watchlists use each atom
        self._in_watchlist: set[int] = set()

    def start_watchlist(self) -> None:
        self._in_watchlist = set()

    def add(self, node: Term | Meta) -> int:
        """The atom of a term or metadata test, registered if new, counted as used by the
        current watchlist."""
        atom = self._atom_of_node(node)
        if atom is None:
            key = _key(node)
            atom = self._ids.get(key)
            if atom is None:
                atom = self._new(key, node)
            self._by_node[id(node)] = (node, atom)
        if atom not in self._in_watchlist:
            self._in_watchlist.add(atom)
            self.uses[atom] += 1
        return atom

    def count_uses(self, atoms: Collection[int]) -> None:
        """Counts the atoms as used by the current watchlist (once each)."""
        for atom in atoms:
            if atom not in self._in_watchlist:
                self._in_watchlist.add(atom)
                self.uses[atom] += 1

    def _new(self, key: tuple[str, ...], node: Term | Meta) -> int:
        atom = self._ids[key] = len(self.keys)
        self.keys.append(key)
        if isinstance(node, Meta):
            self.metas.append((atom, node))
        elif node.mode is Mode.WILDCARD:
            self.globs.append((atom, node.text))
        else:
            tables = {Mode.STEM: self.by_stem, Mode.EXACT: self.by_folded, Mode.CASE: self.by_written}
            tables[node.mode].setdefault(key[1], []).append(atom)
        return atom

    def find(self, node: Term | Meta) -> int:
        """The atom of a term or metadata test already added."""
        atom = self._atom_of_node(node)
        return self._ids[_key(node)] if atom is None else atom

    def _atom_of_node(self, node: Term | Meta) -> int | None:
        known = self._by_node.get(id(node))
        return known[1] if known is not None and known[0] is node else None


def _key(node: Term | Meta) -> tuple[str, ...]:
    if isinstance(node, Meta):
        return ("meta", node.field, node.pattern, str(node.literal))
    return (node.mode.value, stem(node.text) if node.mode is Mode.STEM else node.text)


# --- Compiling: syntax tree -> form ----------------------------------------------------


def compile_query(node: Node, atom_of: Callable[[Term | Meta], int]) -> Form:
    """The form of `node`. `atom_of` gives each term's atom: Atoms.add while registering a
    new watchlist, Atoms.find when its form is built again later."""
    return _compile(node, atom_of, ALL_FIELDS)


def _compile(node: Node, atom_of: Callable[[Term | Meta], int], fields: int) -> Form:
    if isinstance(node, Term):
        return Words((atom_of(node),), fields)
    if isinstance(node, Phrase):
        return PhraseForm(tuple(atom_of(part) for part in node.parts), fields)
    if isinstance(node, Meta):
        return Test(atom_of(node))
    if isinstance(node, Scope):
        # A scope is the field bits of the words and phrases under it, nothing more.
        return _compile(node.child, atom_of, fields & FIELD_BITS[node.field])
    if isinstance(node, Not):
        return NotForm(_compile(node.child, atom_of, fields))
    if isinstance(node, Near):
        left, right = _compile(node.left, atom_of, fields), _compile(node.right, atom_of, fields)
        return NearForm(left, right, node.distance)
    if isinstance(node, And):
        return AllOf(_flatten(node, And, atom_of, fields))
    assert isinstance(node, Or)
    children = _flatten(node, Or, atom_of, fields)
    # The usual OR is a list of words: one word group, tested in one step.
    words = [child for child in children if isinstance(child, Words) and child.fields == fields]
    others = [child for child in children if not (isinstance(child, Words) and child.fields == fields)]
    if len(words) > 1:
        merged = tuple(dict.fromkeys(atom for group in words for atom in group.atoms))
        others.insert(0, Words(merged, fields))
    else:
        others = words + others
    return others[0] if len(others) == 1 else AnyOf(others)


def _flatten(node: And | Or, kind: type, atom_of: Callable[[Term | Meta], int], fields: int) -> list[Form]:
    """The forms of the children, with children of the same connective taken in (`a AND (b
    AND c)` is `a AND b AND c`)."""
    forms: list[Form] = []
    for child in node.children:
        if isinstance(child, kind):
            forms += _flatten(child, kind, atom_of, fields)  # type: ignore[arg-type]
        else:
            forms.append(_compile(child, atom_of, fields))
    return forms


# --- The forms -------------------------------------------------------------------------


class Form:
    """A compiled query or part of one."""

    __slots__ = ()

    def find(self, facts: Facts) -> Found:
        raise NotImplementedError

    def holds(self, facts: Facts) -> bool:
        return self.find(facts) is not None

    def clauses(self, cost: Cost) -> list[Clause]:
        """Atom sets of which one atom each must be present for the form to be true; empty
        when nothing needs to be present."""
        return []

    def presence(self) -> frozenset[int] | None:
        """For a form that is true exactly when one of some atoms is present (a word group in
        all fields, a metadata test, an OR of those): those atoms. Else None."""
        return None

    def cheap(self) -> bool:
        """Whether deciding it asks only which atoms are present, not where."""
        return self.presence() is not None


class Words(Form):
    """Any of some words, in the given fields."""

    __slots__ = ("atoms", "fields")

    def __init__(self, atoms: tuple[int, ...], fields: int) -> None:
        self.atoms, self.fields = atoms, fields

    def find(self, facts: Facts) -> Found:
        if self.fields == ALL_FIELDS:
            present = facts.present
            found: list[Item] = [atom for atom in self.atoms if atom in present]
        else:
            found = [span for atom in self.atoms if atom in facts.present
                     for span in _in_fields(facts.spans(atom), self.fields)]
        return found or None

    def holds(self, facts: Facts) -> bool:
        # find's answer, without building its list: stops at the first place in the fields
        present, fields = facts.present, self.fields
        if fields == ALL_FIELDS:
            return not present.isdisjoint(self.atoms)
        for atom in self.atoms:
            if atom in present:
                for place in facts.places(atom):
                    if (fields >> (place >> FIELD_SHIFT)) & 1:
                        return True
        return False

    def clauses(self, cost: Cost) -> list[Clause]:
        return [frozenset(self.atoms)]

    def presence(self) -> frozenset[int] | None:
        return frozenset(self.atoms) if self.fields == ALL_FIELDS else None


class Test(Form):
    """A metadata test (source:, url:, lang:): true or false, with no place in the text."""

    __slots__ = ("atom",)

    def __init__(self, atom: int) -> None:
        self.atom = atom

    def find(self, facts: Facts) -> Found:
        return [] if self.atom in facts.present else None

    def clauses(self, cost: Cost) -> list[Clause]:
        return [frozenset((self.atom,))]

    def presence(self) -> frozenset[int] | None:
        return frozenset((self.atom,))


class PhraseForm(Form):
    """Words next to each other, in this order, in the given fields."""

    __slots__ = ("fields", "parts")

    def __init__(self, parts: tuple[int, ...], fields: int) -> None:
        self.parts, self.fields = parts, fields

    def find(self, facts: Facts) -> Found:
        if not facts.present.issuperset(self.parts):
            return None
        starts = facts.places(self.parts[0])
        for step, atom in enumerate(self.parts[1:], 1):
            following = facts.positions(atom)
            starts = [start for start in starts if start + step in following]
        fields, last = self.fields, len(self.parts) - 1
        found: list[Item] = [
            (start, start + last) for start in starts if (fields >> (start >> FIELD_SHIFT)) & 1
        ]
        return found or None

    def holds(self, facts: Facts) -> bool:
        # find's answer, stopping at the first place followed by the other words: the words
        # after a place are looked at, not the places of every part.
        parts, fields = self.parts, self.fields
        if not facts.present.issuperset(parts):
            return False
        rest = parts[1:]
        for place in facts.places(parts[0]):
            if (fields >> (place >> FIELD_SHIFT)) & 1 and facts.followed_by(place, rest):
                return True
        return False

    def clauses(self, cost: Cost) -> list[Clause]:
        return [frozenset((atom,)) for atom in self.parts]


class NearForm(Form):
    """Both sides occur within `distance` words of each other, in either order, in one field;
    the evidence is the places of either side close to the other."""

    __slots__ = ("distance", "left", "right")

    def __init__(self, left: Form, right: Form, distance: int) -> None:
        self.left, self.right, self.distance = left, right, distance

    def find(self, facts: Facts) -> Found:
        sides = self._sides(facts)
        if sides is None:
            return None
        found: list[Item] = sorted(set(_close(facts, *sides, self.distance)))
        return found or None

    def holds(self, facts: Facts) -> bool:
        # find's answer, stopping at the first close place
        left, right = self.left, self.right
        if isinstance(left, Words) and isinstance(right, Words) and left.fields == right.fields:
            return _words_near(facts, left.atoms, right.atoms, self.distance, left.fields)
        sides = self._sides(facts)
        return sides is not None and next(_close(facts, *sides, self.distance), None) is not None

    def _sides(self, facts: Facts) -> tuple[list[Item], list[Item]] | None:
        """What both sides found, or None when one found nothing to be near: a side that is
        a true NOT or metadata test has no place, and makes the NEAR false."""
        ones = self.left.find(facts)
        if not ones:
            return None
        others = self.right.find(facts)
        return (ones, others) if others else None

    def clauses(self, cost: Cost) -> list[Clause]:
        return self.left.clauses(cost) + self.right.clauses(cost)


class NotForm(Form):
    __slots__ = ("child",)

    def __init__(self, child: Form) -> None:
        self.child = child

    def find(self, facts: Facts) -> Found:
        return None if self.child.holds(facts) else []

    def holds(self, facts: Facts) -> bool:
        return not self.child.holds(facts)

    def cheap(self) -> bool:
        return self.child.cheap()


class AllOf(Form):
    __slots__ = ("children",)

    def __init__(self, children: list[Form]) -> None:
        # Tests of presence first: they cost least and settle the most.
        self.children = tuple(sorted(children, key=lambda child: not child.cheap()))

    def find(self, facts: Facts) -> Found:
        items: list[Item] = []
        for child in self.children:
            found = child.find(facts)
            if found is None:
                return None
            items += found
        return items

    def holds(self, facts: Facts) -> bool:
        # A loop costs less than all() over a generator, and this runs for many watchlists.
        for child in self.children:  # noqa: SIM110
            if not child.holds(facts):
                return False
        return True

    def clauses(self, cost: Cost) -> list[Clause]:
        return [clause for child in self.children for clause in child.clauses(cost)]

    def cheap(self) -> bool:
        return all(child.cheap() for child in self.children)

    def vetoes(self) -> frozenset[int] | None:
        """When presence alone decides the form (an AND of word groups and NOTs of them):
        the atoms whose presence makes it false. Else None."""
        vetoed: set[int] = set()
        for child in self.children:
            if isinstance(child, NotForm) and child.child.presence() is not None:
                vetoed |= child.child.presence()  # type: ignore[operator]
            elif child.presence() is None:
                return None
        return frozenset(vetoed)


class AnyOf(Form):
    __slots__ = ("children",)

    def __init__(self, children: list[Form]) -> None:
        self.children = tuple(sorted(children, key=lambda child: not child.cheap()))

    def find(self, facts: Facts) -> Found:
        items: Found = None
        owned = False  # whether `items` is this call's own list, not a child's
        for child in self.children:
            found = child.find(facts)
            if found is None:
                continue
            if items is None:
                items = found
            elif owned:
                # Extended in place: `items + found` for each true child copied all found
                # before, quadratic in an OR of hundreds of NEARs.
                items += found
            else:
                items, owned = items + found, True
        return items

    def holds(self, facts: Facts) -> bool:
        # A loop costs less than any() over a generator, and this runs for many watchlists.
        for child in self.children:  # noqa: SIM110
            if child.holds(facts):
                return True
        return False

    def clauses(self, cost: Cost) -> list[Clause]:
        # Some child must be true, so every union of one clause per child is required. With
        # few such unions, all are offered ("Anna Berg" OR "Anna Bergs" needs `anna`, and
        # `berg` or `bergs`); else the union of each child's cheapest.
        choices = []
        for child in self.children:
            required = child.clauses(cost)
            if not required:
                return []
            choices.append(required)
        if prod(map(len, choices)) > OR_UNIONS:
            return [frozenset().union(*(min(required, key=cost) for required in choices))]
        unions = {frozenset().union(*picked) for picked in product(*choices)}
        return [union for union in unions if not any(other < union for other in unions)]

    def presence(self) -> frozenset[int] | None:
        groups = [child.presence() for child in self.children]
        if any(group is None for group in groups):
            return None
        return frozenset().union(*groups)  # type: ignore[arg-type]


def required_clauses(form: Form, cost: Cost) -> list[Clause]:
    """The distinct clauses of `form` (see Form.clauses)."""
    return list(dict.fromkeys(form.clauses(cost)))


def vetoes(form: Form) -> frozenset[int] | None:
    """When presence alone decides `form`: the atoms whose presence makes it false (its
    required clauses say the rest). Else None."""
    if isinstance(form, AllOf):
        return form.vetoes()
    if isinstance(form, NotForm):
        return AllOf([form]).vetoes()
    return frozenset() if form.presence() is not None else None


# --- Places: the helpers of phrases and NEAR ---------------------------------------------


def _in_fields(spans: Spans, fields: int) -> Spans:
    return [span for span in spans if (fields >> (span[0] >> FIELD_SHIFT)) & 1]


def _all_atoms(items: list[Item]) -> bool:
    return all([isinstance(item, int) for item in items])


def _places(facts: Facts, atoms: list[Item]) -> list[int]:
    """Where any of the atoms occurs, in reading order (a place twice if two atoms share it)."""
    if len(atoms) == 1:
        return facts.places(atoms[0])  # type: ignore[arg-type]
    return sorted([place for atom in atoms for place in facts.places(atom)])  # type: ignore[arg-type]


def _words_near(facts: Facts, left: tuple[int, ...], right: tuple[int, ...], distance: int,
                fields: int) -> bool:
    """Whether a word of `left` is within `distance` words of a word of `right`, in `fields`
    (what _close finds first for two word groups): the words around the places of the side
    with fewer words are looked at, not the places of both sides."""
    present = facts.present
    ones = [atom for atom in left if atom in present]
    others = [atom for atom in right if atom in present]
    if not ones or not others:
        return False
    if len(ones) > len(others):
        ones, others = others, ones
    places = [place for atom in ones for place in facts.places(atom)]
    if fields != ALL_FIELDS:
        # A place near another is in the same field: filtering one side is enough.
        places = [place for place in places if (fields >> (place >> FIELD_SHIFT)) & 1]
    return facts.any_within(places, others, distance)


def _close(facts: Facts, ones: list[Item], others: list[Item], distance: int) -> Iterator[Item]:
    """What NEAR finds: the items of either side within `distance` words of an item of the
    other (the same item may come twice)."""
    if _all_atoms(ones) and _all_atoms(others):
        # Words on both sides (the usual case): compare places, not spans.
        one_places, other_places = _places(facts, ones), _places(facts, others)
        for place in chain(_near_places(one_places, other_places, distance),
                           _near_places(other_places, one_places, distance)):
            yield (place, place)
        return
    one_spans, other_spans = sorted(set(_spans(facts, ones))), sorted(set(_spans(facts, others)))
    yield from _near_to(one_spans, other_spans, distance)
    yield from _near_to(other_spans, one_spans, distance)


def _near_places(places: list[int], others: list[int], distance: int) -> Iterator[int]:
    """The places within `distance` words of some place of `others`; both sorted."""
    count, at = len(others), 0
    for place in places:
        # `at` walks `others` once: the first other not too far behind this place.
        while at < count and others[at] < place - distance:
            at += 1
        if at == count:
            return
        if others[at] <= place + distance:
            yield place


def _spans(facts: Facts, items: list[Item]) -> Spans:
    spans: Spans = []
    for item in items:
        if isinstance(item, int):
            spans += facts.spans(item)
        else:
            spans.append(item)
    return spans


def _near_to(spans: Spans, others: Spans, distance: int) -> Iterator[Span]:
    """The spans within `distance` words of some span of `others` (sorted)."""
    starts = [start for start, _ in others]
    longest = max([end - start for start, end in others])
    for start, end in spans:
        low = bisect_left(starts, start - distance - longest)
        high = bisect_right(starts, end + distance)
        if any(other_end >= start - distance for _, other_end in others[low:high]):
            yield (start, end)
