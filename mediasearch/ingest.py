"""Bringing the library in step with folders: walk, compare, reuse, embed, commit.

One pass (`index`) and the watcher share the same per-file logic: a file whose
size and mtime match the catalog costs nothing; new or changed content is
hashed, and a hash the catalog already knows reuses its vectors (renames,
moves, copies) without the model; everything else is decoded and embedded in
batches.  Each batch is one SQLite transaction, so an interrupted run loses at
most the batch in flight and the next run carries on from there.
"""

from __future__ import annotations

import fnmatch
import hashlib
import os
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path

import numpy as np

from mediasearch import media
from mediasearch.bundle import Bundle
from mediasearch.catalog import FAILED, IGNORED, INDEXED, Catalog, FileRow, to_blob
from mediasearch.errors import DecodeError, MediasearchError
from mediasearch.index import VectorIndex

BATCH_FILES = 16  # files per model batch and per committed transaction


@dataclass
class Summary:
    """What a pass did, as `index --json` prints it."""

    added: int = 0
    updated: int = 0
    unchanged: int = 0
    reused: int = 0
    removed: int = 0
    failed: int = 0
    ignored: int = 0
    failures: list[dict] = field(default_factory=list)
    seconds: float = 0.0
    batches: int = 0

    def as_dict(self) -> dict:
        return {
            k: getattr(self, k)
            for k in ("added", "updated", "unchanged", "reused", "removed", "failed", "ignored", "failures", "seconds")
        }


@dataclass
class Change:
    """One change applied to the library (the watcher prints these)."""

    action: str  # added, updated, moved, removed, failed
    path: str
    detail: str = ""


@dataclass
class Seen:
    path: str
    rel: str
    root_id: int
    size: int
    mtime: float


# ----------------------------------------------------------------------------- walking


def walk(
    root: Path, hidden: bool, excludes: Iterable[str], warn: Callable[[str], None]
) -> Iterator[tuple[Path, os.stat_result]]:
    """Regular files under root, skipping hidden and excluded ones; loops and unreadable folders are warned about."""
    excludes = list(excludes)
    visited: set[tuple[int, int]] = set()
    stack = [root]
    while stack:
        folder = stack.pop()
        try:
            st = folder.stat()
        except OSError as exc:
            warn(f"skipping {folder}: {exc.strerror or exc}")
            continue
        if (st.st_dev, st.st_ino) in visited:
            warn(f"skipping {folder}: symlink loop")
            continue
        visited.add((st.st_dev, st.st_ino))
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError as exc:
            warn(f"skipping {folder}: {exc.strerror or exc}")
            continue
        for entry in entries:
            if not hidden and entry.name.startswith("."):
                continue
            path = Path(entry.path)
            if excluded(path, root, excludes):
                continue
            try:
                if entry.is_dir():
                    stack.append(path)
                    continue
                if not entry.is_file():
                    continue
                yield path, entry.stat()
            except OSError as exc:
                warn(f"skipping {path}: {exc.strerror or exc}")


def excluded(path: Path, root: Path, patterns: list[str]) -> bool:
    """--exclude GLOB matches a file or folder name, or its path relative to the root."""
    if not patterns:
        return False
    rel = path.relative_to(root).as_posix() if path.is_relative_to(root) else path.name
    return any(fnmatch.fnmatch(path.name, p) or fnmatch.fnmatch(rel, p) for p in patterns)


def content_hash(path: str) -> str:
    digest = hashlib.sha256()  # SHA-NI makes it twice as fast as blake2b here
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


# ----------------------------------------------------------------------------- indexer


