"""The Python API: `mediasearch.open()` and the `Library` it returns.

Every capability is a call here; the command line, the server and the MCP face
only parse, call and print.  A Library is safe to use from several threads:
reads of the catalog and the vector index take turns under one lock, while the
model's towers (onnxruntime sessions serve threads at once) run outside it, so a
slow embedding never holds up another caller's search.  Writing (index, forget,
watch) needs `write=True`, which takes the library's writer lock.

    >>> import mediasearch
    >>> with mediasearch.open(write=True, model="tests/fixtures/bundle") as library:
    ...     summary = library.index("sample_media")
    ...     hits = library.search("a dog barking", kinds=["audio"], limit=3)
"""

from __future__ import annotations

import contextlib
import functools
import os
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import NamedTuple

import numpy as np

from mediasearch import paths as places
from mediasearch import search as ranking
from mediasearch.bundle import DEFAULT_MODEL, resolve
from mediasearch.errors import Busy, DecodeError, EmptyLibrary, ExampleError, UsageError
from mediasearch.places import Near, parse_near
from mediasearch.precision import with_precision
from mediasearch.query import parse
from mediasearch.search import Filters, Hit
from mediasearch.storage import Storage
from mediasearch.walk import root_of

PathLike = str | os.PathLike
Log = Callable[[str], None]

__all__ = ["Hit", "Library", "Limits", "open"]


@dataclass(frozen=True)
class Limits:
    """Bounds on the work one call may cause, so a Library shared by many callers (a server's clients,
    an assistant) stays responsive and within memory.  Indexing is not bounded by these: a pass over
    one's own folders decodes what it must (see index's max_duration)."""

    files_at_once: int = 2  # example files and uploads decoded and embedded at once; others wait ...
    wait_seconds: float = 30.0  # ... this long for a turn (0: not at all), then Busy
    text_chars: int = 10_000  # a query text is cut here before tokenising: the model reads 77 tokens
    example_seconds: float | None = 600.0  # of an example's or an upload's sound: 60 windows at most


class Embedded(NamedTuple):
    """A file's segments and their vectors (one row each), as embed_file gives them."""

    kind: str
    spans: list[tuple[float | None, float | None]]
    modalities: list[str]
    vectors: np.ndarray


def _quiet(message: str) -> None:
    """Where a caller gives no log: the API prints nothing of its own."""


def _place(near: str | Near | None) -> Near | None:
    """A place filter from its text (the command line's --near forms); UsageError saying them if it is none."""
    if near is None or isinstance(near, Near):
        return near
    try:
        return parse_near(near)
    except ValueError as exc:
        raise UsageError(f"near: {exc}") from exc


def _is_embedder(model) -> bool:
    """A model.Embedder made by the caller, rather than a bundle's folder or hub id (or None)."""
    return not (model is None or isinstance(model, str | os.PathLike))


def _absolute(path: PathLike) -> str:
    return os.path.abspath(os.path.expanduser(os.fspath(path)))


def _one_pass(method):
    """index, watch and forget change the library: one at a time.  A second one from another thread is
    refused (it would write the catalog beside the first, and stop() would reach only the later one)."""

    @functools.wraps(method)
    def run(self, *args, **kwargs):
        with self._lock:
            if self._changing:
                raise UsageError(f"this library is already indexing or watching: {method.__name__} waits "
                                 "for it to end (or stop() it)")  # fmt: skip
            self._changing = True
        try:
            return method(self, *args, **kwargs)
        finally:
            self._changing = False

    return run


