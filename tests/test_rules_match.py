"""Matching articles: every example of the query language, and what a Hit reports."""

import random

import pytest
from rules_reference import reference_match

from monitor.rules import Document, Hit, Matcher, QueryError, highlight, parse_query
from monitor.rules.compiler import Atoms, compile_query, required_clauses
from monitor.rules.planner import Plan


def matches(query: str, **fields: str) -> bool:
    doc = Document(**fields)
    found = "q" in Matcher({"q": query}).match(doc)
    # Every example is also checked against the plain reference evaluator.
    assert found == ("q" in reference_match({"q": query}, doc))
    return found


def hit(query: str, **fields: str) -> Hit:
    return Matcher({"q": query}).match(Document(**fields))["q"]


# Words: whole words, any case, in title, summary and text, with Swedish inflections.


@pytest.mark.parametrize("field", ["title", "summary", "text"])
def test_word_found_in_every_text_field(field):
    assert matches("Kazakstan", **{field: "Protesterna i kazakstan fortsätter"})


def test_stemming_is_snowball_not_a_dictionary():
    # Snowball cuts "allians" to "allian" but "alliansen" to "allians"; a wildcard covers both.
    assert not matches("allians", text="alliansen")
    assert matches("allians*", text="alliansen")


def test_quotes_turn_stemming_off():
    assert matches("Minsk", text="Priserna minskar")  # Snowball: both stem to "minsk"
    assert not matches('"Minsk"', text="Priserna minskar")
    assert matches('"Minsk"', text="toppmöte i Minsk")


def test_acronyms_match_as_written_in_any_case():
    assert not matches("OSSE", text="Det gäller oss alla")  # Snowball: osse -> oss
    assert matches("OSSE", text="OSSE:s valobservatörer")
    assert matches("OSSE", text="Osse")
    assert matches("Nato", text="Natos")


def test_word_is_whole_word_only():
    assert not matches("stan", text="Kazakstan")
    assert not matches("Kazak", text="Kazakstan")


@pytest.mark.parametrize(
    ("query", "text"),
    [
        ("Kazakstan", "Kazakstans president"),
        ("demonstration", "Stora demonstrationer i Almaty"),
        ("demonstrationer", "en demonstration"),
        ("försvarsalliansen", "försvarsalliansens medlemmar"),
        ("protest", "protesterna"),
        ("Ryssland", "Rysslands trupper"),
    ],
)
def test_bare_word_matches_inflections(query, text):
    assert matches(query, text=text)


def test_exact_phrase_is_written_form_in_order():
    assert matches('"Kazakstans president"', text="Enligt KAZAKSTANS PRESIDENT Tokajev")
    assert not matches('"Kazakstans president"', text="Kazakstan president")
    assert not matches('"Kazakstans president"', text="president Kazakstans")
    assert not matches('"Kazakstans president"', text="Kazakstans nye president")
    assert not matches('"Kazakstan"', text="Kazakstans")


def test_phrase_across_hyphen_and_colon():
    assert matches('"CSTO styrkorna"', text="CSTO-styrkorna drar sig tillbaka")
    assert matches("Kazakstan-Ryssland", text="Gränsen Kazakstan–Ryssland är lång")
    assert matches('"CSTO:s"', text="CSTO:s generalsekreterare")


def test_wildcards():
    assert matches("kazak*", text="Kazakstans")
    assert matches("kazak*", text="kazakiska")
    assert matches("*allians*", text="försvarsalliansen")
    assert matches("*allians*", text="militäralliansens")
    assert matches("kazak*", text="Kazakstanfrågan")
    assert not matches("*allians*", text="allans")
    assert matches("*stan", text="Kirgizistan")
    assert matches("ka?akstan", text="Kasakstan")  # also the Danish spelling
    assert not matches("ka?akstan", text="Kaakstan")
    assert matches("Tokaj?v", text="Tokajév")


def test_compound_parts_are_found():
    for text in ["CSTO-styrkorna", "CSTO:s", "(CSTO)", "CSTO."]:
        assert matches("CSTO", text=text), text
    assert matches("Ryssland", text="Kazakstan-Ryssland")
    assert matches("styrkorna", text="CSTO-styrkorna")


def test_case_sensitive_braces():
    assert matches("{CSTO}", text="CSTO-styrkorna")
    assert not matches("{CSTO}", text="csto")
    assert not matches("{CSTO}", text="Csto")
    assert matches("CSTO", text="csto")


def test_and_or_not_and_parentheses():
    text = "Kazakstan och Ryssland"
    assert matches("Kazakstan AND Ryssland", text=text)
    assert matches("Kazakstan Ryssland", text=text)
    assert not matches("Kazakstan Kina", text=text)
    assert matches("Kina OR Ryssland", text=text)
    assert not matches("Kazakstan NOT Ryssland", text=text)
    assert matches("Kazakstan NOT Kina", text=text)
    assert matches("(Kina OR Ryssland) Kazakstan", text=text)
    assert not matches("Kina OR (Ryssland AND Belarus)", text=text)