class Indexer:
    """Applies what is on disk to the catalog and the vector index."""

    def __init__(
        self,
        catalog: Catalog,
        vectors: VectorIndex,
        embedder_factory: Callable[[], object],
        hidden: bool = False,
        excludes: Iterable[str] = (),
        warn: Callable[[str], None] = lambda message: None,
        on_change: Callable[[Change], None] = lambda change: None,
        workers: int = 0,
    ):
        self.catalog = catalog
        self.vectors = vectors
        self._embedder_factory = embedder_factory
        self._embedder = None
        self.hidden = hidden
        self.excludes = list(excludes)
        self.warn = warn
        self.on_change = on_change
        self.workers = workers or min(4, os.cpu_count() or 1)
        self.summary = Summary()
        self.stopping = False  # set (e.g. by a signal handler) to stop after the batch in flight

    @property
    def embedder(self):
        if self._embedder is None:
            self._embedder = self._embedder_factory()
        return self._embedder

    # ------------------------------------------------------------------ full pass

    def scan(self, roots: list[Path], progress: Callable[[int, int], None] | None = None) -> Summary:
        """Bring every file under roots in step; files gone from disk leave the library."""
        started = time.monotonic()
        for root in roots:
            self.catalog.add_root(root)
        library_roots = self.catalog.roots()
        on_disk: dict[str, os.stat_result] = {}
        for root in roots:
            for path, st in walk(root, self.hidden, self.excludes, self.warn):
                on_disk.setdefault(str(path), st)
        known: dict[str, FileRow] = {}
        for root in roots:
            known.update((row.path, row) for row in self.catalog.files_with_prefix(str(root)))
        gone = [row for path, row in known.items() if path not in on_disk]
        todo = []
        for path, st in on_disk.items():
            row = known.get(path)
            if row and row.matches(st):
                if row.status == IGNORED:
                    self.summary.ignored += 1
                else:
                    self.summary.unchanged += 1
            else:
                todo.append((_seen(Path(path), st, library_roots), row))
        self.apply(todo, gone, progress)
        self.summary.seconds = round(time.monotonic() - started, 3)
        return self.summary

    def sync_paths(self, paths: Iterable[str], roots: dict[str, int]) -> None:
        """Bring just these paths (files or folders, present or gone) in step: the watcher's pass."""
        todo: dict[str, tuple[Seen, FileRow | None]] = {}
        gone: dict[int, FileRow] = {}
        for raw in paths:
            path = Path(raw)
            root = _root_of(path, roots)
            if root is None or not self.wanted(path, Path(root)):
                continue
            if path.is_dir():
                for file, st in walk(path, self.hidden, self.excludes, self.warn):
                    self._consider(file, st, roots, todo)
            elif path.is_file():
                self._consider(path, path.stat(), roots, todo)
            for row in self.catalog.files_with_prefix(str(path)):
                if not os.path.exists(row.path):
                    gone[row.id] = row
        self.apply(list(todo.values()), list(gone.values()))

    def _consider(self, path: Path, st: os.stat_result, roots: dict[str, int], todo: dict) -> None:
        row = self.catalog.file(str(path))
        if not (row and row.matches(st)):
            todo[str(path)] = (_seen(path, st, roots), row)

    def wanted(self, path: Path, root: Path) -> bool:
        """Hidden and --exclude rules, applied to a path and every folder above it inside root."""
        rel = path.relative_to(root)
        if not self.hidden and any(part.startswith(".") for part in rel.parts):
            return False
        return not any(excluded(root / Path(*rel.parts[: i + 1]), root, self.excludes) for i in range(len(rel.parts)))

    def apply(
        self,
        todo: list[tuple[Seen, FileRow | None]],
        gone: list[FileRow],
        progress: Callable[[int, int], None] | None = None,
    ) -> None:
        """Index new and changed files (moves first, by hash), then drop the ones gone."""
        gone_by_hash = {row.hash: row for row in gone if row.hash and row.status == INDEXED}
        moved_ids: set[int] = set()
        pending: list[tuple[Seen, FileRow | None, str]] = []
        done = 0
        for item, row in todo:
            if self.stopping:
                return
            outcome = self._triage(item, row, gone_by_hash, moved_ids)
            if outcome is not None:
                pending.append((item, row, outcome))
            else:
                done += 1
                if progress:
                    progress(done, len(todo))
        for batch_done in self._embed_all(pending):
            if self.stopping:
                return
            done += batch_done
            if progress:
                progress(done, len(todo))
        leftovers = [row.id for row in gone if row.id not in moved_ids]
        if leftovers:
            self._commit_removal(leftovers, [row.path for row in gone if row.id not in moved_ids])

    def _triage(self, item: Seen, row: FileRow | None, gone_by_hash: dict, moved_ids: set[int]) -> str | None:
        """Handle what needs no model (ignored, unreadable, moved, reused); return a hash to embed, else None."""
        kind = media.kind_of(Path(item.path))
        if kind not in ("image", "audio"):
            self._store_without_vectors(self._record(item, kind, IGNORED, None, {}), row)
            self.summary.ignored += 1
            return None
        try:
            digest = content_hash(item.path)
        except FileNotFoundError:
            return None  # gone again before we got to it; a later event or pass removes it
        except OSError as exc:
            self._fail(item, kind, None, f"cannot read file ({exc.strerror or exc})", row)
            return None
        source = gone_by_hash.pop(digest, None)
        if source is not None and row is None:
            with self.catalog.transaction():
                self.catalog.move_file(source.id, item.path, item.rel, item.root_id, item.mtime)
            moved_ids.add(source.id)
            self.summary.reused += 1
            self.on_change(Change("moved", item.path, source.path))
            return None
        reuse = self.catalog.vectors_for_hash(digest)
        if reuse is not None:
            facts, segments = reuse
            record = self._record(item, facts["kind"], INDEXED, digest, facts)
            self._commit([(record, segments, row)])
            self.summary.reused += 1
            self.on_change(Change("updated" if row else "added", item.path, "reused"))
            return None
        return digest

    # ------------------------------------------------------------------ embedding

    def _embed_all(self, pending: list[tuple[Seen, FileRow | None, str]]) -> Iterator[int]:
        """Decode in threads, up to two batches ahead of the model; embed and commit a batch at a time.

        Files are handed to the decoder threads one by one, and a batch closes as
        soon as it fills one model batch (16 pictures or 4 audio windows), so the
        model starts early and never waits for a whole batch to be decoded.
        """
        if not pending:
            return
        with ThreadPoolExecutor(self.workers) as pool:
            window: deque = deque()
            upcoming = iter(pending)
            for item in islice(upcoming, 2 * BATCH_FILES):
                window.append((item, pool.submit(media.decode_or_error, Path(item[0].path))))
            while window:
                batch, decoded, ready = [], [], {"image": 0, "audio": 0}
                while window and len(batch) < BATCH_FILES and not _fills_a_model_batch(ready):
                    item, future = window.popleft()
                    batch.append(item)
                    decoded.append(future.result())
                    kind = getattr(decoded[-1], "kind", None)
                    if kind in ready:
                        ready[kind] += len(decoded[-1].tensors)
                    for nxt in islice(upcoming, 1):
                        window.append((nxt, pool.submit(media.decode_or_error, Path(nxt[0].path))))
                self._embed_batch(batch, decoded)
                yield len(batch)

    def _embed_batch(self, batch, decoded) -> None:
        good = [d for d in decoded if not isinstance(d, DecodeError)]
        vectors = iter(self.embedder.embed_decoded(good)) if good else iter(())
        self.summary.batches += 1
        writes = []
        for (item, row, digest), result in zip(batch, decoded):
            if isinstance(result, DecodeError):
                self._fail(item, media.kind_of(Path(item.path)), digest, result.reason, row)
                continue
            vecs = next(vectors)
            record = self._record(item, result.kind, INDEXED, digest, result.facts)
            segments = [(s, e, to_blob(v)) for (s, e), v in zip(result.spans, vecs)]
            writes.append((record, segments, row))
            if row:
                self.summary.updated += 1
            else:
                self.summary.added += 1
            self.on_change(Change("updated" if row else "added", item.path))
        self._commit(writes)

    # ------------------------------------------------------------------ committing

    def _commit(self, writes: list[tuple[dict, list, FileRow | None]]) -> None:
        if not writes:
            return
        if self.vectors.index is None:
            self.vectors.load()
        removed_all, added_all, vectors = [], [], []
        with self.catalog.transaction():
            for record, segments, _row in writes:
                removed, added = self.catalog.put_file(record, segments)
                removed_all += removed
                added_all += added
                vectors += [np.frombuffer(blob, "<f4") for _s, _e, blob in segments]
        self.vectors.apply(removed_all, added_all, np.stack(vectors) if vectors else None)

    def _commit_removal(self, file_ids: list[int], paths: list[str]) -> None:
        if self.vectors.index is None:
            self.vectors.load()
        with self.catalog.transaction():
            removed = self.catalog.delete_files(file_ids)
        self.vectors.apply(removed, [], None)
        self.summary.removed += len(file_ids)
        for path in paths:
            self.on_change(Change("removed", path))

    def _record(
        self, item: Seen, kind: str | None, status: str, digest: str | None, facts: dict, error: str | None = None
    ) -> dict:
        return {
            "root_id": item.root_id,
            "path": item.path,
            "rel": item.rel,
            "kind": kind,
            "size": item.size,
            "mtime": item.mtime,
            "hash": digest,
            "width": facts.get("width"),
            "height": facts.get("height"),
            "duration": facts.get("duration"),
            "status": status,
            "error": error,
            "indexed_at": time.time(),
        }

    def _store_without_vectors(self, record: dict, row: FileRow | None) -> None:
        """An ignored or failed file; the vector index is only touched if it had vectors before."""
        if row is not None and row.status == INDEXED:
            self._commit([(record, [], row)])  # drops the old segments from the index too
            return
        with self.catalog.transaction():
            self.catalog.put_file(record, [])

    def _fail(self, item: Seen, kind: str | None, digest: str | None, reason: str, row: FileRow | None) -> None:
        self._store_without_vectors(self._record(item, kind, FAILED, digest, {}, reason), row)
        self.summary.failed += 1
        self.summary.failures.append({"path": item.path, "error": reason})
        self.warn(f"skipping {item.path}: {reason}")
        self.on_change(Change("failed", item.path, reason))


