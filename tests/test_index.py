"""The FAISS index: stamps, rebuilds, and the switch to approximate search."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import index_ids

from mediasearch.catalog import Catalog, to_blob
from mediasearch.index import VectorIndex


def clustered(count: int, clusters: int = 50, seed: int = 0) -> np.ndarray:
    """Unit vectors in tight clusters, like embeddings of similar photos and sounds."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(clusters, 512))
    points = centres[rng.integers(0, clusters, count)] + rng.normal(scale=0.35, size=(count, 512))
    return (points / np.linalg.norm(points, axis=1, keepdims=True)).astype(np.float32)


def fill(catalog: Catalog, vectors: np.ndarray) -> None:
    root = catalog.add_root(str(catalog.folder / "synthetic"))
    with catalog.transaction():
        for i, vec in enumerate(vectors):
            record = {
                "root_id": root,
                "path": f"/synthetic/{i}.jpg",
                "rel": f"{i}.jpg",
                "kind": "image",
                "size": 1,
                "mtime": 0.0,
                "status": "indexed",
            }
            catalog.put_file(record, [(None, None, to_blob(vec))])


@pytest.fixture(scope="module")
def big_built(tmp_path_factory) -> tuple[Path, np.ndarray]:
    """A catalog of 12,000 clustered vectors, written once (it takes seconds) and copied per test."""
    folder = tmp_path_factory.mktemp("big") / "lib"
    data = clustered(12_000)
    catalog = Catalog(folder, write=True)
    fill(catalog, data)
    catalog.close()
    return folder, data


@pytest.fixture
def big(big_built, tmp_path):
    folder, data = big_built
    shutil.copytree(folder, tmp_path / "lib")
    catalog = Catalog(tmp_path / "lib", write=True)
    yield catalog, data
    catalog.close()


def test_stale_stamp_triggers_rebuild(big):
    catalog, _ = big
    index = VectorIndex(catalog).load()
    assert index.rebuilt and index.count == 12_000
    index.save()
    assert not VectorIndex(catalog).load().rebuilt
    catalog.conn.execute("UPDATE meta SET value = value + 1 WHERE key = 'generation'")
    assert VectorIndex(catalog).load().rebuilt


def test_approximate_index_recall_and_deletions(big):
    catalog, data = big
    exact = VectorIndex(catalog, approximate_above=100_000).load()
    approx = VectorIndex(catalog, approximate_above=5_000).load()
    assert approx.approximate and not exact.approximate
    queries = clustered(200, seed=9)
    hits = 0
    for q in queries:
        _, want = exact.search(q, 10)
        _, got = approx.search(q, 10)
        hits += len(set(want) & set(got))
    recall = hits / (10 * len(queries))
    assert recall >= 0.95, recall
    # deletions keep working after the switch
    _, top = approx.search(queries[0], 10)
    approx.apply([int(i) for i in top[:5]], [], None)
    assert approx.count == 12_000 - 5
    _, after = approx.search(queries[0], 10)
    assert not set(top[:5]) & set(after)
    assert set(index_ids(approx)) == set(index_ids(exact)) - {int(i) for i in top[:5]}


def test_index_switches_form_on_save_and_reloads(big):
    catalog, _ = big
    index = VectorIndex(catalog, approximate_above=100_000).load()
    index.approximate_above = 5_000
    index.save()
    assert index.approximate
    again = VectorIndex(catalog, approximate_above=5_000).load()
    assert not again.rebuilt and again.approximate and again.count == 12_000


def test_a_reader_picks_up_the_writers_newer_index(big):
    """A long-lived reader (another connection) reloads the file the writer saved, without a rebuild."""
    catalog, _ = big
    writer = VectorIndex(catalog).load()
    writer.save()
    reader_catalog = Catalog(catalog.folder)
    reader = VectorIndex(reader_catalog).load()
    assert not reader.rebuilt and reader.count == 12_000
    fill_more = np.ones((1, 512), np.float32) / np.sqrt(512)
    with catalog.transaction():
        root = catalog.add_root(str(catalog.folder / "more"))
        _, added = catalog.put_file(
            {
                "root_id": root,
                "path": "/more/x.jpg",
                "rel": "x.jpg",
                "kind": "image",
                "size": 1,
                "mtime": 0.0,
                "status": "indexed",
            },
            [(None, None, to_blob(fill_more[0]))],
        )
    writer.apply([], added, fill_more)
    writer.save()
    reader.refresh()
    assert reader.count == 12_001 and not reader.rebuilt
    reader_catalog.close()


def test_a_reader_keeps_the_saved_index_while_a_writer_is_at_work(tmp_path):
    """Serving beside `watch`: each commit must not make readers rebuild; the next save is picked up."""
    from mediasearch.library import Library

    writer = Library(tmp_path / "lib", write=True)
    fill(writer.catalog, clustered(2_000))
    writer.save_index()
    reader = Library(tmp_path / "lib")
    assert reader.vectors.count == 2_000 and not reader.vectors.rebuilt
    more = clustered(10, seed=3)
    with writer.catalog.transaction():
        writer.catalog.put_file(
            {"root_id": 1, "path": "/synthetic/new.jpg", "rel": "new.jpg", "kind": "image", "size": 1,
             "mtime": 0.0, "status": "indexed"},
            [(None, None, to_blob(more[0]))],
        )  # fmt: skip
    reader.vectors.refresh()
    assert not reader.vectors.rebuilt and reader.vectors.count == 2_000, "the last saved index serves meanwhile"
    writer.save_index()
    reader.vectors.refresh()
    assert reader.vectors.count == 2_001 and not reader.vectors.rebuilt
    writer.close()
    with Library(tmp_path / "lib", write=True) as again:
        again.catalog.conn.execute("UPDATE meta SET value = value + 1 WHERE key = 'generation'")
    reader.vectors.refresh()
    assert reader.vectors.rebuilt, "with no writer at work, a stale index is rebuilt"
    reader.close()
