"""A library's storage: catalog, vector index, shared store and model binding, kept in step in one place.

mediasearch.Library (api.py) is the public face; this is what it holds.

Readers (`query`, `status`, the watcher's neighbours) open it read-only: an
absent library is an error, never a creation, and nothing in the library folder
is written (a stale vector index is rebuilt in memory).  Writers (`index`,
`watch`, `forget`) open it with the writer lock, create and migrate it, and are
the only ones who save the vector index, through `save_index`.
"""

from __future__ import annotations

import errno
import fcntl
import os
import threading
from contextlib import contextmanager
from pathlib import Path

from mediasearch import bundle as bundles
from mediasearch.catalog import Catalog, Changes, Root, make_private
from mediasearch.errors import BundleError, LibraryBusy, LibraryError, UsageError
from mediasearch.index import VectorIndex
from mediasearch.model import Embedder
from mediasearch.paths import library_dir
from mediasearch.precision import with_precision
from mediasearch.terminal import display
from mediasearch.walk import WalkOptions, root_of

SEND_EVERY = 2_000  # changed segments between sends to a shared store during a pass


class Storage:
    """One library folder: `Storage(folder)` to read, `Storage(folder, write=True)` to change it."""

    def __init__(self, folder: str | os.PathLike | None = None, write: bool = False):
        self.folder = library_dir(folder)
        self.writable = write
        self._lock = None
        if write:
            try:
                make_private(self.folder)
                self._lock = _take_lock(self.folder)
            except (PermissionError, OSError) as exc:
                if isinstance(exc, LibraryBusy) or exc.errno not in (errno.EACCES, errno.EPERM, errno.EROFS):
                    raise
                raise LibraryError(
                    f"the library at {self.folder} cannot be written ({exc.strerror}): it is read-only here, "
                    "so `query` and `status` work but `index`, `watch` and `forget` do not"
                ) from exc
        elif not (self.folder / "catalog.db").is_file():
            raise LibraryError(
                f"there is no library at {self.folder} yet: index a folder first (`mediasearch index FOLDER`)"
            )
        try:
            self.catalog = Catalog(self.folder, write=write)
        except BaseException:
            self._unlock()
            raise
        self._vectors: VectorIndex | None = None
        self._store = None  # the shared store, if bound (store.py, imported only then: http.client is 11 ms)
        self.sent = None  # what this process sent to the store, and what still waits (store.Sent)
        self._unsent_changes = 0

    def close(self) -> None:
        if self._store is not None:
            self._store.close()
        self.catalog.close()
        self._unlock()

    def __enter__(self) -> Storage:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _unlock(self) -> None:
        if self._lock is not None:
            fcntl.flock(self._lock, fcntl.LOCK_UN)
            self._lock.close()
            self._lock = None

    # ------------------------------------------------------------------ the vector index

    @property
    def vectors(self) -> VectorIndex:
        """The vector index, loaded (readers map the saved file; a stale one is rebuilt in memory)."""
        if self._vectors is None:
            stale_ok = (lambda: False) if self.writable else (lambda: writer_active(self.folder))
            self._vectors = VectorIndex(self.catalog, mmap=not self.writable, stale_ok=stale_ok).load()
        return self._vectors

    @contextmanager
    def change(self):
        """One write, whole: a catalog transaction whose segment changes reach the vector index when it
        commits, and the shared store every SEND_EVERY segments.  Every write of segments goes through
        here, so no caller can forget a step; save_index() brings the saved file and the store in step."""
        if self.catalog.recording is not None:  # inside another change: it applies everything
            with self.catalog.transaction():
                yield
            return
        index = self.vectors  # loaded before the commit, so the commit is applied once
        changes = self.catalog.recording = Changes()
        try:
            with self.catalog.transaction():
                yield
        finally:
            self.catalog.recording = None
        if changes.count:
            index.apply(changes.removed, changes.added, changes.stacked())
            self._changed(changes.count)

    def save_index(self) -> None:
        """Make the saved vector index match the catalog: the one place it is written.  A library
        bound to a store sends it what changed too (an unreachable store leaves it waiting).

        Writes nothing when the saved file is already current (a large index is
        not rewritten by a pass that changed nothing).
        """
        self._save_faiss()
        self.send()

    def _save_faiss(self) -> None:
        if not self.writable:
            raise LibraryError("a library opened for reading cannot be saved")
        vectors = self._vectors
        if vectors is None or vectors.index is None:
            vectors = VectorIndex(self.catalog)
            if vectors.saved_is_current():
                return
            self._vectors = vectors.load()
        elif vectors.generation != self.catalog.generation():
            vectors.load()
        if not vectors.saved_is_current():
            vectors.save()

    # ------------------------------------------------------------------ the shared store

    @property
    def store(self):
        """The Antfly table this library is mirrored in (a store.Store), if it is bound to one."""
        if self._store is None and self.catalog.get("store_url"):
            from mediasearch.store import Store

            self._store = Store.of(self.catalog)
        return self._store

    def bind_store(self, url: str) -> str | None:
        """Keep this library's vectors in the Antfly table at url from now on; returns the table it
        used before, if it moves (that table keeps its documents)."""
        from mediasearch.store import bind_library

        if self._store is not None:
            self._store.close()
        self._store, before = bind_library(self.catalog, url)
        return before  # the table is checked (and made) by the first send, whose errors are told

    def send(self) -> None:
        """Send the store what differs from the catalog (nothing to do without a store)."""
        if not self.writable or self.store is None:
            return
        from mediasearch.store import Sent

        self.sent = self.sent or Sent()
        sent = self.store.send(self.catalog)
        self.sent.written += sent.written
        self.sent.deleted += sent.deleted
        self.sent.waiting, self.sent.error = sent.waiting, sent.error
        self._unsent_changes = 0

    def _changed(self, segments: int) -> None:
        """A commit touched this many segments: mid-pass, the store gets them every SEND_EVERY, so
        other machines see a long pass's work as it goes (not after a failed send: the pass's
        end tries again)."""
        self._unsent_changes += segments
        failed = self.sent is not None and self.sent.error is not None
        if self._unsent_changes >= SEND_EVERY and self.store is not None and not failed:
            self.send()

    def add_folders(
        self,
        paths: list[str],
        hidden: bool | None = None,
        excludes: tuple[str, ...] | list[str] = (),
        clear_excludes: bool = False,
        follow_links: bool | None = None,
    ) -> list[Root]:
        """Add folders (absolute paths, as the user named them) or change their remembered walk options.

        Options not given keep what the folder had.  A folder added inside one
        already in the library takes over the files under it.
        """
        known = {root.path: root for root in self.catalog.roots()}
        chosen = set()
        with self.catalog.transaction():
            for path in paths:
                options = WalkOptions.of(known[path].options if path in known else None)
                if hidden is not None:
                    options.hidden = hidden
                if clear_excludes:
                    options.excludes = []
                options.excludes += [e for e in excludes if e not in options.excludes]
                if follow_links is not None:
                    options.follow_links = follow_links
                chosen.add(self.catalog.add_root(path, options.as_dict()))
            roots = [root for root in self.catalog.roots() if root.id in chosen]
            for root in roots:
                self.catalog.adopt(root)
        return roots

    def forget(self, path: str) -> tuple[int, Root | None]:
        """Drop a folder: (segments removed, the outer folder that keeps its files, if any)."""
        roots = self.catalog.roots()
        chosen = next((r for r in roots if r.path == path), None)
        if chosen is None:
            known = ", ".join(display(r.path) for r in roots) or "none"
            raise UsageError(f"{display(path)} is not a folder of this library (folders: {known})")
        heir = root_of(path, [r for r in roots if r.id != chosen.id])
        with self.change():
            removed = self.catalog.remove_root(chosen, heir)
        self.save_index()
        return len(removed), heir

    def is_empty(self) -> bool:
        return not self.catalog.has_segments()

    # ------------------------------------------------------------------ the model

    def writer_embedder(self, model: str | None, precision: str | None, reembed: bool, log=lambda m: None):
        """A writer's first step: settle the model (this library's own, or a new one with reembed,
        which drops every vector) and return the factory that loads it on first need."""
        if reembed:
            found = with_precision(bundles.resolve(model or self.catalog.get("model_source")), precision, log)
        else:
            found = self.model(model, precision, log)
        self.bind(found, reembed)
        made: list = []

        def make():
            if not made:
                made.append(Embedder(found))
            return made[0]

        return make

    def model(self, model: str | None = None, precision: str | None = None, log=lambda message: None):
        """The bundle to use: --model, else the one this library was built with, else the default;
        --precision, else the library's, else fp32.  It must be the library's own model."""
        source, revision = self.catalog.get("model_source"), self.catalog.get("model_revision")
        try:
            found = bundles.resolve(model or source)
        except BundleError as exc:
            if model or not source or bundles.is_repo_id(source):
                raise
            raise LibraryError(
                f"this library's model folder {source} is gone: if you moved it, point --model (or "
                "MEDIASEARCH_MODEL) at its new place; it is recognised by its content"
            ) from exc
        found = with_precision(found, precision or bundles.precision_of(revision), log)
        self._check_model(found)
        return found

    def _check_model(self, found: bundles.Bundle) -> None:
        """Vectors from different models cannot share a library."""
        source, revision = self.catalog.get("model_source"), self.catalog.get("model_revision")
        if revision is None or revision == found.revision:
            return
        base = bundles.base_revision
        if base(revision) == base(found.revision):
            recorded = bundles.precision_of(revision)
            raise LibraryError(
                f"this library's vectors are {recorded}: leave out --precision (the library uses {recorded} by "
                f"itself), or run `mediasearch index --reembed --precision {found.precision}` to embed everything "
                f"again at {found.precision}"
            )
        raise LibraryError(
            f"this library's vectors were made by {source} (revision {revision}), not {found.source} "
            f"(revision {found.revision}): leave out --model to use the library's own model, or run "
            "`mediasearch index --reembed` with the new --model to embed everything again"
        )

    def bind(self, found: bundles.Bundle, reembed: bool = False) -> None:
        """Record the model that makes this library's vectors (a writer's first step).

        With reembed, a different model replaces the old one and every vector is
        dropped, so the next pass embeds everything again.
        """
        source, revision = self.catalog.get("model_source"), self.catalog.get("model_revision")
        if revision not in (None, found.revision):
            if not reembed:
                self._check_model(found)
            self.catalog.forget_vectors()
        if (source, revision) != (found.source, found.revision):
            with self.catalog.transaction():
                self.catalog.set("model_source", found.source)
                self.catalog.set("model_revision", found.revision)

    def embedder_factory(
        self, model: str | None = None, precision: str | None = None, log=lambda m: None, one_shot: bool = False
    ):
        """Make the embedder on first need (a no-change pass or a stored example never loads the model).

        one_shot: for a process that embeds a query or two and ends (see model.Tower).
        """
        made = []
        lock = threading.Lock()

        def make():
            with lock:  # a query may warm the text tower in a thread while the index opens
                if not made:
                    made.append(Embedder(self.model(model, precision, log), one_shot))
                return made[0]

        return make


def writer_active(folder: Path) -> bool:
    """Whether a writer holds the library's lock now (asked without writing anything)."""
    try:
        fd = os.open(folder / "writer.lock", os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # closing drops a shared lock we may have taken
    return False


def _take_lock(folder: Path):
    """The library's writer lock, or a LibraryBusy naming the process that holds it."""
    fd = os.open(folder / "writer.lock", os.O_RDWR | os.O_CREAT, 0o600)
    handle = os.fdopen(fd, "r+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = handle.read().strip() or "another process"
        handle.close()
        raise LibraryBusy(
            f"another mediasearch ({holder}) is writing to {folder}: wait for it, or stop it "
            "(a running `mediasearch watch` keeps the library in step by itself)"
        ) from None
    handle.seek(0)
    handle.truncate()
    handle.write(f"pid {os.getpid()}")
    handle.flush()
    return handle
