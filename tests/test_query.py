"""The query language: words, -word and "a quoted phrase", parsed once for every face."""

from __future__ import annotations

from mediasearch.query import Term, parse, pushing_away


def test_words_minus_words_and_phrases():
    query = parse('red  car -truck "golden hour" -"parking lot"')
    assert query.terms == (
        Term("red"),
        Term("car"),
        Term("truck", negative=True),
        Term("golden hour", phrase=True),
        Term("parking lot", phrase=True, negative=True),
    )
    assert query.text == "red car golden hour"
    assert query.negative_texts == ["truck", "parking lot"]


def test_hyphens_inside_words_and_numbers_are_words():
    query = parse("well-known 555-0199 RE16-TGK")
    assert [t.text for t in query.terms] == ["well-known", "555-0199", "RE16-TGK"]
    assert not query.negative


def test_every_text_parses():
    assert parse('an "unclosed phrase').terms == (Term("an"), Term("unclosed phrase", phrase=True))
    assert parse('- "" -"" "   " -').terms == ()
    assert not parse(None) and not parse("")
    assert parse('say "hi  \tthere"').text == "say hi there"
    assert parse("-dog").text == "" and parse("-dog").negative_texts == ["dog"]


def test_not_texts_join_the_query_as_negative_phrases():
    assert parse(pushing_away("dog", ['a "puppy"', "cat"])).negative_texts == ["a puppy", "cat"]
    assert pushing_away("", ["rain"]) == '-"rain"'
