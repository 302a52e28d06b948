"""Bringing the library in step with folders: walk, compare, reuse, embed, commit.

One pass (`index`) and the watcher share the same per-file logic: a file whose
size and mtime match the catalog costs nothing; new or changed content is
hashed, and a hash the catalog already knows reuses its vectors (renames,
moves, copies) without the model; everything else is decoded and embedded in
batches.  Each batch is one SQLite transaction, so an interrupted run loses at
most the batch in flight.  A long recording is committed a few windows at a
time, so stopping keeps what was embedded and the next pass resumes it.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from itertools import chain, islice

import numpy as np

from mediasearch import capture, media, places
from mediasearch.catalog import DIM, FAILED, IGNORED, INDEXED, OFFLINE, ONLINE, PARTIAL, FileRow, Root, to_blob
from mediasearch.errors import DecodeError
from mediasearch.library import Library
from mediasearch.media.workers import POLL_S, DecoderPool, Stopped
from mediasearch.media.workers import prepare as prepare_decoders
from mediasearch.model import TOWERS
from mediasearch.paths import under_any
from mediasearch.schema import CAPTURE_COLUMNS
from mediasearch.walk import Walk, WalkOptions, root_of
from mediasearch.words import metadata_texts

BATCH_FILES = 16  # files per committed transaction at most
READ_BATCH = 8  # pictures whose text is committed together
DECODERS = min(4, os.cpu_count() or 1)
TRANSIENT = "cannot read file"  # failures that may pass (permissions, a flaky disk): retried every pass
RETRIED = (TRANSIENT, media.OUT_OF_MEMORY)  # ... and a file that found too little memory for it


@dataclass
class Summary:
    """What one pass did, as `index --json` prints it.

    `failed` counts every file of the pass that stands failed when it ends: those that failed
    now (`failed_new`) and those that failed in an earlier pass and are unchanged (not tried
    again), so a rerun never reports "0 failed" over a library that holds failures.  Each of
    `failures` says which it is ("new").
    """

    added: int = 0
    updated: int = 0
    unchanged: int = 0
    reused: int = 0
    removed: int = 0
    failed: int = 0
    failed_new: int = 0
    ignored: int = 0
    failures: list[dict] = field(default_factory=list)
    offline: list[str] = field(default_factory=list)
    seconds: float = 0.0
    batches: int = 0
    stopped: bool = False
    read: int = 0  # pictures whose text was read (OCR)

    def plus(self, other: Summary | None) -> Summary:
        """Two passes' counts together (an index of folders and of single files at once)."""
        if other is None:
            return self
        counts = ("added", "updated", "unchanged", "reused", "removed", "failed", "failed_new", "ignored", "batches")
        for key in (*counts, "read"):
            setattr(self, key, getattr(self, key) + getattr(other, key))
        self.failures += other.failures
        self.offline += other.offline
        self.seconds = round(self.seconds + other.seconds, 3)
        self.stopped = self.stopped or other.stopped
        return self

    def as_dict(self) -> dict:
        keys = ("added", "updated", "unchanged", "reused", "removed", "failed", "failed_new", "ignored")
        return {k: getattr(self, k) for k in (*keys, "failures", "offline", "read")} | {"seconds": self.seconds}

    def failure(self, path: str, error: str | None, new: bool) -> None:
        """A file that stands failed after this pass: failed now (new), or earlier and unchanged."""
        self.failed += 1
        self.failed_new += int(new)
        self.failures.append({"path": path, "error": error or "", "new": new})

    def unchanged_file(self, row: FileRow) -> None:
        """A file the pass did not need to look at again, counted by what it stands as."""
        if row.status == IGNORED:
            self.ignored += 1
        elif row.status == FAILED:
            self.failure(row.path, row.error, new=False)
        else:
            self.unchanged += 1


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


