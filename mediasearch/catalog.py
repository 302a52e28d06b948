"""The catalog: one SQLite file that is the source of truth for the library.

Folders (with their walk options and whether they were reachable), files (size,
mtime, content hash, media facts, state and error) and segments with their
vectors as float32 blobs.  The FAISS index is derived from the segments and can
always be rebuilt from here.  Schema changes are numbered migrations, never
edited once shipped.

Paths are stored as the raw bytes the filesystem gave (BLOBs), so a name that
is not valid UTF-8 is kept exactly; in Python they are `str` decoded the way
`os.fsdecode` does (undecodable bytes as surrogate escapes), which round-trips.
"""

from __future__ import annotations

import json
import os
import sqlite3
import stat
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import sqlite_utils

from mediasearch import textrank
from mediasearch.errors import LibraryError
from mediasearch.filters import Filters
from mediasearch.places import Near, within_km
from mediasearch.schema import MIGRATIONS
from mediasearch.words import MAX_TEXT, indexed, name_words

DIM = 512  # the width of every vector: the model gives it, the catalog, the index and the store keep it
PAGE_SIZE = 16_384


# Where a file's words were found: its path's names, its sound or video tags, its picture caption and
# keywords, text read in the picture, text read in a video frame (at its time).
NAME, TAG, CAPTION, TEXT, FRAME = "name", "tag", "caption", "text", "frame"
PLACE = "place"  # the place name of a file's coordinates: "lisbon" and "portugal" find what was taken there
READ = (TEXT, FRAME)  # what OCR wrote: kept while the content is the same
# Meta key: the file id up to which tags and captions of files indexed before words existed were read
# (a library made before migration 7 lacks it; the next pass reads them, resumably, without embedding).
METADATA_WORDS = "metadata_words_read_after"

# File states: indexed (has segments), failed (error recorded), ignored (not media, or video for now),
# partial (a long recording whose first windows are stored; the next pass resumes it).
INDEXED, FAILED, IGNORED, PARTIAL = "indexed", "failed", "ignored", "partial"
# Folder states: reached by the last pass, or not (unplugged drive, unmounted share): its files are kept.
ONLINE, OFFLINE = "online", "offline"


def encode(path: str) -> bytes:
    """A path as the filesystem's bytes (lossless for any name)."""
    return os.fsencode(path)


def decode(raw: bytes | str) -> str:
    return os.fsdecode(raw)


@dataclass
class FileRow:
    id: int
    path: str
    root_id: int
    size: int
    mtime: float
    status: str
    hash: str | None
    kind: str | None
    error: str | None = None
    taken_source: str | None = None  # None: the file's own capture time and place are not read yet

    @classmethod
    def of(cls, row: dict) -> FileRow:
        return cls(**{k: decode(v) if k == "path" else v for k, v in row.items()})

    def matches(self, st: os.stat_result) -> bool:
        """Same size and mtime as on disk: the file is taken as unchanged."""
        return self.size == st.st_size and self.mtime == st.st_mtime


@dataclass
class Root:
    """A library folder, its walk options and what the last pass found."""

    id: int
    path: str
    options: dict = field(default_factory=dict)
    state: str = ONLINE
    reason: str | None = None


@dataclass
class Changes:
    """The segments a write removed and added (with their vectors), for the vector index to follow."""

    removed: list[int] = field(default_factory=list)
    added: list[int] = field(default_factory=list)
    vectors: list[np.ndarray] = field(default_factory=list)

    @property
    def count(self) -> int:
        return len(self.removed) + len(self.added)

    def stacked(self) -> np.ndarray | None:
        return np.stack(self.vectors) if self.vectors else None


_FILE_COLUMNS = "id, path, root_id, size, mtime, status, hash, kind, error, taken_source"


