"""The errors a user can cause; the CLI prints each as one line and exits 1."""

from __future__ import annotations

from pathlib import Path


class MediasearchError(Exception):
    """Base of every error that is the user's to fix (bad input, missing model, ...)."""


class UsageError(MediasearchError):
    """The call itself is wrong (a missing query, a file outside the library): the CLI exits 2."""


class BundleError(MediasearchError):
    """The model bundle is missing, partial, damaged or cannot be downloaded."""


class LibraryError(MediasearchError):
    """The library is absent, damaged, read-only, on a full disk, or bound to another model."""


class EmptyLibrary(LibraryError):
    """A search of a library that holds nothing yet."""


class LibraryBusy(LibraryError):
    """Another process is writing to the library."""


class DecodeError(MediasearchError):
    """A media file could not be turned into model input."""

    def __init__(self, path: str | Path, reason: str):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{path}: {reason}")
