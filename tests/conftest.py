"""Shared fixtures: every test gets its own library and cache, and no hub access."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pytest

FIXTURES = Path(__file__).parent / "fixtures"
BUNDLE = FIXTURES / "bundle"
INPUTS = FIXTURES / "inputs"
SAMPLES = Path(__file__).parent.parent / "sample_media"
PHONE_AND_CAMERA = ("*.mp4", "*.heic", "*.m4a", "*.dng")


@pytest.fixture(autouse=True)
def isolated(tmp_path_factory, monkeypatch):
    """Library and cache in temp dirs; the hub client stays offline unless a test says otherwise."""
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("MEDIASEARCH_HOME", str(home / "library"))
    monkeypatch.setenv("MEDIASEARCH_CACHE", str(home / "cache"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("ORT_DISABLE_TELEMETRY", "1")
    monkeypatch.delenv("MEDIASEARCH_MODEL", raising=False)
    # Reading text in pictures costs about a second a picture here: only the tests about words pay it
    # (they take this away; see tests/test_words_index.py).
    monkeypatch.setenv("MEDIASEARCH_NO_OCR", "1")
    return home


@pytest.fixture(scope="session")
def bundle():
    from mediasearch.bundle import resolve

    return resolve(str(BUNDLE))


@pytest.fixture(scope="session")
def embedder(bundle):
    from mediasearch.model import Embedder

    return Embedder(bundle)


@pytest.fixture(scope="session")
def reference():
    meta = json.loads((FIXTURES / "reference.json").read_text())
    vectors = dict(np.load(FIXTURES / "reference.npz"))
    return meta, vectors


@pytest.fixture
def media_dir(tmp_path) -> Path:
    """A copy of sample_media's pictures and sounds (not the licence file, nor the phone and camera
    formats, which tests/test_ffmpeg.py and test_media.py use by name) to index and change."""
    folder = tmp_path / "media"
    shutil.copytree(SAMPLES, folder, ignore=shutil.ignore_patterns("*.md", *PHONE_AND_CAMERA))
    return folder


class SharedMedia(NamedTuple):
    """media_dir's files at one path for the session, for libraries indexed once and copied per test
    (a catalog names files by their path)."""

    pristine: Path  # as indexed, never touched
    media: Path  # the path the catalogs know: restore() it before each test that uses it

    def restore(self) -> Path:
        shutil.rmtree(self.media, ignore_errors=True)
        shutil.copytree(self.pristine, self.media)  # copy2 keeps the mtimes a catalog compares against
        return self.media


@pytest.fixture(scope="session")
def shared_media(tmp_path_factory) -> SharedMedia:
    base = tmp_path_factory.mktemp("shared")
    shutil.copytree(SAMPLES, base / "pristine", ignore=shutil.ignore_patterns("*.md", *PHONE_AND_CAMERA))
    return SharedMedia(base / "pristine", (base / "media").resolve())


class Built(NamedTuple):
    """A library indexed once per session by the command line, and what `index --json` printed."""

    library: Path
    summary: dict


@pytest.fixture(scope="session")
def built_library(tmp_path_factory, shared_media) -> Built:
    """The shared media indexed once, by the command a user runs: copying the result costs
    milliseconds where indexing costs a second or two in every test that needs a library."""
    from click.testing import CliRunner

    from mediasearch.cli import cli

    base = tmp_path_factory.mktemp("built")
    media = shared_media.restore()
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MEDIASEARCH_HOME", str(base / "library"))
        patch.setenv("MEDIASEARCH_CACHE", str(base / "cache"))
        patch.delenv("MEDIASEARCH_MODEL", raising=False)
        patch.setenv("MEDIASEARCH_NO_OCR", "1")
        result = CliRunner().invoke(cli, ["index", str(media), "--model", str(BUNDLE), "--json"])
        assert result.exit_code == 0, result.output
        warm = CliRunner().invoke(cli, ["query", "a first query", "--json"])  # the mapped text tower, once
    assert warm.exit_code == 0, warm.output
    return Built(base / "library", json.loads(result.stdout))


@pytest.fixture
def indexed_library(built_library, shared_media, isolated) -> tuple[Path, dict]:
    """This test's own copy of the built library (at $MEDIASEARCH_HOME) and of its media, at the
    path the catalog names them by; returns (media folder, the index summary)."""
    media = shared_media.restore()
    shutil.copytree(built_library.library, isolated / "library")
    # What the bundle makes once per cache (its revision, batching probes, the mapped text tower), not
    # the remembered query vectors: a test still sees its own first query run the text tower.
    shutil.copytree(
        built_library.library.parent / "cache", isolated / "cache", ignore=shutil.ignore_patterns("queries.db*")
    )
    return media, built_library.summary


@pytest.fixture(scope="session")
def hashed_library(shared_media, bundle, tmp_path_factory) -> Path:
    """The shared media indexed once more, through the Python API with hash vectors (tests/fakes.py),
    for tests about what a pass embeds, keeps, moves and removes."""
    from fakes import HashEmbedder

    import mediasearch

    folder = tmp_path_factory.mktemp("hashed") / "library"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MEDIASEARCH_CACHE", str(folder.parent / "cache"))
        patch.setenv("MEDIASEARCH_NO_OCR", "1")
        with mediasearch.open(folder, model=HashEmbedder(bundle), write=True) as library:
            assert library.index(shared_media.restore()).added == 12
    return folder


@pytest.fixture(scope="session")
def every_sample_indexed(tmp_path_factory) -> tuple[Path, Path]:
    """Every sample file, phone and camera formats too, indexed once per session: (library, media).
    The served modules (test_server and the page's) each copy the library; none changes the media."""
    from click.testing import CliRunner

    from mediasearch.cli import cli

    home = tmp_path_factory.mktemp("every-sample")
    folder = home / "media"
    shutil.copytree(SAMPLES, folder, ignore=shutil.ignore_patterns("*.md"))
    env = dict(os.environ, MEDIASEARCH_HOME=str(home / "lib"), MEDIASEARCH_CACHE=str(home / "cache"))
    done = CliRunner().invoke(cli, ["index", str(folder), "--model", str(BUNDLE)], env=env)
    assert done.exit_code == 0, done.output
    return home / "lib", folder


def index_ids(index) -> list[int]:
    """Every segment id a FAISS index holds (exact or IVF), sorted."""
    import faiss

    if index.ntotal == 0:
        return []
    if hasattr(index, "id_map"):
        return sorted(faiss.vector_to_array(index.id_map).tolist())
    lists = index.invlists
    sizes = [(c, lists.list_size(c)) for c in range(index.nlist)]
    parts = [faiss.rev_swig_ptr(lists.get_ids(c), size).copy() for c, size in sizes if size]
    return sorted(np.concatenate(parts).tolist())


def assert_consistent(library: Path) -> None:
    """The saved FAISS file is stamped current and holds exactly the catalog's segment ids (read
    from the file itself: a load would quietly rebuild a stale one from the catalog)."""
    import faiss

    from mediasearch.catalog import Catalog
    from mediasearch.index import VectorIndex

    catalog = Catalog(library)
    try:
        saved = VectorIndex(catalog)
        assert saved.saved_is_current(), "the saved index should be current"
        assert index_ids(faiss.read_index(str(saved.path))) == catalog.all_segment_ids()
    finally:
        catalog.close()


def wait_for_catalog(proc, library: Path, enough: Callable, timeout: float = 120) -> None:
    """Poll a running writer's catalog (read-only, through its own methods) until enough(catalog)
    is true, the process ends, or the time is up."""
    from mediasearch.catalog import Catalog
    from mediasearch.errors import LibraryError

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            catalog = Catalog(library)
        except LibraryError:  # not created, or not migrated, yet
            time.sleep(0.02)
            continue
        try:
            if enough(catalog):
                return
        except sqlite3.OperationalError:
            pass  # the writer is creating a table at this moment
        finally:
            catalog.close()
        time.sleep(0.02)


@pytest.fixture
def rebuilds(monkeypatch) -> list:
    """Each VectorIndex that rebuilt itself from the catalog during the test, in order: how a test
    tells a load of the saved file from a rebuild without reading the index's internals."""
    from mediasearch.index import VectorIndex

    seen: list = []
    real = VectorIndex.rebuild

    def rebuild(self) -> None:
        seen.append(self)
        real(self)

    monkeypatch.setattr(VectorIndex, "rebuild", rebuild)
    return seen


def open_library(folder: Path, bundle):
    """A writable library bound to the test bundle."""
    from mediasearch.storage import Storage

    library = Storage(folder, write=True)
    library.bind(bundle)
    return library


@pytest.fixture(scope="session")
def antfly(tmp_path_factory):
    """A real `antfly standalone` on 127.0.0.1 for the whole session (skipped, with the reason, only
    where this machine cannot run one)."""
    from antfly_server import AntflyServer, Unavailable

    folder = tmp_path_factory.mktemp("antfly")
    try:
        server = AntflyServer(folder, tmp_path_factory.getbasetemp() / "antfly-bin").start()
    except Unavailable as exc:
        pytest.skip(f"Antfly cannot run here: {exc}")
    yield server
    server.stop()
