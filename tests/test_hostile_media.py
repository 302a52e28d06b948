"""Hostile media against the decoders: wide sound, giant frames, out of memory, crashing decoders.

The memory tests run the decoder in a child process under an address-space cap
(RLIMIT_AS) and read its peak resident memory, so one test's allocation never
touches the test runner or another test.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import signal
import struct
import subprocess
import sys
import textwrap
import time
import zlib
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
import soundfile as sf
from conftest import INPUTS
from PIL import Image
from test_ffmpeg import make_video

from mediasearch import media

HOSTILE = Path(__file__).parent / "fixtures" / "hostile"
GB = 1024**3


def make_wide_vorbis(path: Path, seconds: int = 9) -> Path:
    """255 channels at 192 kHz, mostly silent: 160 KB of Ogg Vorbis that is 1.5 GB of float32 per 8 s.
    (How tests/fixtures/hostile/wide-255ch-192khz.ogg was made; encoding it takes about a minute.)"""
    rate = 192_000
    with sf.SoundFile(path, "w", rate, 255, format="OGG", subtype="VORBIS") as out:
        for quarter in range(seconds * 4):
            block = np.zeros((rate // 4, 255), np.float32)
            block[:, :2] = (0.2 * np.sin((np.arange(rate // 4) + quarter * rate // 4) / 30))[:, None]
            out.write(block)
    return path


def run_capped(body: str, cap_bytes: int, timeout: float = 300) -> dict:
    """Run `body` (which sets `out`, a dict) in a child process under an address-space cap; `out` comes back
    with the child's peak resident memory in MB."""
    script = "import json, resource\n"
    script += f"resource.setrlimit(resource.RLIMIT_AS, ({cap_bytes}, {cap_bytes}))\n"
    script += textwrap.dedent(body)
    # VmHWM, not ru_maxrss: Linux keeps ru_maxrss across exec, so the child would report the pytest
    # process's own peak at the fork (550 MB once the embedder and the place names are loaded).
    script += "\nhwm = next(l for l in open('/proc/self/status') if l.startswith('VmHWM:'))"
    script += "\nout['peak_mb'] = int(hwm.split()[1]) / 1024\nprint(json.dumps(out))\n"
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.splitlines()[-1])


def decode_capped(path: Path, cap_bytes: int) -> dict:
    """Decode one file in a child process under an address-space cap: its windows, reason and peak RSS."""
    body = f"""
        from mediasearch import media
        result = media.decode_or_error({str(path)!r})
        out = {{"reason": result.reason}} if isinstance(result, media.DecodeError) else {{
            "spans": result.read_all().spans, "facts": result.facts, "note": result.note}}
        """
    return run_capped(body, cap_bytes)


def zeros_zlib(size: int, chunk: int = 1 << 24) -> bytes:
    """A zlib stream of `size` zero bytes, made in a fraction of a second: one compressed chunk of zeros,
    flushed to a byte boundary, repeated (the checksum of n zeros is known: a = 1, b = n mod 65521)."""
    comp = zlib.compressobj(9, zlib.DEFLATED, -15)
    first = comp.compress(bytes(chunk)) + comp.flush(zlib.Z_FULL_FLUSH)
    again = comp.compress(bytes(chunk)) + comp.flush(zlib.Z_FULL_FLUSH)
    whole, rest = divmod(size, chunk)
    tail = comp.compress(bytes(rest)) + comp.flush()
    return b"\x78\xda" + first + again * (whole - 1) + tail + struct.pack(">I", ((size % 65521) << 16) | 1)


