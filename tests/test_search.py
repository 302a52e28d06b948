"""Queries over a real indexed folder: ranking, examples, filters."""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest
from conftest import open_library

from mediasearch.errors import MediasearchError
from mediasearch.ingest import Indexer
from mediasearch.library import Library
from mediasearch.search import Filters, query_vector, search


@pytest.fixture
def indexed(tmp_path, media_dir, embedder):
    with open_library(tmp_path / "lib", embedder.bundle) as writer:
        Indexer(writer, lambda: embedder).scan(writer.add_folders([str(media_dir.resolve())]))
        writer.save_index()
    with Library(tmp_path / "lib") as reader:
        yield reader, media_dir.resolve()


def brute_force(library: Library, query: np.ndarray) -> list[tuple[str, float]]:
    """Best segment per file by plain numpy cosine over every stored vector."""
    rows = library.catalog.conn.execute(
        "SELECT f.path, s.vector FROM segments s JOIN files f ON f.id = s.file_id"
    ).fetchall()
    best: dict[str, float] = {}
    for path, blob in rows:
        score = float(np.frombuffer(blob, "<f4") @ query)
        best[os.fsdecode(path)] = max(best.get(os.fsdecode(path), -2.0), score)
    return sorted(best.items(), key=lambda kv: -kv[1])


def test_ranking_equals_brute_force(indexed, embedder):
    library, _ = indexed
    for text in ["a dog barking", "a cat", "rain"]:
        query = query_vector(library, lambda: embedder, [text], [], [])
        hits = search(library, query, limit=20)
        expected = brute_force(library, query)
        assert [h.path for h in hits] == [p for p, _ in expected]
        assert np.allclose([h.score for h in hits], [s for _, s in expected], atol=1e-5)


def test_indexed_example_file_finds_itself_first(indexed, embedder):
    library, folder = indexed
    for name in ("cat-chelsea.jpg", "chirp.wav"):
        query = query_vector(library, lambda: embedder, [], [folder / name], [])
        hits = search(library, query, limit=3)
        assert hits[0].path == str(folder / name) and hits[0].score == pytest.approx(1.0, abs=1e-5)


def test_unindexed_example_is_embedded(indexed, embedder, tmp_path):
    library, folder = indexed
    outside = tmp_path / "copy.jpg"
    outside.write_bytes((folder / "rocket-launch.jpg").read_bytes())
    hits = search(library, query_vector(library, lambda: embedder, [], [outside], []), limit=1)
    assert hits[0].path == str(folder / "rocket-launch.jpg") and hits[0].score > 0.9999


def test_long_recording_hit_names_its_window(indexed, embedder):
    library, folder = indexed
    row = library.catalog.file(str(folder / "long-recording.flac"))
    second_window = library.catalog.segment_vectors(row.id)[1]
    hits = search(library, second_window, limit=1)
    assert (hits[0].path, hits[0].start, hits[0].end) == (str(folder / "long-recording.flac"), 8.0, 18.0)


def test_negative_terms_are_subtracted_at_half_weight(indexed, embedder):
    library, _ = indexed
    q = query_vector(library, lambda: embedder, ["a dog"], [], ["a puppy"])
    pos, neg = embedder.embed_texts(["a dog", "a puppy"])
    expected = pos - 0.5 * neg
    assert np.allclose(q, expected / np.linalg.norm(expected), atol=1e-6)


def test_filters(indexed, embedder):
    library, folder = indexed
    query = query_vector(library, lambda: embedder, ["anything"], [], [])
    assert {h.kind for h in search(library, query, 50, Filters(kinds=["audio"]))} == {"audio"}
    assert len(search(library, query, 3)) == 3
    os.utime(folder / "chirp.wav", (1e9, 1e9))  # 2001
    os.utime(folder / "tone-a440.ogg", (1.6e9, 1.6e9))  # 2020
    with Library(library.folder, write=True) as writer:
        writer.catalog.conn.execute("UPDATE files SET mtime = 1e9 WHERE path = ?", (os.fsencode(folder / "chirp.wav"),))
        writer.catalog.conn.execute(
            "UPDATE files SET mtime = 1.6e9 WHERE path = ?", (os.fsencode(folder / "tone-a440.ogg"),)
        )
    old = search(library, query, 50, Filters(before=datetime(2010, 1, 1)))
    assert [Path(h.path).name for h in old] == ["chirp.wav"]
    mid = search(library, query, 50, Filters(after=datetime(2010, 1, 1), before=datetime(2021, 1, 1)))
    assert [Path(h.path).name for h in mid] == ["tone-a440.ogg"]
    top = search(library, query, 50)
    cut = top[3].score
    kept = search(library, query, 50, Filters(min_score=cut))
    assert [h.path for h in kept] == [h.path for h in top[:4]]
    (folder / "sub").mkdir()
    assert search(library, query, 50, Filters(within=[folder / "sub"])) == []


def test_empty_library_says_so(tmp_path, embedder):
    open_library(tmp_path / "empty", embedder.bundle).close()
    with Library(tmp_path / "empty") as library, pytest.raises(MediasearchError, match="library is empty"):
        search(library, embedder.embed_texts(["x"])[0])


def test_undecodable_example_says_so(indexed, embedder, tmp_path):
    library, _ = indexed
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk")
    with pytest.raises(MediasearchError, match="example file .* cannot be used"):
        query_vector(library, lambda: embedder, [], [bad], [])
