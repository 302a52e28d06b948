"""The library's one owner of consistency: a write through change() reaches the vector index, and a
failed one reaches neither the catalog nor the index."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import open_library

from mediasearch.catalog import to_blob


def record(root_id: int, name: str) -> dict:
    return {"root_id": root_id, "path": f"/m/{name}", "rel": name, "kind": "image", "size": 1, "mtime": 1.0,
            "hash": name, "status": "indexed"}  # fmt: skip


def test_a_write_reaches_the_index_and_a_failed_one_nothing(tmp_path, bundle):
    rng = np.random.default_rng(1)
    vector = rng.normal(size=512).astype(np.float32)
    vector /= np.linalg.norm(vector)
    with open_library(tmp_path / "lib", bundle) as library:
        root = library.catalog.add_root("/m")
        with library.change():
            library.catalog.put_file(record(root, "a.jpg"), [(None, None, to_blob(vector))])
        assert library.vectors.count == 1
        scores, ids = library.vectors.search(vector, 1)
        assert scores[0] == pytest.approx(1.0, abs=1e-5)
        with pytest.raises(RuntimeError), library.change():
            library.catalog.put_file(record(root, "b.jpg"), [(None, None, to_blob(-vector))])
            raise RuntimeError("the disk went away mid-write")
        assert library.vectors.count == 1 and library.catalog.file("/m/b.jpg") is None
        with library.change():
            library.catalog.delete_files([library.catalog.file("/m/a.jpg").id])
        assert library.vectors.count == 0
