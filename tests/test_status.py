"""What `status` reports, read through the catalog's own methods."""

from __future__ import annotations

import socket

import mediasearch
from mediasearch.antfly import TIMEOUT
from mediasearch.status import library_status
from mediasearch.storage import Storage


def test_counts_failures_and_notes(tmp_path, media_dir, embedder):
    (media_dir / "broken.jpg").write_bytes(b"\xff\xd8\xff not really")
    (media_dir / "notes.txt").write_text("not media")
    with mediasearch.open(tmp_path / "lib", model=embedder, write=True) as library:
        library.index(media_dir)
        data = library.status()
    media = [p for p in media_dir.iterdir() if p.suffix not in (".txt",)]
    assert data["counts"]["failed"] == 1 and data["counts"]["ignored"] == 1
    assert data["counts"]["indexed"] == len(media) - 1
    assert data["counts"]["image"] + data["counts"]["audio"] + data["counts"]["video"] == len(media) - 1
    assert [f["path"] for f in data["failures"]] == [str(media_dir.resolve() / "broken.jpg")]
    assert data["roots"][0]["files"] == len(media) - 1
    assert dict(data["ignored_by_extension"]) == {".txt": 1}


def test_asking_the_store_does_not_shorten_the_librarys_own_timeout(tmp_path, media_dir, embedder):
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]  # nothing listens there once closed
    with mediasearch.open(tmp_path / "lib", model=embedder, write=True) as library:
        library.index(media_dir)
    with Storage(tmp_path / "lib", write=True) as storage:
        storage.bind_store(f"http://127.0.0.1:{port}/shared")
    with Storage(tmp_path / "lib") as storage:
        data = library_status(storage)
        assert data["store"]["reachable"] is False and "cannot reach" in data["store"]["error"]
        assert storage.store.client.timeout == TIMEOUT  # a server's later store requests keep 60 s
