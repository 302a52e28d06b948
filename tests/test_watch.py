"""A real `mediasearch watch` subprocess, real filesystem changes, polled through the CLI (slow); the same
watcher in-process, through the Python API, for the edit-test loop."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from contextlib import closing
from pathlib import Path

import numpy as np
import pytest
from conftest import BUNDLE, INPUTS, assert_consistent, open_library
from fakes import HashEmbedder
from PIL import Image

from mediasearch.catalog import Catalog

DEADLINE = 60


class WatchProcess:
    def __init__(self, folder: Path, library: Path, *extra: str):
        self.library = library
        self.env = dict(os.environ, MEDIASEARCH_HOME=str(library), PYTHONUNBUFFERED="1")
        cmd = [
            sys.executable,
            "-m",
            "mediasearch",
            "watch",
            str(folder),
            "--model",
            str(BUNDLE),
            "--json",
            "--settle",
            "0.5",
            *extra,
        ]
        self.proc = subprocess.Popen(cmd, env=self.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.out: list[str] = []
        self.err: list[str] = []
        for stream, sink in ((self.proc.stdout, self.out), (self.proc.stderr, self.err)):
            threading.Thread(target=lambda s=stream, k=sink: k.extend(iter(s.readline, "")), daemon=True).start()
        self.wait_for(lambda: any("watching" in line for line in self.err), "the first pass")

    def wait_for(self, check, what: str, timeout: float = DEADLINE):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = check()
            if value:
                return value
            if self.proc.poll() is not None:
                raise AssertionError(f"watch exited ({self.proc.returncode}): {''.join(self.err)}")
            time.sleep(0.2)
        raise AssertionError(f"timed out waiting for {what}; stderr: {''.join(self.err)[-2000:]}")

    def cli(self, *args: str):
        done = subprocess.run(
            [sys.executable, "-m", "mediasearch", *args], env=self.env, capture_output=True, text=True, timeout=120
        )
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)

    def indexed(self) -> set[str]:
        rows = self.cli("query", "anything", "--json", "--limit", "100000")
        return {r["path"] for r in rows}

    def count(self) -> int:
        return self.cli("status", "--json")["counts"]["indexed"]

    def changes(self) -> list[dict]:
        return [json.loads(line) for line in list(self.out) if line.startswith("{")]

    def stop(self, sig=signal.SIGTERM) -> int:
        self.proc.send_signal(sig)
        return self.proc.wait(timeout=60)


def write_slowly(target: Path, source: Path, chunks: int, pause: float) -> None:
    """Copy source to target in chunks with pauses between, as a slow download or camera does."""
    data = source.read_bytes()
    with open(target, "wb") as handle:
        for i in range(chunks):
            handle.write(data[i * len(data) // chunks : (i + 1) * len(data) // chunks])
            handle.flush()
            time.sleep(pause)


@pytest.fixture
def watcher(media_dir, tmp_path):
    proc = WatchProcess(media_dir, tmp_path / "lib")
    yield proc
    if proc.proc.poll() is None:
        assert proc.stop() == 0
    assert_consistent(tmp_path / "lib")


class InProcess:
    """The watcher `mediasearch watch` runs, through the Python API in a thread, with hash vectors: the
    edit-test loop's cover of watching (the real process is test_create_modify_delete_rename's)."""

    def __init__(self, folder: Path, library: Path, bundle):
        import mediasearch

        self.changes: list = []
        self.lines: list[str] = []
        self.library = mediasearch.open(library, model=HashEmbedder(bundle), write=True)
        options = {"settle": 0.2, "on_change": self.changes.append, "log": self.lines.append}
        self.thread = threading.Thread(target=self.library.watch, args=(folder,), kwargs=options)
        self.thread.start()
        self.wait_for(lambda: any("watching" in line for line in self.lines), "the first pass")

    def seen(self, action: str, path: Path, source: Path | None = None) -> bool:
        """Whether this change has been applied (a move names where it came from)."""
        wanted = (action, str(path), str(source) if source else "")
        return any((c.action, c.path, c.detail if source else "") == wanted for c in self.changes)

    def wait_for(self, check: Callable[[], bool], what: str, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while not check():
            assert self.thread.is_alive(), f"the watcher ended: {self.lines}"
            assert time.monotonic() < deadline, f"timed out waiting for {what}: {self.changes}"
            time.sleep(0.05)

    def stop(self) -> None:
        self.library.stop()
        self.thread.join(timeout=30)
        assert not self.thread.is_alive()
        self.library.close()


def test_changes_are_followed_in_process(tmp_path, bundle):
    """Create, modify, rename and delete each become the one change they are, and the saved index
    holds exactly the catalog's segments once the watcher stops."""
    folder = tmp_path / "media"
    folder.mkdir()
    shutil.copy(INPUTS / "tone48k.wav", folder / "tone.wav")
    watcher = InProcess(folder, tmp_path / "lib", bundle)
    try:
        new, renamed = folder / "new.png", folder / "renamed.png"
        shutil.copy(INPUTS / "portrait.png", new)
        watcher.wait_for(lambda: watcher.seen("added", new), "a new file")
        Image.open(INPUTS / "landscape.jpg").save(new)
        watcher.wait_for(lambda: watcher.seen("updated", new), "its new content")
        os.rename(new, renamed)
        watcher.wait_for(lambda: watcher.seen("moved", renamed, new), "the rename")
        (folder / "tone.wav").unlink()
        watcher.wait_for(lambda: watcher.seen("removed", folder / "tone.wav"), "the deletion")
    finally:
        watcher.stop()
    actions = [(c.action, Path(c.path).name) for c in watcher.changes]
    assert actions == [
        ("added", "tone.wav"),
        ("added", "new.png"),
        ("updated", "new.png"),
        ("moved", "renamed.png"),
        ("removed", "tone.wav"),
    ]
    assert_consistent(tmp_path / "lib")
    with closing(Catalog(tmp_path / "lib")) as catalog:
        assert [row.path for row in catalog.files_under(str(folder))] == [str(renamed)]


