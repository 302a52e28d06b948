"""Change detection: which files are new, changed, unchanged or gone, for a whole pass (scan) or for the
paths the watcher saw (sync_paths); a folder that cannot be reached is offline and keeps its files."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable

from mediasearch import media
from mediasearch.catalog import FAILED, INDEXED, OFFLINE, ONLINE, PARTIAL, FileRow, Root
from mediasearch.ingest.constants import RETRIED
from mediasearch.ingest.summary import Summary
from mediasearch.ingest.units import Job, Seen
from mediasearch.media.workers import prepare as prepare_decoders
from mediasearch.paths import under_any
from mediasearch.walk import Walk, WalkOptions, root_of


def _retry(row: FileRow) -> bool:
    """Unchanged files worth another look: a failure that may have passed, a recording left half-done."""
    return row.status == PARTIAL or (row.status == FAILED and (row.error or "").startswith(RETRIED))


def _seen(path: str, st: os.stat_result, roots: list[Root]) -> Seen:
    """A file on disk, belonging to the deepest library folder that holds it (folders may nest)."""
    owner = root_of(path, roots)
    return Seen(path, os.path.relpath(path, owner.path), owner.id, st.st_size, st.st_mtime)


class Changes:
    """Part of ingest.Indexer (see its docstring); uses the state Indexer.__init__ sets."""

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
