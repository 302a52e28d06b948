"""The commit rules: what a batch, a reuse, a failure or a removal writes, each in one write of the
library (Storage.change()), and what it tells."""

from __future__ import annotations

import os
import time

from mediasearch import capture
from mediasearch.catalog import FAILED, IGNORED, INDEXED, PARTIAL, FileRow
from mediasearch.ingest.summary import Change
from mediasearch.ingest.units import Seen, Unit, when_and_where
from mediasearch.schema import CAPTURE_COLUMNS
from mediasearch.words import metadata_texts


class Commits:
    """Part of ingest.Indexer (see its docstring); uses the state Indexer.__init__ sets."""

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
