"""The errors a user can cause; the CLI prints each as one line and exits 1 (2 for a UsageError)."""

from __future__ import annotations

from pathlib import Path


class MediasearchError(Exception):
    """Base of every error that is the user's to fix (bad input, missing model, ...)."""


class UsageError(MediasearchError):
    """The call itself is wrong (a missing query, a file outside the library): the CLI exits 2."""


class ExampleError(MediasearchError):
    """An example file of a query cannot be read or used (`path` names it, as the user gave it)."""

    def __init__(self, path: str, message: str):
        self.path = path
        super().__init__(message)


class Busy(MediasearchError):
    """Every turn at the model is taken and none came free in time (a server answers 429)."""


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
        self.reason = without_path(reason, self.path)
        super().__init__(f"{path}: {self.reason}")


def without_path(reason: str, path: str) -> str:
    """A reason as a decoder words it, less the path it repeats (Pillow's "cannot identify image
    file '/x/a.jpg'"): the line that tells a failure names the file once, before the reason."""
    if not path:
        return reason
    for form in (f" '{path}'", f' "{path}"', f"'{path}'", f'"{path}"', f" {path}", path):
        reason = reason.replace(form, "")
    return reason.replace(":)", ")").replace(": )", ")").rstrip(": ")


class FileUnavailable(MediasearchError):
    """An indexed file that cannot be shown now: `code` says why ("not_found": not in the catalog or no
    longer there; "forbidden": not where it was indexed; "changed": not what was indexed)."""

    def __init__(self, code: str, message: str):
        self.code = code
        super().__init__(message)