def black_png(width: int, height: int) -> bytes:
    """A black RGB PNG of any size; 16000 x 16000 (768 MB of pixels) is 750 KB."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    pixels = zeros_zlib(height * (1 + 3 * width))
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")


def giant_frame_video(path: Path, side: int = 16000, header_side: int | None = None) -> Path:
    """A QuickTime file whose one frame is a side x side PNG (its header may claim another size)."""
    with av.open(str(path), "w", format="mov") as container:
        stream = container.add_stream("png", rate=1)
        stream.width = stream.height = header_side or side
        stream.pix_fmt, stream.time_base = "rgb24", Fraction(1, 25)
        packet = av.Packet(black_png(side, side))
        packet.stream, packet.pts, packet.dts, packet.time_base = stream, 0, 0, stream.time_base
        container.mux(packet)
    return path


# ----------------------------------------------------------------------------- video frames


@pytest.mark.parametrize("header_side", [16000, 64])
def test_a_giant_video_frame_is_refused_without_decoding_it(tmp_path, header_side):
    """One 16000 x 16000 PNG frame in a 750 KB video (its header honest, or claiming 64 x 64): refused as a
    picture that size is, under a 2 GB cap and without the 0.8-3.4 GB its decoding took."""
    path = giant_frame_video(tmp_path / "giant.mov", 16000, header_side)
    result = decode_capped(path, 2 * GB)
    assert "refused as a decompression bomb" in result.get("reason", ""), result
    assert result["peak_mb"] < 400, result


def test_the_thumbnail_of_a_giant_frame_is_refused(tmp_path):
    """Thumbnails (the server's and MCP's, media.thumbnail) call the same frame picker: refused with a
    reason, within the same memory."""
    path = giant_frame_video(tmp_path / "giant.mov")
    body = f"""
        from mediasearch import media
        try:
            out = {{"thumbnail": str(media.thumbnail({str(path)!r}, "video", 256))}}
        except media.DecodeError as exc:
            out = {{"reason": exc.reason}}
        """
    result = run_capped(body, 2 * GB)
    assert "refused as a decompression bomb" in result.get("reason", "") and result["peak_mb"] < 400, result


def test_frames_over_the_pixel_limit_are_refused_by_the_header(tmp_path, monkeypatch):
    """A stream whose header announces frames over the pictures' limit is refused before any frame is
    decoded (the limit is lowered here so that a small video stands for a 16000 x 16000 one)."""
    path = make_video(tmp_path / "clip.mp4", seconds=2, sound=False)
    monkeypatch.setattr(media.ffmpeg, "MAX_PIXELS", 320 * 240 - 1)
    decoded = media.decode_or_error(path)
    assert isinstance(decoded, media.DecodeError) and "320x240 pixels is over" in decoded.reason


def test_a_soundtrack_still_indexes_when_the_frames_are_refused(tmp_path, monkeypatch):
    path = make_video(tmp_path / "clip.mp4", seconds=1)
    monkeypatch.setattr(media.ffmpeg, "MAX_PIXELS", 320 * 240 - 1)
    decoded = media.decode(path).read_all()
    assert set(decoded.modalities) == {"audio"} and "refused as a decompression bomb" in decoded.note


# ----------------------------------------------------------------------------- wide sound


@pytest.mark.slow
def test_a_wide_recording_is_read_in_small_blocks(tmp_path):
    """255 channels at 192 kHz: read a fraction of a second at a time, under a 3 GB cap it is indexed
    (before: 1.5 GB a read, 1.8 GB peak for the decoder alone, "contains no audio samples" under a cap)."""
    path = HOSTILE / "wide-255ch-192khz.ogg"
    if not path.exists():
        make_wide_vorbis(path)
    result = decode_capped(path, 3 * GB)
    assert "reason" not in result, result
    assert result["facts"]["channels"] == 255 and result["facts"]["duration"] == 9.0
    assert result["spans"] == [[0.0, 9.0]] and result["peak_mb"] < 600, result


def test_the_read_size_does_not_change_the_windows(tmp_path, monkeypatch):
    """Wide recordings are read in smaller blocks: the windows must be the same whatever the block."""
    t = np.arange(48_000 * 30) / 48_000
    stereo = np.stack([np.sin(2 * np.pi * 440 * t), np.sin(2 * np.pi * 660 * t)], axis=1).astype(np.float32)
    sf.write(tmp_path / "thirty.wav", 0.3 * stereo, 48_000)
    whole = media.decode(tmp_path / "thirty.wav").read_all()
    monkeypatch.setattr(media.sound, "READ_BYTES", 8 * 4 * 1000)  # 1,000 stereo frames a read
    small = media.decode(tmp_path / "thirty.wav").read_all()
    assert whole.spans == small.spans and len(whole.spans) == 4
    assert all(np.array_equal(a, b) for a, b in zip(whole.tensors, small.tensors, strict=True))


def test_a_sound_whose_codec_ffmpeg_cannot_decode_fails_with_a_reason():
    """A mutant of an M4A (found by scripts/fuzz.py) whose header names a codec FFmpeg has no decoder for:
    one clear reason, not "could not be decoded (AttributeError: ...)"."""
    result = media.decode_or_error(HOSTILE / "no-sound-decoder.m4a")
    assert isinstance(result, media.DecodeError)
    assert result.reason.startswith("not a readable sound file (") and "Error" not in result.reason, result.reason


def test_a_video_whose_codec_ffmpeg_cannot_decode_fails_with_a_reason():
    """A mutant of an MP4 (found by scripts/fuzz.py, 69 of 1,000) whose video stream names a codec FFmpeg has
    no decoder for: a reason, not "could not be decoded (AttributeError: ...)"."""
    result = media.decode_or_error(HOSTILE / "no-picture-decoder.mp4")
    assert isinstance(result, media.DecodeError) and "Error" not in result.reason, result.reason


# ----------------------------------------------------------------------------- decoder workers


@pytest.fixture
def indexed(tmp_path, embedder):
    """Index a folder with the real towers, decoders misbehaving on marked files (tests/decoder_hooks.py)."""
    from conftest import open_library
    from decoder_hooks import misbehave_on_marked_files

    from mediasearch.ingest import Indexer

    libraries = []

    def run(folder: Path, hooks: bool = True, **kw):
        library = open_library(tmp_path / "library", embedder.bundle)
        libraries.append(library)
        roots = library.add_folders([str(folder)])
        setup = misbehave_on_marked_files if hooks else None
        indexer = Indexer(library, lambda: embedder, decoder_setup=setup, **kw)
        return indexer.scan(roots), library

    yield run
    for library in libraries:
        library.close()


def good_files(folder: Path) -> list[str]:
    folder.mkdir(exist_ok=True)
    for name in ("landscape.jpg", "portrait.png", "tone48k.wav"):
        shutil.copy(INPUTS / name, folder / name)
    return ["landscape.jpg", "portrait.png", "tone48k.wav"]


@pytest.mark.slow
def test_a_decoder_that_crashes_fails_its_file_and_the_pass_goes_on(tmp_path, indexed):
    """A decoder killed by SIGSEGV (as a crash in a C library would be) fails its file with the signal;
    the pass goes on and the other files are indexed (before: the pass, and `index`, died with it)."""
    good = good_files(tmp_path / "media")
    shutil.copy(INPUTS / "landscape.jpg", tmp_path / "media" / "segfault.jpg")
    summary, library = indexed(tmp_path / "media")
    assert summary.added == len(good) and summary.failed == 1 and not summary.stopped
    assert [(f["path"], f["error"]) for f in summary.failures] == [
        (str(tmp_path / "media" / "segfault.jpg"), "the decoder crashed (signal 11, SIGSEGV)")
    ]


@pytest.mark.slow
def test_a_decoder_that_hangs_is_given_up(tmp_path, indexed, monkeypatch):
    from mediasearch.media import workers

    monkeypatch.setattr(workers, "HANG_S", 1.0)
    good = good_files(tmp_path / "media")
    shutil.copy(INPUTS / "landscape.jpg", tmp_path / "media" / "hang.jpg")
    summary, _ = indexed(tmp_path / "media")
    assert summary.added == len(good) and summary.failed == 1
    assert "the decoder stopped answering for 1 s" in summary.failures[0]["error"]


def test_out_of_memory_fails_the_file_for_now_and_it_is_tried_again(tmp_path, indexed):
    """An allocation that fails is that file's failure, saying so, never a stop; the next pass tries again."""
    good = good_files(tmp_path / "media")
    Image.new("RGB", (64, 48), (10, 120, 200)).save(tmp_path / "media" / "nomemory.png")
    summary, library = indexed(tmp_path / "media")
    assert summary.added == len(good) and summary.failed == 1 and not summary.stopped
    assert summary.failures[0]["error"].startswith("not enough memory to decode it (Unable to allocate 6.00 GiB")
    library.close()
    again, library = indexed(tmp_path / "media", hooks=False)  # the same, unchanged file, memory now enough
    assert (again.updated, again.unchanged, again.failed) == (1, len(good), 0)
    assert library.catalog.file(str(tmp_path / "media" / "nomemory.png")).status == "indexed"


