"""Turns syntax trees into evaluators and gathers their terms ("atoms") into shared indexes.

Every distinct term of every watchlist becomes one atom. The matcher finds the atoms present
in an article in one pass; an evaluator then only looks its atoms up. Which evaluators run
at all is up to the planner (planner.py).
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections import Counter
from collections.abc import Callable, Collection
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
# What made a node true: an atom id stands for every occurrence of the atom; a Span for one
# place. Atoms keep the common case (a plain word, anywhere) free of per-occurrence work.
Item = int | Span
Found = list[Item] | None  # None: false; a list (maybe empty): true


class Facts(Protocol):
    """What an evaluator may ask about one article."""

    present: set[int]  # atoms (words and metadata tests) the article holds

    def spans(self, atom: int) -> Spans: ...

    def places(self, atom: int) -> list[int]: ...  # positions in reading order

    def positions(self, atom: int) -> set[int]: ...

    # Whether the words after `place` stand for `atoms`, in order.
    def followed_by(self, place: int, atoms: tuple[int, ...]) -> bool: ...

    # Whether a word of one of `atoms` (all present) is within `distance` words of one of
    # `places`.
    def any_within(self, places: list[int], atoms: Collection[int], distance: int) -> bool: ...


Evaluator = Callable[[Facts, int], Found]
Decider = Callable[[Facts, set[int]], bool]  # (facts, present atoms)


class Atoms:
    """The registry of all distinct terms, with the lookup tables the matcher searches."""

    def __init__(self) -> None:
        self._ids: dict[tuple[str, ...], int] = {}
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
        key = _key(node)
        atom = self._ids.get(key)
        if atom is None:
            atom = self._new(key, node)
        if atom not in self._in_watchlist:
            self._in_watchlist.add(atom)
            self.uses[atom] += 1
        return atom

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
        return self._ids[_key(node)]


def _key(node: Term | Meta) -> tuple[str, ...]:
    if isinstance(node, Meta):
        return ("meta", node.field, node.pattern, str(node.literal))
    return (node.mode.value, stem(node.text) if node.mode is Mode.STEM else node.text)


def compile_node(node: Node, atoms: Atoms) -> Evaluator:
    """An evaluator for `node`, registering its terms in `atoms`."""
    if isinstance(node, Term):
        return _any_term((atoms.add(node),))
    if isinstance(node, Phrase):
        return _phrase([atoms.add(part) for part in node.parts])
    if isinstance(node, Meta):
        return _meta(atoms.add(node))
    if isinstance(node, Scope):
        return _scope(FIELD_BITS[node.field], compile_node(node.child, atoms))
    if isinstance(node, Not):
        return _not(compile_node(node.child, atoms))
    if isinstance(node, Near):
        left, right = compile_node(node.left, atoms), compile_node(node.right, atoms)
        return _near(left, right, node.distance)
    if isinstance(node, And):
        return _and([compile_node(child, atoms) for child in node.children])
    # The usual OR is a list of words: test them all in one evaluator.
    words = tuple(atoms.add(child) for child in node.children if isinstance(child, Term))
    others = [compile_node(child, atoms) for child in node.children if not isinstance(child, Term)]
    return _or(([_any_term(words)] if words else []) + others)


def compile_decider(node: Node, atoms: Atoms) -> Decider:
    """`decide(facts, present)`: whether `node` holds, the same answer as its evaluator
    (`compile_node`) gives, found by stopping at the first proof and collecting no hit words.
    Compiled to one Python expression (of atom ids, operators and calls of this module's
    helpers, never text from a query), so a test costs no call of its own. `atoms` must
    already hold every atom of `node` (the evaluator is compiled first)."""
    evaluators: list[Evaluator] = []
    source = _decide_source(node, atoms, ALL_FIELDS, evaluators)
    # The parser's nesting limit (MAX_NESTING) keeps the expression within Python's.
    helpers = {
        "word_in": _word_in, "phrase": _phrase_decide, "near": _near_decide, "near_items": _near_items,
        "e": evaluators,
    }  # fmt: skip
    return eval(f"lambda f, p: {source}", helpers)


def _decide_source(node: Node, atoms: Atoms, fields: int, evaluators: list[Evaluator]) -> str:
    """The expression for `node` in `fields`; `evaluators` gathers those it calls (e[i])."""
    if isinstance(node, Term):
        atom = atoms.find(node)
        return f"{atom} in p" if fields == ALL_FIELDS else f"word_in(f, p, {atom}, {fields})"
    if isinstance(node, Meta):
        return f"{atoms.find(node)} in p"
    if isinstance(node, Scope):
        return _decide_source(node.child, atoms, fields & FIELD_BITS[node.field], evaluators)
    if isinstance(node, Not):
        return f"not ({_decide_source(node.child, atoms, fields, evaluators)})"
    if isinstance(node, And | Or):
        # Presence first: those tests cost least and settle the most.
        children = sorted(node.children, key=_decide_order)
        join = " and " if isinstance(node, And) else " or "
        return join.join(f"({_decide_source(child, atoms, fields, evaluators)})" for child in children)
    if isinstance(node, Near) and _is_words(node.left) and _is_words(node.right):
        left, right = _group_atoms(node.left, atoms), _group_atoms(node.right, atoms)
        return f"near(f, p, {left}, {right}, {node.distance}, {fields})"
    if isinstance(node, Near):
        # Phrases or groups on a side: their evaluators find the side's items, and the first
        # close pair settles it.
        evaluators += [compile_node(node.left, atoms), compile_node(node.right, atoms)]
        count = len(evaluators)
        return f"near_items(f, e[{count - 2}], e[{count - 1}], {node.distance}, {fields})"
    assert isinstance(node, Phrase)
    return f"phrase(f, p, {tuple(atoms.find(part) for part in node.parts)}, {fields})"


def _decide_order(node: Node) -> tuple[bool, bool]:
    """Words, then other presence tests, then tests of places."""
    return not isinstance(node, Term), _needs_places(node)


def _needs_places(node: Node) -> bool:
    """Whether deciding the node asks where words are, not only which are present."""
    if isinstance(node, Phrase | Near | Scope):
        return True
    if isinstance(node, And | Or):
        return any(_needs_places(child) for child in node.children)
    if isinstance(node, Not):
        return _needs_places(node.child)
    return False


def _is_words(node: Node) -> bool:
    """A word, or an OR of words (unlike the planner's word groups, no metadata tests)."""
    return isinstance(node, Term) or (isinstance(node, Or) and all(map(_is_words, node.children)))


def _group_atoms(node: Node, atoms: Atoms) -> tuple[int, ...]:
    return tuple(atoms.find(leaf) for leaf in group_leaves(node))


def group_leaves(node: Node) -> list[Term | Meta]:
    """The words and metadata tests of a word group: one of them, or an OR of such groups."""
    if isinstance(node, Or):
        return [leaf for child in node.children for leaf in group_leaves(child)]
    assert isinstance(node, Term | Meta)
    return [node]


def _word_in(facts: Facts, present: set[int], atom: int, fields: int) -> bool:
    """The word occurs in one of the fields."""
    return atom in present and _any_in_fields(facts.places(atom), fields)


def _phrase_decide(facts: Facts, present: set[int], parts: tuple[int, ...], fields: int) -> bool:
    """The phrase's words follow one another somewhere in the fields."""
    if not present.issuperset(parts):
        return False
    rest = parts[1:]
    for place in facts.places(parts[0]):
        if (fields >> (place >> FIELD_SHIFT)) & 1 and facts.followed_by(place, rest):
            return True
    return False


def _near_decide(
    facts: Facts, present: set[int], left: tuple[int, ...], right: tuple[int, ...], distance: int, fields: int
) -> bool:
    """A word of `left` within `distance` words of a word of `right`, in the fields."""
    ones = [atom for atom in left if atom in present]
    others = [atom for atom in right if atom in present]
    if not ones or not others:
        return False
    if len(ones) > len(others):
        ones, others = others, ones  # fewer words likely have fewer places to look around
    places = [place for atom in ones for place in facts.places(atom)]
    if fields != ALL_FIELDS:
        # A place near another is in the same field: filtering one side is enough.
        places = [place for place in places if (fields >> (place >> FIELD_SHIFT)) & 1]
    return facts.any_within(places, others, distance)


def _near_items(facts: Facts, left: Evaluator, right: Evaluator, distance: int, fields: int) -> bool:
    """What `_near`'s evaluator decides, stopping at the first close pair."""
    sides = _near_sides(facts, left, right, fields)
    if sides is None:
        return False
    ones, others = sides
    one_places, one_spans = _places_and_spans(facts, ones)
    other_places, other_spans = _places_and_spans(facts, others)
    return (
        _any_near(one_places, other_places, distance)
        or any(_span_near(span, other_places, distance) for span in one_spans)
        or any(_span_near(span, one_places, distance) for span in other_spans)
        or bool(one_spans and other_spans and _near_to(one_spans, sorted(other_spans), distance))
    )


def _places_and_spans(facts: Facts, items: list[Item]) -> tuple[list[int], Spans]:
    """The places of the atoms among `items` (in reading order), and the spans."""
    atoms = [item for item in items if isinstance(item, int)]
    spans = [item for item in items if not isinstance(item, int)]
    return (_places(facts, atoms) if atoms else []), spans


def _span_near(span: Span, places: list[int], distance: int) -> bool:
    """Whether one of the sorted `places` is within `distance` words of `span`."""
    start, end = span
    at = bisect_left(places, start - distance)
    return at < len(places) and places[at] <= end + distance


def _any_in_fields(places: list[int], fields: int) -> bool:
    # A loop costs less than any() over a generator, and this runs for many watchlists.
    for place in places:  # noqa: SIM110
        if (fields >> (place >> FIELD_SHIFT)) & 1:
            return True
    return False


def _any_near(places: list[int], others: list[int], distance: int) -> bool:
    """Whether a place is within `distance` words of some place of `others`; both sorted."""
    count, at = len(others), 0
    for place in places:
        while at < count and others[at] < place - distance:
            at += 1
        if at == count:
            return False
        if others[at] <= place + distance:
            return True
    return False


def _in_fields(spans: Spans, fields: int) -> Spans:
    return [span for span in spans if (fields >> (span[0] >> FIELD_SHIFT)) & 1]


def _any_term(words: tuple[int, ...]) -> Evaluator:
    def evaluate(facts: Facts, fields: int) -> Found:
        if fields == ALL_FIELDS:
            present = facts.present
            found: list[Item] = [atom for atom in words if atom in present]
        else:
            found = [span for atom in words for span in _in_fields(facts.spans(atom), fields)]
        return found or None

    return evaluate


def _phrase(parts: list[int]) -> Evaluator:
    first, rest, last, needed = parts[0], tuple(enumerate(parts[1:], 1)), len(parts) - 1, frozenset(parts)

    def evaluate(facts: Facts, fields: int) -> Found:
        if not facts.present.issuperset(needed):
            return None
        starts = facts.places(first)
        for step, atom in rest:
            following = facts.positions(atom)
            starts = [start for start in starts if start + step in following]
        if fields != ALL_FIELDS:
            starts = [start for start in starts if (fields >> (start >> FIELD_SHIFT)) & 1]
        found: list[Item] = [(start, start + last) for start in starts]
        return found or None

    return evaluate


def _meta(atom: int) -> Evaluator:
    def evaluate(facts: Facts, fields: int) -> Found:
        return [] if atom in facts.present else None

    return evaluate


def _scope(bit: int, child: Evaluator) -> Evaluator:
    def evaluate(facts: Facts, fields: int) -> Found:
        return child(facts, fields & bit)

    return evaluate


def _not(child: Evaluator) -> Evaluator:
    def evaluate(facts: Facts, fields: int) -> Found:
        return [] if child(facts, fields) is None else None

    return evaluate


def _and(children: list[Evaluator]) -> Evaluator:
    def evaluate(facts: Facts, fields: int) -> Found:
        items: list[Item] = []
        for child in children:
            found = child(facts, fields)
            if found is None:
                return None
            items += found
        return items

    return evaluate


def _or(children: list[Evaluator]) -> Evaluator:
    def evaluate(facts: Facts, fields: int) -> Found:
        items: Found = None
        owned = False  # whether `items` is this call's own list, not a child's
        for child in children:
            found = child(facts, fields)
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

    return evaluate


def _near(left: Evaluator, right: Evaluator, distance: int) -> Evaluator:
    def evaluate(facts: Facts, fields: int) -> Found:
        sides = _near_sides(facts, left, right, fields)
        if sides is None:
            return None
        ones, others = sides
        if _all_atoms(ones) and _all_atoms(others):
            # Words on both sides (the usual case): compare places, not spans.
            places = close_places(_places(facts, ones), _places(facts, others), distance)
            return [(place, place) for place in places] or None
        pairs: list[Item] = list(close_pairs(_spans(facts, ones), _spans(facts, others), distance))
        return pairs or None

    return evaluate


def _near_sides(
    facts: Facts, left: Evaluator, right: Evaluator, fields: int
) -> tuple[list[Item], list[Item]] | None:
    """What the operands of a NEAR found, or None when one found nothing to be near (a true
    NOT or metadata test has no place): the NEAR is then false."""
    ones = left(facts, fields)
    if not ones:
        return None
    others = right(facts, fields)
    return (ones, others) if others else None


def _all_atoms(items: list[Item]) -> bool:
    return all([isinstance(item, int) for item in items])


def _places(facts: Facts, atoms: list[Item]) -> list[int]:
    """Where any of the atoms occurs, in reading order (a place twice if two atoms share it)."""
    if len(atoms) == 1:
        return facts.places(atoms[0])  # type: ignore[arg-type]
    return sorted([place for atom in atoms for place in facts.places(atom)])  # type: ignore[arg-type]


def close_places(ones: list[int], others: list[int], distance: int) -> list[int]:
    """The places of either sorted list within `distance` words of a place of the other."""
    return sorted({*_near_places(ones, others, distance), *_near_places(others, ones, distance)})


def _near_places(places: list[int], others: list[int], distance: int) -> list[int]:
    """The places within `distance` words of some place of `others`; both sorted."""
    near = []
    count, at = len(others), 0
    for place in places:
        # `at` walks `others` once: the first other not too far behind this place.
        while at < count and others[at] < place - distance:
            at += 1
        if at == count:
            break
        if others[at] <= place + distance:
            near.append(place)
    return near


def _spans(facts: Facts, items: list[Item]) -> Spans:
    spans: Spans = []
    for item in items:
        if isinstance(item, int):
            spans += facts.spans(item)
        else:
            spans.append(item)
    return spans


def close_pairs(ones: Spans, others: Spans, distance: int) -> Spans:
    """The spans of either list that lie within `distance` words of a span of the other."""
    ones, others = sorted(set(ones)), sorted(set(others))
    return _near_to(ones, others, distance) + _near_to(others, ones, distance)


def _near_to(spans: Spans, others: Spans, distance: int) -> Spans:
    """The spans within `distance` words of some span of `others` (sorted)."""
    starts = [start for start, _ in others]
    longest = max([end - start for start, end in others])
    near = []
    for start, end in spans:
        low = bisect_left(starts, start - distance - longest)
        high = bisect_right(starts, end + distance)
        if any(other_end >= start - distance for _, other_end in others[low:high]):
            near.append((start, end))
    return near


def flat_words(node: Node, atoms: Atoms) -> frozenset[int] | None:
    """For a flat query (ANDs, ORs and NOTs of words and metadata tests, no AND below an OR),
    whose hit words are simply its positive words that are present: their atoms. Else None."""
    if not _is_flat(node, under_or=False):
        return None
    return frozenset(atoms.find(term) for term in _positive_terms(node))


def _is_flat(node: Node, under_or: bool) -> bool:
    # A false AND below an OR would drop its present words from the hit; an AND on the path
    # from the root is true whenever the query is.
    if isinstance(node, Term | Meta):
        return True
    if isinstance(node, Not):
        return not _needs_places(node.child)
    if isinstance(node, And):
        return not under_or and all(_is_flat(child, under_or) for child in node.children)
    if isinstance(node, Or):
        return all(_is_flat(child, under_or=True) for child in node.children)
    return False  # phrases, NEAR and scopes need places


def _positive_terms(node: Node) -> list[Term]:
    if isinstance(node, Term):
        return [node]
    if isinstance(node, And | Or):
        return [term for child in node.children for term in _positive_terms(child)]
    return []  # NOT adds no words to a hit; metadata has none
