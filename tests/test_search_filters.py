"""Filters on a library large enough for the approximate index: every matching result, ranked right."""

from __future__ import annotations

import time
from datetime import datetime
from typing import NamedTuple

import numpy as np
import pytest
from test_index import clustered

from mediasearch import search as search_module
from mediasearch.catalog import Catalog
from mediasearch.index import VectorIndex
from mediasearch.search import Filters, search
from mediasearch.storage import Storage

FILES = 6_000  # two segments each: 12,000 vectors, an IVF index at the threshold below
DAY = 86_400.0
START = datetime(2024, 1, 1).timestamp()


@pytest.fixture(scope="module")
def big(tmp_path_factory):
    """Files in 60 folders; 1% are sounds; mtimes spread over 100 days; saved as an IVF index."""
    folder = tmp_path_factory.mktemp("filters") / "lib"
    catalog = Catalog(folder, write=True)
    vectors = clustered(2 * FILES, clusters=80, seed=4)
    root = catalog.add_root("/archive")
    with catalog.transaction():
        for i in range(FILES):
            kind = "audio" if i % 100 == 7 else "image"
            catalog.put_file(
                {
                    "root_id": root,
                    "path": f"/archive/f{i % 60:02}/{i:05}.{'wav' if kind == 'audio' else 'jpg'}",
                    "rel": f"f{i % 60:02}/{i:05}",
                    "kind": kind,
                    "size": 1,
                    "mtime": START + (i * 7 % 100) * DAY,
                    "hash": f"h{i}",
                    "status": "indexed",
                },
                [(0.0, 10.0, vectors[2 * i].tobytes()), (8.0, 18.0, vectors[2 * i + 1].tobytes())],
            )
    index = VectorIndex(catalog, approximate_above=5_000).load()
    index.save()
    assert index.approximate
    catalog.close()
    with Storage(folder) as library:
        assert library.vectors.approximate
        yield library, vectors


class Everything(NamedTuple):
    """Every stored vector with its file's facts, read once through the catalog's own calls."""

    vectors: np.ndarray
    facts: list[dict]


@pytest.fixture(scope="module")
def everything(big) -> Everything:
    library, _ = big
    vectors, facts = [], []
    for ids, batch in library.catalog.all_vectors():
        found = library.catalog.hits(ids.tolist())
        vectors.append(batch)
        facts += [found[i] for i in ids.tolist()]
    return Everything(np.concatenate(vectors), facts)


def brute_force(everything: Everything, query: np.ndarray, filters: Filters, limit: int) -> list[tuple[str, float]]:
    """The best segment per file among those the filters accept, by plain numpy cosine over every vector."""
    best: dict[str, float] = {}
    for facts, score in zip(everything.facts, (everything.vectors @ query).tolist(), strict=True):
        if filters.accept(facts, score):
            best[facts["path"]] = max(best.get(facts["path"], -2.0), score)
    return sorted(best.items(), key=lambda kv: -kv[1])[:limit]


SELECTIVE_FILTERS = [
    Filters(kinds=["audio"]),
    Filters(within=["/archive/f07"]),
    Filters(kinds=["audio"], within=["/archive/f07"]),
    Filters(after=datetime(2024, 3, 1), before=datetime(2024, 3, 3)),
    Filters(kinds=["audio"], after=datetime(2024, 2, 1)),
    Filters(within=["/archive/f01", "/archive/f02"], min_score=0.02),
]


@pytest.mark.parametrize("filters", SELECTIVE_FILTERS, ids=lambda f: repr(f)[8:60])
def test_selective_filters_rank_exactly_the_matching_items(big, everything, filters):
    library, vectors = big
    rng = np.random.default_rng(1)
    for q in (vectors[rng.integers(0, len(vectors))] for _ in range(5)):
        got = [(h.path, h.score) for h in search(library, q, 10, filters)]
        want = brute_force(everything, q, filters, 10)
        assert [p for p, _ in got] == [p for p, _ in want]
        assert np.allclose([s for _, s in got], [s for _, s in want], atol=1e-5)
        assert got, "the filter matches something"


def test_a_selective_filter_finds_items_outside_the_probed_cells(big, everything):
    """What the old post-filtering lost: 20 matching sounds exist, all 20 come back."""
    library, vectors = big
    filters = Filters(kinds=["audio"], within=["/archive/f07"])
    matching = brute_force(everything, vectors[0], filters, 100)
    assert len(matching) == 20
    assert len(search(library, -vectors[0], 100, filters)) == 20


def test_a_filter_that_matches_nothing_answers_at_once(big):
    library, vectors = big
    started = time.perf_counter()
    assert search(library, vectors[0], 10, Filters(after=datetime(2030, 1, 1))) == []
    assert time.perf_counter() - started < 0.5


def test_broad_filters_keep_the_index_recall(big, everything, monkeypatch):
    """Filters matching more than SELECTIVE segments search the index and filter what comes back."""
    library, vectors = big
    monkeypatch.setattr(search_module, "SELECTIVE", 1_000)
    filters = Filters(kinds=["image"], after=datetime(2024, 1, 20))
    found = 0
    for q in vectors[:20]:
        got = {h.path for h in search(library, q, 10, filters)}
        want = {p for p, _ in brute_force(everything, q, filters, 10)}
        found += len(got & want)
    assert found / 200 >= 0.9


def test_copies_of_one_content_are_one_result(tmp_path):
    """The copy shown is the oldest (the likeliest original), ties going to the first indexed; the
    others are listed as its copies, oldest first."""
    catalog = Catalog(tmp_path / "lib", write=True)
    root = catalog.add_root("/m")
    vec = np.full(512, 1 / np.sqrt(512), np.float32)
    other = np.roll(np.eye(1, 512, dtype=np.float32)[0], 3)
    files = (  # in the order indexed: ids 1 to 4
        ("/m/b.jpg", "same", vec, 300.0),
        ("/m/z-first.jpg", "same", vec, 100.0),
        ("/m/a-later.jpg", "same", vec, 100.0),  # as old as z-first.jpg, but indexed after it
        ("/m/c.jpg", "c", other, 0.0),
    )
    with catalog.transaction():
        for path, digest, v, mtime in files:
            record = {"root_id": root, "path": path, "rel": path[3:], "kind": "image", "size": 1, "mtime": mtime}
            catalog.put_file(record | {"hash": digest, "status": "indexed"}, [(None, None, v.tobytes())])
    VectorIndex(catalog).load().save()
    catalog.close()
    with Storage(tmp_path / "lib") as library:
        hits = search(library, vec, 10)
        assert [(h.path, h.copies) for h in hits] == [
            ("/m/z-first.jpg", ["/m/a-later.jpg", "/m/b.jpg"]),
            ("/m/c.jpg", []),
        ]
        assert (hits[0].mtime, hits[0].file_id) == (100.0, 2), "the facts are the shown copy's"
        assert [h.path for h in search(library, vec, 10, Filters(exclude_hashes=frozenset({"same"})))] == ["/m/c.jpg"]