def test_lower_case_and_or_are_words():
    assert not matches("Kina or Ryssland", text="Ryssland")
    assert matches("Kina or Ryssland", text="Kina or Ryssland")


def test_near_either_order_within_distance():
    text = "Kazakstan har i dag bett CSTO om hjälp"
    assert matches("Kazakstan NEAR/5 CSTO", text=text)
    assert matches("CSTO NEAR/5 Kazakstan", text=text)
    assert not matches("Kazakstan NEAR/4 CSTO", text=text)  # five words apart


def test_near_with_phrases_and_groups():
    text = "Tokajev sa att Organisationen för kollektiv säkerhet skickar trupper till Almaty"
    assert matches('"kollektiv säkerhet" NEAR/4 trupper', text=text)
    assert matches('Tokajev NEAR/5 "kollektiv säkerhet"', text=text)
    assert not matches('Tokajev NEAR/4 "kollektiv säkerhet"', text=text)
    assert matches("(Putin OR Tokajev) NEAR/3 Organisationen", text=text)
    # A group stands where its matched words stand.
    assert matches("(Almaty Astana) NEAR/2 trupper", text="trupper till Almaty och Astana")
    assert not matches("(Almaty Astana) NEAR/2 trupper", text="trupper till Almaty")


def test_a_word_may_stand_on_both_sides_of_near():
    assert matches("Kazakstan NEAR/3 kazak*", text="Kazakstan")


def test_near_does_not_reach_across_fields():
    assert not matches("Kazakstan NEAR/5 CSTO", title="Kazakstan", summary="CSTO")


def test_title_scope():
    assert matches("title:Kazakstan", title="Kazakstan", text="inget")
    assert not matches("title:Kazakstan", title="inget", text="Kazakstan")
    assert matches("title:(Kazakstan OR Kirgizistan) CSTO", title="Kirgizistan", text="CSTO")


def test_text_and_summary_scopes():
    assert matches("text:CSTO", text="CSTO")
    assert not matches("text:CSTO", title="CSTO", summary="CSTO")
    assert matches("summary:(CSTO NOT Kina)", summary="CSTO", text="Kina")
    assert not matches("summary:(CSTO NOT Kina)", summary="CSTO Kina")


def test_phrase_does_not_run_across_fields():
    assert not matches('"Kazakstan CSTO"', title="Kazakstan", summary="CSTO")


def test_source_scope():
    assert matches("source:svt*", source="SVT Nyheter")
    assert not matches("source:svt*", source="Dagens Nyheter")
    assert matches('source:"Dagens Nyheter"', source="dagens nyheter")
    assert not matches("source:svt", source="SVT Nyheter")  # the whole name must match
    assert matches("source:svt*", source="svt-nyheter")


def test_url_scope():
    url = "https://www.svt.se/nyheter/utrikes/protester-i-kazakstan"
    assert matches("url:*/utrikes/*", url=url)
    assert not matches("url:*/inrikes/*", url=url)
    assert matches("url:https://www.svt.se/*", url=url)
    assert matches("url:(*/inrikes/* OR *kazakstan*)", url=url)


def test_lang_scope():
    assert matches("lang:sv", lang="sv")
    assert matches("lang:sv", lang="sv-SE")
    assert matches("lang:sv", lang="sv_FI")
    assert not matches("lang:sv", lang="en")
    assert matches("Kazakstan lang:sv", text="Kazakstan", lang="SV")


def test_swedish_letters_are_their_own():
    assert not matches("ar", text="år")
    assert not matches("år", text="ar")
    assert not matches("for", text="för")
    assert matches("ÅR", text="år")
    assert matches("Åre", text="ÅRE")


def test_other_accents_fold():
    assert matches("Kazan", text="Kazán")
    assert matches("Kazán", text="Kazan")
    assert matches("Tokajev", text="Tokajév")
    assert matches("Tokajév", text="TOKAJEV")
    assert matches("Muller", text="Müller")
    assert matches("Pena", text="Peña")
    assert matches("Erdogan", text="Erdoğan")
    assert matches("Tokajev", text="Tokaje\u0301v")  # accent typed as a combining mark


def test_cyrillic_as_written_any_case():
    assert matches("ОДКБ", text="Учения ОДКБ в Казахстане")
    assert matches("одкб", text="ОДКБ")
    assert not matches("Казахстан", text="в Казахстане")  # only Swedish is stemmed
    assert matches("Казахстан*", text="в Казахстане")
    assert matches("{ОДКБ}", text="ОДКБ")
    assert not matches("Токаев", text="Токаёв")


