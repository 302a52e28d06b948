"""Keep the library in step with its folders as files come and go.

On start the watcher reconciles (the same pass as `index`), so changes made
while it was not running are caught.  Then filesystem events (watchdog's
native observer) mark paths dirty; once events pause, every path that has been
quiet for `settle` seconds is handed to the indexer in one go, so a burst of
thousands of files runs at full batch speed and a file still being written is
not embedded half-done.  A move is the old path gone plus the new one present
in the same pass, so the hash match keeps its vectors.
"""

from __future__ import annotations

import errno
import os
import queue
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from watchdog.observers import Observer
from watchdog.observers.polling import PollingObserver

from mediasearch.catalog import Root
from mediasearch.ingest import Change, Indexer
from mediasearch.terminal import count, display, json_path, to_json

READ_SLICE_S = 1.0  # text is read this long at a time (the batch of pictures in flight finished), between syncs
INOTIFY_HINT = (
    "the system's limit on inotify watches is reached: raise it with "
    "`sudo sysctl fs.inotify.max_user_watches=524288` (add the setting to /etc/sysctl.d/ to keep it); "
    "falling back to polling for {root}"
)


@dataclass
class Settings:
    settle: float = 1.0  # a file must be quiet this long before it is embedded
    debounce: float = 0.5  # wait for events to pause this long before a pass
    max_delay: float = 10.0  # ... but never hold a change longer than this during a storm
    rescan: float = 0.0  # seconds between full safety-net passes; 0 = off
    poll: float = 1.0  # interval of the polling observer, when it is used
    root_check: float = 1.0  # how often to look for folders that vanished or came back
    store_retry: float = 30.0  # how often to try a shared store that stopped answering


