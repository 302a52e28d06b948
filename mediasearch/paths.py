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


_cache: Path | None = None  # mediasearch.open(cache=...) names it for the process


def use_cache(folder: str | os.PathLike) -> None:
    """The cache folder for this process's mediasearch calls, before MEDIASEARCH_CACHE."""
    global _cache
    _cache = Path(folder).expanduser()


def cache_dir() -> Path:
    """Downloaded model bundles and derived files: as opened, MEDIASEARCH_CACHE, XDG cache."""
    if _cache is not None:
        return _cache
    if os.environ.get("MEDIASEARCH_CACHE"):
        return Path(os.environ["MEDIASEARCH_CACHE"]).expanduser()
    return _xdg("XDG_CACHE_HOME", ".cache") / "mediasearch"


def under_any(path: str, folders: list[str]) -> bool:
    """path is one of folders, or inside one."""
    return any(path == f or path.startswith(f.rstrip("/") + "/") for f in folders)