@pytest.mark.slow
def test_create_modify_delete_rename(watcher, media_dir):
    new = media_dir / "new.png"
    shutil.copy(INPUTS / "portrait.png", new)
    watcher.wait_for(lambda: str(new) in watcher.indexed(), "a new file")
    Image.open(INPUTS / "landscape.jpg").save(new)
    watcher.wait_for(lambda: any(c == {"action": "updated", "path": str(new)} for c in watcher.changes()), "update")
    target = media_dir / "renamed.png"
    os.rename(new, target)
    watcher.wait_for(lambda: str(target) in watcher.indexed() and str(new) not in watcher.indexed(), "rename")
    assert {"action": "moved", "path": str(target), "from": str(new)} in watcher.changes()
    (media_dir / "chirp.wav").unlink()
    watcher.wait_for(lambda: str(media_dir / "chirp.wav") not in watcher.indexed(), "a deletion")
    assert {"action": "removed", "path": str(media_dir / "chirp.wav")} in watcher.changes()


@pytest.mark.slow
def test_moving_a_folder_keeps_vectors(watcher, media_dir):
    album = media_dir / "album"
    album.mkdir()
    for name in ("landscape.jpg", "gray.png", "tone48k.wav"):
        shutil.copy(INPUTS / name, album / name)
    watcher.wait_for(lambda: watcher.count() == 15, "the album")
    added = len([c for c in watcher.changes() if c["action"] == "added"])
    album.rename(media_dir / "holiday")
    expected = {str(media_dir / "holiday" / n) for n in ("landscape.jpg", "gray.png", "tone48k.wav")}
    watcher.wait_for(lambda: expected <= watcher.indexed(), "the moved album")
    assert not any(p.startswith(str(album) + "/") for p in watcher.indexed())
    assert len([c for c in watcher.changes() if c["action"] == "added"]) == added, "nothing re-embedded"
    assert len([c for c in watcher.changes() if c["action"] == "moved"]) == 3


