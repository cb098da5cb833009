"""Properties over random queries and articles (Hypothesis).

The main one: the fast Matcher, with every query compiled together, finds exactly what the
plain reference evaluator finds query by query, with the same hit words.
"""

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from rules_reference import reference_match

from monitor.rules import Document, Matcher, QueryError, parse_query
from monitor.rules.nodes import (
    TEXT_FIELDS,
    And,
    Meta,
    Mode,
    Near,
    Not,
    Or,
    Phrase,
    Scope,
    Term,
    has_positions,
)
from monitor.rules.text import WORD_RE, split_words

FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Article words: inflections, case, compounds, hyphens, colons, accents, å/ä/ö, Cyrillic.
ARTICLE_WORDS = [
    "Kazakstan", "Kazakstans", "kazakstan", "KAZAKSTAN", "Kazakstan-Ryssland", "Kasakstan",
    "CSTO", "csto", "CSTO:s", "CSTO-styrkorna", "styrkorna", "försvarsalliansen", "alliansen",
    "allians", "år", "ar", "är", "Åre", "ÅR", "Tokajév", "Tokajev", "TOKAJEV", "ОДКБ", "одкб",
    "demonstration", "demonstrationer", "Kazán", "kazan", "och", "i", "på", "protester",
    "Ryssland", "Rysslands", "Almaty", "2022", "e-post", "Müller", "muller", "Peña", "s",
]  # fmt: skip
PUNCTUATION = [",", ".", ":", "!", "?", "(", ")", "«", "»", "–", "-", "'", "\n", "  "]

STEM_WORDS = [
    "kazakstan", "kazakstans", "csto", "s", "styrkorna", "allians", "alliansen", "år", "ar",
    "är", "are", "tokajev", "одкб", "demonstration", "demonstrationer", "kazan", "och",
    "ryssland", "2022", "post", "muller", "pena",
]  # fmt: skip
CASE_WORDS = ["CSTO", "csto", "Kazakstan", "ОДКБ", "Tokajév", "Åre", "styrkorna"]
WILDCARDS = [
    "kazak*", "*allians*", "*stan", "ka?akstan", "?r", "å*", "*s", "t*v", "csto*", "*2*",
    "d?m*r", "*ö*", "mul*", "*j?v",
]  # fmt: skip
METAS = [
    Meta("lang", "sv"), Meta("lang", "en"), Meta("lang", "sv*"), Meta("source", "svt*"),
    Meta("source", "dn"), Meta("source", "svt nyheter", literal=True), Meta("url", "*/utrikes/*"),
    Meta("url", "*kazakstan*"), Meta("url", "https://www.svt.se/*"), Meta("url", "?*"),
]  # fmt: skip


def _phrase(parts: list[str], mode: Mode) -> Phrase:
    return Phrase(tuple(Term(part, mode) for part in parts))


words = st.one_of(
    st.sampled_from(STEM_WORDS).map(lambda w: Term(w, Mode.STEM)),
    st.sampled_from(STEM_WORDS).map(lambda w: Term(w, Mode.EXACT)),
    st.sampled_from(CASE_WORDS).map(lambda w: Term(w, Mode.CASE)),
    st.sampled_from(WILDCARDS).map(lambda w: Term(w, Mode.WILDCARD)),
    st.lists(st.sampled_from(STEM_WORDS), min_size=2, max_size=3).map(lambda ws: _phrase(ws, Mode.EXACT)),
    st.lists(st.sampled_from(CASE_WORDS), min_size=2, max_size=2).map(lambda ws: _phrase(ws, Mode.CASE)),
)
leaves = st.one_of(words, words, st.sampled_from(METAS))


def _positional(node):
    return node if has_positions(node) else And((node, Term("kazakstan", Mode.STEM)))


def _extend(children):
    groups = st.lists(children, min_size=2, max_size=3).map(tuple)
    near = st.builds(
        lambda left, right, distance: Near(_positional(left), _positional(right), distance),
        children,
        children,
        st.integers(1, 6),
    )
    # NOT is drawn less often: a query under NOT mostly matches with no words to compare.
    return st.one_of(
        groups.map(And),
        groups.map(Or),
        groups.map(Or),
        near,
        near,
        st.builds(Scope, st.sampled_from(TEXT_FIELDS), children),
        children.map(Not),
    )


queries = st.recursive(leaves, _extend, max_leaves=7)

