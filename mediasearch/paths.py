"""Where mediasearch keeps its data and cache, resolved in one place.

Environment overrides first (MEDIASEARCH_HOME, MEDIASEARCH_CACHE), then the XDG
base directories, then their documented defaults.
"""

from __future__ import annotations

import os
from pathlib import Path


def _xdg(var: str, default: str) -> Path:
    value = os.environ.get(var)
    return Path(value) if value else Path.home() / default


def library_dir(override: str | os.PathLike | None = None) -> Path:
    """The library (catalog and vector index): --library, MEDIASEARCH_HOME, XDG data."""
    if override:
        return Path(override).expanduser()
    if os.environ.get("MEDIASEARCH_HOME"):
        return Path(os.environ["MEDIASEARCH_HOME"]).expanduser()
    return _xdg("XDG_DATA_HOME", ".local/share") / "mediasearch"


def cache_dir() -> Path:
    """Downloaded model bundles and derived files: MEDIASEARCH_CACHE, XDG cache."""
    if os.environ.get("MEDIASEARCH_CACHE"):
        return Path(os.environ["MEDIASEARCH_CACHE"]).expanduser()
    return _xdg("XDG_CACHE_HOME", ".cache") / "mediasearch"