@pytest.mark.slow
def test_atomic_save_is_one_change(watcher, media_dir):
    target = media_dir / "coffee-cup.png"
    tmp = media_dir / ".coffee-cup.png.swp"
    watcher.wait_for(lambda: any(c["path"] == str(target) for c in watcher.changes()), "the first pass's line")
    before = len(watcher.changes())
    Image.open(INPUTS / "portrait.png").save(tmp, format="PNG")
    os.replace(tmp, target)
    watcher.wait_for(lambda: any(c["path"] == str(target) for c in watcher.changes()[before:]), "the save")
    later = media_dir / "after-the-save.png"  # changed after the save: once it is told, so is the save, whole
    shutil.copy(INPUTS / "tiny.png", later)
    watcher.wait_for(lambda: any(c["path"] == str(later) for c in watcher.changes()[before:]), "a later change")
    touching = [c for c in watcher.changes()[before:] if "coffee-cup" in c["path"]]
    assert touching == [{"action": "updated", "path": str(target)}]


@pytest.mark.slow
def test_a_failure_is_told_once_with_the_path_once(watcher, media_dir):
    assert any("in step with 1 folder after" in line for line in watcher.err), watcher.err
    broken = media_dir / "broken.jpg"
    broken.write_text("a text file named like a picture")
    watcher.wait_for(lambda: any(c["path"] == str(broken) for c in watcher.changes()), "the failure")
    later = media_dir / "after-the-failure.png"
    shutil.copy(INPUTS / "tiny.png", later)
    watcher.wait_for(lambda: any(c["path"] == str(later) for c in watcher.changes()), "a later change")
    told = [c for c in watcher.changes() if c["path"] == str(broken)]
    assert len(told) == 1 and told[0]["action"] == "failed", told
    assert told[0]["error"].startswith("not a readable image") and "broken.jpg" not in told[0]["error"]
    assert not any("broken.jpg" in line for line in watcher.err), "not told again on stderr"


@pytest.mark.slow
def test_slowly_written_file_is_indexed_once_and_complete(watcher, media_dir):
    target = media_dir / "slow.jpg"
    write_slowly(target, INPUTS / "landscape.jpg", chunks=10, pause=0.2)  # about two seconds of appending
    watcher.wait_for(lambda: str(target) in watcher.indexed(), "the slow file")
    time.sleep(1.5)
    assert [c for c in watcher.changes() if c["path"] == str(target)] == [{"action": "added", "path": str(target)}]
    rows = watcher.cli("query", "--like", str(INPUTS / "landscape.jpg"), "--json", "-n", "1", "--include-examples")
    assert rows[0]["path"] == str(target) and rows[0]["score"] > 0.9999


@pytest.mark.slow
def test_changes_while_stopped_are_caught_on_restart(media_dir, tmp_path):
    first = WatchProcess(media_dir, tmp_path / "lib")
    assert first.stop() == 0
    (media_dir / "rain-noise.mp3").unlink()
    shutil.copy(INPUTS / "tiny.png", media_dir / "while-away.png")
    second = WatchProcess(media_dir, tmp_path / "lib")
    paths = second.indexed()
    assert str(media_dir / "while-away.png") in paths and str(media_dir / "rain-noise.mp3") not in paths
    assert second.stop() == 0
    assert_consistent(tmp_path / "lib")


def _burst(folder: Path, count: int) -> None:
    staging = folder.parent / f"staging-{folder.name}"
    staging.mkdir()
    rng = np.random.default_rng(5)
    for i in range(count):
        Image.fromarray(rng.integers(0, 255, (24, 32, 3), dtype=np.uint8)).save(staging / f"b{i:05}.png")
    for entry in sorted(staging.iterdir()):
        os.rename(entry, folder / entry.name)  # each file appears at once, complete


@pytest.mark.slow
def test_burst_of_2000_files(watcher, media_dir):
    started = time.monotonic()
    burst = media_dir / "burst"
    burst.mkdir()
    _burst(burst, 2000)
    watcher.wait_for(lambda: watcher.count() == 2012, "2000 files", timeout=300)
    seconds = time.monotonic() - started
    assert watcher.stop() == 0
    synced = [line for line in watcher.err if line.startswith("synced")]
    print(f"\n2000 files indexed in {seconds:.1f}s; watcher said: {''.join(synced).strip()}")
    batches = sum(int(line.split("(")[1].split()[0]) for line in synced)
    assert batches <= 2000 / 8, "files must share model batches (16 pictures per batch at best)"