class Catalog:
    """The library's SQLite catalog (WAL mode, so readers never wait for a writer).

    Readers open it read-only (`write=False`): they never create, migrate or
    change it.  A library whose folder cannot be written (an archive, a share)
    is opened immutable, which SQLite allows without its WAL index.
    """

    def __init__(self, folder: Path, write: bool = False):
        self.folder = folder
        self.path = folder / "catalog.db"
        self.writable = write
        self.recording: Changes | None = None  # set by storage.Storage.change() while a write is open
        try:
            conn = self._connect(write)
            textrank.register(conn)  # before any thread runs a statement on it
            self.db = sqlite_utils.Database(conn)
            if write:
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute("PRAGMA synchronous=NORMAL")
                conn.execute("PRAGMA foreign_keys=ON")
                self._migrate()
            else:
                self._check_version(conn.execute("PRAGMA user_version").fetchone()[0])
        except sqlite3.DatabaseError as exc:
            raise LibraryError(damaged_message(self.path, exc)) from exc

    def _connect(self, write: bool) -> sqlite3.Connection:
        if write:
            make_private(self.folder)
            if not self.path.exists():
                os.close(os.open(self.path, os.O_CREAT | os.O_WRONLY, 0o600))
            conn = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=False)
            # A 2 KB vector blob fits once in a 4 KB page but seven times in 16 KB: 2.4 KB a segment
            # instead of 4.1. Takes effect only while the file is still empty (a new library).
            conn.execute(f"PRAGMA page_size = {PAGE_SIZE}")
            return conn
        uri = self.path.resolve().as_uri()
        mode = "ro" if os.access(self.folder, os.W_OK) else "ro&immutable=1"
        return sqlite3.connect(
            f"{uri}?mode={mode}", uri=True, timeout=30, isolation_level=None, check_same_thread=False
        )

    decode_path = staticmethod(decode)

    @property
    def conn(self) -> sqlite3.Connection:
        return self.db.conn

    def close(self) -> None:
        self.conn.close()

    # ------------------------------------------------------------------ schema and meta

    def _check_version(self, version: int) -> None:
        if version > len(MIGRATIONS):
            raise LibraryError(
                f"{self.path} was written by a newer mediasearch (schema {version}); upgrade mediasearch"
            )
        if version < len(MIGRATIONS) and not self.writable:
            raise LibraryError(f"{self.path} uses an older schema: run `mediasearch index` once to bring it up to date")

    def _migrate(self) -> None:
        """Run the migrations not yet applied, each in its own write transaction.

        The version is read inside the transaction, so two processes opening a
        new library at once cannot both run the same migration.
        """
        while True:
            with self.transaction():
                version = self.conn.execute("PRAGMA user_version").fetchone()[0]
                self._check_version(version)
                if version == len(MIGRATIONS):
                    return
                MIGRATIONS[version](self.db)
                self.conn.execute(f"PRAGMA user_version = {version + 1}")
                if version == 0:  # a new library: every file's tags and captions are read as it is indexed
                    self.set(METADATA_WORDS, "done")

    def get(self, key: str, default: str | None = None) -> str | None:
        if "meta" not in self.db.table_names():
            return default
        row = self.conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else default

    def set(self, key: str, value: str) -> None:
        self.db["meta"].upsert({"key": key, "value": value}, pk="key")

    def generation(self) -> int:
        """Bumped by every transaction that changes segments; stamps the FAISS index."""
        return int(self.get("generation", "0"))

    def _bump(self) -> None:
        self.set("generation", str(self.generation() + 1))

    @contextmanager
    def transaction(self):
        """A write transaction: BEGIN IMMEDIATE at the outside (the writer takes SQLite's
        lock up front, so it never fails half-way on a busy database), savepoints inside."""
        if self.conn.in_transaction:
            with self.db.atomic():
                yield self.db
            return
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            with self.db.atomic():
                yield self.db
        except BaseException:
            if self.conn.in_transaction:
                self.conn.execute("ROLLBACK")
            raise
        self.conn.execute("COMMIT")

    # ------------------------------------------------------------------ roots

    def add_root(self, path: str, options: dict | None = None) -> int:
        """Add a folder (or change its options); return its id."""
        row = self.conn.execute("SELECT id FROM roots WHERE path = ?", (encode(path),)).fetchone()
        if row:
            if options is not None:
                self.db["roots"].update(row[0], {"options": json.dumps(options)})
            return row[0]
        return (
            self.db["roots"]
            .insert(
                {"path": encode(path), "added_at": time.time(), "options": json.dumps(options or {}), "state": ONLINE}
            )
            .last_pk
        )

    def roots(self) -> list[Root]:
        return [
            Root(r["id"], decode(r["path"]), json.loads(r["options"] or "{}"), r["state"] or ONLINE, r["reason"])
            for r in self.db.query("SELECT id, path, options, state, reason FROM roots ORDER BY path")
        ]

    def set_root_state(self, root_id: int, state: str, reason: str | None = None) -> None:
        self.db["roots"].update(root_id, {"state": state, "reason": reason})

    def adopt(self, root: Root) -> None:
        """Files under a newly added folder that an outer folder held now belong to it."""
        prefix = encode(root.path.rstrip("/") + "/")
        self.conn.execute(
            "UPDATE files SET root_id = ?, rel = substr(path, ?) WHERE path > ? AND path < ? "
            "AND root_id IN (SELECT id FROM roots WHERE length(path) < ?)",  # outer folders only
            (root.id, len(prefix) + 1, prefix, prefix[:-1] + b"0", len(encode(root.path))),
        )
        self._rename(root.id)

    def _rename(self, root_id: int) -> None:
        """Files that changed folder (and so their path inside it) get their name words again."""
        for file_id, rel in self.conn.execute("SELECT id, rel FROM files WHERE root_id = ?", (root_id,)).fetchall():
            _put_name(self.conn, file_id, decode(rel))

    def remove_root(self, root: Root, heir: Root | None) -> list[int]:
        """Forget a folder.  Its files go to `heir` (an outer library folder) when there is
        one, keeping their vectors; otherwise they and their segments are dropped.
        Returns the removed segment ids."""
        with self.transaction():
            removed = []
            if heir is None:
                ids = [r[0] for r in self.conn.execute("SELECT id FROM files WHERE root_id = ?", (root.id,))]
                removed = self.delete_files(ids)
            else:
                prefix = len(encode(heir.path.rstrip("/") + "/"))
                self.conn.execute(
                    "UPDATE files SET root_id = ?, rel = substr(path, ?) WHERE root_id = ?",
                    (heir.id, prefix + 1, root.id),
                )
                self._rename(heir.id)
            self.db["roots"].delete(root.id)
        return removed

    # ------------------------------------------------------------------ files

    def file(self, path: str) -> FileRow | None:
        rows = list(self.db.query(f"SELECT {_FILE_COLUMNS} FROM files WHERE path = ?", (encode(path),)))
        return FileRow.of(rows[0]) if rows else None

    def file_by_id(self, file_id: int) -> FileRow | None:
        """The file with this id, or None; an id beyond SQLite's integers (a client's guess) is no file, not
        an OverflowError, for every caller alike."""
        if not 0 <= file_id < 2**63:
            return None
        rows = list(self.db.query(f"SELECT {_FILE_COLUMNS} FROM files WHERE id = ?", (file_id,)))
        return FileRow.of(rows[0]) if rows else None

    def root_by_id(self, root_id: int) -> Root | None:
        return next((root for root in self.roots() if root.id == root_id), None)

    def files_under(self, path: str) -> list[FileRow]:
        """The file at path, or every file under the folder at path ('/' < '0' bounds the range)."""
        base = encode(path.rstrip("/") or "/")
        low = base.rstrip(b"/") + b"/"
        rows = self.db.query(
            f"SELECT {_FILE_COLUMNS} FROM files WHERE path = ? OR (path > ? AND path < ?)",
            (base, low, low[:-1] + b"0"),
        )
        return [FileRow.of(r) for r in rows]

    def vectors_for_hash(self, digest: str) -> tuple[dict, list[tuple[float | None, float | None, bytes]]] | None:
        """Facts and segments of an indexed file with this content, to reuse without the model."""
        rows = list(
            self.db.query(
                "SELECT id, kind, width, height, duration, taken, taken_source, latitude, longitude, city, region, "
                "country FROM files WHERE hash = ? AND status = ? LIMIT 1",
                (digest, INDEXED),
            )
        )
        if not rows:
            return None
        facts = rows[0]
        segments = self.conn.execute(
            "SELECT start, end, vector, modality FROM segments WHERE file_id = ? ORDER BY id", (facts.pop("id"),)
        ).fetchall()
        return (facts, segments) if segments else None

    def segment_vectors(self, file_id: int) -> np.ndarray:
        rows = self.conn.execute("SELECT vector FROM segments WHERE file_id = ? ORDER BY id", (file_id,)).fetchall()
        return _stack([r[0] for r in rows])

    def put_file(
        self, record: dict, segments: Iterable[tuple[float | None, float | None, bytes]], texts: dict | None = None
    ) -> tuple[list[int], list[int]]:
        """Insert or replace one file and its segments (inside the caller's transaction), with its
        words: the names of its path, and `texts` ({tag: ..., caption: ...}) read from its metadata.
        Text read by OCR stays while the content is the same, and a copy of known content takes it.

        Returns (removed segment ids, added segment ids) for the vector index.
        """
        record = dict(record, path=encode(record["path"]), rel=encode(record["rel"]))
        record.setdefault("taken", record["mtime"])  # never NULL: the date filter reads it alone
        old = self.conn.execute("SELECT id, hash, ocr FROM files WHERE path = ?", (record["path"],)).fetchone()
        removed: list[int] = []
        if old:
            removed = self._segment_ids([old[0]])
            self.conn.execute("DELETE FROM segments WHERE file_id = ?", (old[0],))
            record["id"] = old[0]
            same = old[1] is not None and old[1] == record.get("hash")
            self.conn.execute(
                f"DELETE FROM texts WHERE file_id = ?{' AND source NOT IN (?, ?)' if same else ''}",
                (old[0], *(READ if same else ())),
            )
            record["ocr"] = old[2] if same else None
        file_id = self.db["files"].insert(record, pk="id", replace=True).last_pk
        added = self._insert_segments(file_id, segments)
        if record["status"] in (INDEXED, PARTIAL):
            self._put_texts(file_id, decode(record["rel"]), texts or {})
            _put_place(self.conn, file_id, record)
            if record.get("ocr") is None and record.get("hash"):
                self._copy_read(file_id, record["hash"])
        if removed or added:
            self._bump()
        self._record(removed=removed)
        return removed, added

    def _put_texts(self, file_id: int, rel: str, texts: dict) -> None:
        _put_name(self.conn, file_id, rel)
        for source, text in texts.items():
            _put_text(self.conn, file_id, source, None, text)

    def _copy_read(self, file_id: int, digest: str) -> None:
        """A copy of content whose text was read takes that text (the reuse of copies, for words)."""
        source = self.conn.execute(
            "SELECT id, ocr FROM files WHERE hash = ? AND id != ? AND ocr IS NOT NULL LIMIT 1", (digest, file_id)
        ).fetchone()
        if source is None:
            return
        self.conn.execute(
            "INSERT INTO texts (file_id, source, at, shown, words) SELECT ?, source, at, shown, words FROM texts "
            "WHERE file_id = ? AND source IN (?, ?) ORDER BY id",
            (file_id, source[0], *READ),
        )
        self.conn.execute("UPDATE files SET ocr = ? WHERE id = ?", (source[1], file_id))

    def put_read(self, file_id: int, reader: str, found: list[tuple[float | None, str]]) -> None:
        """What OCR read in a file ((time or None, text) lines), replacing what an older reader read."""
        self.conn.execute("DELETE FROM texts WHERE file_id = ? AND source IN (?, ?)", (file_id, *READ))
        by_time: dict[float | None, list[str]] = {}
        for at, text in found:
            by_time.setdefault(at, []).append(text)
        for at, lines in by_time.items():
            _put_text(self.conn, file_id, TEXT if at is None else FRAME, at, "\n".join(lines))
        self.conn.execute("UPDATE files SET ocr = ? WHERE id = ?", (reader, file_id))

    def unread(self, reader: str, limit: int, after: int = 0) -> list[tuple[int, str, str]]:
        """(id, path, kind) of indexed pictures and videos whose text this reader has not read, by id."""
        rows = self.conn.execute(
            "SELECT id, path, kind FROM files WHERE status = ? AND kind IN ('image', 'video') "
            "AND (ocr IS NULL OR ocr != ?) "
            "AND id > ? ORDER BY id LIMIT ?",
            (INDEXED, reader, after, limit),
        ).fetchall()
        return [(r[0], decode(r[1]), r[2]) for r in rows]

    def without_metadata_words(self, limit: int) -> list[tuple[int, str, str]]:
        """(id, path, kind) of indexed files not yet looked at for tags and captions (libraries made before
        words were kept), after the id the last pass reached; [] when none remain."""
        after = self.get(METADATA_WORDS)
        if after is None:
            after = "-1"
        if after == "done":
            return []
        rows = self.conn.execute(
            "SELECT id, path, kind FROM files WHERE status IN (?, ?) AND id > ? ORDER BY id LIMIT ?",
            (INDEXED, PARTIAL, int(after), limit),
        ).fetchall()
        return [(r[0], decode(r[1]), r[2]) for r in rows]

    def put_metadata_words(self, found: list[tuple[int, dict]], last: int | None) -> None:
        """Tags and captions of files indexed before (each file's old ones replaced), and how far the
        reading got (None: to the end), in one transaction."""
        if not found and last is None and self.get(METADATA_WORDS) == "done":
            return
        with self.transaction():
            for file_id, texts in found:
                self.conn.execute("DELETE FROM texts WHERE file_id = ? AND source IN (?, ?)", (file_id, TAG, CAPTION))
                for source, text in texts.items():
                    _put_text(self.conn, file_id, source, None, text)
            self.set(METADATA_WORDS, "done" if last is None else str(last))

    def read_counts(self, reader: str | None) -> dict:
        """Pictures whose text was read (by this reader) and pictures waiting, for `status`."""
        total = self.conn.execute(
            "SELECT count(*) FROM files WHERE status = ? AND kind = 'image'", (INDEXED,)
        ).fetchone()[0]
        read = self.conn.execute(
            "SELECT count(*) FROM files WHERE status = ? AND kind = 'image' AND ocr = ?", (INDEXED, reader)
        ).fetchone()[0]
        with_text = self.conn.execute(
            "SELECT count(DISTINCT t.file_id) FROM texts t JOIN files f ON f.id = t.file_id "
            "WHERE t.source = ? AND f.ocr = ?",
            (TEXT, reader),
        ).fetchone()[0]
        return {"read": read, "with_text": with_text, "waiting": total - read}

    def add_segments(self, file_id: int, segments: Iterable[tuple]) -> list[int]:
        """More windows of a long recording (inside the caller's transaction); return their ids."""
        added = self._insert_segments(file_id, segments)
        if added:
            self._bump()
        return added

    def _insert_segments(self, file_id: int, segments: Iterable[tuple]) -> list[int]:
        """(start, end, vector blob[, modality]) rows; the modality says which tower made the vector."""
        added = []
        for start, end, blob, *modality in segments:
            added.append(
                self.conn.execute(
                    "INSERT INTO segments (file_id, start, end, vector, modality) VALUES (?, ?, ?, ?, ?)",
                    (file_id, start, end, blob, modality[0] if modality else None),
                ).lastrowid
            )
            if self.recording is not None:
                self.recording.vectors.append(np.frombuffer(blob, "<f4"))
        self._record(added=added)
        return added

    def _record(self, removed: list[int] = (), added: list[int] = ()) -> None:
        if self.recording is not None:
            self.recording.removed += removed
            self.recording.added += added

    def finish_file(self, file_id: int, facts: dict, note: str | None) -> None:
        """A file's last segments are in: it is indexed, with the facts known only at the end."""
        self.db["files"].update(
            file_id,
            {"status": INDEXED, "duration": facts.get("duration"), "error": note, "indexed_at": time.time()},
        )

    def frame_times(self, file_id: int) -> list[float]:
        """The times of a video's embedded frames (its picture segments)."""
        rows = self.conn.execute(
            "SELECT start FROM segments WHERE file_id = ? AND modality = 'image' AND start IS NOT NULL ORDER BY start",
            (file_id,),
        )
        return [r[0] for r in rows]

    def segment_spans(self, file_id: int) -> list[tuple[float | None, float | None]]:
        return self.conn.execute("SELECT start, end FROM segments WHERE file_id = ? ORDER BY id", (file_id,)).fetchall()

    def hashes_of(self, file_ids: list[int]) -> dict[int, str]:
        """Content hashes by file id (copies share one), for files that have one."""
        out: dict[int, str] = {}
        for chunk in chunks(sorted(set(file_ids))):
            rows = self.conn.execute(f"SELECT id, hash FROM files WHERE id IN ({','.join('?' * len(chunk))})", chunk)
            out.update({r[0]: r[1] for r in rows if r[1]})
        return out

    def segment_ids(self, file_id: int) -> list[int]:
        """One file's segment ids, in order."""
        return self._segment_ids([file_id])

    def _segment_ids(self, file_ids: list[int]) -> list[int]:
        out: list[int] = []
        for chunk in chunks(file_ids):
            marks = ",".join("?" * len(chunk))
            out += [r[0] for r in self.conn.execute(f"SELECT id FROM segments WHERE file_id IN ({marks})", chunk)]
        return out

    def delete_files(self, file_ids: list[int]) -> list[int]:
        """Remove files and their segments (inside the caller's transaction); return segment ids."""
        removed = self._segment_ids(file_ids)
        for chunk in chunks(file_ids):
            marks = ",".join("?" * len(chunk))
            self.conn.execute(f"DELETE FROM segments WHERE file_id IN ({marks})", chunk)
            self.conn.execute(f"DELETE FROM texts WHERE file_id IN ({marks})", chunk)
            self.conn.execute(f"DELETE FROM files WHERE id IN ({marks})", chunk)
        if removed:
            self._bump()
        self._record(removed=removed)
        return removed

    def move_file(self, file_id: int, path: str, rel: str, root_id: int, mtime: float) -> None:
        """A rename: same content, same vectors, same capture time and place, same text read, new path
        and name words (and a capture time that was only the mtime follows the mtime)."""
        replaced = self.conn.execute("SELECT id FROM files WHERE path = ? AND id != ?", (encode(path), file_id))
        for (other,) in replaced.fetchall():
            self.conn.execute("DELETE FROM texts WHERE file_id = ?", (other,))
            self.conn.execute("DELETE FROM files WHERE id = ?", (other,))
        self.db["files"].update(file_id, {"path": encode(path), "rel": encode(rel), "root_id": root_id, "mtime": mtime})
        self.conn.execute(
            "UPDATE files SET taken = ? WHERE id = ? AND coalesce(taken_source, 'mtime') = 'mtime'", (mtime, file_id)
        )
        _put_name(self.conn, file_id, rel)

    def set_captures(self, captures: dict[int, dict]) -> None:
        """Record capture times and places by file id (inside the caller's transaction): no vector changes."""
        for file_id, fields in captures.items():
            self.db["files"].update(file_id, fields)
            _put_place(self.conn, file_id, fields)

    def forget_vectors(self) -> None:
        """Drop every vector and mark every file changed, so the next pass embeds all again."""
        with self.transaction():
            self.conn.execute("DELETE FROM segments")
            self.conn.execute("UPDATE files SET size = -1, hash = NULL WHERE status != ?", (IGNORED,))
            self._bump()

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

    def id_range(self) -> tuple[int, int]:
        # Two queries: SQLite answers a lone min() or max() from the key's b-tree, both together
        # with a scan of every segment (65 ms at a million, on every query's index check).
        low = self.conn.execute("SELECT min(id) FROM segments").fetchone()[0]
        high = self.conn.execute("SELECT max(id) FROM segments").fetchone()[0]
        return (low or 0, high or 0)

    def ids_at_or_after(self, ids: list[int]) -> list[int]:
        """For each id, the first segment id at or after it (ids leave gaps as files go)."""
        found = {self.conn.execute("SELECT min(id) FROM segments WHERE id >= ?", (i,)).fetchone()[0] for i in ids}
        return sorted(i for i in found if i is not None)

    def vectors_of(self, segment_ids: list[int]) -> dict[int, np.ndarray]:
        """Stored vectors by segment id (to check the FAISS file against)."""
        marks = ",".join("?" * len(segment_ids))
        rows = self.conn.execute(f"SELECT id, vector FROM segments WHERE id IN ({marks})", segment_ids)
        return {r[0]: np.frombuffer(r[1], "<f4") for r in rows}

    def has_segments(self) -> bool:
        """Whether any segment exists (a count(*) reads every one: 15 ms at a million)."""
        if "segments" not in self.db.table_names():
            return False
        return self.conn.execute("SELECT 1 FROM segments LIMIT 1").fetchone() is not None

    def all_segment_ids(self) -> list[int]:
        """Every segment id, ascending: exactly what the vector index and a shared store must hold."""
        if "segments" not in self.db.table_names():
            return []
        return [row[0] for row in self.conn.execute("SELECT id FROM segments ORDER BY id")]

    def segment_count(self) -> int:
        if "segments" not in self.db.table_names():
            return 0
        return self.conn.execute("SELECT count(*) FROM segments").fetchone()[0]

    def count_by(self, column: str, status: str | None = None) -> dict:
        """How many files have each value of column (status, kind, root_id), among files in a state."""
        assert column in ("status", "kind", "root_id")  # a column name, never the user's text
        where, args = ("WHERE status = ?", (status,)) if status else ("", ())
        rows = self.conn.execute(f"SELECT {column}, count(*) FROM files {where} GROUP BY {column}", args)
        return dict(rows.fetchall())

    def files_in_state(self, status: str) -> list[tuple[str, str | None]]:
        """(path, error or note) of every file in a state, by path."""
        rows = self.conn.execute("SELECT path, error FROM files WHERE status = ? ORDER BY path", (status,))
        return [(decode(path), error) for path, error in rows]

    def hits(self, segment_ids: list[int]) -> dict[int, dict]:
        """File facts for segment ids, keyed by segment id."""
        out: dict[int, dict] = {}
        for chunk in chunks(segment_ids):
            marks = ",".join("?" * len(chunk))
            rows = self.db.query(
                f"""SELECT s.id AS segment_id, s.start, s.end, s.modality AS matched, f.id AS file_id, f.path,
                           f.kind, f.size, f.mtime, f.width, f.height, f.duration, f.hash,
                           f.taken, f.taken_source, f.latitude, f.longitude, f.city, f.region, f.country
                    FROM segments s JOIN files f ON f.id = s.file_id WHERE s.id IN ({marks})""",
                chunk,
            )
            for r in rows:
                r["path"] = decode(r["path"])
                out[r.pop("segment_id")] = r
        return out

    def matching_segments(self, filters: Filters, at_most: int) -> np.ndarray | None:
        """Ids of the segments whose files pass these filters, or None when more than at_most do.
        Dates are capture times; a place is a box of coordinates on their index, then the exact
        distance (in numpy, over what the boxes hold), or named regions and countries on theirs."""
        kinds, within, after, before, near = (
            filters.kinds, filters.within, filters.after_stamp, filters.before_stamp, filters.near
        )  # fmt: skip
        where, args = ["f.status IN (?, ?)"], [INDEXED, PARTIAL]
        if kinds:
            # With a folder too, the unary + keeps SQLite on the path index (a folder is usually the
            # narrower of the two; a kind can hold half the library).
            where.append(f"{'+' if within else ''}f.kind IN ({','.join('?' * len(kinds))})")
            args += list(kinds)
        if within:
            ranges = []
            for folder in map(os.fspath, within):
                low = encode(folder.rstrip("/") + "/")
                ranges.append("(f.path = ? OR (f.path > ? AND f.path < ?))")
                args += [encode(folder.rstrip("/") or "/"), low, low[:-1] + b"0"]
            where.append("(" + " OR ".join(ranges) + ")")
        if after is not None:
            where.append("f.taken >= ?")
            args.append(after)
        if before is not None:
            where.append("f.taken < ?")
            args.append(before)
        if near is not None:
            clause, more = _near_clause(near)
            where.append(clause)
            args += more
        circle = near is not None and near.circle
        columns = "s.id, f.latitude, f.longitude" if circle else "s.id"
        sql = f"SELECT {columns} FROM files f JOIN segments s ON s.file_id = f.id WHERE {' AND '.join(where)} LIMIT ?"
        # A circle fills at least pi/4 of its box away from the poles: a box holding more than twice
        # the bound is a broad filter, answered by the index and the exact check afterwards.
        cap = 2 * at_most + 1 if circle else at_most + 1
        rows = self.conn.execute(sql, [*args, cap]).fetchall()
        if len(rows) >= cap:
            return None
        if circle:
            rows = [r for r, inside in zip(rows, within_km(near, rows), strict=True) if inside]
        ids = np.array([r[0] for r in rows], np.int64)
        return None if len(ids) > at_most else ids


