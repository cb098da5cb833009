"""Parsing queries: the syntax tree they give, and the column of every kind of fault."""

import pytest

from monitor.rules import QueryError, parse_query
from monitor.rules.nodes import And, Meta, Mode, Near, Not, Or, Phrase, Scope, Term


def stem(text):
    return Term(text, Mode.STEM)


def exact(text):
    return Term(text, Mode.EXACT)


def test_bare_word_is_folded():
    assert parse_query("Kazakstan") == stem("kazakstan")
    assert parse_query("Tokajév") == stem("tokajev")
    assert parse_query("År") == stem("år")


def test_acronyms_are_not_stemmed():
    assert parse_query("OSSE") == exact("osse")
    assert parse_query("ОДКБ") == exact("одкб")
    assert parse_query("Nato") == stem("nato")


def test_words_side_by_side_mean_and():
    assert parse_query("Kazakstan CSTO protester") == And(
        (stem("kazakstan"), exact("csto"), stem("protester"))
    )


def test_explicit_operators():
    assert parse_query("a AND b") == And((stem("a"), stem("b")))
    assert parse_query("a OR b OR c") == Or((stem("a"), stem("b"), stem("c")))
    assert parse_query("NOT a") == Not(stem("a"))
    assert parse_query("a NEAR/5 b") == Near(stem("a"), stem("b"), 5)


def test_lower_case_operators_are_words():
    assert parse_query("rock and roll") == And((stem("rock"), stem("and"), stem("roll")))
    assert parse_query("this or that") == And((stem("this"), stem("or"), stem("that")))
    assert parse_query("not near") == And((stem("not"), stem("near")))


def test_precedence_not_near_and_or():
    assert parse_query("a OR b c") == Or((stem("a"), And((stem("b"), stem("c")))))
    assert parse_query("a b OR c") == Or((And((stem("a"), stem("b"))), stem("c")))
    assert parse_query("a NEAR/3 b c") == And((Near(stem("a"), stem("b"), 3), stem("c")))
    assert parse_query("a AND NOT b") == And((stem("a"), Not(stem("b"))))
    assert parse_query("a NOT b") == And((stem("a"), Not(stem("b"))))
    assert parse_query("NOT a OR b") == Or((Not(stem("a")), stem("b")))
    assert parse_query("a NOT b OR c") == Or((And((stem("a"), Not(stem("b")))), stem("c")))
    assert parse_query("a NEAR/2 b NEAR/4 c") == Near(Near(stem("a"), stem("b"), 2), stem("c"), 4)


def test_parentheses_group():
    assert parse_query("(a OR b) c") == And((Or((stem("a"), stem("b"))), stem("c")))
    assert parse_query("((a))") == stem("a")
    assert parse_query("a (b c)") == And((stem("a"), And((stem("b"), stem("c")))))


def test_phrase_and_exact_word():
    assert parse_query('"Kollektiva säkerhetsfördraget"') == Phrase(
        (exact("kollektiva"), exact("säkerhetsfördraget"))
    )
    assert parse_query('"Kazakstan"') == exact("kazakstan")


def test_case_sensitive_term():
    assert parse_query("{CSTO}") == Term("CSTO", Mode.CASE)
    assert parse_query("{CSTO-styrkorna}") == Phrase((Term("CSTO", Mode.CASE), Term("styrkorna", Mode.CASE)))


def test_term_with_punctuation_is_phrase_of_its_parts():
    assert parse_query("Kazakstan-Ryssland") == Phrase((exact("kazakstan"), exact("ryssland")))
    assert parse_query("12:30") == Phrase((exact("12"), exact("30")))
    # Punctuation only at the edges leaves a single word.
    assert parse_query("Kazakstan,") == stem("kazakstan")


def test_wildcards():
    assert parse_query("Kazak*") == Term("kazak*", Mode.WILDCARD)
    assert parse_query("*allians*") == Term("*allians*", Mode.WILDCARD)
    assert parse_query("k?zakstan") == Term("k?zakstan", Mode.WILDCARD)
    assert parse_query("kaz**") == Term("kaz*", Mode.WILDCARD)


def test_text_scopes():
    assert parse_query("title:Kazakstan") == Scope("title", stem("kazakstan"))
    assert parse_query("text:(a OR b)") == Scope("text", Or((stem("a"), stem("b"))))
    assert parse_query("summary:{CSTO}") == Scope("summary", Term("CSTO", Mode.CASE))
    assert parse_query("Title:x") == Scope("title", stem("x"))


