"""What FFmpeg reads (through PyAV, whose wheels carry it): sound formats libsndfile cannot
open (M4A/AAC/ALAC, Opus in MP4, WMA, AMR...), a video's soundtrack, and the frames of a video
worth embedding.

Frames are chosen without decoding every frame: only key frames are decoded
(the decoder skips the rest), and of those, a frame is kept when the scene
changed (the colour histogram of its 64x36 thumbnail moved: a cut, not a
moving object), or when `interval` seconds passed without one; black and blank
frames are skipped; at most `cap` frames per video.  A long video therefore costs about what its kept
frames cost.  Frames come upright (the stream's display rotation applied).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mediasearch.errors import DecodeError

SCENE_CHANGE = 0.25  # share of the thumbnail's colour histogram that moved: a cut, not motion
BLANK = 4.0  # a thumbnail whose standard deviation (0-255) is below this is black, white or blank
MIN_GAP_S = 1.0  # never two frames closer than this


def _av():
    import av  # ~0.1 s and a large library: only files that need FFmpeg pay for it

    av.logging.set_level(av.logging.PANIC)  # FFmpeg's own complaints: one reason per file is given instead
    return av


def _reason(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:200]


@dataclass
class VideoInfo:
    has_video: bool
    has_audio: bool
    duration: float | None
    width: int | None
    height: int | None


def probe(path: str | Path) -> VideoInfo:
    """What a container holds, or DecodeError when FFmpeg cannot read it at all."""
    av = _av()
    try:
        with av.open(str(path)) as container:
            video = container.streams.video[0] if container.streams.video else None
            duration = container.duration / 1_000_000 if container.duration else None
            width = height = None
            if video is not None:
                width, height = video.codec_context.width, video.codec_context.height
            return VideoInfo(video is not None, bool(container.streams.audio), duration, width, height)
    except (av.error.FFmpegError, UnicodeDecodeError, ValueError) as exc:
        raise DecodeError(path, f"not a readable video or sound file ({_reason(exc)})") from exc


class AvAudio:
    """The first audio stream of a file, read like soundfile reads: blocks of [frames, channels] float32."""

    def __init__(self, path: str | Path):
        av = _av()
        try:
            self.container = av.open(str(path))
        except (av.error.FFmpegError, UnicodeDecodeError, ValueError) as exc:
            raise DecodeError(path, f"not a readable sound file ({_reason(exc)})") from exc
        if not self.container.streams.audio:
            self.container.close()
            raise DecodeError(path, "has no sound")
        stream = self.container.streams.audio[0]
        self.samplerate = stream.codec_context.sample_rate or stream.rate or 0
        self.channels = stream.codec_context.channels or 1
        # Packed float at the source rate and channels: averaging to mono and resampling to
        # 48 kHz stay mediasearch's own, exactly as for files libsndfile reads.
        self._resampler = av.AudioResampler(format="flt", layout=stream.codec_context.layout, rate=self.samplerate)
        self._packets = self.container.demux(stream)
        self._buffer = np.zeros((0, self.channels), np.float32)
        self._done = False

    def read(self, frames: int, dtype: str = "float32", always_2d: bool = True) -> np.ndarray:
        """Up to `frames` frames; fewer only at the end.  A damaged stream raises, which the caller
        takes as the end of what can be read."""
        av = _av()
        parts = [self._buffer]
        have = len(self._buffer)
        while have < frames and not self._done:
            try:
                packet = next(self._packets)
            except StopIteration:
                self._done = True
                break
            try:
                decoded = packet.decode()
            except av.error.InvalidDataError:
                continue  # one bad packet: the sound goes on after it
            for frame in decoded:
                for out in self._resampler.resample(frame):
                    block = out.to_ndarray().reshape(-1, self.channels)
                    parts.append(block)
                    have += len(block)
        data = np.concatenate(parts) if len(parts) > 1 else parts[0]
        self._buffer = data[frames:]
        return np.ascontiguousarray(data[:frames], np.float32)

    def close(self) -> None:
        self.container.close()


def pick_frames(path: str | Path, interval: float, cap: int) -> Iterator[tuple[float, object]]:
    """(seconds, upright RGB PIL image) for the key frames worth embedding, in order."""
    av = _av()
    try:
        container = av.open(str(path))
    except (av.error.FFmpegError, UnicodeDecodeError, ValueError) as exc:
        raise DecodeError(path, f"not a readable video ({_reason(exc)})") from exc
    try:
        if not container.streams.video:
            return
        stream = container.streams.video[0]
        stream.codec_context.skip_frame = "NONKEY"  # the decoder itself drops every other frame
        last_colours, last_time, kept = None, float("-inf"), 0
        for frame in _frames(av, container, stream):
            seconds = float(frame.time or 0.0)
            small = frame.reformat(width=64, height=36, format="rgb24").to_ndarray()
            if small.std() < BLANK:
                continue
            colours = _colours(small)
            changed = last_colours is None or 0.5 * float(np.abs(colours - last_colours).sum()) > SCENE_CHANGE
            gap = seconds - last_time
            if (changed and gap >= MIN_GAP_S) or gap >= interval:
                yield seconds, upright(frame.to_image(), frame.rotation)
                last_colours, last_time, kept = colours, seconds, kept + 1
                if kept >= cap:
                    return
    finally:
        container.close()


def _colours(small: np.ndarray) -> np.ndarray:
    """A thumbnail's colour histogram (16 bins a channel), summing to 1."""
    counts = np.concatenate([np.bincount(small[..., c].ravel() >> 4, minlength=16) for c in range(3)])
    return counts / counts.sum()


def _frames(av, container, stream) -> Iterator:
    """Decoded frames, skipping packets that do not decode (damage in the middle of a file)."""
    for packet in container.demux(stream):
        try:
            yield from packet.decode()
        except av.error.InvalidDataError:
            continue


def upright(image, rotation: int | float | None):
    """The frame as the player shows it: FFmpeg's rotation is counterclockwise, as is Pillow's."""
    from PIL import Image

    turns = {90: Image.Transpose.ROTATE_90, 180: Image.Transpose.ROTATE_180, 270: Image.Transpose.ROTATE_270}
    angle = int(round(rotation or 0))
    if angle % 360 in turns:
        return image.transpose(turns[angle % 360])
    return image.rotate(angle, expand=True) if angle else image