def _near_clause(near: Near) -> tuple[str, list]:
    """SQL for a place filter: a circle's boxes on the coordinates index, or named areas."""
    if near.circle:  # the boxes only: the caller checks the distance
        boxes, args = [], []
        for south, north, west, east in near.boxes():
            boxes.append("(f.latitude BETWEEN ? AND ? AND f.longitude BETWEEN ? AND ?)")
            args += [south, north, west, east]
        return "(" + " OR ".join(boxes) + ")", args
    areas, args = [], []
    for country, region in near.areas:
        areas.append("(f.country = ?" + (" AND f.region = ?)" if region is not None else ")"))
        args += [country] + ([region] if region is not None else [])
    return "(" + " OR ".join(areas) + ")", args


def _put_text(conn: sqlite3.Connection, file_id: int, source: str, at: float | None, text: str) -> None:
    shown = text[:MAX_TEXT]
    found = indexed(shown)
    if found:
        conn.execute(
            "INSERT INTO texts (file_id, source, at, shown, words) VALUES (?, ?, ?, ?, ?)",
            (file_id, source, at, shown, found),
        )


def _put_place(conn: sqlite3.Connection, file_id: int, fields: dict) -> None:
    """A file's place name as words of the file (city, region, country), renewed."""
    conn.execute("DELETE FROM texts WHERE file_id = ? AND source = ?", (file_id, PLACE))
    if fields.get("country"):
        names = dict.fromkeys(n for n in (fields.get("city"), fields.get("region"), fields["country"]) if n)
        _put_text(conn, file_id, PLACE, None, ", ".join(names))


