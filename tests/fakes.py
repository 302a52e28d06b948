"""A stand-in for the model where its numbers do not matter, as llm's tests use a mock model.

Tests about what gets embedded, stored, moved, removed or found again need
vectors that are deterministic and tell inputs apart, not CLIPCLAP's: making
them from a hash costs microseconds, where the real towers cost a session and
a run.  Whatever compares vectors with the reference, or ranks by meaning,
keeps the real ONNX towers (tests/test_model.py, test_search.py, ...).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import replace

import numpy as np

from mediasearch.catalog import DIM
from mediasearch.errors import DecodeError


def unit_vector(*parts: bytes) -> np.ndarray:
    """A unit float32 vector seeded by the bytes given: equal bytes, equal vector; others nearly orthogonal."""
    seed = hashlib.sha256(b"\0".join(parts)).digest()
    vector = np.random.default_rng(np.frombuffer(seed, np.uint64)).normal(size=DIM)
    return (vector / np.linalg.norm(vector)).astype(np.float32)


class HashEmbedder:
    """model.Embedder's calls (embed_texts, embed_each and what a query asks), answered from hashes.

    Its bundle is the real one under a revision of its own ("+hash"), so a library
    built with it is never taken for one of the real model.  `calls` and `items`
    count the embed_each calls and the items they carried.
    """

    def __init__(self, bundle):
        self.bundle = replace(bundle, revision=bundle.revision + "+hash")
        self.calls = 0
        self.items = 0

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        return np.stack([unit_vector(b"text", t.encode()) for t in texts]) if texts else np.zeros((0, DIM), np.float32)

    def embed_each(self, paths: Sequence, results: Sequence) -> list:
        """One vector per tensor of each decoded item (its modality and bytes hashed), errors passed through."""
        self.calls += 1
        self.items += len(results)
        return [result if isinstance(result, DecodeError) else self._vectors(result) for result in results]

    @staticmethod
    def _vectors(item) -> np.ndarray:
        rows = [unit_vector(m.encode(), t.tobytes()) for m, t in zip(item.modalities, item.tensors, strict=True)]
        return np.stack(rows) if rows else np.zeros((0, DIM), np.float32)

    def knows(self, texts: Sequence[str]) -> bool:
        return True  # nothing to load, ever

    def warm_text(self) -> None:
        """Nothing to load."""
