"""Triage: what needs no model (not media, unreadable, moved, a copy of known content) is settled here;
the rest becomes a Job to decode and embed."""

from __future__ import annotations

from mediasearch import media
from mediasearch.catalog import IGNORED, INDEXED, PARTIAL, FileRow
from mediasearch.ingest.constants import TRANSIENT
from mediasearch.ingest.summary import Change
from mediasearch.ingest.units import Job, Seen


class Triage:
    """Part of ingest.Indexer (see its docstring); uses the state Indexer.__init__ sets."""

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