def _put_name(conn: sqlite3.Connection, file_id: int, rel: str) -> None:
    """The words of a file's path inside its library folder (folders' names and its own), renewed."""
    conn.execute("DELETE FROM texts WHERE file_id = ? AND source = ?", (file_id, NAME))
    _put_text(conn, file_id, NAME, None, name_words(rel))


def chunks(ids: list[int], size: int = 900) -> Iterator[list[int]]:
    """Ids in chunks that fit SQLite's limit on bound parameters."""
    for i in range(0, len(ids), size):
        yield ids[i : i + size]


def to_blob(vector: np.ndarray) -> bytes:
    return np.asarray(vector, dtype="<f4").tobytes()


def _stack(blobs: list[bytes]) -> np.ndarray:
    if not blobs:
        return np.zeros((0, DIM), np.float32)
    return np.frombuffer(b"".join(blobs), dtype="<f4").reshape(len(blobs), DIM).astype(np.float32)


LIBRARY_FILES = ("catalog.db", "catalog.db-wal", "catalog.db-shm", "vectors.faiss", "vectors.json", "writer.lock")


def make_private(folder: Path) -> None:
    """The library folder holds every private path: readable by its owner only, whatever the umask."""
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    for path in (folder, *(folder / name for name in LIBRARY_FILES)):
        try:
            mode = stat.S_IMODE(os.stat(path).st_mode)
            if mode & 0o077:
                os.chmod(path, mode & 0o700)  # others lose access; the owner's own choice is kept
        except FileNotFoundError:
            pass


def damaged_message(path: Path, exc: Exception) -> str:
    text = str(exc)
    if "not a database" in text or "malformed" in text:
        return (
            f"{path} is damaged ({text}): move it aside and run `mediasearch index FOLDER` to build the "
            "library again (the files on disk are untouched)"
        )
    if "full" in text:
        return f"the disk holding {path} is full: free some space and run the command again"
    if "readonly" in text or "read-only" in text:
        return f"{path} cannot be written ({text}): the library is read-only; queries and status still work"
    return f"cannot use {path} ({text})"
