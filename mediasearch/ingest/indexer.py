"""The Indexer: one pass (`index`) or the watcher's syncs, assembled from the rooms of ingest/."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable

from mediasearch.ingest.catchup import CatchUp
from mediasearch.ingest.changes import Changes
from mediasearch.ingest.commits import Commits
from mediasearch.ingest.pipeline import Pipeline
from mediasearch.ingest.summary import Change, Summary
from mediasearch.ingest.text import TextReading
from mediasearch.ingest.triage import Triage
from mediasearch.storage import Storage


class Indexer(Changes, CatchUp, Triage, Pipeline, TextReading, Commits):
    """Applies what is on disk to the library's catalog and vector index."""

    def __init__(
        self,
        library: Storage,
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
