"""Walking a library folder: which files are there, under the rules the folder was added with.

Symbolic links are not followed unless the folder asks for it (as fd and
ripgrep do), and never into the kernel's pseudo-filesystems.  Files are named
under the path the user gave, not the resolved one.  Folders that cannot be
read are reported and remembered, so their files are kept rather than taken as
deleted.
"""

from __future__ import annotations

import fnmatch
import os
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field

from mediasearch.catalog import Root
from mediasearch.paths import under_any

PSEUDO_FILESYSTEMS = ("/proc", "/sys", "/dev", "/run")


@dataclass
class WalkOptions:
    """How a folder is walked; remembered per folder by the library."""

    hidden: bool = False
    excludes: list[str] = field(default_factory=list)
    follow_links: bool = False

    @classmethod
    def of(cls, data: dict | None) -> WalkOptions:
        data = data or {}
        return cls(bool(data.get("hidden")), list(data.get("excludes") or []), bool(data.get("follow_links")))

    def as_dict(self) -> dict:
        return asdict(self)

    def wanted(self, path: str, root: str) -> bool:
        """Hidden and --exclude rules, applied to a path and every folder above it inside root."""
        parts = os.path.relpath(path, root).split(os.sep)
        if parts == ["."]:
            return True
        if not self.hidden and any(part.startswith(".") for part in parts):
            return False
        return not any(self.excluded(os.path.join(root, *parts[: i + 1]), root) for i in range(len(parts)))

    def excluded(self, path: str, root: str) -> bool:
        """--exclude GLOB matches a file or folder name, or its path relative to the root."""
        if not self.excludes:
            return False
        name, rel = os.path.basename(path), os.path.relpath(path, root)
        return any(fnmatch.fnmatch(name, p) or fnmatch.fnmatch(rel, p) for p in self.excludes)


def in_pseudo_filesystem(path: str) -> bool:
    real = os.path.realpath(path)
    return any(real == p or real.startswith(p + "/") for p in PSEUDO_FILESYSTEMS)


@dataclass
class Walk:
    """One walk of a folder: the files found, and the folders that could not be read."""

    root: str
    options: WalkOptions
    warn: Callable[[str], None]
    unreadable: list[str] = field(default_factory=list)

    def files(self, start: str | None = None) -> Iterator[tuple[str, os.stat_result]]:
        """(path, stat) of every regular file under start (default: the root)."""
        visited: set[tuple[int, int]] = set()
        stack = [start or self.root]
        while stack:
            folder = stack.pop()
            try:
                st = os.stat(folder)
                entries = sorted(os.scandir(folder), key=lambda e: e.name)
            except OSError as exc:
                self.warn(f"skipping {folder}: {exc.strerror or exc}")
                self.unreadable.append(folder)
                continue
            if (st.st_dev, st.st_ino) in visited:
                self.warn(f"skipping {folder}: symlink loop")
                continue
            visited.add((st.st_dev, st.st_ino))
            for entry in entries:
                yield from self._entry(entry, stack)

    def _entry(self, entry: os.DirEntry, stack: list[str]) -> Iterator[tuple[str, os.stat_result]]:
        if not self.options.hidden and entry.name.startswith("."):
            return
        if self.options.excluded(entry.path, self.root):
            return
        follow = self.options.follow_links
        try:
            if entry.is_symlink():
                if not follow:
                    return
                if in_pseudo_filesystem(entry.path):
                    self.warn(f"skipping {entry.path}: a link into a system pseudo-filesystem")
                    return
            if entry.is_dir(follow_symlinks=follow):
                stack.append(entry.path)
            elif entry.is_file(follow_symlinks=follow):
                yield entry.path, entry.stat(follow_symlinks=follow)
        except OSError as exc:
            self.warn(f"skipping {entry.path}: {exc.strerror or exc}")


def root_of(path: str, roots: list[Root]) -> Root | None:
    """The library folder that holds path (the deepest, if folders nest)."""
    inside = [r for r in roots if under_any(path, [r.path])]
    return max(inside, key=lambda r: len(r.path)) if inside else None
