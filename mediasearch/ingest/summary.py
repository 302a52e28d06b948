"""What a pass did (Summary, as `index --json` prints it) and each change it made (Change, as `watch` prints it)."""

from __future__ import annotations

from dataclasses import dataclass, field

from mediasearch.catalog import FAILED, IGNORED, FileRow


@dataclass
class Summary:
    """What one pass did, as `index --json` prints it.

    `failed` counts every file of the pass that stands failed when it ends: those that failed
    now (`failed_new`) and those that failed in an earlier pass and are unchanged (not tried
    again), so a rerun never reports "0 failed" over a library that holds failures.  Each of
    `failures` says which it is ("new").
    """

    added: int = 0
    updated: int = 0
    unchanged: int = 0
    reused: int = 0
    removed: int = 0
    failed: int = 0
    failed_new: int = 0
    ignored: int = 0
    failures: list[dict] = field(default_factory=list)
    offline: list[str] = field(default_factory=list)
    seconds: float = 0.0
    batches: int = 0
    stopped: bool = False
    read: int = 0  # pictures whose text was read (OCR)

    def plus(self, other: Summary | None) -> Summary:
        """Two passes' counts together (an index of folders and of single files at once)."""
        if other is None:
            return self
        counts = ("added", "updated", "unchanged", "reused", "removed", "failed", "failed_new", "ignored", "batches")
        for key in (*counts, "read"):
            setattr(self, key, getattr(self, key) + getattr(other, key))
        self.failures += other.failures
        self.offline += other.offline
        self.seconds = round(self.seconds + other.seconds, 3)
        self.stopped = self.stopped or other.stopped
        return self

    def as_dict(self) -> dict:
        keys = ("added", "updated", "unchanged", "reused", "removed", "failed", "failed_new", "ignored")
        return {k: getattr(self, k) for k in (*keys, "failures", "offline", "read")} | {"seconds": self.seconds}

    def failure(self, path: str, error: str | None, new: bool) -> None:
        """A file that stands failed after this pass: failed now (new), or earlier and unchanged."""
        self.failed += 1
        self.failed_new += int(new)
        self.failures.append({"path": path, "error": error or "", "new": new})

    def unchanged_file(self, row: FileRow) -> None:
        """A file the pass did not need to look at again, counted by what it stands as."""
        if row.status == IGNORED:
            self.ignored += 1
        elif row.status == FAILED:
            self.failure(row.path, row.error, new=False)
        else:
            self.unchanged += 1


@dataclass
class Change:
    """One change applied to the library (the watcher prints these)."""

    action: str  # added, updated, moved, removed, failed
    path: str
    detail: str = ""
