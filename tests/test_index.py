"""The FAISS index: stamps, rebuilds, and the switch to approximate search."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from conftest import index_ids

from mediasearch.catalog import Catalog, to_blob
from mediasearch.index import VectorIndex

MID = 3_000  # vectors in the catalogs most tests copy: an IVF index of 64 cells above a threshold of 1,000


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
def built(tmp_path_factory) -> Callable[[int], tuple[Path, np.ndarray]]:
    """Catalogs of clustered vectors by size, each written once (thousands take seconds) and kept."""
    made: dict[int, tuple[Path, np.ndarray]] = {}

    def of(count: int) -> tuple[Path, np.ndarray]:
        if count not in made:
            folder = tmp_path_factory.mktemp(f"vectors{count}") / "lib"
            data = clustered(count)
            catalog = Catalog(folder, write=True)
            fill(catalog, data)
            catalog.close()
            made[count] = folder, data
        return made[count]

    return of


def copied(built, tmp_path: Path, count: int):
    """This test's own copy of a built catalog, opened for writing; yields (catalog, vectors)."""
    folder, data = built(count)
    shutil.copytree(folder, tmp_path / "lib")
    catalog = Catalog(tmp_path / "lib", write=True)
    yield catalog, data
    catalog.close()


@pytest.fixture
def big(built, tmp_path):
    """12,000 vectors: enough for recall measured on k-means cells."""
    yield from copied(built, tmp_path, 12_000)


@pytest.fixture
def mid(built, tmp_path):
    """3,000 vectors: an IVF index of 64 cells above a threshold of 1,000."""
    yield from copied(built, tmp_path, MID)


def one_more(catalog: Catalog, vector: np.ndarray, name: str) -> list[int]:
    """Commit one more file of one segment, as a writer does (the catalog's generation moves on)."""
    root = catalog.add_root(str(catalog.folder / "synthetic"))
    record = {"root_id": root, "path": f"/synthetic/{name}", "rel": name, "kind": "image", "size": 1,
              "mtime": 0.0, "status": "indexed"}  # fmt: skip
    with catalog.transaction():
        _, added = catalog.put_file(record, [(None, None, to_blob(vector))])
    return added


def test_stale_stamp_triggers_rebuild(mid, rebuilds):
    catalog, data = mid
    index = VectorIndex(catalog).load()
    assert rebuilds == [index] and index.count == MID, "nothing saved yet: built from the catalog"
    index.save()
    assert VectorIndex(catalog).load().count == MID and len(rebuilds) == 1, "the saved file, as it was"
    added = one_more(catalog, data[0], "new.jpg")
    fresh = VectorIndex(catalog).load()
    assert rebuilds[-1] is fresh and fresh.count == MID + 1 and added[0] in index_ids(fresh.index)


@pytest.mark.slow  # trains k-means cells on 12,000 vectors twice over
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
    assert set(index_ids(approx.index)) == set(index_ids(exact.index)) - {int(i) for i in top[:5]}


def test_index_switches_form_on_save_and_reloads(mid, rebuilds):
    catalog, _ = mid
    index = VectorIndex(catalog, approximate_above=100_000).load()
    assert not index.approximate
    index.approximate_above = 1_000
    index.save()
    assert index.approximate
    again = VectorIndex(catalog, approximate_above=1_000).load()
    assert again not in rebuilds and again.approximate and again.count == MID


def test_a_reader_picks_up_the_writers_newer_index(mid, rebuilds):
    """A long-lived reader (another connection) reloads the file the writer saved, without a rebuild."""
    catalog, _ = mid
    writer = VectorIndex(catalog).load()
    writer.save()
    reader_catalog = Catalog(catalog.folder)
    reader = VectorIndex(reader_catalog).load()
    assert reader.count == MID and reader not in rebuilds
    vector = np.ones(512, np.float32) / np.sqrt(512)
    added = one_more(catalog, vector, "x.jpg")
    writer.apply([], added, vector[None])
    writer.save()
    reader.refresh()
    assert reader.count == MID + 1 and reader not in rebuilds
    reader_catalog.close()


def test_a_reader_keeps_the_saved_index_while_a_writer_is_at_work(tmp_path, rebuilds):
    """Serving beside `watch`: each commit must not make readers rebuild; the next save is picked up."""
    from mediasearch.storage import Storage

    writer = Storage(tmp_path / "lib", write=True)
    fill(writer.catalog, clustered(2_000))
    writer.save_index()
    reader = Storage(tmp_path / "lib")
    assert reader.vectors.count == 2_000 and reader.vectors not in rebuilds
    more = clustered(10, seed=3)
    one_more(writer.catalog, more[0], "new.jpg")
    reader.vectors.refresh()
    assert reader.vectors not in rebuilds and reader.vectors.count == 2_000, "the last saved index serves meanwhile"
    writer.save_index()
    reader.vectors.refresh()
    assert reader.vectors.count == 2_001 and reader.vectors not in rebuilds
    writer.close()
    with Storage(tmp_path / "lib", write=True) as again:
        one_more(again.catalog, more[1], "later.jpg")  # committed, and the writer gone without saving
    reader.vectors.refresh()
    assert reader.vectors in rebuilds and reader.vectors.count == 2_002, "with no writer at work, it is rebuilt"
    reader.close()
