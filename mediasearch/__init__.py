"""mediasearch: local, offline search over your own pictures, sounds and videos.

    import mediasearch
    with mediasearch.open(write=True) as library:
        library.index("~/Media")
        for hit in library.search("dog barking", limit=5):
            print(hit.score, hit.path)

See docs/python-api.md.  Importing the package loads nothing heavy and changes
nothing process-wide: the API is imported on first use of one of its names.
"""

from __future__ import annotations

__version__ = "0.1.0"
__all__ = [
    "Busy",
    "DecodeError",
    "Hit",
    "Library",
    "LibraryError",
    "Limits",
    "MediasearchError",
    "UsageError",
    "__version__",
    "open",
]

_FROM = {
    "open": "mediasearch.api",
    "Library": "mediasearch.api",
    "Limits": "mediasearch.api",
    "Busy": "mediasearch.errors",
    "Hit": "mediasearch.search",
    "MediasearchError": "mediasearch.errors",
    "LibraryError": "mediasearch.errors",
    "UsageError": "mediasearch.errors",
    "DecodeError": "mediasearch.errors",
}


def __getattr__(name: str):
    """The public names, imported when first asked for (the command line's start-up stays small)."""
    if name in _FROM:
        import importlib

        value = getattr(importlib.import_module(_FROM[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'mediasearch' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
