"""What `mediasearch status` reports about a library."""

from __future__ import annotations

import os

from mediasearch.antfly import Antfly, StoreError
from mediasearch.catalog import FAILED, IGNORED, INDEXED
from mediasearch.index import VectorIndex
from mediasearch.outbox import Outbox
from mediasearch.paths import cache_dir
from mediasearch.storage import Storage
from mediasearch.terminal import json_path

PROBE_TIMEOUT = 3.0  # status asks whether the store answers now; a query or a send waits longer


def library_status(library: Storage, list_ignored: bool = False) -> dict:
    catalog = library.catalog
    counts = {"indexed": 0, "failed": 0, "ignored": 0, "partial": 0, "image": 0, "audio": 0, "video": 0}
    counts |= catalog.count_by("status") | catalog.count_by("kind", INDEXED)
    files = catalog.count_by("root_id", INDEXED)
    roots = [
        json_path(root.path)
        | {"files": files.get(root.id, 0), "state": root.state, "reason": root.reason, "options": root.options}
        for root in catalog.roots()
    ]
    failures = [json_path(path) | {"error": error} for path, error in catalog.files_in_state(FAILED)]
    notes = [json_path(path) | {"note": error} for path, error in catalog.files_in_state(INDEXED) if error]
    by_extension: dict[str, int] = {}
    ignored = []
    for path, error in catalog.files_in_state(IGNORED):
        extension = os.path.splitext(path)[1].lower()
        by_extension[extension] = by_extension.get(extension, 0) + 1
        if list_ignored:
            ignored.append(json_path(path) | {"reason": error})
    vectors = VectorIndex(library.catalog)
    stamp = vectors.stamp()
    return {
        "library": str(library.folder),
        "cache": str(cache_dir()),
        "model": library.catalog.get("model_source"),
        "revision": library.catalog.get("model_revision"),
        "roots": roots,
        "counts": counts,
        "segments": library.catalog.segment_count(),
        "failures": failures,
        "notes": notes,
        "ignored_by_extension": sorted(by_extension.items(), key=lambda kv: -kv[1]),
        "ignored": ignored,
        "index": {
            "path": str(vectors.path),
            "vectors": stamp.get("count", 0),
            "bytes": vectors.path.stat().st_size if vectors.path.exists() else 0,
            "current": vectors.saved_is_current(),
            "approximate": bool(stamp.get("approximate")),
        },
        "store": store_status(library),
        "words": words_status(library),
    }


def words_status(library: Storage) -> dict:
    """Pictures whose text the current reader has read, how many held some, and how many wait."""
    from mediasearch import ocr

    try:
        reader = ocr.fingerprint()
    except (OSError, RuntimeError):  # the weights are not installed: nothing can be read
        reader = None
    return library.catalog.read_counts(reader)


def store_status(library: Storage) -> dict | None:
    """The shared store, if the library is bound to one: where, what waits to be sent, and whether
    it answers now (asked with a short timeout; nothing is created or written)."""
    store = library.store
    if store is None:
        return None
    probe = Antfly(store.address, timeout=PROBE_TIMEOUT)  # its own client: the library's keeps its timeout
    try:
        found = probe.table()
        error = None if found else "the table does not exist yet: the next `mediasearch index` creates it"
    except StoreError as exc:
        error = str(exc)
    finally:
        probe.close()
    return {
        "url": str(store.address),
        "library_id": store.library_id,
        "host": store.host,
        "waiting": Outbox(library.catalog).unsent_count(),
        "reachable": error is None,
        "error": error,
    }
