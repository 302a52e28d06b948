"""Catching an older library up without embedding: capture times, places and the words of names, tags
and captions read from files the library already holds."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from mediasearch.catalog import FileRow
from mediasearch.ingest.constants import DECODERS
from mediasearch.ingest.units import when_and_where
from mediasearch.words import metadata_texts


class CatchUp:
    """Part of ingest.Indexer (see its docstring); uses the state Indexer.__init__ sets."""

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