@pytest.mark.slow
@pytest.mark.parametrize("parked", [2, 0])
def test_workers_give_the_same_segments_as_decoding_in_process(tmp_path, monkeypatch, parked):
    """Pictures, a recording longer than the read-ahead (its rest read by the worker that paused after its
    first windows, or, when too many are paused, decoded again by another), a video: every segment, time
    and fact equal to the in-process decoder's, so every vector is equal too."""
    from mediasearch import capture
    from mediasearch.media import workers
    from mediasearch.media.workers import DecoderPool

    monkeypatch.setattr(workers, "PARKED", parked)

    t = np.arange(8_000 * 150) / 8_000
    sf.write(tmp_path / "long.wav", (0.3 * np.sin(2 * np.pi * 300 * t * (1 + t / 150))).astype(np.float32), 8_000)
    files = [INPUTS / "landscape.jpg", INPUTS / "deep16.png", tmp_path / "long.wav"]
    files.append(make_video(tmp_path / "clip.mp4", seconds=4))
    pool = DecoderPool(2)
    try:
        for path in files:
            here, there = media.decode(path).read_all(), pool.decode(path)
            assert not isinstance(there, media.DecodeError), there
            there.read_all()
            found = there.facts.pop("capture")  # when and where: read by the worker too, as the indexer asks
            assert found == capture.metadata(str(path), here.kind)
            assert (there.kind, there.spans, there.modalities, there.facts, there.note) == (
                here.kind, here.spans, here.modalities, here.facts, here.note
            )  # fmt: skip
            assert all(np.array_equal(a, b) for a, b in zip(here.tensors, there.tensors, strict=True))
        assert len(here.spans) > 2 and len(media.decode(tmp_path / "long.wav").read_all().spans) == 19
    finally:
        pool.close()