field_texts = st.lists(
    st.tuples(st.sampled_from(ARTICLE_WORDS + PUNCTUATION), st.sampled_from([" ", " ", ""])),
    min_size=3,
    max_size=40,
).map(lambda pairs: "".join(word + gap for word, gap in pairs))

documents = st.builds(
    Document,
    title=field_texts,
    summary=field_texts,
    text=field_texts,
    source=st.sampled_from(["SVT Nyheter", "svt", "DN", ""]),
    url=st.sampled_from(["https://www.svt.se/nyheter/utrikes/a", "https://dn.se/kazakstan", ""]),
    lang=st.sampled_from(["sv", "sv-SE", "en", "SV", ""]),
)


# Text that mixes words with every kind of separator: punctuation both ASCII and wide, odd
# white space, combining marks, soft hyphens, underscores, digits of other scripts.
texts = st.lists(
    st.one_of(
        st.sampled_from(ARTICLE_WORDS + PUNCTUATION),
        st.sampled_from(["_", "\u00a0", "\u2009", "\u00ad", "\u0301", "”", "…", "•", "١٢", "½", "€", "\t"]),
        st.characters(),
    ),
    max_size=30,
).map("".join)


@FAST
@given(texts)
def test_split_words_finds_what_the_word_regex_finds(text):
    assert split_words(text) == WORD_RE.findall(text)


def test_split_words_takes_lone_surrogates():
    # Text decoded with errors="surrogateescape" holds them; they separate words.
    assert split_words("Kazakstan\udcff–CSTO:s") == ["Kazakstan", "CSTO", "s"]


@FAST
@given(queries)
def test_printed_query_parses_back_to_the_same_tree(node):
    assert parse_query(str(node)) == node


@FAST
@given(
    st.lists(queries, min_size=1, max_size=6),
    st.lists(documents, min_size=1, max_size=3),
    st.sampled_from([0, 40, 1000]),
)
def test_matcher_agrees_with_reference(nodes, docs, cache_size):
    watchlists = {f"w{i}": str(node) for i, node in enumerate(nodes)}
    matcher = Matcher(watchlists, token_cache_size=cache_size)
    for doc in docs * 2:  # the second round runs on the matcher's warm word cache
        fast = {name: hit.words for name, hit in matcher.match(doc).items()}
        assert fast == reference_match(watchlists, doc)
        event(f"watchlists with hit words: {sum(1 for words in fast.values() if words)}")


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(queries, min_size=1, max_size=4), documents, st.integers(60, 140))
def test_matcher_agrees_with_reference_past_the_first_64_watchlists(nodes, doc, count):
    # The planner keeps one bit per watchlist in 64-bit words: cycle the queries so that each
    # lands on many positions, across word boundaries.
    watchlists = {f"w{i}": str(nodes[i % len(nodes)]) for i in range(count)}
    fast = {name: hit.words for name, hit in Matcher(watchlists).match(doc).items()}
    assert fast == reference_match(watchlists, doc)


@FAST
@given(queries, documents)
def test_snippet_spans_mark_whole_words_inside_the_snippet(node, doc):
    for found in Matcher({"w": str(node)}).match(doc).values():
        assert "\n" not in found.snippet
        previous_end = -1
        for start, end in found.snippet_spans:
            assert previous_end < start < end <= len(found.snippet)
            assert found.snippet[start].isalnum() and found.snippet[end - 1].isalnum()
            assert start == 0 or not found.snippet[start - 1].isalnum()
            assert end == len(found.snippet) or not found.snippet[end].isalnum()
            previous_end = end
        if found.words:
            assert found.snippet_spans, "the first hit is always in the snippet"


QUERY_PIECES = [
    "Kazakstan", "csto", "AND", "OR", "NOT", "NEAR/3", "NEAR/", "(", ")", '"', "{", "}", "title:",
    "url:", "lang:", "foo:", "*", "?", "-", ":", " ", "kazak*", "ОДКБ", "år",
]  # fmt: skip
query_texts = st.lists(st.sampled_from(QUERY_PIECES), max_size=12).map("".join)


@settings(max_examples=300, deadline=None)
@given(st.one_of(query_texts, st.text(max_size=20)))
def test_any_text_parses_or_fails_with_a_column(text):
    try:
        node = parse_query(text)
    except QueryError as error:
        assert 1 <= error.column <= len(text) + 1
        assert error.query == text
    else:
        assert parse_query(str(node)) == node
