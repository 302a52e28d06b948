"""Incremental indexing with the real towers, a real SQLite file and a real FAISS index."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import BUNDLE, INPUTS, assert_consistent, index_ids, open_library, wait_for_catalog
from fakes import HashEmbedder
from PIL import Image

from mediasearch.bundle import resolve
from mediasearch.catalog import Catalog
from mediasearch.errors import MediasearchError
from mediasearch.index import VectorIndex
from mediasearch.ingest import Indexer


def runner(folder: Path, counting: HashEmbedder):
    """run(folder, ...) indexes as `mediasearch index` does, into the library at folder, with hash vectors
    (these tests are about what is embedded, kept, moved and removed, not the model's numbers);
    run.model counts the embedding calls."""
    lib = open_library(folder, counting.bundle)

    def run(*folders, hidden=None, excludes=(), follow_links=None, warn=lambda m: None, **kw):
        roots = lib.add_folders(
            [str(Path(r).resolve()) for r in folders],
            hidden=hidden,
            excludes=excludes,
            clear_excludes=bool(excludes),
            follow_links=follow_links,
        )
        summary = Indexer(lib, lambda: counting, warn=warn, **kw).scan(roots)
        lib.save_index()
        return summary

    run.catalog = lib.catalog
    run.library = lib
    run.model = counting
    return run


@pytest.fixture
def library(tmp_path, bundle):
    """An empty library to index into."""
    run = runner(tmp_path / "library", HashEmbedder(bundle))
    yield run
    run.library.close()


@pytest.fixture
def indexed(hashed_library, shared_media, bundle, tmp_path):
    """A library already holding the sample media (indexed once per session, copied here), and the media's
    folder, restored to how it was indexed: (run, folder)."""
    folder = shared_media.restore()
    shutil.copytree(hashed_library, tmp_path / "library")
    run = runner(tmp_path / "library", HashEmbedder(bundle))
    yield run, folder
    run.library.close()


def consistent(catalog: Catalog) -> None:
    assert_consistent(catalog.folder)


def test_first_pass_indexes_every_media_file(library, media_dir):
    (media_dir / "notes.txt").write_text("not media")
    summary = library(media_dir)
    assert (summary.added, summary.failed, summary.ignored) == (12, 0, 1)
    assert library.catalog.segment_count() == 15  # two long recordings give 3 + 2 windows
    consistent(library.catalog)


def test_second_pass_embeds_nothing(indexed):
    library, folder = indexed
    summary = library(folder)
    assert summary.unchanged == 12 and summary.added == summary.updated == 0
    assert library.model.calls == 0


def test_rename_move_and_copy_reuse_vectors(indexed):
    library, folder = indexed
    stored = library.catalog.segment_vectors(library.catalog.file(str(folder / "cat-chelsea.jpg")).id)
    (folder / "sub").mkdir()
    os.rename(folder / "cat-chelsea.jpg", folder / "sub" / "kitty.jpg")
    shutil.copy(folder / "chirp.wav", folder / "chirp-copy.wav")
    summary = library(folder)
    assert library.model.items == 0, "no file may be embedded again"
    assert summary.reused == 2 and summary.removed == 0
    moved = library.catalog.file(str(folder / "sub" / "kitty.jpg"))
    assert np.array_equal(library.catalog.segment_vectors(moved.id), stored)
    assert library.catalog.file(str(folder / "cat-chelsea.jpg")) is None
    assert library.catalog.file(str(folder / "chirp-copy.wav")).status == "indexed"
    consistent(library.catalog)


def test_changed_file_is_embedded_again(indexed):
    library, folder = indexed
    Image.open(INPUTS / "portrait.png").save(folder / "coffee-cup.png")
    summary = library(folder)
    assert summary.updated == 1 and summary.unchanged == 11 and library.model.items == 1
    consistent(library.catalog)


def test_deleted_files_leave_catalog_and_index(indexed):
    library, folder = indexed
    (folder / "rain-noise.mp3").unlink()
    summary = library(folder)
    assert summary.removed == 1
    assert library.catalog.file(str(folder / "rain-noise.mp3")) is None
    assert library.catalog.segment_count() == 13
    consistent(library.catalog)


def test_failures_are_recorded_and_retried_only_when_changed(library, media_dir):
    bad = media_dir / "broken.png"
    bad.write_bytes((INPUTS / "portrait.png").read_bytes()[:300])
    summary = library(media_dir)
    assert summary.failed == 1 and summary.failures[0]["path"] == str(bad)
    assert "not a readable image" in summary.failures[0]["error"]
    again = library(media_dir)  # unchanged: not retried, but it still stands failed
    assert (again.failed, again.failed_new, again.batches, again.failures[0]["new"]) == (1, 0, 0, False)
    shutil.copy(INPUTS / "portrait.png", bad)
    summary = library(media_dir)
    assert summary.updated == 1 and library.catalog.file(str(bad)).status == "indexed"


def test_hidden_and_excluded_files_are_skipped(library, media_dir):
    (media_dir / ".thumbs").mkdir()
    shutil.copy(INPUTS / "tiny.png", media_dir / ".thumbs" / "t.png")
    shutil.copy(INPUTS / "tiny.png", media_dir / ".hidden.png")
    (media_dir / "drafts").mkdir()
    shutil.copy(INPUTS / "gray.png", media_dir / "drafts" / "g.png")
    assert library(media_dir, excludes=["drafts", "*.mp3"]).added == 11
    assert library(media_dir, hidden=True, excludes=["drafts"]).added == 3
    assert library(media_dir).unchanged == 14, "the folder remembers its options"


def test_symlink_loops_and_unreadable_folders_are_reported(library, media_dir, monkeypatch):
    (media_dir / "loop").symlink_to(media_dir)
    locked = media_dir / "locked"
    locked.mkdir()
    real_scandir = os.scandir

    def scandir(path):  # root reads everything, so refuse this one folder the way the OS would
        if Path(path) == locked:
            raise PermissionError(13, "Permission denied")
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)
    warnings = []
    summary = library(media_dir, follow_links=True, warn=warnings.append)
    assert summary.added == 12
    assert any("symlink loop" in w for w in warnings) and any("Permission denied" in w for w in warnings)


def test_a_damaged_video_fails_with_a_reason_and_other_files_are_ignored_with_one(library, media_dir):
    (media_dir / "clip.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(64))
    (media_dir / "notes.txt").write_text("a shopping list")
    summary = library(media_dir)
    assert summary.failed == 1 and "not a readable video" in summary.failures[0]["error"]
    assert summary.ignored == 1
    row = library.catalog.file(str(media_dir / "notes.txt"))
    assert row.status == "ignored" and "not a picture, sound or video" in row.error


def test_deleted_faiss_file_is_rebuilt_from_sqlite(indexed):
    library, _ = indexed
    (library.catalog.folder / "vectors.faiss").unlink()
    index = VectorIndex(library.catalog).load()  # no file to load: every vector comes from SQLite
    assert index.count == 15 and index_ids(index.index) == library.catalog.all_segment_ids()
    assert library.model.calls == 0


def test_a_different_model_is_refused_unless_reembedding(indexed, tmp_path):
    library, folder = indexed
    other = tmp_path / "other"
    shutil.copytree(BUNDLE, other)
    (other / "projection_training_metadata.json").write_text('{"another": "training run"}')
    with pytest.raises(MediasearchError, match="--reembed"):
        library.library.bind(resolve(str(other)))
    library.library.bind(resolve(str(other)), reembed=True)
    assert library.catalog.segment_count() == 0
    summary = library(folder)
    assert summary.updated == 12 and summary.reused == 0


def _many_pictures(folder: Path, count: int) -> None:
    folder.mkdir()
    rng = np.random.default_rng(3)
    for i in range(count):
        Image.fromarray(rng.integers(0, 255, (96, 128, 3), dtype=np.uint8)).save(folder / f"p{i:04}.png")


@pytest.mark.slow
def test_kill_9_mid_run_then_resume(tmp_path):
    """A real `mediasearch index` killed with SIGKILL loses at most its batch in flight."""
    folder = tmp_path / "many"
    _many_pictures(folder, 1200)
    env = dict(os.environ, MEDIASEARCH_HOME=str(tmp_path / "lib"))
    cmd = [sys.executable, "-m", "mediasearch", "index", str(folder), "--model", str(BUNDLE), "--json"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    wait_for_catalog(proc, tmp_path / "lib", lambda catalog: len(catalog.files_under(str(folder))) >= 64)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    catalog = Catalog(tmp_path / "lib")
    at_kill = len(catalog.files_under(str(folder)))
    catalog.close()
    assert 0 < at_kill < 1200, f"the kill should land mid-run ({at_kill} files)"
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    import json

    summary = json.loads(done.stdout)
    assert summary["added"] + summary["unchanged"] == 1200
    assert summary["unchanged"] >= at_kill - 32
    catalog = Catalog(tmp_path / "lib")
    try:
        assert sorted(row.path for row in catalog.files_under(str(folder))) == sorted(map(str, folder.iterdir()))
        assert catalog.segment_count() == 1200
        consistent(catalog)
    finally:
        catalog.close()


def test_embedder_is_not_built_when_nothing_changed(tmp_path, media_dir, bundle):
    lib = open_library(tmp_path / "lib", bundle)
    roots = lib.add_folders([str(media_dir.resolve())])
    Indexer(lib, lambda: HashEmbedder(bundle)).scan(roots)

    def refuse():
        raise AssertionError("the model must not load for a no-change pass")

    summary = Indexer(lib, refuse).scan(roots)
    assert summary.unchanged == 12
    lib.close()


def test_nested_folders_index_each_file_once(library, media_dir):
    sub = media_dir / "sub"
    sub.mkdir()
    shutil.copy(INPUTS / "tiny.png", sub / "tiny.png")
    summary = library(media_dir, sub)
    assert summary.added == 13 and summary.reused == 0
    on_disk = sorted(str(p) for p in media_dir.resolve().rglob("*") if p.is_file())
    assert sorted(row.path for row in library.catalog.files_under(str(media_dir.resolve()))) == on_disk
    assert owner_of(library.catalog, sub / "tiny.png") == str(sub)
    again = library(media_dir)  # the outer folder alone: nothing changes hands
    assert again.unchanged == 13 and again.added == again.reused == 0


def owner_of(catalog, path) -> str:
    """The folder of the library a file belongs to."""
    return catalog.root_by_id(catalog.file(str(path)).root_id).path


def test_a_folder_added_after_its_parent_takes_its_files_and_forget_hands_them_back(library, media_dir):
    sub = media_dir / "sub"
    sub.mkdir()
    shutil.copy(INPUTS / "tiny.png", sub / "tiny.png")
    library(media_dir)
    assert owner_of(library.catalog, sub / "tiny.png") == str(media_dir)
    summary = library(sub)
    assert summary.unchanged == 1 and summary.added == 0
    assert owner_of(library.catalog, sub / "tiny.png") == str(sub)
    roots = library.catalog.roots()
    child = next(r for r in roots if r.path == str(sub))
    parent = next(r for r in roots if r.path == str(media_dir))
    assert library.catalog.remove_root(child, parent) == []
    assert owner_of(library.catalog, sub / "tiny.png") == str(media_dir)
    assert library(media_dir).unchanged == 13
