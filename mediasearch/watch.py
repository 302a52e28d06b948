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
import queue
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from mediasearch.catalog import Catalog
from mediasearch.index import VectorIndex
from mediasearch.ingest import Change, Indexer

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


class Watcher:
    """Runs until stop() (or SIGINT/SIGTERM): events in, indexer passes out."""

    def __init__(
        self,
        catalog: Catalog,
        indexer: Indexer,
        roots: list[Path],
        settings: Settings,
        log: Callable[[str], None],
        observer_factory: Callable | None = None,
    ):
        self.catalog = catalog
        self.indexer = indexer
        self.vectors: VectorIndex = indexer.vectors
        self.roots = roots
        self.settings = settings
        self.log = log
        self.events: queue.Queue[tuple[float, str]] = queue.Queue()
        self.dirty: dict[str, float] = {}
        self.stop_event = threading.Event()
        self.observers: list = []
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
            for observer in self.observers:
                observer.stop()
            for observer in self.observers:
                observer.join(timeout=5)
            self._save()

    def run_until_signalled(self) -> None:
        """run(), with SIGINT and SIGTERM asking for a clean stop instead of killing the batch."""
        previous = {sig: signal.signal(sig, self.stop) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            self.run()
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def _start_observers(self) -> None:
        from watchdog.observers import Observer
        from watchdog.observers.polling import PollingObserver

        handler = _Handler(self.events)
        for root in self.roots:
            observer = (self._observer_factory or Observer)()
            try:
                observer.schedule(handler, str(root), recursive=True)
                observer.start()
            except OSError as exc:
                if exc.errno not in (errno.ENOSPC, errno.EMFILE):
                    raise
                self.log(INOTIFY_HINT.format(root=root))
                observer = PollingObserver(timeout=self.settings.poll)
                observer.schedule(handler, str(root), recursive=True)
                observer.start()
            self.observers.append(observer)

    def _reconcile(self) -> None:
        started = time.monotonic()
        summary = self.indexer.scan(self.roots)
        self._save()
        self.log(
            f"in step with {len(self.roots)} folder(s) after {time.monotonic() - started:.1f}s "
            f"({summary.added} added, {summary.updated} updated, {summary.reused} reused, "
            f"{summary.removed} removed, {summary.failed} failed); watching"
        )

    # ------------------------------------------------------------------ the loop

    def _loop(self) -> None:
        last_event = time.monotonic()
        last_rescan = time.monotonic()
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
        started, batches = time.monotonic(), self.indexer.summary.batches
        self.indexer.sync_paths(ready, {p: i for p, i in self.catalog.roots().items()})
        self._save()
        runs = self.indexer.summary.batches - batches
        if len(ready) > 50 or runs > 1:
            self.log(f"synced {len(ready)} paths in {time.monotonic() - started:.1f}s ({runs} model batches)")

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

    def _save(self) -> None:
        """Write the index when the catalog moved on (queries in other processes load it)."""
        if self.vectors.saved_is_current():
            return
        if self.vectors.index is None or self.vectors.generation != self.catalog.generation():
            self.vectors.load()
        self.vectors.save()


class _Handler:
    """Turns watchdog events into dirty paths (both ends of a move)."""

    def __init__(self, events: queue.Queue):
        self.events = events

    def dispatch(self, event) -> None:
        if event.event_type in ("opened", "closed_no_write"):
            return
        now = time.monotonic()
        self.events.put((now, _text(event.src_path)))
        dest = getattr(event, "dest_path", "")
        if dest:
            self.events.put((now, _text(dest)))


def _text(path) -> str:
    return path.decode() if isinstance(path, bytes) else str(path)


def print_change(change: Change, as_json: bool, echo: Callable[[str], None]) -> None:
    """One line per change applied: added / updated / moved / removed / failed."""
    if as_json:
        import json

        data = {"action": change.action, "path": change.path}
        if change.action == "moved":
            data["from"] = change.detail
        elif change.action == "failed":
            data["error"] = change.detail
        echo(json.dumps(data, ensure_ascii=False))
        return
    if change.action == "moved":
        echo(f"moved    {change.detail} -> {change.path}")
    elif change.action == "failed":
        echo(f"failed   {change.path}: {change.detail}")
    else:
        echo(f"{change.action:8} {change.path}")
