"""Hostile media against the decoders: wide sound, giant frames, out of memory, crashing decoders.

The memory tests run the decoder in a child process under an address-space cap
(RLIMIT_AS) and read its peak resident memory, so one test's allocation never
touches the test runner or another test.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

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


def decode_capped(path: Path, cap_bytes: int) -> dict:
    """Decode one file in a child process under an address-space cap: its windows, reason and peak RSS."""
    script = textwrap.dedent(
        f"""
        import json, resource, sys
        resource.setrlimit(resource.RLIMIT_AS, ({cap_bytes}, {cap_bytes}))
        from mediasearch import media
        result = media.decode_or_error({str(path)!r})
        out = {{"reason": result.reason}} if isinstance(result, media.DecodeError) else {{
            "spans": result.read_all().spans, "facts": result.facts, "note": result.note}}
        out["peak_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(json.dumps(out))
        """
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.splitlines()[-1])


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
