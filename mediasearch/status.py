"""What `mediasearch status` reports about a library."""

from __future__ import annotations

from mediasearch.catalog import Catalog
from mediasearch.index import VectorIndex
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
    vectors = VectorIndex(catalog)
    stamp = vectors.stamp()
    index_path = vectors.path
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
            "current": vectors.saved_is_current(),
            "approximate": bool(stamp.get("approximate")),
        },
    }
