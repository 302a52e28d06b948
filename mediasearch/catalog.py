"""The catalog: one SQLite file that is the source of truth for the library.

Roots, files (with their size, mtime, content hash, media facts, status and
error) and segments with their vectors as float32 blobs.  The FAISS index is
derived from the segments and can always be rebuilt from here.  Schema changes
are numbered migrations, never edited once shipped.
"""

from __future__ import annotations

import fcntl
import os
import sqlite3
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import sqlite_utils

from mediasearch.errors import MediasearchError

DIM = 512

MIGRATIONS = [
    # 1: the first schema
    """
    CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT);
    CREATE TABLE roots (id INTEGER PRIMARY KEY, path TEXT NOT NULL UNIQUE, added_at REAL);
    CREATE TABLE files (
        id INTEGER PRIMARY KEY,
        root_id INTEGER NOT NULL REFERENCES roots(id),
        path TEXT NOT NULL UNIQUE,
        rel TEXT NOT NULL,
        kind TEXT,
        size INTEGER NOT NULL,
        mtime REAL NOT NULL,
        hash TEXT,
        width INTEGER,
        height INTEGER,
        duration REAL,
        status TEXT NOT NULL,
        error TEXT,
        indexed_at REAL
    );
    CREATE INDEX files_root ON files(root_id);
    CREATE INDEX files_hash ON files(hash);
    CREATE TABLE segments (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        file_id INTEGER NOT NULL REFERENCES files(id),
        start REAL,
        end REAL,
        vector BLOB NOT NULL
    );
    CREATE INDEX segments_file ON segments(file_id);
    """,
]

# File states: indexed (has segments), failed (error recorded), ignored (not media, or video for now).
INDEXED, FAILED, IGNORED = "indexed", "failed", "ignored"


@dataclass
class FileRow:
    id: int
    path: str
    size: int
    mtime: float
    status: str
    hash: str | None
    kind: str | None

    def matches(self, st: os.stat_result) -> bool:
        """Same size and mtime as on disk: the file is taken as unchanged."""
        return self.size == st.st_size and self.mtime == st.st_mtime


class LibraryBusy(MediasearchError):
    """Another process is writing to the library."""