def test_operator_free_list_is_and():
    query = "Kazakstan CSTO Tokajev"
    assert matches(query, text="Tokajev bad CSTO om hjälp i Kazakstan")
    assert not matches(query, text="Tokajev bad om hjälp i Kazakstan")


def test_queries_without_any_positive_word():
    m = Matcher({"not": "NOT fotboll", "lang": "lang:sv", "both": "lang:sv NOT fotboll"})
    assert set(m.match(Document(text="Kazakstan", lang="sv"))) == {"not", "lang", "both"}
    assert set(m.match(Document(text="fotboll", lang="sv"))) == {"lang"}
    assert set(m.match(Document(text="Kazakstan", lang="en"))) == {"not"}


def test_many_watchlists_only_matching_ones_are_returned():
    m = Matcher({"kz": "Kazakstan", "kg": "Kirgizistan", "csto": "CSTO OR ОДКБ"})
    assert m.names == ["kz", "kg", "csto"]
    assert list(m.match(Document(text="ОДКБ i Kazakstan"))) == ["kz", "csto"]
    assert m.match(Document(text="inget här")) == {}


def test_candidates_are_the_watchlists_with_every_clause_met():
    # The planner's postings (a trigger clause per watchlist, the other clauses beside it)
    # give exactly the watchlists whose required clauses all hold, for any atoms present.
    queries = [
        "Kazakstan AND CSTO", "Ryssland OR (Nato NOT Sverige)", '"kollektiv säkerhet" NEAR/3 CSTO',
        "title:Almaty", "Tokajev* AND (protest OR demonstration)", "Kirgizistan CSTO Ryssland",
        "NOT fotboll", "lang:sv AND (Almaty OR Astana)",
    ]  # fmt: skip
    atoms = Atoms()
    clauses = []
    for query in queries * 20:  # across many watchlists, in any order of their clauses
        atoms.start_watchlist()
        form = compile_query(parse_query(query), atoms.add)
        clauses.append(required_clauses(form, cost=len))
    plan = Plan(clauses, atoms)
    rng = random.Random(5)
    count = len(atoms.keys)
    woken = set()
    for _ in range(500):
        present = set(rng.sample(range(count), rng.randint(0, count)))
        expected = [index for index, required in enumerate(clauses)
                    if all(not present.isdisjoint(clause) for clause in required)]
        found = plan.candidates(present)
        assert found == expected
        woken.update(found)
    assert woken == set(range(len(clauses)))


def _plan_of(queries: list[str]) -> Plan:
    atoms, clauses = Atoms(), []
    for query in queries:
        atoms.start_watchlist()
        clauses.append(required_clauses(compile_query(parse_query(query), atoms.add), cost=len))
    return Plan(clauses, atoms)


def test_plan_memory_follows_the_terms_in_use_not_terms_times_watchlists():
    # Each watchlist follows a word of its own: a table of atoms × watchlists grows with the
    # square of their number, the postings in step with it.
    def queries(count: int) -> list[str]:
        return [f"ord{n} AND (Kazakstan OR CSTO) NOT ord{n}x" for n in range(count)]

    small, large = _plan_of(queries(1_000)).nbytes(), _plan_of(queries(8_000)).nbytes()
    assert large <= 8.5 * small


def test_planner_needs_every_word_that_all_branches_of_an_or_share():
    atoms, node = Atoms(), parse_query('("Anna Berg" OR "Anna Bergs") AND (val OR "riksdagen")')
    form = compile_query(node, atoms.add)
    words = {atom: key[1] for atom, key in enumerate(atoms.keys)}
    clauses = required_clauses(form, cost=len)
    assert sorted(sorted(words[atom] for atom in clause) for clause in clauses) == [
        ["anna"], ["berg", "bergs"], ["riksdagen", "val"],
    ]  # fmt: skip


def test_bad_query_names_its_watchlist():
    with pytest.raises(QueryError) as caught:
        Matcher({"good": "Kazakstan", "bad": "Kazakstan AND"})
    assert caught.value.watchlist == "bad"
    assert caught.value.column == 11
    assert "watchlist 'bad'" in str(caught.value)


def test_hit_words_in_reading_order_written_form_and_deduped():
    found = hit(
        "Kazakstan OR CSTO OR Tokajev",
        title="CSTO i Kazakstan",
        summary="Kazakstans president",
        text="Tokajev och CSTO, Kazakstan.",
    )
    assert found.watchlist == "q"
    assert found.words == ("CSTO", "Kazakstan", "Kazakstans", "Tokajev")


def test_hit_words_leave_out_negated_and_unpaired_words():
    text = "Kazakstan. " + "fyllnad " * 8 + "CSTO ber om Kazakstan stöd"
    found = hit("Kazakstan NEAR/3 CSTO NOT Kina", text=text)
    assert found.words == ("CSTO", "Kazakstan")
    marked = highlight(found.snippet, found.snippet_spans)
    assert marked.startswith("Kazakstan. fyllnad")  # too far from CSTO: not marked
    assert marked.endswith("[CSTO] ber om [Kazakstan] stöd")


