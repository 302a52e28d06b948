"""Video: frames worth embedding (pictures) and the soundtrack (sound windows), each with its time."""

from __future__ import annotations

from pathlib import Path

from mediasearch.errors import DecodeError
from mediasearch.media import ffmpeg
from mediasearch.media.decoded import Decoded, Segment
from mediasearch.media.pictures import image_tensor, to_rgb
from mediasearch.media.sound import MAX_DURATION_S, checked_rate, decode_audio, read_ahead, read_windows

FRAME_INTERVAL_S = 10.0  # within one long scene, a frame at least this often
MAX_FRAMES = 600  # frames of one video at most; a longer video spaces them out


def decode_video(path: Path, max_duration: float = MAX_DURATION_S) -> Decoded:
    """A video as frames (pictures, at scene changes and every FRAME_INTERVAL_S) and its
    soundtrack (the same 10 s windows as a sound file), each segment with its time.

    A file with sound and no picture is a sound; one with neither is an error.
    """

    info = ffmpeg.probe(path)
    if not info.has_video:
        if info.has_audio:
            return decode_audio(path, max_duration)
        raise DecodeError(path, "holds neither pictures nor sound")
    seconds = min(info.duration or 0.0, max_duration)  # a declared duration can lie: it only spaces frames
    interval = max(FRAME_INTERVAL_S, seconds / MAX_FRAMES)
    duration = round(min(info.duration, max_duration), 3) if info.duration else None
    decoded = Decoded("video", [], {"width": info.width, "height": info.height, "duration": duration})
    return read_ahead(decoded, _video_segments(path, decoded, info.has_audio, interval, max_duration))


def _video_segments(path: Path, decoded: Decoded, has_audio: bool, interval: float, max_duration: float):
    """Frames first, then the soundtrack's windows; either may fail alone (with a note) if the other reads."""
    count = 0
    try:
        for seconds, picture in ffmpeg.pick_frames(path, interval, MAX_FRAMES):
            if seconds > max_duration:
                break
            count += 1
            yield Segment((round(seconds, 3), round(seconds, 3)), image_tensor(to_rgb(picture)), "image")
    except DecodeError as exc:
        if not has_audio:
            raise
        decoded.note = f"its pictures could not be read ({exc.reason})"  # the soundtrack still counts
    if has_audio:
        try:
            for segment in read_windows(path, checked_rate(path, ffmpeg.AvAudio(path)), decoded, max_duration):
                count += 1
                yield segment
        except DecodeError as exc:
            if not count:
                raise
            decoded.note = f"its sound could not be read ({exc.reason})"
    if not count:
        raise DecodeError(path, "no picture or sound in it could be read (blank, or damaged throughout)")
