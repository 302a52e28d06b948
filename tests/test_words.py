"""Word normalisation: what users expect a text match to forgive."""

from __future__ import annotations

from mediasearch.words import name_words, query_terms, terms


def test_case_and_accents_fold_both_ways():
    assert terms("Café Müller") == terms("cafe muller") == ["cafe", "muller"]
    assert terms("Große Straße") == ["grosse", "strasse"]
    assert terms("Smørrebrød Ærø") == ["smorrebrod", "aero"]


def test_words_joined_by_punctuation_are_kept_whole_and_split():
    assert terms("Wi-Fi") == ["wi", "fi", "wifi"]
    assert set(terms("2024-0815")) == {"2024", "0815", "20240815"}


def test_names_split_into_words():
    assert name_words("family/grandmaBirthday_cake.png") == "family grandma Birthday cake"
    assert "tram in Alfama" in name_words("trips/IMG_4412 - tram in Alfama.jpg")
    assert name_words("Reykjavik 2019/DSC_0001.jpg").startswith("Reykjavik 2019")
    assert name_words("garden/TomatoHarvest2021.png") == "garden Tomato Harvest 2021"


def test_stop_words_never_match_alone():
    assert query_terms("a photo of the") == []
    assert query_terms("photo of the ferry") == ["ferry"]
