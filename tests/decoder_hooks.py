"""Test-only decoder hooks, run in each decoder worker process as it starts (Indexer(decoder_setup=...),
DecoderPool(setup=...)).  Only code can pass them: no file, option or environment variable reaches them.

A file whose name starts with `segfault` makes its worker kill itself with SIGSEGV, as a C library's
crash would; `hang` makes it sleep (after writing `hanging` beside the file, so a test knows when);
`nomemory` makes the decoder's allocation fail.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

from mediasearch import media


def misbehave_on_marked_files() -> None:
    for kind, decoder in list(media.DECODERS.items()):
        media.DECODERS[kind] = _marked(decoder)


def _marked(decoder: Callable) -> Callable:
    def decode(path: Path, max_duration: float):
        name = Path(path).name
        if name.startswith("segfault"):
            os.kill(os.getpid(), signal.SIGSEGV)
        if name.startswith("hang"):
            (Path(path).parent / "hanging").write_text(str(os.getpid()))
            time.sleep(600)
        if name.startswith("nomemory"):
            raise MemoryError("Unable to allocate 6.00 GiB for an array with shape (40000, 40000)")
        return decoder(path, max_duration)

    return decode


def metadata_fails() -> None:
    """Reading when and where fails in the worker, as a reader bug on an odd header would."""
    from mediasearch import capture

    def fail(path: str, kind: str | None) -> dict:
        raise RuntimeError(f"metadata of {path} cannot be read")

    capture.metadata = fail


def reading_crashes() -> None:
    """Decoding a picture to read its text kills the worker with SIGSEGV for files named `crashes-when-read*`
    (their vector pass decodes them well): a C decoder crashing only at the size reading needs."""
    from mediasearch import ocr

    load = ocr.load

    def crash(path: str):
        if Path(path).name.startswith("crashes-when-read"):
            os.kill(os.getpid(), signal.SIGSEGV)
        return load(path)

    ocr.load = crash


def reading_runs_out_of_memory() -> None:
    """Decoding a picture or a video's frames to read their text finds too little memory for files named
    `nomemory-when-read*` (their vector pass decodes them well), as on a machine short of memory then."""
    from mediasearch import ocr

    load, video_frames = ocr.load, ocr.video_frames

    def short_load(path: str):
        if Path(path).name.startswith("nomemory-when-read"):
            raise MemoryError("Unable to allocate 48.0 MiB for an array with shape (4096, 4096, 3)")
        return load(path)

    def short_frames(path: str, times: list[float]):
        for at, frame in video_frames(path, times):
            if Path(path).name.startswith("nomemory-when-read"):
                raise MemoryError("Unable to allocate 2.64 MiB for an array with shape (360, 640, 3)")
            yield at, frame

    ocr.load, ocr.video_frames = short_load, short_frames


def reading_crashes_midway() -> None:
    """Decoding a video's frames to read their text kills the worker with SIGSEGV once the first frame is sent,
    for files named `crashes-midway*` (their vector pass decodes them well): a decoder crashing halfway."""
    from mediasearch import ocr

    video_frames = ocr.video_frames

    def crash(path: str, times: list[float]):
        for i, (at, frame) in enumerate(video_frames(path, times)):
            if i == 1 and Path(path).name.startswith("crashes-midway"):
                os.kill(os.getpid(), signal.SIGSEGV)
            yield at, frame

    ocr.video_frames = crash
