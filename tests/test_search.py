"""Queries over a real indexed folder: ranking, examples, filters."""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest

from mediasearch.catalog import Catalog
from mediasearch.errors import MediasearchError
from mediasearch.index import VectorIndex
from mediasearch.ingest import Indexer, check_model
from mediasearch.search import Filters, query_vector, search


@pytest.fixture
def indexed(tmp_path, media_dir, embedder):
    catalog = Catalog(tmp_path / "lib")
    check_model(catalog, embedder.bundle)
    indexer = Indexer(catalog, VectorIndex(catalog), lambda: embedder)
    indexer.scan([media_dir.resolve()])
    indexer.vectors.save()
    yield catalog, VectorIndex(catalog).load(), media_dir.resolve()
    catalog.close()


def brute_force(catalog: Catalog, query: np.ndarray) -> list[tuple[str, float]]:
    """Best segment per file by plain numpy cosine over every stored vector."""
    rows = catalog.conn.execute("SELECT f.path, s.vector FROM segments s JOIN files f ON f.id = s.file_id").fetchall()
    best: dict[str, float] = {}
    for path, blob in rows:
        score = float(np.frombuffer(blob, "<f4") @ query)
        best[path] = max(best.get(path, -2.0), score)
    return sorted(best.items(), key=lambda kv: -kv[1])


def test_ranking_equals_brute_force(indexed, embedder):
    catalog, vectors, _ = indexed
    for text in ["a dog barking", "a cat", "rain"]:
        query = query_vector(catalog, lambda: embedder, [text], [], [])
        hits = search(catalog, vectors, query, limit=20)
        expected = brute_force(catalog, query)
        assert [h.path for h in hits] == [p for p, _ in expected]
        assert np.allclose([h.score for h in hits], [s for _, s in expected], atol=1e-5)


def test_indexed_example_file_finds_itself_first(indexed, embedder):
    catalog, vectors, folder = indexed
    for name in ("cat-chelsea.jpg", "chirp.wav"):
        query = query_vector(catalog, lambda: embedder, [], [folder / name], [])
        hits = search(catalog, vectors, query, limit=3)
        assert hits[0].path == str(folder / name) and hits[0].score == pytest.approx(1.0, abs=1e-5)


def test_unindexed_example_is_embedded(indexed, embedder, tmp_path):
    catalog, vectors, folder = indexed
    outside = tmp_path / "copy.jpg"
    outside.write_bytes((folder / "rocket-launch.jpg").read_bytes())
    hits = search(catalog, vectors, query_vector(catalog, lambda: embedder, [], [outside], []), limit=1)
    assert hits[0].path == str(folder / "rocket-launch.jpg") and hits[0].score > 0.9999


def test_long_recording_hit_names_its_window(indexed, embedder):
    catalog, vectors, folder = indexed
    row = catalog.file(str(folder / "long-recording.flac"))
    second_window = catalog.segment_vectors(row.id)[1]
    hits = search(catalog, vectors, second_window, limit=1)
    assert (hits[0].path, hits[0].start, hits[0].end) == (str(folder / "long-recording.flac"), 8.0, 18.0)


def test_negative_terms_are_subtracted_at_half_weight(indexed, embedder):
    catalog, _, _ = indexed
    q = query_vector(catalog, lambda: embedder, ["a dog"], [], ["a puppy"])
    pos, neg = embedder.embed_texts(["a dog", "a puppy"])
    expected = pos - 0.5 * neg
    assert np.allclose(q, expected / np.linalg.norm(expected), atol=1e-6)


def test_filters(indexed, embedder):
    catalog, vectors, folder = indexed
    query = query_vector(catalog, lambda: embedder, ["anything"], [], [])
    assert {h.kind for h in search(catalog, vectors, query, 50, Filters(kinds=["audio"]))} == {"audio"}
    assert len(search(catalog, vectors, query, 3)) == 3
    os.utime(folder / "chirp.wav", (1e9, 1e9))  # 2001
    os.utime(folder / "tone-a440.ogg", (1.6e9, 1.6e9))  # 2020
    catalog.conn.execute("UPDATE files SET mtime = 1e9 WHERE path = ?", (str(folder / "chirp.wav"),))
    catalog.conn.execute("UPDATE files SET mtime = 1.6e9 WHERE path = ?", (str(folder / "tone-a440.ogg"),))
    old = search(catalog, vectors, query, 50, Filters(before=datetime(2010, 1, 1)))
    assert [Path(h.path).name for h in old] == ["chirp.wav"]
    mid = search(catalog, vectors, query, 50, Filters(after=datetime(2010, 1, 1), before=datetime(2021, 1, 1)))
    assert [Path(h.path).name for h in mid] == ["tone-a440.ogg"]
    top = search(catalog, vectors, query, 50)
    cut = top[3].score
    assert all(h.score >= cut for h in search(catalog, vectors, query, 50, Filters(min_score=cut)))
    (folder / "sub").mkdir()
    assert search(catalog, vectors, query, 50, Filters(within=[folder / "sub"])) == []


def test_empty_library_says_so(tmp_path, embedder):
    catalog = Catalog(tmp_path / "empty")
    with pytest.raises(MediasearchError, match="library is empty"):
        search(catalog, VectorIndex(catalog).load(), embedder.embed_texts(["x"])[0])
    catalog.close()


def test_undecodable_example_says_so(indexed, embedder, tmp_path):
    catalog, _, _ = indexed
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk")
    with pytest.raises(MediasearchError, match="example file .* cannot be used"):
        query_vector(catalog, lambda: embedder, [], [bad], [])
