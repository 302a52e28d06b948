"""Reading text in pictures and video frames (OCR), after the vector pass: its own progress, resumable."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from mediasearch.ingest.constants import READ_BATCH
from mediasearch.ingest.pipeline import load_or_error


class TextReading:
    """Part of ingest.Indexer (see its docstring); uses the state Indexer.__init__ sets."""

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
                loads = [pool.submit(load_or_error, path) if kind == "image" else None for _, path, kind in todo]
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
