"""What `mediasearch status` reports about a library."""

from __future__ import annotations

import json

from mediasearch.catalog import Catalog
from mediasearch.paths import cache_dir


def library_status(catalog: Catalog) -> dict:
    conn = catalog.conn
    counts = {"indexed": 0, "failed": 0, "ignored": 0, "image": 0, "audio": 0, "video": 0}
    for status, count in conn.execute("SELECT status, count(*) FROM files GROUP BY status"):
        counts[status] = count
    for kind, count in conn.execute("SELECT kind, count(*) FROM files WHERE status = 'indexed' GROUP BY kind"):
        counts[kind] = count
    counts["video"] = conn.execute("SELECT count(*) FROM files WHERE kind = 'video'").fetchone()[0]
    roots = [
        {"path": path, "files": count}
        for path, count in conn.execute(
            "SELECT r.path, count(f.id) FROM roots r LEFT JOIN files f ON f.root_id = r.id "
            "AND f.status = 'indexed' GROUP BY r.id ORDER BY r.path"
        )
    ]
    failures = [
        {"path": p, "error": e}
        for p, e in conn.execute("SELECT path, error FROM files WHERE status = 'failed' ORDER BY path")
    ]
    index_path = catalog.folder / "vectors.faiss"
    try:
        stamp = json.loads((catalog.folder / "vectors.json").read_text())
    except (OSError, ValueError):
        stamp = {}
    return {
        "library": str(catalog.folder),
        "cache": str(cache_dir()),
        "model": catalog.get("model_source"),
        "revision": catalog.get("model_revision"),
        "roots": roots,
        "counts": counts,
        "segments": catalog.segment_count(),
        "failures": failures,
        "index": {
            "path": str(index_path),
            "vectors": stamp.get("count", 0),
            "bytes": index_path.stat().st_size if index_path.exists() else 0,
            "current": stamp.get("generation") == catalog.generation() and index_path.exists(),
        },
    }
