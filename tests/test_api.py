"""The Python API as a programmer meets it: the package's surface, and docs/python-api.md's examples run."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from conftest import BUNDLE

import mediasearch

DOC = Path(__file__).parent.parent / "docs" / "python-api.md"


def test_importing_the_package_changes_nothing_process_wide():
    code = (
        "import os, sys, logging; before = dict(os.environ); level = logging.getLogger().level\n"
        "import mediasearch\n"
        "assert dict(os.environ) == before, set(os.environ) ^ set(before)\n"
        "assert logging.getLogger().level == level\n"
        "assert 'PIL.Image' not in sys.modules and 'onnxruntime' not in sys.modules and 'numpy' not in sys.modules\n"
        "assert callable(mediasearch.open) and 'open' in mediasearch.__all__\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "ORT_DISABLE_TELEMETRY"}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr


def test_every_public_name_is_there():
    for name in mediasearch.__all__:
        assert getattr(mediasearch, name) is not None
    with pytest.raises(AttributeError):
        mediasearch.no_such_thing  # noqa: B018


@pytest.mark.slow
def test_the_documented_examples_run(tmp_path, media_dir):
    names = {
        "LIBRARY": tmp_path / "library",
        "BUNDLE": str(BUNDLE),
        "MEDIA": media_dir,
        "EXAMPLE": media_dir / "chirp.wav",
    }
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), re.S)
    assert len(blocks) >= 5
    scope: dict = dict(names)
    for block in blocks:
        exec(compile(block, str(DOC), "exec"), scope)  # noqa: S102 - the documentation's own examples
    assert scope["summary"].added == len([p for p in media_dir.iterdir() if p.is_file()])


def test_a_writer_needs_write(indexed_library, isolated, embedder):
    media, _summary = indexed_library
    with mediasearch.open(isolated / "library", model=embedder) as library:
        with pytest.raises(mediasearch.UsageError, match="write=True"):
            library.index(media)


def test_searches_from_many_threads_agree(tmp_path, media_dir, embedder):
    with mediasearch.open(tmp_path / "lib", model=embedder, write=True) as library:
        library.index(media_dir)
    with mediasearch.open(tmp_path / "lib", model=embedder) as library:
        expected = [h.path for h in library.search("a dog barking", limit=5)]
        results, errors = [], []

        def ask() -> None:
            try:
                results.append([h.path for h in library.search("a dog barking", limit=5)])
            except Exception as exc:  # pragma: no cover - the assertion below shows it
                errors.append(exc)

        threads = [threading.Thread(target=ask) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert not errors and results == [expected] * 8


def test_a_stop_ends_the_pass_it_was_asked_of_not_the_next(tmp_path, media_dir, embedder):
    """stop() asked before or during a pass stops that pass; the library's next index runs whole (it
    stopped at once, reading nothing, because the request was never forgotten)."""
    with mediasearch.open(tmp_path / "library", model=embedder, write=True) as library:
        library.stop()
        assert library.index(media_dir).stopped
        again = library.index(media_dir)
        assert not again.stopped and not library.stopping
        assert again.added + again.unchanged == len([p for p in media_dir.iterdir() if p.is_file()])


def test_a_second_pass_beside_a_running_watch_is_refused(tmp_path, media_dir, embedder):
    """index or forget from another thread while watch runs would write the catalog beside it, and
    stop() would then reach only one of them: refused with a usage error until the watch ends."""
    with mediasearch.open(tmp_path / "lib", model=embedder, write=True) as library:
        busy = threading.Event()
        watching = threading.Thread(target=library.watch, args=(media_dir,),
                                    kwargs={"settle": 0.1, "on_change": lambda change: busy.set()})  # fmt: skip
        watching.start()
        try:
            assert busy.wait(60), "the watch never started its first pass"
            for second in (lambda: library.index(media_dir), lambda: library.forget(media_dir)):
                with pytest.raises(mediasearch.UsageError, match="already indexing or watching"):
                    second()
        finally:
            library.stop()
            watching.join(60)
        assert not watching.is_alive()
        files = len([p for p in media_dir.iterdir() if p.is_file()])
        after = library.index(media_dir)  # once the watch has ended, a pass runs (and ends what it left)
        assert not after.stopped and after.added + after.unchanged == files


def test_stop_from_another_thread_ends_a_watch(tmp_path, media_dir, embedder):
    with mediasearch.open(tmp_path / "lib", model=embedder, write=True) as library:
        timer = threading.Timer(1.0, library.stop)
        timer.start()
        library.watch(media_dir, settle=0.1)  # returns once stopped
        assert library.status()["counts"]["indexed"] > 0


class Blocking:
    """An embedder whose towers wait for a signal: a long model run, held open by the test."""

    def __init__(self):
        self.started, self.release, self.texts, self.files = threading.Event(), threading.Event(), [], 0

    def embed_texts(self, texts):
        import numpy as np

        self.texts += texts
        return np.ones((len(texts), 512), np.float32) / np.sqrt(512)

    def embed_each(self, paths, decoded):
        import numpy as np

        self.files += len(paths)
        self.started.set()
        self.release.wait(10)
        return [np.ones((len(d.spans), 512), np.float32) / np.sqrt(512) for d in decoded]


def test_file_work_is_bounded_and_a_crowd_hears_busy_while_texts_go_on(tmp_path, media_dir):
    blocking = Blocking()
    limits = mediasearch.Limits(files_at_once=1, wait_seconds=0.2, text_chars=50)
    picture = media_dir / "rocket-launch.jpg"
    with mediasearch.open(tmp_path / "lib", model=blocking, write=True, limits=limits) as library:
        first = threading.Thread(target=library.embed_file, args=(picture,))
        first.start()
        assert blocking.started.wait(10)
        with pytest.raises(mediasearch.Busy, match="try again"):
            library.embed_file(picture)  # the one turn is taken: wait 0.2 s, then Busy
        assert library.embed_texts(["x" * 5000]).shape == (1, 512)  # texts need no turn
        blocking.release.set()
        first.join(10)
        assert library.embed_file(picture).vectors.shape == (1, 512)  # the turn came back
    assert blocking.files == 2 and [len(t) for t in blocking.texts] == [50]  # cut before tokenising


def test_an_example_recording_is_embedded_up_to_the_bound(tmp_path, media_dir, embedder):
    limits = mediasearch.Limits(example_seconds=10)
    with mediasearch.open(tmp_path / "lib", model=embedder, write=True, limits=limits) as library:
        bounded = library.embed_file(media_dir / "long-recording.flac")
    with mediasearch.open(tmp_path / "lib", model=embedder, write=True) as library:
        whole = library.embed_file(media_dir / "long-recording.flac")
    assert len(bounded.spans) == 1 < len(whole.spans)


def test_word_searches_and_other_calls_share_the_catalog_from_many_threads(tmp_path, media_dir, embedder):
    """A search by words (the text half runs SQL with a function of its own) beside other threads asking
    the library for what it holds: no call fails (serve answered 500s under an /embed flood)."""
    with mediasearch.open(tmp_path / "lib", model=embedder, write=True) as library:
        library.index(media_dir)
    with mediasearch.open(tmp_path / "lib", model=embedder) as library:
        errors, stop = [], threading.Event()

        def ask_other_things() -> None:
            while not stop.is_set():
                try:
                    library.model_name(), library.built_with(), library.folders()
                except Exception as exc:  # pragma: no cover - the assertion below shows it
                    errors.append(exc)

        others = [threading.Thread(target=ask_other_things) for _ in range(3)]
        for thread in others:
            thread.start()
        try:
            for word in ["chirp", "rain noise", "weather", "tone", "rocket launch"] * 4:
                assert library.search(word, limit=3)
        finally:
            stop.set()
            for thread in others:
                thread.join()
    assert not errors, errors[:3]
