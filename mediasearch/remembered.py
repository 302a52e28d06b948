"""Query texts remembered with their vectors, so a repeated query never loads the text tower.

The memory is private (0600 in the cache folder), can be turned off
(MEDIASEARCH_REMEMBER_QUERIES=0) and cleared (`mediasearch forget --queries`):
query texts say a lot about a person.
"""

from __future__ import annotations

import os
from contextlib import closing
from pathlib import Path

import numpy as np

from mediasearch.paths import cache_dir

REMEMBER_QUERIES = "MEDIASEARCH_REMEMBER_QUERIES"


def remembering_queries() -> bool:
    """Whether query texts may be remembered: MEDIASEARCH_REMEMBER_QUERIES=0 (no, off, false) turns it off.

    An environment variable rather than a flag: it must hold for every query a
    user, a script or a shell alias runs, and a flag forgotten once would
    write the text that the user meant to keep off the disk.
    """
    return os.environ.get(REMEMBER_QUERIES, "1").strip().lower() not in ("0", "no", "off", "false")


class QueryCache:
    """Text vectors that queries asked for before, by bundle revision, in the cache folder.

    A query process that finds its words here answers without loading the text
    tower at all.  Private (0600) like the library: query texts say a lot.
    With remembering turned off it neither reads nor writes (nor creates) the file.
    """

    LIMIT = 10_000  # texts remembered; the oldest go first

    def __init__(self, revision: str):
        self.revision = revision
        self.path = query_memory()
        self.enabled = remembering_queries()

    def _connect(self):
        import sqlite3

        self.path.parent.mkdir(parents=True, exist_ok=True)
        if not self.path.exists():
            os.close(os.open(self.path, os.O_CREAT | os.O_WRONLY, 0o600))
        conn = sqlite3.connect(self.path, timeout=5)
        conn.execute(
            "CREATE TABLE IF NOT EXISTS texts (revision TEXT, text TEXT, vector BLOB, PRIMARY KEY (revision, text))"
        )
        return conn

    def get(self, texts: list[str]) -> list:
        if not self.enabled:
            return [None] * len(texts)
        try:
            with closing(self._connect()) as conn:
                rows = [
                    conn.execute(
                        "SELECT vector FROM texts WHERE revision = ? AND text = ?", (self.revision, t)
                    ).fetchone()
                    for t in texts
                ]
        except Exception:
            return [None] * len(texts)  # the cache is an optimisation: any trouble means "not known"
        return [np.frombuffer(r[0], "<f4").copy() if r else None for r in rows]

    def put(self, vectors: dict[str, np.ndarray]) -> None:
        if not self.enabled:
            return
        try:
            with closing(self._connect()) as conn, conn:
                conn.executemany(
                    "INSERT OR REPLACE INTO texts (revision, text, vector) VALUES (?, ?, ?)",
                    [(self.revision, t, np.asarray(v, "<f4").tobytes()) for t, v in vectors.items()],
                )
                conn.execute("DELETE FROM texts WHERE rowid <= (SELECT max(rowid) FROM texts) - ?", (self.LIMIT,))
        except Exception:
            pass


def query_memory() -> Path:
    """Where query texts are remembered (see QueryCache)."""
    return cache_dir() / "queries.db"


def forget_queries() -> int:
    """Delete every remembered query text; how many there were.

    The file goes whole, with SQLite's journal files: a DELETE would leave the
    texts readable in the file's free pages.
    """
    import sqlite3

    path, count = query_memory(), 0
    if path.exists():
        try:
            with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)) as conn:
                count = conn.execute("SELECT count(*) FROM texts").fetchone()[0]
        except sqlite3.Error:
            pass  # damaged or never filled: it goes all the same
    for name in (path, *(path.with_name(path.name + end) for end in ("-wal", "-shm", "-journal"))):
        name.unlink(missing_ok=True)
    return count
