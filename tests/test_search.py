"""Queries over a real indexed folder, through the Python API: ranking, examples, filters."""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest
from conftest import open_library

import mediasearch
from mediasearch.errors import MediasearchError
from mediasearch.search import Filters, search
from mediasearch.storage import Storage


@pytest.fixture
def indexed(indexed_library, isolated, embedder):
    """A reader of this test's copy of the session's indexed sample library, and its media folder."""
    folder, _ = indexed_library
    with mediasearch.open(isolated / "library", model=embedder) as reader:
        yield reader, folder


def storage(library: mediasearch.Library) -> Storage:
    """The catalog and index under a public Library, for checking its answers against them."""
    return Storage(library.folder)


def brute_force(library: Storage, query: np.ndarray) -> list[tuple[str, float]]:
    """Best segment per file by plain numpy cosine over every stored vector."""
    best: dict[str, float] = {}
    for row in library.catalog.files_under("/"):
        if row.status == "indexed":
            best[row.path] = float((library.catalog.segment_vectors(row.id) @ query).max())
    return sorted(best.items(), key=lambda kv: -kv[1])


def test_ranking_equals_brute_force(indexed, embedder):
    """Where the query's words match no file's words (names, tags, text), the vectors alone rank."""
    library, _ = indexed
    with storage(library) as under:
        for text in ["an animal", "outer space", "music"]:
            hits = library.search(text, limit=20)
            expected = brute_force(under, embedder.embed_texts([text])[0])
            assert [h.path for h in hits] == [p for p, _ in expected]
            assert np.allclose([h.score for h in hits], [s for _, s in expected], atol=1e-5)


def test_indexed_example_file_finds_itself_first(indexed):
    library, folder = indexed
    for name in ("cat-chelsea.jpg", "chirp.wav"):
        hits = library.search(like=[folder / name], limit=3, include_examples=True)
        assert hits[0].path == str(folder / name) and hits[0].score == pytest.approx(1.0, abs=1e-5)
        assert str(folder / name) not in [h.path for h in library.search(like=[folder / name], limit=3)]


def test_unindexed_example_is_embedded(indexed, tmp_path):
    library, folder = indexed
    outside = tmp_path / "copy.jpg"
    outside.write_bytes((folder / "rocket-launch.jpg").read_bytes())
    hits = library.search(like=[outside], limit=1, include_examples=True)
    assert hits[0].path == str(folder / "rocket-launch.jpg") and hits[0].score > 0.9999


def test_long_recording_hit_names_its_window(indexed):
    library, folder = indexed
    with storage(library) as under:
        row = under.catalog.file(str(folder / "long-recording.flac"))
        second_window = under.catalog.segment_vectors(row.id)[1]
        hits = search(under, second_window, limit=1)
    assert (hits[0].path, hits[0].start, hits[0].end) == (str(folder / "long-recording.flac"), 8.0, 18.0)


def expected_scores(library, embedder, positive: str, negative: str) -> list[tuple[str, float]]:
    pos, neg = embedder.embed_texts([positive, negative])
    query = pos - 0.5 * neg
    with storage(library) as under:
        return brute_force(under, query / np.linalg.norm(query))


def test_negative_terms_are_subtracted_at_half_weight(indexed, embedder):
    library, _ = indexed
    expected = expected_scores(library, embedder, "an animal", "a puppy")  # words no file's words match
    for text in ('an animal -"a puppy"', '"an animal" -"a puppy"'):
        hits = library.search(text, limit=50)
        assert [h.path for h in hits] == [p for p, _ in expected]
        assert np.allclose([h.score for h in hits], [s for _, s in expected], atol=1e-5)


def test_a_minus_word_pushes_away_and_unlike_files_too(indexed, embedder):
    library, folder = indexed
    expected = expected_scores(library, embedder, "dog", "barking")
    assert [h.path for h in library.search("dog -barking", limit=50)] == [p for p, _ in expected]
    unlike = folder / "chirp.wav"
    plain = {h.path: h.score for h in library.search("dog", limit=50)}
    pushed = {h.path: h.score for h in library.search("dog", unlike=[unlike], limit=50)}
    assert str(unlike) not in pushed  # an example, pushed or pulled, is left out
    assert any(abs(pushed[p] - plain[p]) > 1e-4 for p in pushed)


def test_filters(indexed, embedder):
    library, folder = indexed
    query = embedder.embed_texts(["anything"])[0]
    library = storage(library)
    assert {h.kind for h in search(library, query, 50, Filters(kinds=["audio"]))} == {"audio"}
    assert len(search(library, query, 3)) == 3
    os.utime(folder / "chirp.wav", (1e9, 1e9))  # 2001
    os.utime(folder / "tone-a440.ogg", (1.6e9, 1.6e9))  # 2020
    with mediasearch.open(library.folder, model=embedder, write=True) as writer:  # a pass takes the new dates
        assert writer.index().reused == 2, "same content: the vectors are kept"
    old = search(library, query, 50, Filters(before=datetime(2010, 1, 1)))
    assert [Path(h.path).name for h in old] == ["chirp.wav"]
    # 2019-2020 holds the ogg alone (hubble-deep-field.jpg's EXIF says 2012; the rest keep today's mtime)
    mid = search(library, query, 50, Filters(after=datetime(2019, 1, 1), before=datetime(2021, 1, 1)))
    assert [Path(h.path).name for h in mid] == ["tone-a440.ogg"]
    top = search(library, query, 50)
    cut = top[3].score
    kept = search(library, query, 50, Filters(min_score=cut))
    assert [h.path for h in kept] == [h.path for h in top[:4]]
    (folder / "sub").mkdir()
    assert search(library, query, 50, Filters(within=[folder / "sub"])) == []


def test_empty_library_says_so(tmp_path, embedder):
    open_library(tmp_path / "empty", embedder.bundle).close()
    with mediasearch.open(tmp_path / "empty", model=embedder) as library:
        with pytest.raises(MediasearchError, match="library is empty"):
            library.search("x")


def test_a_query_needs_something_to_look_for(indexed):
    library, _ = indexed
    for text in (None, "", "   ", "-dog", '""'):
        with pytest.raises(mediasearch.UsageError, match="give a query"):
            library.search(text)


def test_undecodable_example_says_so(indexed, tmp_path):
    library, _ = indexed
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk")
    with pytest.raises(MediasearchError, match="example file .* cannot be used"):
        library.search(like=[bad])