class Watcher:
    """Runs until stop() (or SIGINT/SIGTERM): events in, indexer passes out."""

    def __init__(
        self,
        indexer: Indexer,
        roots: list[Root],
        settings: Settings,
        log: Callable[[str], None],
        observer_factory: Callable | None = None,
    ):
        self.library = indexer.library
        self.catalog = indexer.catalog
        self.indexer = indexer
        self.roots = roots
        self.settings = settings
        self.log = log
        self.events: queue.Queue[tuple[float, str]] = queue.Queue()
        self.dirty: dict[str, float] = {}
        self.reading = True  # text may wait to be read (from the start: a library indexed with --no-ocr)
        self.stop_event = threading.Event()
        self.observers: dict[int, object] = {}
        self.present: dict[int, bool] = {}
        self._observer_factory = observer_factory

    # ------------------------------------------------------------------ lifecycle

    def stop(self, *_args) -> None:
        """Finish the batch in flight, commit, and return from run()."""
        self.stop_event.set()
        self.indexer.stopping = True

    def run(self) -> None:
        try:
            self._start_observers()
            self._reconcile()
            self._loop()
        finally:
            for observer in self.observers.values():
                observer.stop()
            for observer in self.observers.values():
                observer.join(timeout=5)
            self._save()

    def _save(self) -> None:
        """Save the index; with a shared store, say when it stops answering and when it is back."""
        failed_before = self._store_failed()
        self.library.save_index()
        sent = self.library.sent
        if sent is None:
            return
        if sent.error and not failed_before:
            retry = self.settings.store_retry
            self.log(f"store: {sent.error}; {count(sent.waiting, 'change')} wait, tried again every {retry:.0f}s")
        elif failed_before and not sent.error:
            self.log(f"store: reachable again; everything waiting was sent ({self.library.store.address})")

    def _store_failed(self) -> bool:
        return self.library.sent is not None and self.library.sent.error is not None

    def run_until_signalled(self) -> None:
        """run(), with SIGINT and SIGTERM asking for a clean stop instead of killing the batch."""
        previous = {sig: signal.signal(sig, self.stop) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            self.run()
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def _start_observers(self) -> None:
        for root in self.roots:
            self.present[root.id] = os.path.isdir(root.path)
            if self.present[root.id]:
                self._observe(root)

    def _observe(self, root: Root) -> None:
        handler = _Handler(self.events)
        observer = (self._observer_factory or Observer)()
        try:
            observer.schedule(handler, root.path, recursive=True)
            observer.start()
        except OSError as exc:
            if exc.errno not in (errno.ENOSPC, errno.EMFILE):
                raise
            self.log(INOTIFY_HINT.format(root=display(root.path)))
            observer = PollingObserver(timeout=self.settings.poll)
            observer.schedule(handler, root.path, recursive=True)
            observer.start()
        self.observers[root.id] = observer

    def _check_roots(self) -> None:
        """A folder deleted (or a drive unplugged) and back again is watched again and caught up."""
        for root in self.roots:
            present = os.path.isdir(root.path)
            if present == self.present.get(root.id):
                continue
            self.present[root.id] = present
            old = self.observers.pop(root.id, None)
            if old is not None:
                old.stop()
            if present:
                self.log(f"{display(root.path)} is back: catching up")
                self._observe(root)
            else:
                self.log(f"{display(root.path)} is gone: its files are kept; watching for it to come back")
            self.indexer.scan([root])
            self._save()

    def _read_some(self) -> None:
        """Read waiting text for about READ_SLICE_S, when no change waits: new pictures' text, and all a
        library indexed with --no-ocr holds, a slice at a time, so a file event is never kept waiting for
        more than a slice; a bound store gets each slice's words."""
        read = self.indexer.read_text(seconds=READ_SLICE_S)
        if read:
            self._save()
        self.reading = read > 0

    def _reconcile(self) -> None:
        started = time.monotonic()
        summary = self.indexer.scan(self.roots)
        self._save()
        self.log(
            f"in step with {count(len(self.roots), 'folder')} after {time.monotonic() - started:.1f}s "
            f"({summary.added} added, {summary.updated} updated, {summary.reused} reused, "
            f"{summary.removed} removed, {summary.failed} failed); watching"
        )

    # ------------------------------------------------------------------ the loop

    def _loop(self) -> None:
        last_event = last_rescan = last_check = last_store_try = time.monotonic()
        while not self.stop_event.is_set():
            try:
                stamp, path = self.events.get(timeout=0.1)
                self.dirty[path] = stamp
                last_event = stamp
                continue
            except queue.Empty:
                pass
            now = time.monotonic()
            if self.dirty:
                oldest = min(self.dirty.values())
                if now - last_event >= self.settings.debounce or now - oldest >= self.settings.max_delay:
                    self._pass(now)
            elif self.reading:
                self._read_some()
            if now - last_check >= self.settings.root_check:
                last_check = now
                self._check_roots()
            if self._store_failed() and now - last_store_try >= self.settings.store_retry:
                last_store_try = now
                self._save()  # the store was down: try again
            if self.settings.rescan and now - last_rescan >= self.settings.rescan:
                last_rescan = now
                self.indexer.scan(self.roots)
                self._save()

    def _pass(self, now: float) -> None:
        """Sync every dirty path that has been quiet for `settle` seconds."""
        ready = [p for p, t in self.dirty.items() if now - t >= self.settings.settle and self._quiet(p, now)]
        if not ready:
            return
        for path in ready:
            del self.dirty[path]
        started = time.monotonic()
        summary = self.indexer.sync_paths(ready, self.catalog.roots(), fresh_after=time.time() - self.settings.settle)
        self._save()
        self.reading = True  # new pictures' text, after their vectors are findable (_read_some)
        runs = summary.batches
        if len(ready) > 50 or runs > 1:
            self.log(
                f"synced {count(len(ready), 'path')} in {time.monotonic() - started:.1f}s "
                f"({count(runs, 'model batch', 'model batches')})"
            )

    def _quiet(self, path: str, now: float) -> bool:
        """A file whose mtime moved within `settle` seconds is still being written: wait."""
        try:
            mtime = Path(path).stat().st_mtime
        except OSError:
            return True  # gone: ready to be removed
        if time.time() - mtime < self.settings.settle:
            self.dirty[path] = now  # look again one settle period from now
            return False
        return True


class _Handler:
    """Turns watchdog events into dirty paths (both ends of a move)."""

    def __init__(self, events: queue.Queue):
        self.events = events

    def dispatch(self, event) -> None:
        if event.event_type in ("opened", "closed_no_write"):
            return
        if event.is_directory and event.event_type == "modified":
            return  # a folder's entries changed: each entry has its own event
        now = time.monotonic()
        self.events.put((now, _text(event.src_path)))
        dest = getattr(event, "dest_path", "")
        if dest:
            self.events.put((now, _text(dest)))


def _text(path) -> str:
    return os.fsdecode(path)


def print_change(change: Change, as_json: bool, echo: Callable[[str], None]) -> None:
    """One line per change applied: added / updated / moved / removed / failed."""
    if as_json:
        data = {"action": change.action} | json_path(change.path)
        if change.action == "moved":
            data |= json_path(change.detail, "from")
        elif change.action == "failed":
            data["error"] = change.detail
        echo(to_json(data))
        return
    if change.action == "moved":
        echo(f"moved    {display(change.detail)} -> {display(change.path)}")
    elif change.action == "failed":
        echo(f"failed   {display(change.path)}: {display(change.detail)}")
    else:
        echo(f"{change.action:8} {display(change.path)}")