def test_hit_phrase_is_one_word_as_written():
    found = hit('"CSTO styrkorna"', text="Nu lämnar CSTO-styrkorna landet")
    assert found.words == ("CSTO-styrkorna",)
    assert highlight(found.snippet, found.snippet_spans) == "Nu lämnar [CSTO-styrkorna] landet"


def test_snippet_is_taken_from_the_field_of_the_first_hit():
    found = hit("CSTO", title="Nyheter", summary="Om CSTO i korthet", text="Mer om CSTO")
    assert found.snippet == "Om CSTO i korthet"
    assert found.snippet_spans == ((3, 7),)


def test_long_snippet_is_cut_at_words_around_the_first_hit():
    before = " ".join(f"ord{i}" for i in range(100))
    after = " ".join(f"text{i}" for i in range(100))
    found = hit("Kazakstan", text=f"{before} Kazakstan {after}")
    snippet = found.snippet
    assert snippet.startswith("…ord") and snippet.endswith("…")
    assert 150 <= len(snippet) <= 230
    for word in snippet.strip("…").split():
        assert word.startswith(("ord", "text")) or word == "Kazakstan"
    ((start, end),) = found.snippet_spans
    assert snippet[start:end] == "Kazakstan"


def test_snippet_is_one_line():
    found = hit("CSTO", text="Rubrik\n\nCSTO  skickar\ttrupper")
    assert found.snippet == "Rubrik CSTO skickar trupper"
    assert highlight(found.snippet, found.snippet_spans, "<b>", "</b>") == (
        "Rubrik <b>CSTO</b> skickar trupper"
    )


def test_metadata_only_hit_shows_the_start_of_the_article():
    found = hit("lang:sv", title="Rubrik", summary="Ingress här", lang="sv")
    assert found.words == ()
    assert found.snippet == "Ingress här"
    assert found.snippet_spans == ()


def test_highlight_merges_overlapping_spans():
    assert highlight("a CSTO b", [(2, 6), (2, 4)]) == "a [CSTO] b"
    assert highlight("a CSTO b", []) == "a CSTO b"


def test_token_cache_does_not_change_results():
    queries = {"kz": "kazak*", "csto": "{CSTO}"}
    cold = Matcher(queries, token_cache_size=0)
    warm = Matcher(queries)
    overflowing = Matcher(queries, token_cache_size=3)
    for text in ["CSTO i Kazakstan", "csto kazakiska", "CSTO i Kazakstan", "ny text om CSTO"]:
        doc = Document(text=text)
        assert cold.match(doc) == warm.match(doc) == overflowing.match(doc)


def nested(depth: int, inner: str) -> str:
    """ord0 OR (ord1 AND (ord2 OR (… inner …))): true when the odd words are present, the even
    ones absent, and `inner` holds."""
    return "".join(f"ord{i} {'AND' if i % 2 else 'OR'} (" for i in range(depth)) + inner + ")" * depth


ODD_WORDS = " ".join(f"ord{i}" for i in range(1, 50, 2))


@pytest.mark.parametrize(
    "query",
    [
        nested(50, "Kazakstan NEAR/2 CSTO"),
        "NOT (ord0 AND " * 24 + "NOT (Kazakstan NEAR/2 CSTO)" + ")" * 24,
        "NOT " * 50 + "Kazakstan",
    ],
)
def test_query_nested_to_the_limit_matches_like_the_reference(query):
    # The deciders are compiled to Python expressions: the deepest query
    # the parser takes must compile too.
    matcher = Matcher({"q": query})
    for text in [f"{ODD_WORDS} Kazakstan och CSTO", f"{ODD_WORDS} Kazakstan och och CSTO"]:
        doc = Document(text=text)
        assert {name: found.words for name, found in matcher.match(doc).items()} == reference_match(
            {"q": query}, doc
        )


def test_query_nested_to_the_limit_can_match():
    matcher = Matcher({"q": nested(50, "Kazakstan NEAR/2 CSTO")})
    found = matcher.match(Document(text=f"{ODD_WORDS} Kazakstan och CSTO"))
    assert found["q"].words[-2:] == ("Kazakstan", "CSTO")


@pytest.mark.parametrize("query", [nested(51, "Kazakstan"), "NOT " * 51 + "Kazakstan", nested(400, "x")])
def test_query_nested_past_the_limit_is_refused_with_a_caret(query):
    with pytest.raises(QueryError) as caught:
        Matcher({"deep": query})
    assert "nested more than 50 deep" in caught.value.message
    assert caught.value.watchlist == "deep"
    assert 1 <= caught.value.column <= len(query)