STOP_SCRIPT = """
import json, signal, sys
sys.path.insert(0, {tests!r})
from decoder_hooks import misbehave_on_marked_files
from mediasearch.bundle import resolve
from mediasearch.ingest import Indexer
from mediasearch.storage import Storage
from mediasearch.model import Embedder

bundle = resolve({bundle!r})
library = Storage({library!r}, write=True)
library.bind(bundle)
roots = library.add_folders([{folder!r}])
indexer = Indexer(library, lambda: Embedder(bundle), decoder_setup=misbehave_on_marked_files)
signal.signal(signal.SIGTERM, lambda *_: indexer.stop())
summary = indexer.scan(roots)
library.close()
print(json.dumps({{"stopped": summary.stopped, "added": summary.added, "failed": summary.failed}}))
"""


@pytest.mark.slow
def test_sigterm_during_a_decode_stops_within_a_second(tmp_path):
    """A decoder busy on one file (here one that never ends) does not hold up a stop: the pass stops
    within about a second of SIGTERM, without recording that file as failed."""
    from conftest import BUNDLE

    good_files(tmp_path / "media")
    shutil.copy(INPUTS / "landscape.jpg", tmp_path / "media" / "hang.jpg")
    script = STOP_SCRIPT.format(
        tests=str(Path(__file__).parent), bundle=str(BUNDLE), library=str(tmp_path / "library"),
        folder=str(tmp_path / "media"),
    )  # fmt: skip
    child = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while not (tmp_path / "media" / "hanging").exists():
            assert time.monotonic() < deadline and child.poll() is None, "the decoder never started"
            time.sleep(0.05)
        time.sleep(0.5)
        child.send_signal(signal.SIGTERM)
        asked = time.monotonic()
        out, err = child.communicate(timeout=60)
        took = time.monotonic() - asked
    finally:
        child.kill()
    assert out, err[-3000:]
    summary = json.loads(out.splitlines()[-1])
    assert summary["stopped"] and summary["failed"] == 0, summary
    assert took < 2.0, f"stopped {took:.1f} s after SIGTERM"


@pytest.mark.slow
def test_index_under_an_address_space_cap_completes(tmp_path):
    """`mediasearch index` under a 1 GB address-space cap (ulimit -v), with a 119 MP picture that cannot
    fit beside the decoder (475 MB of pixels), the wide Ogg and good files: the pass completes (exit 3),
    the picture fails for want of memory and the rest is indexed, the Ogg included; without the cap, the
    next pass indexes the picture.  (Before: the Ogg was "contains no audio samples", a permanent failure,
    and the picture's failure was never tried again.)"""
    from conftest import BUNDLE

    folder = tmp_path / "media"
    good = good_files(folder)
    shutil.copy(HOSTILE / "wide-255ch-192khz.ogg", folder)
    (folder / "big.png").write_bytes(black_png(11000, 10800))
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1")
    command = [sys.executable, "-m", "mediasearch", "index", str(folder), "--model", str(BUNDLE), "--json"]

    def capped():
        resource.setrlimit(resource.RLIMIT_AS, (int(1.0 * GB), int(1.0 * GB)))

    first = subprocess.run(command, capture_output=True, text=True, env=env, preexec_fn=capped, timeout=600)
    assert first.returncode == 3, first.stderr[-3000:]
    summary = json.loads(first.stdout)
    assert summary["added"] == len(good) + 1 and summary["failed"] == 1, summary
    assert summary["failures"][0]["error"].startswith("not enough memory to decode it"), summary
    again = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)
    assert again.returncode == 0 and json.loads(again.stdout)["updated"] == 1, again.stderr[-3000:]


@pytest.mark.slow
def test_a_script_without_a_main_guard_runs_once(tmp_path):
    """A program that calls mediasearch from a plain script (no `if __name__ == "__main__"`) is not run
    again in the decoder workers (multiprocessing's default would run it once a worker, or fail)."""
    script = tmp_path / "plain.py"
    script.write_text(
        "from pathlib import Path\n"
        f"with open({str(tmp_path / 'runs')!r}, 'a') as out:\n"
        "    out.write('ran\\n')\n"
        "from mediasearch.media.workers import DecoderPool\n"
        "pool = DecoderPool(2)\n"
        f"picture, sound = {str(INPUTS / 'landscape.jpg')!r}, {str(INPUTS / 'tone48k.wav')!r}\n"
        "print(pool.decode(picture).kind, pool.decode(sound).kind)\n"
        "pool.close()\n"
    )
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120)
    assert done.stdout.split() == ["image", "audio"], done.stderr[-2000:]
    assert (tmp_path / "runs").read_text() == "ran\n"
