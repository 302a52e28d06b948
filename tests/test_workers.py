"""Where no decoder worker can start, a pass still completes: files are decoded in the process, told once."""

from __future__ import annotations

from conftest import SAMPLES

from mediasearch.media import workers


def test_files_are_decoded_here_when_no_worker_can_start(monkeypatch):
    def refuse(*_args, **_kwargs):
        raise PermissionError(13, "Permission denied", "/venv/bin/python")  # as for a user who cannot run it

    monkeypatch.setattr(workers, "_Worker", refuse)
    told: list[str] = []
    pool = workers.DecoderPool(2, warn=told.append)
    try:
        first = pool.decode(SAMPLES / "rocket-launch.jpg")
        second = pool.decode(SAMPLES / "chirp.wav")
    finally:
        pool.close()
    assert first.kind == "image" and len(first.ready) == 1 and "capture" in first.facts
    assert second.kind == "audio" and second.ready
    assert told == ["decoder workers cannot start here (Permission denied): decoding in this process"]