@pytest.mark.slow
def test_sigterm_mid_burst_then_restart(media_dir, tmp_path):
    watcher = WatchProcess(media_dir, tmp_path / "lib")
    burst = media_dir / "burst"
    burst.mkdir()
    _burst(burst, 2000)
    watcher.wait_for(lambda: watcher.count() > 100, "the burst to start", timeout=300)
    assert watcher.stop(signal.SIGTERM) == 0, "".join(watcher.err)[-3000:]
    at_stop = watcher.count()
    assert at_stop < 2012, "stop should land mid-burst"
    assert_consistent(tmp_path / "lib")
    again = WatchProcess(media_dir, tmp_path / "lib")
    again.wait_for(lambda: again.count() == 2012, "the rest of the burst", timeout=300)
    assert again.stop() == 0
    assert_consistent(tmp_path / "lib")


def test_falls_back_to_polling_at_the_inotify_limit(tmp_path, media_dir, embedder):
    """The native observer refuses (as at the watch limit): one hint, then polling still sees changes."""
    import errno

    from mediasearch.ingest import Indexer
    from mediasearch.watch import Settings, Watcher

    class Refusing:
        def schedule(self, *args, **kwargs):
            raise OSError(errno.ENOSPC, "inotify watch limit reached")

    library = open_library(tmp_path / "lib", embedder.bundle)
    catalog = library.catalog
    messages: list[str] = []
    indexer = Indexer(library, lambda: embedder)
    watcher = Watcher(
        indexer,
        library.add_folders([str(media_dir.resolve())]),
        Settings(settle=0.2, debounce=0.2, poll=0.2),
        messages.append,
        observer_factory=Refusing,
    )
    thread = threading.Thread(target=watcher.run)
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while not any("watching" in m for m in messages) and time.monotonic() < deadline:
            time.sleep(0.1)
        shutil.copy(INPUTS / "tiny.png", media_dir / "polled.png")
        while catalog.file(str(media_dir.resolve() / "polled.png")) is None and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        watcher.stop()
        thread.join(timeout=30)
    assert catalog.file(str(media_dir.resolve() / "polled.png")).status == "indexed"
    hints = [m for m in messages if "fs.inotify.max_user_watches" in m]
    assert len(hints) == 1
    library.close()


@pytest.mark.slow
def test_file_written_in_chunks_under_settle_is_embedded_once(media_dir, tmp_path):
    watcher = WatchProcess(media_dir, tmp_path / "lib", "--settle", "1")
    target = media_dir / "chunky.jpg"
    write_slowly(target, INPUTS / "landscape.jpg", chunks=4, pause=0.7)  # each pause shorter than --settle
    watcher.wait_for(lambda: str(target) in watcher.indexed(), "the chunked file")
    time.sleep(2)
    assert [c for c in watcher.changes() if c["path"] == str(target)] == [{"action": "added", "path": str(target)}]
    assert watcher.stop() == 0


@pytest.mark.slow
def test_root_deleted_and_recreated_is_watched_again(tmp_path):
    root = tmp_path / "card"
    root.mkdir()
    shutil.copy(INPUTS / "tiny.png", root / "first.png")
    watcher = WatchProcess(root, tmp_path / "lib")
    shutil.rmtree(root)
    watcher.wait_for(lambda: any("is gone" in line for line in watcher.err), "the folder to be missed")
    assert str(root / "first.png") in watcher.indexed(), "an absent folder keeps its files"
    root.mkdir()
    shutil.copy(INPUTS / "portrait.png", root / "second.png")
    watcher.wait_for(lambda: str(root / "second.png") in watcher.indexed(), "a file in the recreated folder")
    shutil.copy(INPUTS / "gray.png", root / "third.png")
    watcher.wait_for(lambda: str(root / "third.png") in watcher.indexed(), "events from the recreated folder")
    assert not [c for c in watcher.changes() if c["action"] == "failed"]
    assert watcher.stop() == 0
