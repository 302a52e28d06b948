"""The FAISS vector index: derived from the catalog, saved atomically, stamped.

The index maps segment ids to vectors (IndexIDMap over inner product; vectors
are unit length, so inner product is cosine).  Next to the index file sits a
stamp with the catalog generation it reflects; a missing, unreadable or stale
index is rebuilt from the vectors in SQLite, without running the model.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import numpy as np

from mediasearch.catalog import DIM, Catalog


def _faiss():
    import faiss

    return faiss


class VectorIndex:
    """An in-memory FAISS index kept in step with one catalog."""

    def __init__(self, catalog: Catalog):
        self.catalog = catalog
        self.path = catalog.folder / "vectors.faiss"
        self.stamp_path = catalog.folder / "vectors.json"
        self.index = None
        self.generation = -1
        self.rebuilt = False

    # ------------------------------------------------------------------ loading

    def load(self) -> VectorIndex:
        """Load the saved index if its stamp matches the catalog, else rebuild it."""
        wanted = self.catalog.generation()
        if not self._load_saved(wanted):
            self.rebuild()
        return self

    def _load_saved(self, wanted: int) -> bool:
        try:
            stamp = json.loads(self.stamp_path.read_text())
            if stamp.get("generation") != wanted:
                return False
            index = _faiss().read_index(str(self.path))
        except (OSError, ValueError, RuntimeError):
            return False
        if index.ntotal != stamp.get("count"):
            return False
        self.index, self.generation, self._mtime = index, wanted, self._file_mtime()
        return True

    def rebuild(self) -> None:
        """A fresh index from every segment vector in the catalog."""
        self.generation = self.catalog.generation()
        self.index = self._empty()
        for ids, vectors in self.catalog.all_vectors():
            self.index.add_with_ids(vectors, ids)
        self.rebuilt = True

    def refresh(self) -> None:
        """Pick up changes another process committed (a newer index file, or a rebuild)."""
        if self.index is None or self.catalog.generation() != self.generation:
            self.load()

    @staticmethod
    def _empty():
        faiss = _faiss()
        return faiss.IndexIDMap2(faiss.IndexFlatIP(DIM))

    def _file_mtime(self) -> float:
        try:
            return self.path.stat().st_mtime
        except OSError:
            return 0.0

    # ------------------------------------------------------------------ changing

    def apply(self, removed: list[int], added: list[int], vectors: np.ndarray | None) -> None:
        """Mirror one committed catalog change: drop `removed` ids, add `added` with `vectors`."""
        if self.index is None:
            self.load()
            return  # a fresh load already reflects the commit
        if removed:
            self.index.remove_ids(np.asarray(removed, np.int64))
        if added:
            self.index.add_with_ids(np.ascontiguousarray(vectors, np.float32), np.asarray(added, np.int64))
        self.generation = self.catalog.generation()

    def save(self) -> None:
        """Write index then stamp, each via a temp file and rename, so readers never see half."""
        if self.index is None:
            return
        faiss = _faiss()
        folder = self.path.parent
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".vectors-", suffix=".tmp")
        os.close(fd)
        try:
            faiss.write_index(self.index, tmp)
            os.replace(tmp, self.path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
        stamp = {"generation": self.generation, "count": int(self.index.ntotal)}
        _atomic_write(self.stamp_path, json.dumps(stamp))

    # ------------------------------------------------------------------ reading

    @property
    def count(self) -> int:
        return 0 if self.index is None else int(self.index.ntotal)

    def ids(self) -> np.ndarray:
        """Every segment id in the index (for consistency checks)."""
        faiss = _faiss()
        return np.sort(faiss.vector_to_array(self.index.id_map)) if self.count else np.zeros(0, np.int64)

    def search(self, query: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(scores, ids) of the k nearest segments to one unit query vector."""
        k = min(k, self.count)
        if k <= 0:
            return np.zeros(0, np.float32), np.zeros(0, np.int64)
        scores, ids = self.index.search(np.ascontiguousarray(query.reshape(1, DIM), np.float32), k)
        keep = ids[0] >= 0
        return scores[0][keep], ids[0][keep]


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