@dataclass
class Job:
    """A file to embed: where it is, what the catalog had, its content hash, windows already stored."""

    item: Seen
    row: FileRow | None
    digest: str
    kind: str  # as sniffed by triage
    stored: set[tuple] = field(default_factory=set)
    file_id: int | None = None
    failed: bool = False


@dataclass
class Unit:
    """Some segments of one file, all for one tower, embedded together in a model batch."""

    job: Job
    decoded: media.Decoded | DecodeError
    segments: list[media.Segment] = field(default_factory=list)
    last: bool = True

    @property
    def kind(self) -> str:
        """The tower these segments go to."""
        return self.segments[0].modality if self.segments else getattr(self.decoded, "kind", "")

    @property
    def spans(self) -> list:
        return [s.span for s in self.segments]

    @property
    def tensors(self) -> list:
        return [s.tensor for s in self.segments]

    @property
    def modalities(self) -> list[str]:
        return [s.modality for s in self.segments]


class Indexer:
    """Applies what is on disk to the library's catalog and vector index."""

    def __init__(
        self,
        library: Library,
        embedder_factory: Callable[[], object],
        warn: Callable[[str], None] = lambda message: None,
        on_change: Callable[[Change], None] = lambda change: None,
        max_duration: float | None = None,
        decoder_setup: Callable[[], None] | None = None,
        reader_factory: Callable[[], object] | None = None,
    ):
        """`decoder_setup` runs in each decoder worker as it starts: for tests only (a decoder made to crash)."""
        self.library = library
        self.catalog = library.catalog
        self._embedder_factory = embedder_factory
        self._embedder = None
        self._embedder_lock = threading.Lock()
        self.warn = warn
        self.on_change = on_change
        self.max_duration = max_duration
        self.decoder_setup = decoder_setup
        self.summary = Summary()  # of the pass in flight
        self.stopping = False  # set (e.g. by a signal handler) to stop after the model batch in flight
        self._reader_factory = reader_factory  # OCR: None leaves text in pictures unread (`index --no-ocr`)
        self._reader = None

    def stop(self) -> None:
        """Stop after the model batch in flight (safe from a signal handler or another thread)."""
        self.stopping = True

    @property
    def embedder(self):
        with self._embedder_lock:
            if self._embedder is None:
                self._embedder = self._embedder_factory()
            return self._embedder

    def _load_model_meanwhile(self) -> None:
        """Load the model in a thread while the decoder workers start: both take a second or more on a
        process's first pass, and neither needs the other.  A model that cannot load is met again, with
        its error, when the first batch asks for it."""

        def load() -> None:
            with contextlib.suppress(Exception):
                _ = self.embedder

        threading.Thread(target=load, daemon=True, name="mediasearch-model").start()

    # ------------------------------------------------------------------ full pass

    def scan(self, roots: list[Root], progress: Callable[[int, int], None] | None = None) -> Summary:
        """Bring every file under roots in step; files gone from disk leave the library.

        A folder that cannot be reached (missing, unreadable, or empty where the
        library holds files: an unplugged drive) is offline: its files are kept.
        """
        self.summary = Summary()
        started = time.monotonic()
        owners = self.catalog.roots()
        on_disk: dict[str, os.stat_result] = {}
        known: dict[str, FileRow] = {}
        kept: list[str] = []  # folders whose files must not be taken as deleted
        for root in roots:
            walk = self._reach(root)
            if walk is None:
                kept.append(root.path)
                continue
            for path, st in walk.files():
                on_disk.setdefault(path, st)
            kept += walk.unreadable
            for row in self.catalog.files_under(root.path):
                known.setdefault(row.path, row)
        gone = [row for path, row in known.items() if path not in on_disk and not under_any(path, kept)]
        todo, unread = [], []
        for path, st in on_disk.items():
            row = known.get(path)
            if row and row.matches(st) and not _retry(row):
                self.summary.unchanged_file(row)
                if row.status == INDEXED and row.taken_source is None:
                    unread.append(row)
            else:
                todo.append((_seen(path, st, owners), row))
        self._apply(todo, gone, progress)
        if unread and not self.stopping:
            self._read_captures(unread)
        if not self.stopping:
            self._read_metadata_words()
        self.summary.seconds = round(time.monotonic() - started, 3)
        return self.summary

    def _read_metadata_words(self) -> None:
        """Tags and captions of files indexed before mediasearch kept words (a library made earlier):
        read from the files' headers a chunk at a time, committed with how far it got, never embedding."""
        told = False
        while not self.stopping:
            todo = self.catalog.without_metadata_words(256)
            if not todo:
                self.catalog.put_metadata_words([], None)
                return
            if not told:
                self.warn("reading the tags and captions of files indexed before mediasearch kept words")
                told = True
            found = [(file_id, metadata_texts(path, kind)) for file_id, path, kind in todo]
            self.catalog.put_metadata_words(found, todo[-1][0])

    def _read_captures(self, rows: list[FileRow]) -> None:
        """Capture times and places of unchanged files indexed before they were read: from the files'
        own metadata (in the decoder threads), committed a chunk at a time, never embedding again."""
        self.warn(f"reading the capture dates and places of {len(rows)} files indexed before mediasearch read them")
        with ThreadPoolExecutor(DECODERS) as pool:
            for start in range(0, len(rows), 256):
                if self.stopping:
                    self.summary.stopped = True
                    return
                chunk = rows[start : start + 256]
                found = pool.map(lambda row: when_and_where(row.path, row.kind, row.mtime), chunk)
                captures = dict(zip((row.id for row in chunk), found, strict=True))
                with self.catalog.transaction():
                    self.catalog.set_captures(captures)

    def _reach(self, root: Root) -> Walk | None:
        """A walk of the folder, or None (and the folder marked offline) when it cannot be reached."""
        reason = None
        try:
            if not os.listdir(root.path) and self.catalog.files_under(root.path):
                reason = "it is empty but the library holds files from it (an unmounted drive?)"
        except FileNotFoundError:
            reason = "it does not exist (an unplugged drive or unmounted share?)"
        except OSError as exc:
            reason = f"it cannot be read ({exc.strerror or exc})"
        state = OFFLINE if reason else ONLINE
        if (root.state, root.reason) != (state, reason):
            with self.catalog.transaction():
                self.catalog.set_root_state(root.id, state, reason)
        if reason:
            self.summary.offline.append(root.path)
            self.warn(
                f"{root.path} is offline: {reason}; its files stay in the library "
                f"(`mediasearch forget {root.path}` drops them)"
            )
            return None
        return Walk(root.path, WalkOptions.of(root.options), self.warn)

    def sync_paths(self, paths: Iterable[str], roots: list[Root], fresh_after: float | None = None) -> Summary:
        """Bring just these paths (files or folders, present or gone) in step: the watcher's pass.

        Files inside a folder whose mtime is after `fresh_after` are still being
        written; the watcher holds them back on their own and syncs them later.
        """
        self.summary = Summary()
        todo: dict[str, tuple[Seen, FileRow | None]] = {}
        gone: dict[int, FileRow] = {}
        for path in paths:
            root = root_of(path, roots)
            if root is None or not os.path.isdir(root.path):
                continue  # a folder that vanished is offline, not emptied: its files are kept
            options = WalkOptions.of(root.options)
            if not options.wanted(path, root.path):
                continue
            if os.path.isdir(path) and (options.follow_links or not os.path.islink(path)):
                walk = Walk(root.path, options, self.warn)
                for file, st in walk.files(path):
                    if fresh_after is None or st.st_mtime <= fresh_after:
                        self._consider(file, st, roots, todo)
            elif os.path.isfile(path) and (options.follow_links or not os.path.islink(path)):
                self._consider(path, os.stat(path), roots, todo)
            for row in self.catalog.files_under(path):
                if not os.path.lexists(row.path):
                    gone[row.id] = row
        self._apply(list(todo.values()), list(gone.values()))
        return self.summary

    def _consider(self, path: str, st: os.stat_result, roots: list[Root], todo: dict) -> None:
        row = self.catalog.file(path)
        if row and row.matches(st) and not _retry(row):
            self.summary.unchanged_file(row)
        else:
            todo[path] = (_seen(path, st, roots), row)

    def _apply(
        self,
        todo: list[tuple[Seen, FileRow | None]],
        gone: list[FileRow],
        progress: Callable[[int, int], None] | None = None,
    ) -> None:
        """Index new and changed files (moves first, by hash), then drop the ones gone."""
        if todo:
            prepare_decoders()  # the decoder workers' forkserver warms up while files are hashed
        gone_by_hash = {row.hash: row for row in gone if row.hash and row.status == INDEXED}
        moved_ids: set[int] = set()
        jobs: list[Job] = []
        done = 0
        for item, row in todo:
            if self.stopping:
                self.summary.stopped = True
                return
            job = self._triage(item, row, gone_by_hash, moved_ids)
            if job is not None:
                jobs.append(job)
            else:
                done += 1
                if progress:
                    progress(done, len(todo))
        total = done + sum(media.expected_segments(job.item.path, job.kind) for job in jobs)
        for _job, segments in self._embed_all(jobs):
            done += segments
            if progress:
                progress(done, max(total, done))
        if self.stopping:
            self.summary.stopped = True
            return
        leftovers = [row for row in gone if row.id not in moved_ids]
        if leftovers:
            self._commit_removal(leftovers)

    def _triage(self, item: Seen, row: FileRow | None, gone_by_hash: dict, moved_ids: set[int]) -> Job | None:
        """Handle what needs no model (ignored, unreadable, moved, reused); return a job to embed, else None."""
        kind = media.kind_of(item.path)
        if kind not in ("image", "audio", "video"):
            reason = "not a picture, sound or video (by its content, nor by its name)"
            self._commit([(self._record(item, kind, IGNORED, None, {}, reason), [])])
            self.summary.ignored += 1
            return None
        try:
            digest = media.content_hash(item.path)
        except FileNotFoundError:
            return None  # gone again before we got to it; a later event or pass removes it
        except OSError as exc:
            self._fail(item, kind, None, f"{TRANSIENT} ({exc.strerror or exc})")
            return None
        if row is not None and row.status == PARTIAL and row.hash == digest:
            stored = set(self.catalog.segment_spans(row.id))
            return Job(item, row, digest, kind, stored, row.id)  # resume a long recording
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
            self._commit([(self._record(item, facts["kind"], INDEXED, digest, facts), segments)])
            self.summary.reused += 1
            self.on_change(Change("updated" if row else "added", item.path, "reused"))
            return None
        return Job(item, row, digest, kind)

    # ------------------------------------------------------------------ embedding

    def _embed_all(self, jobs: list[Job]) -> Iterator[tuple[Job, int]]:
        """Decode in threads, ahead of the model; embed and commit one model batch at a time.

        Files are handed to the decoder threads one by one; a batch closes as
        soon as it fills one model batch (16 pictures or 4 audio windows) or
        holds 16 files, so the model starts early, and a stop request is seen
        between batches (about a second apart with the full-size model).
        """
        if not jobs:
            return
        # Decoder threads each wait on a worker process; one worker more serves the rest of the recording
        # the pass is on (see media/workers.py), so a thread never waits on a worker the pass holds.
        workers = DecoderPool(DECODERS + 1, self.max_duration, self.decoder_setup, lambda: self.stopping)
        self._load_model_meanwhile()
        pool = ThreadPoolExecutor(DECODERS)
        window: deque = deque()
        try:
            upcoming = iter(jobs)
            for job in islice(upcoming, 2 * BATCH_FILES):
                window.append((job, pool.submit(workers.decode, job.item.path)))
            units = self._units(window, upcoming, pool, workers)
            while not self.stopping:
                batch = _next_batch(units)
                if not batch:
                    return
                self._embed_batch(batch)
                for unit in batch:
                    yield unit.job, max(1, len(unit.spans))
        finally:
            workers.close()  # first: a thread waiting on a worker is then answered at once
            pool.shutdown(wait=True, cancel_futures=True)
            for _job, future in window:
                finished = future.done() and not future.cancelled() and future.exception() is None
                if finished and isinstance(future.result(), media.Decoded):
                    future.result().close()

    def _units(self, window: deque, upcoming: Iterator[Job], pool, workers: DecoderPool) -> Iterator[Unit]:
        """Units in file order: a picture whole, a recording a model batch of windows at a time.

        Waits look at `stopping` every POLL_S, so a stop is seen while a decoder is busy (ends at once).
        """
        while window:
            job, future = window[0]
            decoded = self._result(future)
            if decoded is None:
                return
            window.popleft()
            for nxt in islice(upcoming, 1):
                window.append((nxt, pool.submit(workers.decode, nxt.item.path)))
            if isinstance(decoded, DecodeError):
                yield Unit(job, decoded)
                continue
            try:
                yield from _chunks(job, decoded)
            except Stopped:
                return
            except Exception as exc:  # a reader failing mid-recording, a worker dying: this file alone
                yield Unit(job, media.failure(job.item.path, exc))
            finally:
                decoded.close()

    def _result(self, future) -> media.Decoded | DecodeError | None:
        """A decoder thread's result, or None once the pass is stopping."""
        while not self.stopping:
            try:
                return future.result(timeout=POLL_S)
            except FutureTimeout:
                continue
            except Stopped:
                return None
        return None

    def _embed_batch(self, batch: list[Unit]) -> None:
        runnable = [u for u in batch if isinstance(u.decoded, DecodeError) or u.tensors]
        results = dict.fromkeys(map(id, batch), np.zeros((0, DIM), np.float32))
        if runnable:
            inputs = [u.decoded if isinstance(u.decoded, DecodeError) else u for u in runnable]
            outputs = self.embedder.embed_each([u.job.item.path for u in runnable], inputs)
            results.update(zip(map(id, runnable), outputs, strict=True))
            self.summary.batches += 1
        self._commit_batch(batch, [results[id(u)] for u in batch])

    def _commit_batch(self, batch: list[Unit], results: list) -> None:
        writes = []
        for unit, result in zip(batch, results, strict=True):
            if unit.job.failed:
                continue
            if isinstance(result, DecodeError):
                self._fail(unit.job.item, media.kind_of(unit.job.item.path), unit.job.digest, result.reason)
                unit.job.failed = True
                continue
            writes.append(
                (
                    unit,
                    [(s, e, to_blob(v), m) for (s, e), v, m in zip(unit.spans, result, unit.modalities, strict=True)],
                )
            )
        self._commit_units(writes)

    # ------------------------------------------------------------------ reading text

    def read_text(self, progress: Callable[[int, int], None] | None = None) -> int:
        """Read the text in every indexed picture this reader has not read (after the vector pass, so
        every file is findable by its vector first). Committed a few pictures at a time: Ctrl-C or a
        kill keeps what was read, and the next pass reads the rest. Returns how many were read."""
        if self._reader_factory is None:
            return 0
        from mediasearch import ocr

        reader_id = ocr.fingerprint()
        waiting = self.catalog.read_counts(reader_id)["waiting"]
        done, last = 0, 0
        with ThreadPoolExecutor(1) as pool:  # the next picture decodes while this one is read
            while not self.stopping:
                todo = self.catalog.unread(reader_id, READ_BATCH, last)
                if not todo:
                    break
                found = []
                loads = [pool.submit(_load_or_error, path) if kind == "image" else None for _, path, kind in todo]
                for (file_id, path, kind), loaded in zip(todo, loads, strict=True):
                    if self.stopping:
                        break
                    if kind == "video":
                        found.append((file_id, self._read_frames(file_id, path)))
                    else:
                        found.append((file_id, self._read(path, loaded.result())))
                    done += 1
                    if progress:
                        progress(done, max(waiting, done))
                self._commit_read(reader_id, found)
                last = todo[-1][0]
        if self.stopping:
            self.summary.stopped = True
        return done

    def _read(self, path: str, loaded) -> list[tuple[float | None, str]]:
        """The lines read in one decoded picture; a picture that cannot be decoded has none."""
        if isinstance(loaded, Exception):
            return []
        if self._reader is None:
            self._reader = self._reader_factory()
        try:
            return [(None, line.text) for line in self._reader.read(loaded)]
        except Exception as exc:  # a reader failure on one picture must not stop the pass
            self.warn(f"note: {path}: its text could not be read ({type(exc).__name__}: {exc})")
            return []

    def _read_frames(self, file_id: int, path: str) -> list[tuple[float | None, str]]:
        """The lines read in a video's embedded frames, each with its frame's time."""
        from mediasearch import ocr

        lines: list[tuple[float | None, str]] = []
        try:
            for at, frame in ocr.video_frames(path, self.catalog.frame_times(file_id)):
                if self.stopping:
                    break
                lines += [(at, text) for _, text in self._read(path, frame)]
        except Exception as exc:  # a video that no longer decodes keeps what was read of it
            self.warn(f"note: {path}: the text of its frames could not be read ({type(exc).__name__}: {exc})")
        return lines

    def _commit_read(self, reader_id: str, found: list) -> None:
        if not found:
            return
        with self.catalog.transaction():
            for file_id, lines in found:
                if self.catalog.file_by_id(file_id) is not None:  # not removed meanwhile (the watcher)
                    self.catalog.put_read(file_id, reader_id, lines)

    # ------------------------------------------------------------------ committing

    def _commit_units(self, writes: list[tuple[Unit, list]]) -> None:
        """One transaction for a model batch: new files, windows of long ones, files finished."""
        if not writes:
            return
        finished = []
        texts = {id(u): metadata_texts(u.job.item.path, u.decoded.kind) for u, _ in writes if u.job.file_id is None}
        with self.library.change():
            for unit, segments in writes:
                job = unit.job
                if job.file_id is None:
                    status = INDEXED if unit.last else PARTIAL
                    record = self._record(job.item, unit.decoded.kind, status, job.digest, unit.decoded.facts)
                    self.catalog.put_file(record, segments, texts[id(unit)])
                    job.file_id = self.catalog.file(job.item.path).id
                else:
                    self.catalog.add_segments(job.file_id, segments)
                if unit.last:
                    self.catalog.finish_file(job.file_id, unit.decoded.facts, unit.decoded.note)
                    finished.append(unit)
        for unit in finished:
            self._report_finished(unit)

    def _report_finished(self, unit: Unit) -> None:
        job = unit.job
        if job.row:
            self.summary.updated += 1
        else:
            self.summary.added += 1
        if unit.decoded.note:
            self.warn(f"note: {job.item.path}: {unit.decoded.note}")
        self.on_change(Change("updated" if job.row else "added", job.item.path))

    def _commit(self, writes: list[tuple[dict, list]]) -> None:
        """Whole files with their segments (or none), in one write."""
        texts = [metadata_texts(r["path"], r["kind"]) if r["status"] == INDEXED else {} for r, _ in writes]
        with self.library.change():
            for (record, segments), found in zip(writes, texts, strict=True):
                self.catalog.put_file(record, segments, found)

    def _commit_removal(self, rows: list[FileRow]) -> None:
        with self.library.change():
            self.catalog.delete_files([row.id for row in rows])
        self.summary.removed += len(rows)
        for row in rows:
            self.on_change(Change("removed", row.path))

    def _record(
        self, item: Seen, kind: str | None, status: str, digest: str | None, facts: dict, error: str | None = None
    ) -> dict:
        """A file's row; an indexed one's capture time and place are read from it here (a failed or
        ignored one has its mtime and no source, read again if it is ever indexed)."""
        if status in (FAILED, IGNORED):
            found = {"taken": item.mtime}
        elif facts.get("taken_source"):  # a copy of an indexed file: its capture, and the mtime its own
            found = {name: facts.get(name) for name in CAPTURE_COLUMNS}
            if found["taken_source"] == capture.MTIME:
                found["taken"] = item.mtime
        else:  # read by the decoder worker with the file's facts, else here
            found = when_and_where(item.path, kind, item.mtime, facts.get("capture"))
        return found | {
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

    def _fail(self, item: Seen, kind: str | None, digest: str | None, reason: str) -> None:
        """Record a failure, unless the file simply went away meanwhile (then it is just gone)."""
        if not os.path.lexists(item.path):
            row = self.catalog.file(item.path)
            if row is not None:
                self._commit_removal([row])
            return
        before = self.catalog.file(item.path)
        self._commit([(self._record(item, kind, FAILED, digest, {}, reason), [])])
        self.summary.failure(item.path, reason, new=before is None or before.status != FAILED)
        self.on_change(Change("failed", item.path, reason))  # told once, by whoever follows the changes


def _chunks(job: Job, decoded: media.Decoded) -> Iterator[Unit]:
    """A decoded file as units of one tower's model batch at most, skipping segments already stored."""
    pending: list[media.Segment] = []
    for segment in chain(decoded.ready, decoded.more or ()):
        if segment.span in job.stored:
            continue
        if pending and (
            segment.modality != pending[0].modality or len(pending) == TOWERS[pending[0].modality].max_batch
        ):
            yield Unit(job, decoded, pending, last=False)
            pending = []
        pending.append(segment)
    yield Unit(job, decoded, pending, last=True)


def _next_batch(units: Iterator[Unit]) -> list[Unit]:
    """Units until one model batch of either tower is full, or BATCH_FILES files are in."""
    batch: list[Unit] = []
    ready = {"image": 0, "audio": 0}
    files: set[int] = set()
    for unit in units:
        batch.append(unit)
        files.add(id(unit.job))
        if not isinstance(unit.decoded, DecodeError):
            ready[unit.kind] += len(unit.tensors)
        if len(files) >= BATCH_FILES or any(n >= TOWERS[k].max_batch for k, n in ready.items()):
            break
    return batch


def when_and_where(path: str, kind: str | None, mtime: float, read: dict | None = None) -> dict:
    """A file's capture columns: when it was taken and the source of that, its coordinates and place
    (`read`: what capture.metadata found already, in a decoder worker)."""
    found = capture.finish(read, mtime) if read is not None else capture.read(path, kind, mtime)
    place = places.place_of(found.latitude, found.longitude)
    return {
        "taken": found.taken,
        "taken_source": found.source,
        "latitude": found.latitude,
        "longitude": found.longitude,
        "city": place.city if place else None,
        "region": (place.region or None) if place else None,
        "country": place.country if place else None,
    }


def _load_or_error(path: str):
    """A picture decoded for reading (mediasearch.ocr.load), or the error that stopped it."""
    from mediasearch import ocr

    try:
        return ocr.load(path)
    except Exception as exc:
        return exc


def _retry(row: FileRow) -> bool:
    """Unchanged files worth another look: a failure that may have passed, a recording left half-done."""
    return row.status == PARTIAL or (row.status == FAILED and (row.error or "").startswith(RETRIED))


def _seen(path: str, st: os.stat_result, roots: list[Root]) -> Seen:
    """A file on disk, belonging to the deepest library folder that holds it (folders may nest)."""
    owner = root_of(path, roots)
    return Seen(path, os.path.relpath(path, owner.path), owner.id, st.st_size, st.st_mtime)