def _fills_a_model_batch(ready: dict[str, int]) -> bool:
    """Enough decoded for one full model batch of either tower: start the model now."""
    from mediasearch.model import TOWERS

    return any(count >= TOWERS[kind][3] for kind, count in ready.items())


def _seen(path: Path, st: os.stat_result, roots: dict[str, int]) -> Seen:
    """A file on disk, belonging to the deepest library folder that holds it (folders may nest)."""
    owner = _root_of(path, roots)
    return Seen(str(path), path.relative_to(owner).as_posix(), roots[owner], st.st_size, st.st_mtime)


def _root_of(path: Path, roots: dict[str, int]) -> str | None:
    """The library folder that holds path (the deepest, if folders nest)."""
    inside = [r for r in roots if path == Path(r) or path.is_relative_to(r)]
    return max(inside, key=len) if inside else None


# ----------------------------------------------------------------------------- the model check


def check_model(catalog: Catalog, bundle: Bundle, reembed: bool = False) -> None:
    """Vectors from different models cannot share a library: refuse, unless asked to re-embed."""
    source, revision = catalog.get("model_source"), catalog.get("model_revision")
    if (source, revision) == (bundle.source, bundle.revision):
        return
    if source is not None and not reembed:
        raise MediasearchError(
            f"this library's vectors were made by {source} (revision {revision}), not {bundle.source} "
            f"(revision {bundle.revision}): use --model {source}, or run `mediasearch index --reembed` "
            "to embed everything again with the new model"
        )
    with catalog.transaction():
        if source is not None:
            _forget_vectors(catalog)
        catalog.set("model_source", bundle.source)
        catalog.set("model_revision", bundle.revision)


def _forget_vectors(catalog: Catalog) -> None:
    """Drop every vector and mark every file changed, so the next pass embeds all again."""
    catalog.conn.execute("DELETE FROM segments")
    catalog.conn.execute("UPDATE files SET size = -1, hash = NULL WHERE status != ?", (IGNORED,))
    catalog._bump()
