"""An indexed file opened once and checked, for whatever shows it: the page's files and thumbnails,
MCP's pictures.  What was opened is checked, not what the path names a moment later, and everything
shown is read from that descriptor, so a link or a folder swapped in after indexing shows nothing."""

from __future__ import annotations

import errno
import hashlib
import os
import stat
from dataclasses import dataclass

from mediasearch.catalog import FileRow, Root
from mediasearch.errors import FileUnavailable


@dataclass
class Opened:
    """An indexed file, opened once and checked: everything served is read from `fd`."""

    fd: int
    size: int
    mtime: float
    path: str
    kind: str

    def reopenable(self) -> str:
        """A name that opens this very file again (not whatever the path names now), for decoders
        that want a path: Linux and macOS both give one for an open descriptor."""
        return f"/dev/fd/{self.fd}"

    def close(self) -> None:
        os.close(self.fd)


def open_checked(row: FileRow | None, root: Root | None, verified: set[tuple]) -> Opened:
    """Open an indexed file (its catalog row, its library folder) once and check what was opened.

    Without --follow-links the last step is opened with O_NOFOLLOW (a link swapped in fails), and the
    opened file must be the one at the path's real location, under its library folder (same device
    and inode: a folder swapped for a link in between is caught too).  With --follow-links links may
    go anywhere, so the opened file must hold the content that was indexed (its SHA-256, checked once
    per file identity, remembered in `verified`).  Either way it must be a regular file of the size
    and time indexed.  Raises FileUnavailable saying which check failed.
    """
    if row is None or root is None or row.status != "indexed":
        raise FileUnavailable("not_found", "no such file")
    follows = bool(root.options.get("follow_links"))
    flags = os.O_RDONLY | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NONBLOCK", 0)  # a FIFO never blocks
    try:
        fd = os.open(row.path, flags | (0 if follows else getattr(os, "O_NOFOLLOW", 0)))
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise FileUnavailable("forbidden", "the file is not where it was indexed (a link now)") from exc
        raise FileUnavailable("not_found", "the file is no longer there") from exc
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or (st.st_size, st.st_mtime) != (row.size, row.mtime):
            raise FileUnavailable("changed", "the file changed since it was indexed")
        if follows:
            _check_content(fd, st, row.hash, verified)
        elif not _where_indexed(row.path, root.path, st):
            raise FileUnavailable("forbidden", "the file is not where it was indexed")
    except BaseException:
        os.close(fd)
        raise
    return Opened(fd, st.st_size, st.st_mtime, row.path, row.kind or "")


def _where_indexed(path: str, folder: str, opened: os.stat_result) -> bool:
    """Whether the opened file is the one at the path's real location, and that is in the folder."""
    try:
        real, base = os.path.realpath(path), os.path.realpath(folder)
        there = os.stat(real, follow_symlinks=False)
    except OSError:  # a link swapped in or out while being resolved
        return False
    if not (real == base or real.startswith(base.rstrip("/") + "/")):
        return False
    return (there.st_dev, there.st_ino) == (opened.st_dev, opened.st_ino)


def _check_content(fd: int, st: os.stat_result, digest: str | None, verified: set[tuple]) -> None:
    """A file reached through links is shown only if it holds what was indexed: a link swapped for
    one to another file of the same size and time (touch -r) fails here."""
    identity = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, digest)
    if identity in verified:
        return
    hasher = hashlib.sha256()
    offset = 0
    while chunk := os.pread(fd, 1 << 20, offset):
        hasher.update(chunk)
        offset += len(chunk)
    if digest is None or hasher.hexdigest() != digest:
        raise FileUnavailable("forbidden", "the file is not the one indexed")
    verified.add(identity)