class Library:
    """One library of pictures, sounds and videos: index folders into it, search it.

    Open it with `mediasearch.open()`.  `model` and `precision` default to the
    ones the library was built with (then `antflydb/clipclap`, fp32).
    """

    def __init__(
        self,
        library: PathLike | None = None,
        *,
        model=None,
        precision: str | None = None,
        write: bool = False,
        one_shot: bool = False,
        log: Log = _quiet,
        limits: Limits | None = None,
    ):
        if write and not (places.library_dir(library) / "catalog.db").exists() and not _is_embedder(model):
            # A library is made only once its model is found: a first `index` that cannot reach one
            # leaves nothing behind (no catalog, no lock: still no library).
            with_precision(resolve(model), precision, log)
        self._storage = Storage(library, write=write)
        self.folder: Path = self._storage.folder
        self.writable = write
        self._model, self._precision, self._log = model, precision, log
        self._lock = threading.RLock()  # catalog and index take turns; the towers run outside it
        self.limits = limits or Limits()
        self._slots = threading.BoundedSemaphore(self.limits.files_at_once)
        self._verified: set[tuple] = set()  # files reached through links whose content was checked
        if model is None or isinstance(model, str | os.PathLike):
            self._make_embedder = self._storage.embedder_factory(model, precision, log, one_shot=one_shot)
        else:  # a model.Embedder made by the caller (tests share one; a program may too)
            self._make_embedder = lambda: model
        self._indexer = None  # the pass in flight, so stop() can reach it
        self._watcher = None
        self._stop_asked = False
        self._changing = False  # an index, watch or forget is running (_one_pass)
        self._backend = ranking.backend_for(self._storage)  # the local index or the shared store, chosen once

    # ------------------------------------------------------------------ life

    def close(self) -> None:
        self._storage.close()

    def __enter__(self) -> Library:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def stop(self) -> None:
        """Ask a running `index` or `watch` (in another thread, or a signal handler) to stop after the
        model batch in flight, keeping what is finished (about a second)."""
        self._stop_asked = True
        for running in (self._indexer, self._watcher):
            if running is not None:
                running.stop()

    @property
    def stopping(self) -> bool:
        """Whether stop() was asked (a second Ctrl-C then stops at once)."""
        return self._stop_asked

    def _started(self, indexer, watcher=None) -> None:
        self._indexer, self._watcher = indexer, watcher
        if self._stop_asked:
            self.stop()

    # ------------------------------------------------------------------ searching

    def search(
        self,
        text: str | None = None,
        *,
        like: Sequence[PathLike] = (),
        unlike: Sequence[PathLike] = (),
        kinds: Iterable[str] = (),
        within: Iterable[PathLike] = (),
        after: datetime | None = None,
        before: datetime | None = None,
        near: str | Near | None = None,
        limit: int = 10,
        min_score: float | None = None,
        include_examples: bool = False,
    ) -> list[Hit]:
        """The files nearest to `text` (the query language: words, `-word`, "a phrase") and the
        example files in `like`, away from `unlike`; best first, copies of one content as one hit.

        after/before are capture times (the file's own, else its mtime); near is where it was taken:
        "LAT,LON[,KM]", a city ("Porto, Portugal"), a region or a country.  Example files are left
        out of the results unless include_examples.
        """
        place = _place(near)
        query = parse(text)
        if not query.positive and not like:
            raise UsageError("give a query: some words, or an example file")
        self._check_not_empty()
        texts = [query.text] if query.text else []
        warming = self._warm(texts + query.negative_texts)
        with self._lock:
            self._backend.open()  # maps the index while the text tower loads
        if warming is not None:
            warming.join()
        positives = [self.vector_of(p) for p in like]
        negatives = [self.vector_of(p) for p in unlike]
        if texts:
            positives += list(self.embed_texts(texts))
        if query.negative:
            negatives += list(self.embed_texts(query.negative_texts))
        vector = ranking.combine(positives, negatives)
        with self._lock:
            exclude = frozenset() if include_examples else ranking.example_hashes(self._storage, [*like, *unlike])
        filters = self._filters(kinds, within, after, before, min_score, exclude, place)
        return self._rank(vector, filters, limit, query)

    def similar(
        self,
        file: PathLike | int,
        *,
        kinds: Iterable[str] = (),
        within: Iterable[PathLike] = (),
        after: datetime | None = None,
        before: datetime | None = None,
        near: str | Near | None = None,
        limit: int = 10,
        min_score: float | None = None,
        include_example: bool = False,
    ) -> list[Hit]:
        """More like an indexed file (its id from a Hit, or its path), from its stored vectors: no model
        is loaded.  The file and its copies are left out, unless include_example: then the file itself
        comes first (its best segment's score), so an answer can show what it started from."""
        place = _place(near)
        with self._lock:
            if isinstance(file, int):
                vector, digest = ranking.stored_vector(self._storage, file)
            else:
                row = self._storage.catalog.file(_absolute(file))
                if row is None:
                    raise UsageError(f"{file} is not in the library: index it first")
                vector, digest = ranking.stored_vector(self._storage, row.id)
                file = row.id
            itself = ranking.example_hit(self._storage, file, vector) if include_example else None
        exclude = frozenset({digest} if digest else ())
        hits = self._rank(vector, self._filters(kinds, within, after, before, min_score, exclude, place), limit)
        return ([itself] if itself else []) + hits

    def _filters(self, kinds, within, after, before, min_score, exclude, near=None) -> Filters:
        return Filters(tuple(kinds), [_absolute(p) for p in within], after, before, min_score, exclude, near)

    def _rank(self, vector: np.ndarray, filters: Filters, limit: int, query=None) -> list[Hit]:
        if limit < 1:
            raise UsageError("limit must be at least 1")
        with self._lock:
            return ranking.fuse(self._storage, vector, query, limit, filters, self._backend)

    def _check_not_empty(self) -> None:
        with self._lock:
            if self._backend.is_empty():
                raise EmptyLibrary("the library is empty: index a folder first (`mediasearch index FOLDER`)")

    def _warm(self, texts: list[str]) -> threading.Thread | None:
        """Find the model and load the text tower in a thread while the index opens, unless every text
        is remembered; any error is raised again, in order, by the embedding itself."""
        if not texts:
            return None

        def warm() -> None:
            with contextlib.suppress(Exception):
                embedder = self._make_embedder()
                if not embedder.knows(texts):
                    embedder.warm_text()

        thread = threading.Thread(target=warm, daemon=True)
        thread.start()
        return thread

    # ------------------------------------------------------------------ vectors

    @property
    def embedder(self):
        """The model's towers (loaded on first need; a search of remembered texts never loads them)."""
        return self._make_embedder()

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        """One unit vector per text, [N, 512].  A text is cut at limits.text_chars before it is
        tokenised (the model reads its first 77 tokens)."""
        return self.embedder.embed_texts([t[: self.limits.text_chars] for t in texts])

    def embed_file(self, path: PathLike, max_duration: float | None = None):
        """The segments of one picture, sound or video and their vectors (an Embedded), or a
        DecodeError saying why it cannot be used.  At most limits.example_seconds of a recording
        (or max_duration, if shorter) are decoded and embedded."""
        return self.embed_files([path], max_duration)[0]

    def embed_files(self, paths: Sequence[PathLike], max_duration: float | None = None) -> list:
        """embed_file for several files at once (pictures share the image tower's batches)."""
        bound = self.limits.example_seconds
        seconds = bound if max_duration is None or bound is None else min(bound, max_duration)
        with self._file_turn():
            return embed_files(self.embedder, paths, seconds)

    @contextlib.contextmanager
    def _file_turn(self):
        """Decoding and embedding a file (an example, an upload) takes one of limits.files_at_once turns;
        a caller waits at most limits.wait_seconds for one, then gets Busy (a server answers 429), so a
        crowd of uploads is bounded instead of piling every decode onto the CPU at once.  Texts need no
        turn: one run of the text tower is milliseconds, and searches must not wait behind uploads."""
        if not self._slots.acquire(timeout=self.limits.wait_seconds):
            raise Busy(f"{self.limits.files_at_once} files are being embedded already: try again shortly")
        try:
            yield
        finally:
            self._slots.release()

    def vector_of(self, path: PathLike) -> np.ndarray:
        """One unit vector for a whole file (the mean of its segments): stored if the file is indexed
        and unchanged, else embedded now.  An example for `search(like=...)`."""
        with self._lock:
            stored = ranking.stored_vector_of(self._storage, _absolute(path))
        if stored is not None:
            return stored
        result = self.embed_file(path)
        if isinstance(result, DecodeError):
            raise ExampleError(os.fspath(path), f"example file {path} cannot be used: {result.reason}")
        return ranking.mean_vector(result.vectors)

    # ------------------------------------------------------------------ keeping in step

    @_one_pass
    def index(
        self,
        *paths: PathLike,
        hidden: bool | None = None,
        excludes: Sequence[str] = (),
        clear_excludes: bool = False,
        follow_links: bool | None = None,
        max_duration: float | None = None,
        reembed: bool = False,
        store: str | None = None,
        progress: Callable[[int, int], None] | None = None,
        on_change: Callable | None = None,
        ocr: bool = True,
        reading: Callable[[], Callable[[int, int], None]] | None = None,
    ):
        """Add folders (or bring single files in step) and index what changed; with no path, rescan
        every folder the library has.  Returns the pass's ingest.Summary.

        Folder options given are remembered by the folder.  max_duration is in seconds.  store binds
        the library to an Antfly table (http://HOST:PORT/TABLE).  The saved index and the store are
        brought in step at the end, also when the pass fails or is stopped.

        After the vectors, the text in pictures not read yet is read (OCR), unless ocr is False;
        reading() makes that stage's progress callback (after `progress` is closed, if it can be).
        """
        from mediasearch.ingest import Indexer

        self._require_writer()
        folders = [_absolute(p) for p in paths if os.path.isdir(p)]
        files = [_absolute(p) for p in paths if not os.path.isdir(p)]
        if not folders and not files and (hidden is not None or excludes or clear_excludes or follow_links is not None):
            raise UsageError("name the folders whose --hidden, --exclude or --follow-links should change")
        make = self._writer_embedder(reembed)
        ocr = ocr and not os.environ.get("MEDIASEARCH_NO_OCR")  # a machine (or a test run) that never reads text
        if store:
            left = self._storage.bind_store(store)
            self._backend = ranking.backend_for(self._storage)
            if left:
                self._log(f"this library now lives in {self._storage.store.address}; {left} keeps its documents")
        with self._lock:
            roots = self._roots(folders, hidden, excludes, clear_excludes, follow_links) if folders or not files else []
            owners = self._owners(files)
        indexer = Indexer(self._storage, make, warn=self._log, on_change=on_change or (lambda c: None),
                          max_duration=max_duration, reader_factory=_ocr_reader if ocr else None)  # fmt: skip
        self._started(indexer)
        try:
            summary = indexer.scan(roots, progress) if roots else None
            if files:
                summary = indexer.sync_paths(files, owners).plus(summary)
            if summary is not None and ocr and not indexer.stopping:
                if hasattr(progress, "close"):
                    progress.close()
                self._save(quietly=True)  # the vectors are findable by every reader now, not after the text
                summary.read = indexer.read_text(reading() if reading else None)
                summary.stopped = summary.stopped or indexer.stopping
        finally:
            self._indexer = None
            self._save(quietly=True)
            stopped, self._stop_asked = self._stop_asked, False  # asked of this pass: the next one runs
        if stopped:
            summary.stopped = True
        return summary

    def _writer_embedder(self, reembed: bool):
        """Settle the model a pass writes with (binding the library to it) and return its factory."""
        with self._lock:
            if self._model is None or isinstance(self._model, str | os.PathLike):
                return self._storage.writer_embedder(self._model, self._precision, reembed, self._log)
            self._storage.bind(self._model.bundle, reembed)
            return self._make_embedder

    def _roots(self, folders, hidden, excludes, clear_excludes, follow_links):
        if folders:
            return self._storage.add_folders(folders, hidden, excludes, clear_excludes, follow_links)
        roots = self._storage.catalog.roots()
        if not roots:
            raise UsageError("give a folder (the library has none yet)")
        return roots

    def _owners(self, files: list[str]):
        """The library's folders, once every file given is known to lie inside one of them."""
        roots = self._storage.catalog.roots()
        for file in files:
            if root_of(file, roots) is None:
                raise UsageError(
                    f"{file} is not inside a library folder: index its folder (`mediasearch index "
                    f"{os.path.dirname(file)}`)"
                )
        return roots

    @_one_pass
    def watch(
        self,
        *folders: PathLike,
        hidden: bool | None = None,
        excludes: Sequence[str] = (),
        clear_excludes: bool = False,
        follow_links: bool | None = None,
        max_duration: float | None = None,
        settle: float = 1.0,
        rescan: float = 0.0,
        on_change: Callable | None = None,
        log: Log | None = None,
        observer_factory: Callable | None = None,
    ) -> None:
        """Keep the library in step with its folders (or these) until stop() is called: the same pass as
        index() first, then filesystem events.  on_change receives each ingest.Change; log the
        watcher's own lines (default: the library's log; per-file warnings always go there)."""
        from mediasearch.ingest import Indexer
        from mediasearch.watch import Settings, Watcher

        self._require_writer()
        make = self._writer_embedder(False)
        with self._lock:
            roots = self._roots([_absolute(p) for p in folders], hidden, excludes, clear_excludes, follow_links)
        reads = None if os.environ.get("MEDIASEARCH_NO_OCR") else _ocr_reader
        indexer = Indexer(self._storage, make, warn=self._log, on_change=on_change or (lambda c: None),
                          max_duration=max_duration, reader_factory=reads)  # fmt: skip
        watcher = Watcher(indexer, roots, Settings(settle=settle, rescan=rescan), log or self._log, observer_factory)
        self._started(indexer, watcher)
        try:
            watcher.run()
        finally:
            self._indexer = self._watcher = None
            self._stop_asked = False  # asked of this watch: the library's next pass runs

    @_one_pass
    def forget(self, folder: PathLike):
        """Drop a folder and its files' vectors from the library (the files on disk are untouched).
        A folder inside another library folder hands its files back to it.  Returns (segments removed,
        the folder that keeps its files or None)."""
        self._require_writer()
        with self._lock:
            try:
                return self._storage.forget(_absolute(folder))
            finally:
                self._save(quietly=True)

    def _save(self, quietly: bool = False) -> None:
        with self._lock:
            if quietly:
                with contextlib.suppress(Exception):
                    self._storage.save_index()
            else:
                self._storage.save_index()

    def _require_writer(self) -> None:
        if not self.writable:
            raise UsageError("open the library with write=True to change it")

    # ------------------------------------------------------------------ reporting

    def status(self, list_ignored: bool = False) -> dict:
        """What `mediasearch status --json` prints: folders, counts, failures, model, index, store."""
        from mediasearch.status import library_status

        with self._lock:
            return library_status(self._storage, list_ignored)

    @property
    def sent(self):
        """What this Library sent to its shared store and what waits (store.Sent), if it is bound."""
        return self._storage.sent

    @property
    def store_address(self) -> str | None:
        store = self._storage.store
        return None if store is None else str(store.address)

    def file(self, file_id: int):
        """An indexed file's catalog row by its id (a Hit's file_id), or None."""
        with self._lock:
            return self._storage.catalog.file_by_id(file_id)

    def open_file(self, file_id: int):
        """An indexed file opened once and checked before anything of it is shown (an originals.Opened:
        read its fd, then close it); FileUnavailable, whose code says why, if it is not as indexed."""
        from mediasearch.originals import open_checked

        with self._lock:
            row = self._storage.catalog.file_by_id(file_id)
            root = self._storage.catalog.root_by_id(row.root_id) if row else None
        return open_checked(row, root, self._verified)

    def thumbnail(self, file_id: int, size: int = 128) -> bytes | None:
        """A JPEG of an indexed picture (or a video's first key frame), at most `size` pixels on its
        long side, made from the checked, open file; None for a sound; DecodeError if it no longer reads."""
        from mediasearch import media

        opened = self.open_file(file_id)
        try:
            return media.thumbnail_jpeg(opened.reopenable(), opened.kind, size, name=opened.path)
        finally:
            opened.close()

    def folder_of(self, root_id: int):
        with self._lock:
            return self._storage.catalog.root_by_id(root_id)

    def folders(self) -> list:
        """The library's folders (catalog.Root), with their options and state."""
        with self._lock:
            return self._storage.catalog.roots()

    def built_with(self) -> tuple[str | None, str | None]:
        """The model (hub id or bundle folder) and precision this library's vectors were made with (None,
        None before its first pass)."""
        from mediasearch.bundle import precision_of

        with self._lock:
            revision = self._storage.catalog.get("model_revision")
            return self._storage.catalog.get("model_source"), precision_of(revision) if revision else None

    def model_name(self) -> str:
        """The model this library's vectors come from (a hub id, or a bundle folder)."""
        with self._lock:  # the catalog's one connection serves one thread at a time
            return self._storage.catalog.get("model_source") or DEFAULT_MODEL


