"""Reading text in pictures and video frames (OCR), after the vector pass: its own progress, resumable."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor

from mediasearch.errors import DecodeError
from mediasearch.ingest.constants import READ_BATCH, RETRIED
from mediasearch.media.decoded import failure
from mediasearch.media.workers import DecoderPool, Stopped


class TextReading:
    """Part of ingest.Indexer (see its docstring); uses the state Indexer.__init__ sets."""

    def read_text(self, progress: Callable[[int, int], None] | None = None, seconds: float | None = None) -> int:
        """Read the text in every indexed picture this reader has not read (after the vector pass, so
        every file is findable by its vector first). Committed a few pictures at a time: Ctrl-C or a
        kill keeps what was read, and the next pass reads the rest. Returns how many were read.
        With `seconds`, stops after the batch in flight once they have passed: the watcher reads a slice
        at a time between its syncs, so a new file's vectors never wait for a library's worth of text.

        Pictures and frames are decoded again, at the size reading needs, in decoder workers (as the
        vector pass decodes): the vector pass must not wait for reading, and holding its decoded
        pictures until then would hold a library's worth of them."""
        if self._reader_factory is None:
            return 0
        from mediasearch import ocr

        reader_id = ocr.fingerprint()
        waiting = self.catalog.read_counts(reader_id)["waiting"]
        done, last = 0, 0
        until = None if seconds is None else time.monotonic() + seconds
        workers = DecoderPool(2, None, self.decoder_setup, lambda: self.stopping, warn=self.warn)
        ahead = ThreadPoolExecutor(1)  # the next picture decodes while this one is read
        try:
            while not self.stopping:
                todo = self.catalog.unread(reader_id, READ_BATCH, last)
                if not todo:
                    break
                found = []
                for (file_id, path, kind), loaded in _one_ahead(todo, ahead, workers):
                    try:
                        lines = self._read_file(workers, file_id, path, kind, loaded)
                    except _Later:  # left unread: the next pass reads it
                        continue
                    if lines is None:  # the pass is stopping: this file is read next time
                        break
                    found.append((file_id, lines))
                    done += 1
                    if progress:
                        progress(done, max(waiting, done))
                self._commit_read(reader_id, found)
                last = todo[-1][0]
                if until is not None and time.monotonic() >= until:
                    break
        finally:
            workers.close()  # first: a load waiting on a worker is answered at once
            ahead.shutdown(wait=True, cancel_futures=True)
        if self.stopping:
            self.summary.stopped = True
        return done

    def _read_file(self, workers: DecoderPool, file_id: int, path: str, kind: str, loaded):
        """The lines read in one file, or None on a stop (raises _Later when it is read next pass)."""
        return self._read_frames(workers, file_id, path) if kind == "video" else self._read(path, loaded)

    def _read(self, path: str, loaded) -> list[tuple[float | None, str]] | None:
        """The lines read in one picture (none when it cannot be decoded: told once), or None on a stop."""
        picture = loaded.result()
        if isinstance(picture, Stopped) or self.stopping:
            return None
        if isinstance(picture, Exception):
            self._unreadable(path, failure(path, picture), "its text")
            return []
        return self._lines(path, picture)

    def _lines(self, path: str, picture) -> list[tuple[float | None, str]]:
        if self._reader is None:
            self._reader = self._reader_factory()
        try:
            return [(None, line.text) for line in self._reader.read(picture)]
        except Exception as exc:  # a reader failure on one picture must not stop the pass
            self.warn(f"note: {path}: its text could not be read ({type(exc).__name__}: {exc})")
            return []

    def _read_frames(self, workers: DecoderPool, file_id: int, path: str) -> list[tuple[float | None, str]] | None:
        """The lines read in a video's embedded frames, each with its frame's time (None on a stop)."""
        lines: list[tuple[float | None, str]] = []
        read_to = None  # the time of the last frame read
        try:
            for at, frame in workers.pictures(path, self.catalog.frame_times(file_id)):
                if self.stopping:
                    return None
                lines += [(at, text) for _, text in self._lines(path, frame)]
                read_to = at
        except Stopped:
            return None
        except DecodeError as exc:  # a video that no longer decodes keeps what was read of it, and says so
            self._unreadable(path, exc, "the text of its frames" + ("" if read_to is None else f" after {read_to:g} s"))
        return lines

    def _unreadable(self, path: str, exc: DecodeError, what: str) -> None:
        """Say why a file's text could not be read.  A failure that may pass (too little memory then, a file
        that could not be opened) raises _Later, so the file is not marked read: the vector pass tries such
        files again on the next pass, and the note says the same of their text."""
        self.warn(f"note: {path}: {what} could not be read ({exc.reason})")
        if exc.reason.startswith(RETRIED):
            raise _Later

    def _commit_read(self, reader_id: str, found: list) -> None:
        if not found:
            return
        with self.catalog.transaction():
            for file_id, lines in found:
                if self.catalog.file_by_id(file_id) is not None:  # not removed meanwhile (the watcher)
                    self.catalog.put_read(file_id, reader_id, lines)


def _one_ahead(todo: list[tuple[int, str, str]], ahead: ThreadPoolExecutor, workers: DecoderPool) -> Iterator:
    """Each file with its picture's load (None for a video), the next picture's load started as a file is
    handed out: one picture decoded ahead of the one read, and none kept once read.  Loads started for the
    whole batch at once held all of it (9 MB a picture at 2048 px, outside the decoders' budget)."""
    images = [i for i, (_, _, kind) in enumerate(todo) if kind == "image"]
    loads: dict[int, Future] = {}
    for i, item in enumerate(todo):
        for j in [k for k in images if k >= i][:2]:  # this file's picture, if it is one, and the next
            if j not in loads:
                loads[j] = ahead.submit(_picture, workers, todo[j][1])
        yield item, loads.pop(i, None)


class _Later(Exception):
    """This file's text is read on the next pass (its decoding failed for a reason that may pass)."""


def _picture(workers: DecoderPool, path: str):
    """A picture decoded for reading, or the error (or Stopped) that ended it."""
    try:
        return list(workers.pictures(path))[0][1]
    except Exception as exc:
        return exc
