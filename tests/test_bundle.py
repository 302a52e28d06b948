"""Finding and downloading the bundle, against a real hub stand-in on 127.0.0.1."""

from __future__ import annotations

import os
import shutil

import pytest
from conftest import BUNDLE
from hubserver import HubServer

from mediasearch import bundle
from mediasearch.errors import BundleError

REPO = "antflydb/clipclap"


@pytest.fixture
def hub(monkeypatch):
    with HubServer(BUNDLE, REPO) as server:
        monkeypatch.setenv("HF_ENDPOINT", server.url)
        monkeypatch.delenv("HF_HUB_OFFLINE")
        yield server


def test_repo_id_is_downloaded_once_then_served_from_cache(hub):
    first = bundle.resolve(REPO)
    assert sorted(p.name for p in first.path.iterdir()) == sorted(bundle.BUNDLE_FILES)
    for name in bundle.BUNDLE_FILES:
        assert (first.path / name).read_bytes() == (BUNDLE / name).read_bytes()
    assert len(hub.downloads()) == len(bundle.BUNDLE_FILES)
    before = len(hub.requests)
    second = bundle.resolve(REPO)
    assert second.path == first.path and second.revision == first.revision
    assert len(hub.requests) == before, "a cached bundle must not touch the network"


def test_default_model_is_the_hub_repo(hub):
    assert bundle.resolve(None).source == REPO


def test_interrupted_pull_fetches_only_what_is_missing(hub):
    """A pull killed after some files landed: the next run downloads just the rest."""
    first = bundle.resolve(REPO)
    link = first.path / "text_model.onnx"
    link.resolve().unlink()
    link.unlink()
    before = len(hub.downloads())
    again = bundle.resolve(REPO)
    assert (again.path / "text_model.onnx").read_bytes() == (BUNDLE / "text_model.onnx").read_bytes()
    assert [p.rsplit("/", 1)[1] for p in hub.downloads()[before:]] == ["text_model.onnx"]


@pytest.mark.slow
def test_connection_dropped_mid_file_still_completes(hub):
    hub.cut_once.add("text_model.onnx")
    found = bundle.resolve(REPO)
    assert (found.path / "text_model.onnx").read_bytes() == (BUNDLE / "text_model.onnx").read_bytes()


def test_unreachable_hub_with_nothing_cached_says_what_to_do(monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # nothing listens on the discard port
    with pytest.raises(BundleError) as err:
        bundle.resolve(REPO)
    message = str(err.value)
    assert "could not download antflydb/clipclap" in message and "--model" in message


def test_offline_mode_with_nothing_cached(monkeypatch):
    with pytest.raises(BundleError, match="no complete copy is cached"):
        bundle.resolve(REPO)


def test_repo_without_bundle_files_is_refused(tmp_path, monkeypatch):
    (tmp_path / "README.md").write_text("not a model")
    with HubServer(tmp_path, "someone/other") as server:
        monkeypatch.setenv("HF_ENDPOINT", server.url)
        monkeypatch.delenv("HF_HUB_OFFLINE")
        with pytest.raises(BundleError, match="not a CLIPCLAP bundle"):
            bundle.resolve("someone/other")


@pytest.mark.parametrize("broken", ["missing", "empty"])
def test_partial_local_bundle_names_the_file(tmp_path, broken):
    folder = tmp_path / "bundle"
    shutil.copytree(BUNDLE, folder)
    target = folder / "audio_model.onnx"
    if broken == "missing":
        target.unlink()
    else:
        target.write_bytes(b"")
    with pytest.raises(BundleError, match="audio_model.onnx"):
        bundle.resolve(str(folder))


def test_damaged_onnx_file_is_named_when_loaded(tmp_path):
    from mediasearch.model import Embedder

    folder = tmp_path / "bundle"
    shutil.copytree(BUNDLE, folder)
    (folder / "text_model.onnx").write_bytes(b"garbage" * 100)
    embedder = Embedder(bundle.resolve(str(folder)))
    with pytest.raises(BundleError, match="text_model.onnx could not be loaded"):
        embedder.embed_texts(["hi"])


def test_missing_folder():
    with pytest.raises(BundleError, match="does not exist"):
        bundle.resolve("/no/such/folder")


def test_local_revision_changes_with_the_weights(tmp_path):
    folder = tmp_path / "bundle"
    shutil.copytree(BUNDLE, folder)
    before = bundle.resolve(str(folder)).revision
    (folder / "audio_projection.onnx").write_bytes((BUNDLE / "visual_projection.onnx").read_bytes())
    changed = bundle.resolve(str(folder)).revision
    assert changed != before
    assert bundle.resolve(str(folder)).revision == changed  # remembered against sizes, mtimes, inodes
    config = folder / "clip_config.json"
    text = config.read_text()
    os.utime(config, ns=(1, 1))
    config.write_text(text.replace(": ", ":\t", 1))  # same size, other bytes, a new mtime
    assert bundle.resolve(str(folder)).revision not in (before, changed)


@pytest.mark.slow
def test_int8_copies_are_made_once_and_measured(bundle):
    import json

    from mediasearch.model import Embedder
    from mediasearch.precision import with_precision

    int8 = with_precision(bundle, "int8")
    assert int8.revision == bundle.revision + "+int8" and int8.path != bundle.path
    stamp = (int8.path / "text_model.onnx").stat().st_mtime_ns
    again = with_precision(bundle, "int8")
    assert (again.path / "text_model.onnx").stat().st_mtime_ns == stamp
    cosines = json.loads((int8.path / "fidelity.json").read_text())
    assert set(cosines) == {"text", "image", "audio"} and min(cosines.values()) >= 0.99
    vector = Embedder(int8).embed_texts(["a dog barking"])
    reference = Embedder(bundle).embed_texts(["a dog barking"])
    assert float(vector[0] @ reference[0]) >= 0.99