def _ocr_reader():
    """The process's OCR reader (ocr.shared_reader): its sessions load when a pass first reads text, once
    for every library this process opens."""
    from mediasearch.ocr import shared_reader

    return shared_reader()


def embed_files(embedder, paths: Sequence[PathLike], max_duration: float | None = None) -> list:
    """Decode each file and embed its segments with this model.Embedder: for each file an Embedded, or
    a DecodeError saying why it cannot be used.  The one
    path from a file to its vectors outside indexing (examples, uploads, `embed`, the embeddings API)."""
    from mediasearch import media

    decoded = [media.decode_or_error(p, max_duration) for p in paths]
    decoded = [d if isinstance(d, DecodeError) else d.read_all() for d in decoded]
    results = embedder.embed_each([os.fspath(p) for p in paths], decoded)
    return [
        r if isinstance(r, DecodeError) else Embedded(d.kind, d.spans, d.modalities, r)
        for d, r in zip(decoded, results, strict=True)
    ]


def open(
    library: PathLike | None = None,
    *,
    model=None,
    precision: str | None = None,
    write: bool = False,
    cache: PathLike | None = None,
    one_shot: bool = False,
    log: Log = _quiet,
    limits: Limits | None = None,
) -> Library:
    """Open a library: `library` is its folder (default: $MEDIASEARCH_HOME, else XDG data).

    model: a bundle folder or hub repo id (default: the library's own model, else antflydb/clipclap),
    or a model.Embedder already loaded (its bundle is the library's model).

    write=True creates it if needed and takes the writer lock (index, forget, watch); readers never
    create anything.  one_shot: this process answers a query or two and ends (the command line):
    query texts are remembered in the cache and the towers load for one run.  cache names the cache
    folder (models, int8 copies, thumbnails) for this process, instead of $MEDIASEARCH_CACHE.  log
    receives the library's warnings, one line each.  limits bounds the work one call may cause
    (see Limits; a server keeps the defaults).
    """
    if cache is not None:
        places.use_cache(cache)
    return Library(library, model=model, precision=precision, write=write, one_shot=one_shot, log=log, limits=limits)
