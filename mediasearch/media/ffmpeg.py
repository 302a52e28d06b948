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
from mediasearch.media.pictures import IMAGE_BUDGET, MAX_PIXELS, bomb_reason

SCENE_CHANGE = 0.25  # share of the thumbnail's colour histogram that moved: a cut, not motion
BLANK = 4.0  # a thumbnail whose standard deviation (0-255) is below this is black, white or blank
MIN_GAP_S = 1.0  # never two frames closer than this
# Frames FFmpeg may decode while it opens a file (to learn a stream's format): a 4K UHD frame at most.
# A larger frame is sized from the stream's header alone, and decoded, if within the pictures' pixel
# limit, only with its share of the decoding budget reserved.
PROBE_PIXELS = 3840 * 2160
# Bytes a pixel of a frame holds at its peak: the decoder's frame (up to 8, rgba64), the RGB picture
# made of it (3) and its upright copy (3), rounded up.
FRAME_BYTES_PER_PIXEL = 16


def _av():
    import av  # ~0.1 s and a large library: only files that need FFmpeg pay for it

    av.logging.set_level(av.logging.PANIC)  # FFmpeg's own complaints: one reason per file is given instead
    return av


def _open(av, path: str | Path):
    """A container opened with FFmpeg's decoders held to PROBE_PIXELS a frame while it looks inside."""
    return av.open(str(path), options={"max_pixels": str(PROBE_PIXELS)})


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
        with _open(av, path) as container:
            video = _decodable(container.streams.video)
            duration = container.duration / 1_000_000 if container.duration else None
            width = height = None
            if video is not None:
                width, height = video.codec_context.width, video.codec_context.height
            sound = _decodable(container.streams.audio) is not None
            return VideoInfo(video is not None, sound, duration, width, height)
    except MemoryError:  # FFmpeg could not allocate (av.error.MemoryError): not the file's fault
        raise
    except (av.error.FFmpegError, UnicodeDecodeError, ValueError) as exc:
        raise DecodeError(path, f"not a readable video or sound file ({_reason(exc)})") from exc


class AvAudio:
    """The first audio stream of a file, read like soundfile reads: blocks of [frames, channels] float32."""

    def __init__(self, path: str | Path):
        av = _av()
        try:
            self.container = _open(av, path)
        except MemoryError:  # FFmpeg could not allocate (av.error.MemoryError): not the file's fault
            raise
        except (av.error.FFmpegError, UnicodeDecodeError, ValueError) as exc:
            raise DecodeError(path, f"not a readable sound file ({_reason(exc)})") from exc
        if not self.container.streams.audio:
            self.container.close()
            raise DecodeError(path, "has no sound")
        stream = self.container.streams.audio[0]
        if stream.codec_context is None:  # a codec FFmpeg has no decoder for (a damaged header can name any)
            self.container.close()
            raise DecodeError(path, "not a readable sound file (FFmpeg has no decoder for its sound)")
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
    """(seconds, upright RGB PIL image) for the key frames worth embedding, in order.

    A stream whose header announces frames over the pictures' pixel limit is refused before any frame
    is decoded; the decoder itself refuses frames larger than the header said (or than PROBE_PIXELS
    when the header does not say), and each frame is decoded within the pictures' memory budget.
    """
    av = _av()
    try:
        container = _open(av, path)
    except MemoryError:  # FFmpeg could not allocate (av.error.MemoryError): not the file's fault
        raise
    except (av.error.FFmpegError, UnicodeDecodeError, ValueError) as exc:
        raise DecodeError(path, f"not a readable video ({_reason(exc)})") from exc
    try:
        stream = _decodable(container.streams.video)
        if stream is None:
            return
        allowed = _frame_pixels(path, stream.codec_context.width or 0, stream.codec_context.height or 0)
        stream.codec_context.options = {"max_pixels": str(allowed)}
        stream.codec_context.skip_frame = "NONKEY"  # the decoder itself drops every other frame
        picker, refused = _Picker(interval, cap), 0
        for packet in container.demux(stream):
            with IMAGE_BUDGET.reserve(allowed * FRAME_BYTES_PER_PIXEL):
                frames = _decode(av, packet)
                kept = [picked for frame in frames or () if (picked := picker.take(frame))]
            refused += frames is None
            yield from kept  # the budget is never held while the caller works on a frame
            if picker.full:
                return
        if refused and not picker.kept:
            raise DecodeError(path, f"its frames are larger than {allowed} pixels: refused as a decompression bomb")
    finally:
        container.close()


def _decodable(streams):
    """The first of these streams, if FFmpeg has a decoder for it (a damaged header can name any codec)."""
    return streams[0] if streams and streams[0].codec_context is not None else None


def _frame_pixels(path: str | Path, width: int, height: int) -> int:
    """The most pixels a frame of this stream may have: what its header says, refused over MAX_PIXELS."""
    if width * height > MAX_PIXELS:
        raise DecodeError(path, bomb_reason(width, height))
    return max(width * height, PROBE_PIXELS)


def _decode(av, packet) -> list | None:
    """A packet's frames: none for a packet that does not decode (damage in the middle of a file),
    None for a frame the decoder refused to allocate (over its max_pixels, or a size it finds invalid)."""
    try:
        return packet.decode()
    except av.error.InvalidDataError:
        return []
    except av.error.ArgumentError:
        return None


class _Picker:
    """Keeps a frame at a scene change or after `interval` seconds without one; skips blank frames."""

    def __init__(self, interval: float, cap: int):
        self.interval, self.cap = interval, cap
        self.last_colours, self.last_time, self.kept = None, float("-inf"), 0

    @property
    def full(self) -> bool:
        return self.kept >= self.cap

    def take(self, frame) -> tuple[float, object] | None:
        if self.full:
            return None
        seconds = float(frame.time or 0.0)
        small = frame.reformat(width=64, height=36, format="rgb24").to_ndarray()
        if small.std() < BLANK:
            return None
        colours = _colours(small)
        changed = self.last_colours is None or 0.5 * float(np.abs(colours - self.last_colours).sum()) > SCENE_CHANGE
        gap = seconds - self.last_time
        if not ((changed and gap >= MIN_GAP_S) or gap >= self.interval):
            return None
        self.last_colours, self.last_time, self.kept = colours, seconds, self.kept + 1
        return seconds, upright(frame.to_image(), frame.rotation)


def _colours(small: np.ndarray) -> np.ndarray:
    """A thumbnail's colour histogram (16 bins a channel), summing to 1."""
    counts = np.concatenate([np.bincount(small[..., c].ravel() >> 4, minlength=16) for c in range(3)])
    return counts / counts.sum()


def upright(image, rotation: int | float | None):
    """The frame as the player shows it: FFmpeg's rotation is counterclockwise, as is Pillow's."""
    from PIL import Image

    turns = {90: Image.Transpose.ROTATE_90, 180: Image.Transpose.ROTATE_180, 270: Image.Transpose.ROTATE_270}
    angle = int(round(rotation or 0))
    if angle % 360 in turns:
        return image.transpose(turns[angle % 360])
    return image.rotate(angle, expand=True) if angle else image