def test_metadata_scopes_read_raw_globs():
    assert parse_query("source:svt*") == Meta("source", "svt*")
    assert parse_query("url:*/utrikes/*") == Meta("url", "*/utrikes/*")
    assert parse_query("url:https://www.svt.se/nyheter/*") == Meta("url", "https://www.svt.se/nyheter/*")
    assert parse_query("lang:sv") == Meta("lang", "sv")
    assert parse_query('source:"SVT Nyheter"') == Meta("source", "svt nyheter", literal=True)


def test_metadata_scope_group():
    assert parse_query("url:(*/utrikes/* OR *ryssland*) Kazakstan") == And(
        (Or((Meta("url", "*/utrikes/*"), Meta("url", "*ryssland*"))), stem("kazakstan"))
    )
    assert parse_query("source:(NOT svt*)") == Not(Meta("source", "svt*"))


def test_near_with_phrase_and_group():
    assert parse_query('"säkerhets fördrag" NEAR/10 (Kazakstan OR Kirgizistan)') == Near(
        Phrase((exact("säkerhets"), exact("fördrag"))),
        Or((stem("kazakstan"), stem("kirgizistan"))),
        10,
    )


@pytest.mark.parametrize(
    "query",
    [
        "Kazakstan",
        "a AND b AND (c OR d)",
        'title:("CSTO styrkor" OR kazak*) NOT source:svt*',
        "(a NEAR/3 b) NEAR/5 {CSTO}",
        "NOT NOT x",
        "url:*/utrikes/* lang:sv",
        'source:"svt nyheter" OR text:(NOT (a b))',
    ],
)
def test_printed_tree_parses_back_to_itself(query):
    tree = parse_query(query)
    assert parse_query(str(tree)) == tree


@pytest.mark.parametrize(
    ("query", "column", "message"),
    [
        ("", 1, "empty query"),
        ("   ", 1, "empty query"),
        ("(Kazakstan OR CSTO", 1, "never closed"),
        ("Kazakstan (CSTO OR (ОДКБ)", 11, "never closed"),
        ("Kazakstan)", 10, "without a matching '('"),
        ("Kazakstan AND", 11, "AND needs a term after it"),
        ("Kazakstan OR", 11, "OR needs a term after it"),
        ("OR Kazakstan", 1, "OR needs a term before it"),
        ("a AND OR b", 3, "AND needs a term after it"),
        ("NOT", 1, "NOT needs a term after it"),
        ("(a AND) b", 4, "AND needs a term after it"),
        ("()", 1, "empty parentheses"),
        ("a NEAR/ b", 3, "NEAR needs a distance"),
        ("a NEAR b", 3, "NEAR needs a distance"),
        ("a NEAR/x b", 3, "NEAR needs a distance"),
        ("a NEAR/0 b", 3, "between 1 and"),
        ("a NEAR/5", 3, "NEAR/5 needs a term after it"),
        ("a NEAR/5 NOT b", 3, "NEAR needs words or phrases on both sides"),
        ("lang:sv NEAR/5 b", 9, "NEAR needs words or phrases on both sides"),
        ("Kazakstan rubrik:(CSTO)", 11, "unknown scope 'rubrik:'"),
        ("CSTO:s", 1, "unknown scope 'CSTO:'"),
        ('Kazakstan "CSTO', 11, "unterminated quote"),
        ("{CSTO", 1, "unterminated brace"),
        ("CSTO}", 5, "'}' without a matching '{'"),
        ("*", 1, "at least one letter"),
        ("a OR ?*", 6, "at least one letter"),
        ("CSTO-*", 5, "wildcard term can only hold"),
        ('"kazak* ryss"', 7, "cannot be used inside quotes"),
        ("{CST?}", 5, "cannot be used inside { }"),
        ('""', 1, "empty phrase"),
        ("title:", 1, "title: needs a word"),
        ("title: OR x", 1, "title: needs a word"),
        ("url:*", 5, "a lone * matches everything"),
        ("---", 1, "no letters or digits"),
    ],
)
def test_errors_point_at_the_fault(query, column, message):
    with pytest.raises(QueryError) as caught:
        parse_query(query)
    error = caught.value
    assert message in error.message
    assert error.column == column
    assert error.query == query


def test_error_text_shows_a_caret_under_the_fault():
    with pytest.raises(QueryError) as caught:
        parse_query("Kazakstan AND")
    lines = str(caught.value).splitlines()
    assert lines[1].strip() == "Kazakstan AND"
    assert lines[2].index("^") == lines[1].index("AND")