class Catalog:
    """The library's SQLite catalog (WAL mode, so readers never wait for a writer)."""

    def __init__(self, folder: Path):
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self.path = folder / "catalog.db"
        conn = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=False)
        self.db = sqlite_utils.Database(conn)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA foreign_keys=ON")
        self._lock_handle = None
        self._migrate()

    @property
    def conn(self) -> sqlite3.Connection:
        return self.db.conn

    def close(self) -> None:
        self.unlock()
        self.conn.close()

    # ------------------------------------------------------------------ schema and meta

    def _migrate(self) -> None:
        version = self.conn.execute("PRAGMA user_version").fetchone()[0]
        if version > len(MIGRATIONS):
            raise MediasearchError(
                f"{self.path} was written by a newer mediasearch (schema {version}); upgrade mediasearch"
            )
        for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
            with self.transaction():
                for statement in filter(str.strip, script.split(";")):
                    self.conn.execute(statement)
                self.conn.execute(f"PRAGMA user_version = {number}")

    def get(self, key: str, default: str | None = None) -> str | None:
        row = self.conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else default

    def set(self, key: str, value: str) -> None:
        self.conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, value))

    def generation(self) -> int:
        """Bumped by every transaction that changes segments; stamps the FAISS index."""
        return int(self.get("generation", "0"))

    def _bump(self) -> None:
        self.set("generation", str(self.generation() + 1))

    def transaction(self):
        return _Transaction(self.conn)

    # ------------------------------------------------------------------ writer lock

    def lock(self) -> None:
        """Take the library's writer lock, or say who holds it."""
        handle = open(self.folder / "writer.lock", "a+")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            handle.close()
            raise LibraryBusy(
                f"another mediasearch ({holder}) is writing to {self.folder}: wait for it, or stop it "
                "(a running `mediasearch watch` keeps the library in step by itself)"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()}")
        handle.flush()
        self._lock_handle = handle

    def unlock(self) -> None:
        if self._lock_handle is not None:
            fcntl.flock(self._lock_handle, fcntl.LOCK_UN)
            self._lock_handle.close()
            self._lock_handle = None

    # ------------------------------------------------------------------ roots

    def add_root(self, path: Path) -> int:
        self.conn.execute("INSERT OR IGNORE INTO roots (path, added_at) VALUES (?, ?)", (str(path), time.time()))
        return self.conn.execute("SELECT id FROM roots WHERE path = ?", (str(path),)).fetchone()[0]

    def roots(self) -> dict[str, int]:
        return {path: rid for rid, path in self.conn.execute("SELECT id, path FROM roots ORDER BY path")}

    def remove_root(self, root_id: int) -> list[int]:
        """Forget a root, its files and their segments; return the removed segment ids."""
        ids = [
            r[0]
            for r in self.conn.execute(
                "SELECT s.id FROM segments s JOIN files f ON f.id = s.file_id WHERE f.root_id = ?", (root_id,)
            )
        ]
        with self.transaction():
            self.conn.execute(
                "DELETE FROM segments WHERE file_id IN (SELECT id FROM files WHERE root_id = ?)", (root_id,)
            )
            self.conn.execute("DELETE FROM files WHERE root_id = ?", (root_id,))
            self.conn.execute("DELETE FROM roots WHERE id = ?", (root_id,))
            self._bump()
        return ids

    # ------------------------------------------------------------------ files

    def file(self, path: str) -> FileRow | None:
        r = self.conn.execute(
            "SELECT id, path, size, mtime, status, hash, kind FROM files WHERE path = ?", (path,)
        ).fetchone()
        return FileRow(*r) if r else None

    def files_with_prefix(self, path: str) -> list[FileRow]:
        """The file at path, or every file under the folder at path ('/' < '0' bounds the range)."""
        base = path.rstrip("/")
        rows = self.conn.execute(
            "SELECT id, path, size, mtime, status, hash, kind FROM files WHERE path = ? OR (path > ? AND path < ?)",
            (base, base + "/", base + "0"),
        )
        return [FileRow(*r) for r in rows]

    def vectors_for_hash(self, digest: str) -> tuple[dict, list[tuple[float | None, float | None, bytes]]] | None:
        """Facts and segments of an indexed file with this content, to reuse without the model."""
        row = self.conn.execute(
            "SELECT id, kind, width, height, duration FROM files WHERE hash = ? AND status = ? LIMIT 1",
            (digest, INDEXED),
        ).fetchone()
        if row is None:
            return None
        segments = self.conn.execute(
            "SELECT start, end, vector FROM segments WHERE file_id = ? ORDER BY id", (row[0],)
        ).fetchall()
        if not segments:
            return None
        facts = {"kind": row[1], "width": row[2], "height": row[3], "duration": row[4]}
        return facts, segments

    def segment_vectors(self, file_id: int) -> np.ndarray:
        rows = self.conn.execute("SELECT vector FROM segments WHERE file_id = ? ORDER BY id", (file_id,)).fetchall()
        return _stack([r[0] for r in rows])

    def put_file(
        self, record: dict, segments: Iterable[tuple[float | None, float | None, bytes]]
    ) -> tuple[list[int], list[int]]:
        """Insert or replace one file and its segments (inside the caller's transaction).

        Returns (removed segment ids, added segment ids) for the vector index.
        """
        old = self.conn.execute("SELECT id FROM files WHERE path = ?", (record["path"],)).fetchone()
        removed: list[int] = []
        if old:
            removed = [r[0] for r in self.conn.execute("SELECT id FROM segments WHERE file_id = ?", (old[0],))]
            self.conn.execute("DELETE FROM segments WHERE file_id = ?", (old[0],))
            record = dict(record, id=old[0])
        columns = ", ".join(record)
        marks = ", ".join("?" for _ in record)
        cur = self.conn.execute(f"INSERT OR REPLACE INTO files ({columns}) VALUES ({marks})", list(record.values()))
        file_id = old[0] if old else cur.lastrowid
        added = []
        for start, end, blob in segments:
            cur = self.conn.execute(
                "INSERT INTO segments (file_id, start, end, vector) VALUES (?, ?, ?, ?)", (file_id, start, end, blob)
            )
            added.append(cur.lastrowid)
        if removed or added:
            self._bump()
        return removed, added

    def delete_files(self, file_ids: list[int]) -> list[int]:
        """Remove files and their segments (inside the caller's transaction); return segment ids."""
        removed: list[int] = []
        for file_id in file_ids:
            removed += [r[0] for r in self.conn.execute("SELECT id FROM segments WHERE file_id = ?", (file_id,))]
            self.conn.execute("DELETE FROM segments WHERE file_id = ?", (file_id,))
            self.conn.execute("DELETE FROM files WHERE id = ?", (file_id,))
        if removed:
            self._bump()
        return removed

    def move_file(self, file_id: int, path: str, rel: str, root_id: int, mtime: float) -> None:
        """A rename: same content, same vectors, new path."""
        self.conn.execute("DELETE FROM files WHERE path = ? AND id != ?", (path, file_id))
        self.conn.execute(
            "UPDATE files SET path = ?, rel = ?, root_id = ?, mtime = ? WHERE id = ?",
            (path, rel, root_id, mtime, file_id),
        )

    # ------------------------------------------------------------------ reading

    def all_vectors(self, batch: int = 50_000) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """(ids, vectors) of every segment, a batch at a time, for rebuilding the index."""
        last = 0
        while True:
            rows = self.conn.execute(
                "SELECT id, vector FROM segments WHERE id > ? ORDER BY id LIMIT ?", (last, batch)
            ).fetchall()
            if not rows:
                return
            yield np.array([r[0] for r in rows], np.int64), _stack([r[1] for r in rows])
            last = rows[-1][0]

    def segment_count(self) -> int:
        return self.conn.execute("SELECT count(*) FROM segments").fetchone()[0]

    def hits(self, segment_ids: list[int]) -> dict[int, dict]:
        """File facts for segment ids, keyed by segment id."""
        out: dict[int, dict] = {}
        for i in range(0, len(segment_ids), 900):
            chunk = segment_ids[i : i + 900]
            marks = ",".join("?" * len(chunk))
            rows = self.conn.execute(
                f"""SELECT s.id, s.start, s.end, f.id, f.path, f.kind, f.size, f.mtime, f.width, f.height,
                           f.duration
                    FROM segments s JOIN files f ON f.id = s.file_id WHERE s.id IN ({marks})""",
                chunk,
            )
            for r in rows:
                out[r[0]] = dict(
                    zip(
                        ("start", "end", "file_id", "path", "kind", "size", "mtime", "width", "height", "duration"),
                        r[1:],
                    )
                )
        return out


class _Transaction:
    """BEGIN IMMEDIATE ... COMMIT, ROLLBACK on error (the connection is in autocommit mode)."""

    def __init__(self, conn: sqlite3.Connection):
        self.conn = conn

    def __enter__(self):
        self.conn.execute("BEGIN IMMEDIATE")
        return self.conn

    def __exit__(self, exc_type, exc, tb) -> None:
        self.conn.execute("ROLLBACK" if exc_type else "COMMIT")


def to_blob(vector: np.ndarray) -> bytes:
    return np.asarray(vector, dtype="<f4").tobytes()


def _stack(blobs: list[bytes]) -> np.ndarray:
    if not blobs:
        return np.zeros((0, DIM), np.float32)
    return np.frombuffer(b"".join(blobs), dtype="<f4").reshape(len(blobs), DIM).astype(np.float32)
